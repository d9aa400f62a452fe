"""Resumable training state without pickle: tensors in safetensors, everything else in JSON.

A checkpoint folder holds the model (``MultiTaskModel.save`` format), ``state.safetensors`` (optimiser moments,
loss-weight parameters, torch RNG state, batch-stream permutations) and ``state.json`` (step counters, scheduler,
NumPy and Python RNG states, the epoch's task schedule, history so far). It is written to a temporary folder and
renamed into place, so a crash mid-write never replaces a good checkpoint with a half-written one.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

STATE_TENSORS, STATE_JSON = "state.safetensors", "state.json"


def atomic_directory(target: Path, write) -> None:
    """Call ``write(tmp_dir)``, then swap ``tmp_dir`` into ``target`` (old copy removed only after the rename)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    old = restore_interrupted(target)
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


def restore_interrupted(target: Path) -> Path:
    """Undo a swap killed between its two renames (``target`` gone, its previous copy kept aside); returns where
    ``atomic_directory`` keeps that previous copy."""
    target = Path(target)
    old = target.with_name(f".{target.name}.old")
    if not target.exists() and old.is_dir():
        os.replace(old, target)
    return old


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


def save_state(path: Path, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Write the two state files into an (already temporary) folder."""
    save_file(tensors, str(path / STATE_TENSORS))
    (path / STATE_JSON).write_text(json.dumps(meta))


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


def rng_states() -> tuple[dict[str, torch.Tensor], dict]:
    """torch (tensor) and Python (JSON) global RNG states."""
    version, internal, gauss = random.getstate()
    return {"rng.torch": torch.get_rng_state()}, {"python_rng": [version, list(internal), gauss]}


def restore_rng(tensors: dict[str, torch.Tensor], meta: dict) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    version, internal, gauss = meta["python_rng"]
    random.setstate((version, tuple(internal), gauss))


def numpy_state(rng: np.random.Generator) -> dict:
    return rng.bit_generator.state


def restore_numpy(rng: np.random.Generator, state: dict) -> None:
    rng.bit_generator.state = state
