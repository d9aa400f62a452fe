"""Frozen-prefix cache (``mtl.encoder.prefix_cache``): training time with and without it, same data, one run.

Both figures time ``mtl.training.train.train`` on MiniLM (max_seq_length 64) with the topic and sentiment heads, on the same
stratified subsets of the train and validation splits; each epoch includes train()'s validation pass. The plain
loop is ``TrainConfig(cache_frozen=False)``, the cached loop the default:

  - heads-only, 10 epochs: the whole encoder frozen. The cached run computes each distinct sentence's encoding
    once, before the first epoch, then only pooling and the heads run. The 10 epochs include that pass.
  - top-2 layers, per epoch: embeddings and the 4 lowest of the 6 blocks frozen. Time per epoch after the first
    (which also fills the cache): the cached run computes the 2 top blocks only, forward and backward. The
    backward pass through those 2 blocks is most of a step's cost, so the gain per epoch is bounded well below
    6/2 = 3x: about (4 frozen forwards + 2 x (forward + backward)) / (2 x (forward + backward)) with backward
    about twice a forward, i.e. under 2x for training steps; the validation pass (forward only) gains close to 3x.

A third comparison needs no quiet machine: the cache's storage dtype. The top-2 run is repeated with the cache
storing hidden states in bfloat16 and float16 (``PrefixCache(dtype=...)``, half the memory): its training loss and
validation score next to float32 storage, and the cache's size.

The machine may be shared, so plain and cached runs alternate (the order swaps every repeat) and each figure is the
median over repeats of the per-repeat ratio. Each pair must reach the same validation score (the cached path gives
the same weights up to float rounding): checked, so a speed-up never comes from computing something else.

Usage: ``python benchmarks/frozen_cache.py [--repeats 2] [--train 128] [--val 64] [--threads N] [--parts timing storage]
[--quick]``.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from mtl.encoder.prefix_cache import PrefixCache
from mtl.multitask.tasks import build_model, load_datasets
from mtl.training.train import TrainConfig, train
from mtl.utils import quiet_libraries, set_seed

TASKS = ["topic", "sentiment"]


def run(train_sets, val_sets, freeze: list[str], epochs: int, cached: bool, cache: PrefixCache | None = None):
    """(wall seconds of train(), its history) for one fresh model."""
    set_seed(0)
    model = build_model(TASKS, backbone="minilm", max_seq_length=64)
    config = TrainConfig(epochs=epochs, batch_size=32, freeze=freeze, cache_frozen=cached, patience=None,
                         head_lr=1e-2, encoder_lr=1e-4, eval_batch_size=32, progress=False)
    started = time.perf_counter()
    history = train(model, train_sets, val_sets, config, prefix_cache=cache)
    return time.perf_counter() - started, history


def timed_run(train_sets, val_sets, freeze: list[str], epochs: int, cached: bool) -> tuple[float, list[float], float]:
    """(wall seconds of train(), seconds per epoch, best validation score) for one fresh model."""
    seconds, history = run(train_sets, val_sets, freeze, epochs, cached)
    return seconds, history["seconds"].tolist(), float(history["val/main"].max())


def storage_dtypes(train_sets, val_sets) -> list[str]:
    """Top-2 training with the cache stored in float32, bfloat16, float16: loss, validation score, cache size."""
    lines = []
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        cache = PrefixCache(dtype=dtype)
        _, history = run(train_sets, val_sets, ["bottom:4"], 3, True, cache)
        losses = history[[c for c in history if c.startswith("train_loss/")]].mean(axis=1)  # mean over tasks
        lines.append(f"cache stored as {str(dtype)[6:]}: {cache.nbytes / 1e6:.1f} MB for {len(cache)} sentences; "
                     f"training loss per epoch {', '.join(f'{x:.4f}' for x in losses)}; best validation score "
                     f"{history['val/main'].max():.4f}")
    return lines


def compare(name: str, train_sets, val_sets, freeze: list[str], epochs: int, repeats: int, per_epoch: bool) -> str:
    plain, cached = [], []
    for r in range(repeats):
        for use_cache in ([False, True] if r % 2 == 0 else [True, False]):
            total, epoch_seconds, score = timed_run(train_sets, val_sets, freeze, epochs, use_cache)
            seconds = float(np.mean(epoch_seconds[1:])) if per_epoch else total  # per epoch: after the first
            (cached if use_cache else plain).append((seconds, score))
    for (_, plain_score), (_, cached_score) in zip(plain, cached):
        if abs(plain_score - cached_score) > 1e-3:
            raise AssertionError(f"{name}: cached run scored {cached_score:.4f}, plain {plain_score:.4f}")
    ratio = float(np.median([p / c for (p, _), (c, _) in zip(plain, cached)]))
    p, c = np.median([s for s, _ in plain]), np.median([s for s, _ in cached])
    return f"{name}: plain {p:.1f} s, cached {c:.1f} s, speed-up {ratio:.1f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="plain/cached pairs per figure")
    parser.add_argument("--train", type=int, default=128, help="training examples per task")
    parser.add_argument("--val", type=int, default=64, help="validation examples per task")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--parts", nargs="+", choices=["timing", "storage"], default=["timing", "storage"])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 64 + 32 examples per task, 1 repeat")
    args = parser.parse_args()
    if args.quick:
        args.train, args.val, args.repeats = 64, 32, 1
    quiet_libraries()
    if args.threads:
        torch.set_num_threads(args.threads)
    train_sets = load_datasets(TASKS, "train", limit=args.train)
    val_sets = load_datasets(TASKS, "validation", limit=args.val)
    print(f"MiniLM, {args.train} train + {args.val} validation examples per task ({', '.join(TASKS)}), batch 32, "
          f"{torch.get_num_threads()} threads, median of {args.repeats} interleaved pairs", flush=True)
    if "timing" in args.parts:
        print(compare("heads-only 10 epochs", train_sets, val_sets, ["encoder"], 10, args.repeats, per_epoch=False),
              flush=True)
        print(compare("top-2 layers per epoch", train_sets, val_sets, ["bottom:4"], 3, args.repeats, per_epoch=True),
              flush=True)
    if "storage" in args.parts:
        for line in storage_dtypes(train_sets, val_sets):
            print(line, flush=True)


if __name__ == "__main__":
    main()
