"""Encoding speed: mtl's SentenceEncoder against sentence-transformers on the same model, and the faster paths (bf16, int8, ONNX Runtime).

Every encoder embeds the same 2,000 real sentences (the first 2,000 of the VADER sentiment test split) with
all-MiniLM-L6-v2, mean pooling and L2 normalisation, at the same batch size, on CPU:

  - ``sentence-transformers``: ``SentenceTransformer(backbone_path("minilm")).encode`` (float32, the reference);
  - ``mtl fp32``: ``SentenceEncoder.build("minilm").encode`` (sentence-transformers' ``encode`` plus input checks);
  - ``mtl bf16``: the same encoder, ``encode(..., precision="bf16")`` (``mtl.encoder.precision``: bfloat16 autocast; fast only
    on CPUs with AMX or AVX512-BF16, emulated and slower elsewhere);
  - ``mtl int8``: ``quantize(SentenceEncoder.build("minilm"))`` (``mtl.extras.inference.quantize``; with
    ``--calibration 256``, the optional SmoothQuant scaling calibrated on the first 256 sentences of the sentiment
    *train* split).
  - ``onnx fp32`` / ``onnx int8``: ``OnnxSentenceEncoder.export(encoder, int8=...)`` (``mtl.extras.inference.onnx_encoder``: the
    backbone run by ONNX Runtime, in float32 or with its dynamic int8 quantisation; pooling etc. in torch).

The machine is shared, so the load changes while we measure: the 2,000 sentences are cut into blocks, every
encoder runs on each block in turn (the order rotates from block to block), and a repeat's time per encoder is the
sum over blocks. Throughputs are medians over repeats; a ratio is the median of the per-repeat ratios.

Quality of each faster path, against the same encoder in float32:
  - Spearman correlation with human similarity on the Lee corpus (``mtl.evaluation.similarity.spearman_with_humans``);
  - accuracy on the topic test split of a logistic-regression probe trained on the frozen train embeddings.

The last line names the fastest path on the CPU it ran on, and the fastest whose embeddings stay within cosine
0.9999 of float32 (on average).

Usage: ``python benchmarks/encode.py [--repeats 5] [--batch-size 32] [--threads N] [--calibration 256]
[--skip-quality] [--quick]``.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from sentence_transformers import SentenceTransformer
from sklearn.linear_model import LogisticRegression

from mtl.encoder.backbones import backbone_path
from mtl.data.examples import load_lee, load_sentiment, load_topic
from mtl.encoder.encoder import SentenceEncoder
from mtl.extras.inference.onnx_encoder import OnnxSentenceEncoder
from mtl.extras.inference.quantize import quantize
from mtl.encoder.precision import cpu_description
from mtl.evaluation.similarity import spearman_with_humans
from mtl.utils import quiet_libraries, set_seed

FAST_PATHS = ("mtl bf16", "mtl int8", "onnx fp32", "onnx int8")  # each compared with mtl fp32
LOSSLESS = 0.9999  # mean cosine to fp32 above which a path counts as giving the same embeddings


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
    parser.add_argument("--quick", action="store_true", help="a smoke run: 200 sentences, 1 repeat, no quality")
    args = parser.parse_args()
    if args.quick:
        args.n, args.repeats, args.block, args.skip_quality = 200, 1, 50, True

    quiet_libraries()
    set_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    texts = [ex.text for ex in load_sentiment("test")[: args.n]]
    calibration = [ex.text for ex in load_sentiment("train")[: args.calibration]] or None

    reference = SentenceTransformer(backbone_path("minilm"), device="cpu")
    fp32 = SentenceEncoder.build("minilm", pooling="mean", normalize=True, device="cpu")
    models = {
        "sentence-transformers": reference,
        "mtl fp32": fp32,
        "mtl int8": quantize(fp32, calibration),
        "onnx fp32": OnnxSentenceEncoder.export(fp32, int8=False),
        "onnx int8": OnnxSentenceEncoder.export(fp32, int8=True),
    }
    encoders = {name: (lambda x, bs, m=model: m.encode(x, batch_size=bs, show_progress_bar=False))
                for name, model in models.items()}
    encoders["mtl bf16"] = lambda x, bs: fp32.encode(x, batch_size=bs, show_progress_bar=False, precision="bf16")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{cpu_description()}, {os.cpu_count()} CPUs, torch {torch.__version__} with {torch.get_num_threads()} "
          f"threads, load average {load:.1f}; {len(texts)} sentences, batch size {args.batch_size}, {args.repeats} repeats",
          flush=True)

    for encode in encoders.values():  # warm-up: first calls allocate and pack
        encode(texts[: 2 * args.batch_size], args.batch_size)
    seconds, outputs = timed_rounds(encoders, texts, args.batch_size, args.repeats, args.block)
    speed = {name: len(texts) / np.median(s) for name, s in seconds.items()}
    ratio = {name: float(np.median(seconds["sentence-transformers"] / s)) for name, s in seconds.items()}
    max_diff = float(np.abs(outputs["mtl fp32"] - outputs["sentence-transformers"]).max())
    print(f"fp32: mtl {speed['mtl fp32']:.1f} sent/s vs sentence-transformers {speed['sentence-transformers']:.1f} "
          f"sent/s: ratio {ratio['mtl fp32']:.2f}; max |embedding difference| {max_diff:.1e}")

    embed = {name: (lambda x, e=encode: e(x, args.batch_size)) for name, encode in encoders.items()}
    if not args.skip_quality:
        documents, human = load_lee()
        scored = ("mtl fp32", *FAST_PATHS)
        lee = {name: spearman_with_humans(embed[name](documents), human) for name in scored}
        topic = {name: topic_probe_accuracy(embed[name]) for name in scored}
    mean_cosine = {"sentence-transformers": 1.0, "mtl fp32": 1.0}
    for name in FAST_PATHS:
        cosine = (outputs[name] * outputs["mtl fp32"]).sum(1)
        mean_cosine[name] = float(cosine.mean())
        line = (f"{name}: {speed[name]:.1f} sent/s = {ratio[name]:.2f}x sentence-transformers fp32 "
                f"({float(np.median(seconds['mtl fp32'] / seconds[name])):.2f}x mtl fp32); cosine to fp32 mean "
                f"{cosine.mean():.4f} min {cosine.min():.4f}")
        if not args.skip_quality:
            line += (f"; Lee Spearman {lee['mtl fp32']:.4f} -> {lee[name]:.4f} "
                     f"({100 * (lee[name] - lee['mtl fp32']):+.2f} pt); topic probe accuracy "
                     f"{topic['mtl fp32']:.4f} -> {topic[name]:.4f} ({100 * (topic[name] - topic['mtl fp32']):+.2f} pt)")
        print(line, flush=True)
    fastest = max(ratio, key=ratio.get)
    lossless = max((name for name in ratio if mean_cosine[name] >= LOSSLESS), key=ratio.get)
    print(f"fastest on this CPU: {fastest} ({ratio[fastest]:.2f}x sentence-transformers fp32); fastest with the "
          f"float32 embeddings (mean cosine >= {LOSSLESS}): {lossless} ({ratio[lossless]:.2f}x)")


if __name__ == "__main__":
    main()
