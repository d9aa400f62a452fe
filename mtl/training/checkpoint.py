"""Resumable training without pickle: where the loop is (``LoopState``) and all a run needs to continue exactly.

A checkpoint folder holds the model (``MultiTaskModel.save`` format), ``state.safetensors`` (optimiser moments,
loss-weight parameters, torch RNG state, batch-stream permutations) and ``state.json`` (loop state with the epoch's
task schedule and the history so far, scheduler, NumPy and Python RNG states). It is written to a temporary folder
and renamed into place, so a crash mid-write never replaces a good checkpoint with a half-written one.
"""
from __future__ import annotations

import json
import math
import os
import random
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from mtl.multitask.model import MultiTaskModel

STATE_TENSORS, STATE_JSON = "state.safetensors", "state.json"


@dataclass
class LoopState:
    """Where the loop is: enough, with the RNG and optimiser states, to resume mid-epoch exactly."""

    epoch: int = 1
    step: int = 0  # steps done in this epoch
    schedule: list[str] | None = None  # this epoch's dataset per step
    loss_sums: dict[str, float] = field(default_factory=dict)
    loss_counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0  # time spent in this epoch before a checkpoint
    history: list[dict] = field(default_factory=list)
    best_score: float = -math.inf
    stale: int = 0  # epochs since the best one

    def count_step(self, losses: dict[str, float]) -> None:
        """A step is done: add its {task: loss} to the epoch's sums."""
        for name, value in losses.items():
            self.loss_sums[name] = self.loss_sums.get(name, 0.0) + value
            self.loss_counts[name] = self.loss_counts.get(name, 0) + 1
        self.step += 1

    def next_epoch(self) -> None:
        self.epoch, self.step, self.schedule, self.seconds = self.epoch + 1, 0, None, 0.0
        self.loss_sums, self.loss_counts = {}, {}


def save_checkpoint(path: Path, model, weighting, optimizer, scheduler, rng, streams, loop: LoopState) -> None:
    """Everything needed to resume, written atomically (a crash mid-write keeps the previous checkpoint)."""
    opt_tensors, opt_meta = optimizer_tensors(optimizer)
    version, internal, gauss = random.getstate()
    tensors = {**opt_tensors, "rng.torch": torch.get_rng_state(),
               **{f"weighting.{k}": v.detach().cpu().reshape(1) for k, v in weighting.state_dict().items()},
               **{f"stream.{name}": torch.from_numpy(s.order.copy()) for name, s in streams.items()}}
    meta = {**opt_meta, "python_rng": [version, list(internal), gauss], "scheduler": scheduler.state_dict(),
            "numpy_rng": rng.bit_generator.state, "stream_positions": {name: s.position for name, s in streams.items()},
            "loop": {**asdict(loop), "best_score": None if loop.best_score == -math.inf else loop.best_score}}

    def write(folder: Path) -> None:
        model.save(folder)
        save_file(tensors, str(folder / STATE_TENSORS))
        (folder / STATE_JSON).write_text(json.dumps(meta))

    atomic_directory(path, write)


def resume(path: Path, model, weighting, optimizer, scheduler, rng, streams) -> LoopState:
    """Load a ``last`` checkpoint into the freshly built objects and return the loop state."""
    tensors, meta = load_state(path)
    model.load_state_dict(MultiTaskModel.load(path, tasks=list(model.tasks.values())).state_dict())
    weighting.load_state_dict({k[len("weighting."):]: v.reshape(()) for k, v in tensors.items()
                               if k.startswith("weighting.")})
    restore_optimizer(optimizer, tensors, meta)
    scheduler.load_state_dict(meta["scheduler"])
    torch.set_rng_state(tensors["rng.torch"])
    version, internal, gauss = meta["python_rng"]
    random.setstate((version, tuple(internal), gauss))
    rng.bit_generator.state = meta["numpy_rng"]
    for name, stream in streams.items():
        order = tensors.get(f"stream.{name}", torch.zeros(0, dtype=torch.long)).numpy()
        if len(order) != len(stream.examples):
            raise ValueError(f"{path} was written for {len(order)} training examples in {name!r}, but there are "
                             f"{len(stream.examples)}; resume with the same data and config.")
        stream.order, stream.position = order, meta["stream_positions"][name]
    loop = LoopState(**meta["loop"])
    loop.best_score = -math.inf if loop.best_score is None else loop.best_score
    return loop


def atomic_directory(target: Path, write) -> None:
    """Call ``write(tmp_dir)``, then swap ``tmp_dir`` into ``target`` (old copy removed only after the rename)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    old = target.with_name(f".{target.name}.old")
    if not target.exists() and old.is_dir():  # a swap killed between its two renames: put the previous copy back
        os.replace(old, target)
    for leftover in target.parent.glob(f".{target.name}.*"):  # of a run killed mid-write or while deleting ``old``
        shutil.rmtree(leftover, ignore_errors=True)  # (os.replace cannot overwrite a non-empty ``old``)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        write(tmp)
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimiser state dict into tensors (for safetensors) and the rest (for JSON)."""
    state = optimizer.state_dict()
    tensors = {f"optimizer.{index}.{name}": value.detach().cpu().contiguous()
               for index, slots in state["state"].items() for name, value in slots.items()}
    groups = [{k: list(v) if isinstance(v, tuple) else v for k, v in g.items()} for g in state["param_groups"]]
    return tensors, {"param_groups": groups}


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    slots: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            slots.setdefault(int(index), {})[name] = value
    groups = [{k: tuple(v) if k == "betas" else v for k, v in g.items()} for g in meta["param_groups"]]
    optimizer.load_state_dict({"state": slots, "param_groups": groups})


def load_state(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a checkpoint's state; a missing, truncated or corrupted file is an error naming it."""
    tensors_file, json_file = Path(path) / STATE_TENSORS, Path(path) / STATE_JSON
    for f in (tensors_file, json_file):
        if not f.is_file():
            raise FileNotFoundError(f"{f} is missing: {path} is not a resumable checkpoint.")
    try:
        tensors = load_file(str(tensors_file))
    except Exception as err:  # safetensors has its own error types for truncated / corrupt files
        raise ValueError(f"{tensors_file} is corrupted or not a safetensors file: {err}") from err
    try:
        meta = json.loads(json_file.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{json_file} is not valid JSON: {err}") from err
    return tensors, meta
