"""Multi-process encoding: sentence-transformers' process pool against one process, same sentences, same model.

``SentenceEncoder`` wraps a ``SentenceTransformer`` (``encoder.model``), so sentence-transformers' pool works on
it unchanged: ``pool = encoder.model.start_multi_process_pool(["cpu", "cpu"])`` (or ``["cuda:0", "cuda:1"]``),
then ``encoder.model.encode(texts, pool=pool)``, then ``encoder.model.stop_multi_process_pool(pool)``. Each
worker is a spawned process holding a copy of the model; chunks of texts go out through a queue and the results
come back in input order. Workers here run one torch thread each (``OMP_NUM_THREADS=1``), so two workers use
the same two cores as one process with two threads.

Prints one line: both throughputs (median over interleaved repeats), their ratio, and the largest absolute
difference between the embeddings of the two routes (they should agree to float32 rounding).

Usage: ``python benchmarks/multiprocess_encode.py [--processes 2] [--n 2000] [--repeats 3]``.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from mtl.data.examples import load_sentiment
from mtl.encoder.encoder import SentenceEncoder
from mtl.utils import quiet_libraries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--n", type=int, default=2000, help="sentences (from the sentiment test split)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    quiet_libraries()
    texts = [ex.text for ex in load_sentiment("test")[: args.n]]
    encoder = SentenceEncoder.build("minilm", pooling="mean", normalize=True, device="cpu")
    single = lambda: encoder.encode(texts, batch_size=args.batch_size, show_progress_bar=False)  # noqa: E731

    os.environ["OMP_NUM_THREADS"] = "1"  # read by the spawned workers' torch at import; this process keeps its own
    pool = encoder.model.start_multi_process_pool(["cpu"] * args.processes)
    try:
        pooled = lambda: encoder.model.encode(texts, batch_size=args.batch_size, pool=pool)  # noqa: E731
        max_diff = float(np.abs(pooled() - single()).max())  # also the warm-up of both routes
        seconds: dict[str, list[float]] = {"pool": [], "single": []}
        for r in range(args.repeats):
            for name in (["pool", "single"] if r % 2 == 0 else ["single", "pool"]):
                start = time.perf_counter()
                (pooled if name == "pool" else single)()
                seconds[name].append(time.perf_counter() - start)
    finally:
        encoder.model.stop_multi_process_pool(pool)
    speed = {name: len(texts) / float(np.median(s)) for name, s in seconds.items()}
    ratio = float(np.median(np.array(seconds["single"]) / np.array(seconds["pool"])))
    print(f"{args.processes} processes x 1 thread: {speed['pool']:.1f} sent/s vs 1 process x "
          f"{torch.get_num_threads()} threads: {speed['single']:.1f} sent/s: ratio {ratio:.2f}; "
          f"max |embedding difference| {max_diff:.1e} ({len(texts)} sentences, {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
