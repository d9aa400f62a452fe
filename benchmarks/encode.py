"""Encoding speed: mtl's SentenceEncoder against sentence-transformers on the same model, and the int8 path.

All three encoders embed the same 2,000 real sentences (the first 2,000 of the VADER sentiment test split) with
all-MiniLM-L6-v2, mean pooling and L2 normalisation, at the same batch size, on CPU:

  - ``sentence-transformers``: ``SentenceTransformer(backbone_path("minilm")).encode`` (float32, the reference);
  - ``mtl fp32``: ``SentenceEncoder.build("minilm").encode``;
  - ``mtl int8``: ``SentenceEncoder.build("minilm").quantized()`` (``mtl.quantize``; with ``--calibration 256``,
    the optional SmoothQuant scaling calibrated on the first 256 sentences of the sentiment *train* split).

The machine is shared, so the load changes while we measure: the 2,000 sentences are cut into blocks, every
encoder runs on each block in turn (the order rotates from block to block), and a repeat's time per encoder is the
sum over blocks. Throughputs are medians over repeats; a ratio is the median of the per-repeat ratios.

Quality of the int8 path, against the same encoder in float32:
  - Spearman correlation with human similarity on the Lee corpus (``mtl.similarity.spearman_with_humans``);
  - accuracy on the topic test split of a logistic-regression probe trained on the frozen train embeddings.

Usage: ``python benchmarks/encode.py [--repeats 5] [--batch-size 32] [--threads N] [--calibration 256]
[--skip-quality]``.
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch
from sentence_transformers import SentenceTransformer
from sklearn.linear_model import LogisticRegression

from mtl.backbones import backbone_path
from mtl.data import load_lee, load_sentiment, load_topic
from mtl.encoder import SentenceEncoder
from mtl.similarity import spearman_with_humans
from mtl.utils import quiet_libraries, set_seed


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def timed_rounds(encoders: dict, texts: list[str], batch_size: int, repeats: int,
                 block: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """({name: (repeats,) seconds to encode all ``texts``}, {name: embeddings from the first repeat}).

    The encoders take turns block by block, in an order that rotates, so they share the machine's load alike.
    """
    seconds = {name: np.zeros(repeats) for name in encoders}
    outputs: dict[str, list[np.ndarray]] = {name: [] for name in encoders}
    names = list(encoders)
    for r in range(repeats):
        for b, start in enumerate(range(0, len(texts), block)):
            chunk = texts[start : start + block]
            shift = (r + b) % len(names)
            for name in names[shift:] + names[:shift]:
                t0 = time.perf_counter()
                embeddings = encoders[name](chunk, batch_size)
                seconds[name][r] += time.perf_counter() - t0
                if r == 0:
                    outputs[name].append(embeddings)
        print(f"  repeat {r + 1}/{repeats}: "
              + ", ".join(f"{n} {len(texts) / seconds[n][r]:.1f}/s" for n in names), flush=True)
    return seconds, {name: np.concatenate(chunks) for name, chunks in outputs.items()}


def topic_probe_accuracy(encode) -> float:
    """Accuracy on the topic test split of logistic regression on frozen train embeddings."""
    train, test = load_topic("train"), load_topic("test")
    probe = LogisticRegression(max_iter=2000)
    probe.fit(encode([ex.text for ex in train]), [ex.labels["topic"] for ex in train])
    return float(probe.score(encode([ex.text for ex in test]), [ex.labels["topic"] for ex in test]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="sentences to time (from the sentiment test split)")
    parser.add_argument("--batch-size", type=int, default=32, help="the same for every encoder")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--block", type=int, default=100, help="sentences per interleaved block")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads for every encoder")
    parser.add_argument("--calibration", type=int, default=0,
                        help="if > 0: this many sentiment train sentences calibrate the optional SmoothQuant scaling")
    parser.add_argument("--skip-quality", action="store_true", help="only time (no Lee / topic evaluation)")
    args = parser.parse_args()

    quiet_libraries()
    set_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    texts = [ex.text for ex in load_sentiment("test")[: args.n]]
    calibration = [ex.text for ex in load_sentiment("train")[: args.calibration]] or None

    reference = SentenceTransformer(backbone_path("minilm"), device="cpu")
    fp32 = SentenceEncoder.build("minilm", pooling="mean", normalize=True, device="cpu")
    int8 = fp32.quantized(calibration)
    encoders = {
        "sentence-transformers": lambda x, bs: reference.encode(x, batch_size=bs, show_progress_bar=False),
        "mtl fp32": lambda x, bs: fp32.encode(x, batch_size=bs, show_progress_bar=False),
        "mtl int8": lambda x, bs: int8.encode(x, batch_size=bs, show_progress_bar=False),
    }
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{cpu_model()}, {os.cpu_count()} CPUs, torch {torch.__version__} with {torch.get_num_threads()} threads, "
          f"load average {load:.1f}; {len(texts)} sentences, batch size {args.batch_size}, {args.repeats} repeats",
          flush=True)

    for encode in encoders.values():  # warm-up: first calls allocate and pack
        encode(texts[: 2 * args.batch_size], args.batch_size)
    seconds, outputs = timed_rounds(encoders, texts, args.batch_size, args.repeats, args.block)
    speed = {name: len(texts) / np.median(s) for name, s in seconds.items()}
    ratio = {name: float(np.median(seconds["sentence-transformers"] / s)) for name, s in seconds.items()}
    int8_over_fp32 = float(np.median(seconds["mtl fp32"] / seconds["mtl int8"]))
    max_diff = float(np.abs(outputs["mtl fp32"] - outputs["sentence-transformers"]).max())
    cosine = (outputs["mtl int8"] * outputs["mtl fp32"]).sum(1)

    print(f"fp32: mtl {speed['mtl fp32']:.1f} sent/s vs sentence-transformers {speed['sentence-transformers']:.1f} "
          f"sent/s: ratio {ratio['mtl fp32']:.2f}; max |embedding difference| {max_diff:.1e}")
    line = (f"int8: {speed['mtl int8']:.1f} sent/s = {ratio['mtl int8']:.2f}x sentence-transformers fp32 "
            f"({int8_over_fp32:.2f}x mtl fp32); cosine to fp32 mean {cosine.mean():.4f} "
            f"min {cosine.min():.4f}")
    if not args.skip_quality:
        documents, human = load_lee()
        embed = {name: (lambda x, enc=enc: enc.encode(x, batch_size=args.batch_size, show_progress_bar=False))
                 for name, enc in (("fp32", fp32), ("int8", int8))}
        lee = {name: spearman_with_humans(encode(documents), human) for name, encode in embed.items()}
        topic = {name: topic_probe_accuracy(encode) for name, encode in embed.items()}
        line += (f"; Lee Spearman {lee['fp32']:.4f} -> {lee['int8']:.4f} ({100 * (lee['int8'] - lee['fp32']):+.2f} pt)"
                 f"; topic probe accuracy {topic['fp32']:.4f} -> {topic['int8']:.4f} "
                 f"({100 * (topic['int8'] - topic['fp32']):+.2f} pt)")
    print(line)


if __name__ == "__main__":
    main()
