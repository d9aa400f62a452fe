"""The numbers a notebook reports, kept in ``results/<notebook>.json`` so that README and CI can check them.

``make all`` executes the notebooks and (re)writes these files. ``make test`` runs the notebooks under nbval with
``MTL_CHECK_RESULTS=1``: every recorded number is then compared with the committed one, within the tolerance
stated where it is recorded, and nothing is written. Numbers computed without training (embeddings of a pretrained
model, a logistic regression fitted to convergence) are exact across CPUs and get tolerance 0; numbers after
gradient descent can move in their third decimal on another CPU (other float kernels, another trajectory), so their
cells are left out of nbval's digit-by-digit comparison and checked here, within the tolerance, instead.
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from numbers import Number
from pathlib import Path

import numpy as np
import pandas as pd

from mtl.paths import RESULTS_DIR

CHECK_ENV = "MTL_CHECK_RESULTS"  # set (to 1) by `make test`: compare with the committed files, write nothing


def checking() -> bool:
    """True under the test command: recorded values are compared with the committed ones, not written."""
    return os.environ.get(CHECK_ENV, "") not in ("", "0")


def _plain(value):
    """JSON-ready value: numpy scalars to Python, floats rounded to 6 significant decimals (no float noise)."""
    if isinstance(value, (np.generic,)):
        value = value.item()
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, Number):
        value = float(value)
        return value if not math.isfinite(value) else float(f"{value:.6g}")
    raise TypeError(f"Only numbers and strings are recorded, got {type(value).__name__} {value!r}.")


class NotebookResults:
    """``record(key, value, tolerance)`` for one notebook; the file is rewritten after every record (nothing lost
    if the notebook fails half-way), or, under the test command, each value is checked against the file."""

    def __init__(self, notebook: str, directory: Path | None = None, about: dict | None = None):
        self.notebook, self.path = notebook, Path(directory or RESULTS_DIR) / f"{notebook}.json"
        self.check = checking()
        # where the numbers come from, kept in the file beside them (the checking run leaves the file alone)
        self.about = about if about is not None else ({} if self.check else
                                                      provenance(f"make all (notebooks/{notebook}.ipynb)"))
        self.committed: dict = {}
        if self.check:
            if not self.path.is_file():
                raise FileNotFoundError(f"{self.path} is missing: run `make all` to record {notebook}'s results.")
            self.committed = json.loads(self.path.read_text())["values"]
        self.values: dict[str, dict] = {}

    def record(self, key: str, value, tolerance: float | None = 0.0):
        """Keep ``value`` under ``key`` (returned unchanged). Checking: it must equal the committed value, for numbers
        within ``tolerance`` (absolute), else AssertionError naming both. ``tolerance=None``: recorded, never
        compared (a wall time, which depends on the machine and its load)."""
        if tolerance is not None and not tolerance >= 0:
            raise ValueError(f"tolerance must be >= 0 or None, got {tolerance}.")
        plain = _plain(value)
        if self.check and tolerance is not None:
            if key not in self.committed:
                raise AssertionError(f"{self.path.name}: {key!r} was never recorded; run `make all` to record it.")
            expected = self.committed[key]["value"]
            same = (abs(plain - expected) <= tolerance + 1e-9
                    if isinstance(plain, (int, float)) and isinstance(expected, (int, float)) and not isinstance(plain, bool)
                    else plain == expected)
            if not same:
                raise AssertionError(f"{self.path.name}: {key} = {plain!r}, recorded {expected!r} "
                                     f"(tolerance {tolerance}): the notebook no longer reproduces its recorded result.")
        self.values[key] = {"value": plain, "tolerance": tolerance}
        if not self.check:
            self._write()
        return value

    def record_frame(self, key: str, frame: pd.DataFrame | Mapping, tolerance: float | None = 0.0) -> None:
        """Every numeric cell of ``frame`` as ``key/<row>/<column>`` (NaN cells are skipped; a row label that is a
        tuple, from a MultiIndex, is joined with "/")."""
        frame = pd.DataFrame(frame)
        for row, values in frame.iterrows():
            row = "/".join(map(str, row)) if isinstance(row, tuple) else row
            for column, value in values.items():
                if isinstance(value, (Number, np.generic)) and not pd.isna(value):
                    self.record(f"{key}/{row}/{column}", value, tolerance)

    def _write(self) -> None:
        old = json.loads(self.path.read_text())["values"] if self.path.is_file() else {}
        self._dump({**old, **self.values})  # earlier keys stay until `finish` (a run that fails half-way loses none)

    def finish(self) -> None:
        """End of the notebook: the file keeps exactly this run's keys. Checking: every committed key was recorded
        again (a result that silently stopped being computed is an error)."""
        if self.check:
            missing = sorted(set(self.committed) - set(self.values))
            if missing:
                raise AssertionError(f"{self.path.name}: recorded before but not now: {missing}.")
            return
        self._dump(self.values)

    def _dump(self, values: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"notebook": self.notebook, **({"provenance": self.about} if self.about else {}),
                           "values": dict(sorted(values.items()))}, indent=1)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(text + "\n")
        tmp.replace(self.path)


def provenance(command: str, root: Path | None = None) -> dict[str, str]:
    """Where a recorded result comes from: the command, git commit (+ "dirty" if tracked files had changes; new
    untracked files, such as the records a study writes, do not count) of the work tree at ``root`` (default: this
    package's), CPU model and cores, library versions, date (UTC)."""
    import platform
    import subprocess
    from datetime import datetime, timezone
    from importlib.metadata import version

    from mtl.paths import PROJ_ROOT

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root or PROJ_ROOT, capture_output=True, text=True).stdout.strip()

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    import torch

    cpu = f"{cpu} ({torch.backends.cpu.get_cpu_capability()})"  # the vector ISA torch's kernels use: AVX2, AVX512...
    return {"command": command, "commit": git("rev-parse", "--short", "HEAD") + (" dirty" if git("status", "--porcelain", "--untracked-files=no") else ""),
            "cpu": f"{cpu}, {os.cpu_count()} cores", "python": platform.python_version(),
            **{name: version(name) for name in ("torch", "transformers", "sentence-transformers", "scikit-learn")},
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def load(notebook: str, directory: Path | None = None) -> dict[str, float | int | str]:
    """{key: value} of a notebook's committed results."""
    path = Path(directory or RESULTS_DIR) / f"{notebook}.json"
    return {key: entry["value"] for key, entry in json.loads(path.read_text())["values"].items()}
