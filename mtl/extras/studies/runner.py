"""Long experiments that survive being stopped: each finished run is one JSON record on disk, and a rerun skips what
is already recorded for the same definition.

A ``StudyRun`` names one run (study, setup, seed) and holds every parameter that decides it; its ``digest`` is a hash
of all of that, so a record made under another definition is recognised and redone (``run_study``) or reported as
stale (``stale_records``, used by the tests). Records are written atomically (temporary file, then rename): killing
the process loses at most the run in progress. Each record carries its wall time and provenance (command, commit,
CPU, library versions, date; ``mtl.extras.notebooks.results.provenance``), and its CPU time over all threads (``cpu_seconds``).
Both depend on what else the machine runs (oversubscribed threads spin and wait): compare costs only between runs
made under the same load, e.g. in one quiet session.

A study runs from a git work tree with no uncommitted changes to tracked files (its own ``git worktree``, pinned to
one commit, so that development elsewhere never leaks into it): ``run_study`` refuses to start otherwise, and refuses
to record a run when the tree changed or its HEAD moved meanwhile, so every record names the code that made it.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from mtl.paths import PROJ_ROOT
from mtl.extras.notebooks.results import provenance


@dataclass(frozen=True)
class StudyRun:
    """One run of a study: ``params`` (JSON-ready) decide it completely, together with study, setup and seed."""

    study: str
    setup: str
    seed: int
    params: dict = field(default_factory=dict, hash=False)

    def definition(self) -> dict:
        return {"study": self.study, "setup": self.setup, "seed": self.seed, "params": self.params}

    def digest(self) -> str:
        """Hash of the definition: equal for equal definitions, in any key order."""
        text = json.dumps(self.definition(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def path(self, directory: Path) -> Path:
        """Where the run's record lives: ``directory/<study>/<setup>-seed<seed>.json`` (setup made file-safe)."""
        name = re.sub(r"[^A-Za-z0-9._=+-]+", "_", self.setup).strip("_")
        return Path(directory) / self.study / f"{name}-seed{self.seed}.json"


def read_record(path: Path) -> dict | None:
    """The record at ``path``, or None if it is missing or unreadable (a half-written file from an older version)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def record_text(value, indent: str = "") -> str:
    """JSON with one key per line and every list on one line: readable settings and scores, compact predictions."""
    if isinstance(value, dict) and value:
        inner = indent + " "
        items = [f"{inner}{json.dumps(str(key))}: {record_text(value[key], inner)}" for key in sorted(value, key=str)]
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    return json.dumps(value, separators=(",", ":"))


def write_record(path: Path, record: dict) -> None:
    """Write ``record`` as JSON so that the file is either the old one or the complete new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(record_text(record) + "\n")
    os.replace(temporary, path)


def current_record(run: StudyRun, directory: Path) -> dict | None:
    """The run's record if it was made by this definition (same digest), else None."""
    record = read_record(run.path(directory))
    return record if record is not None and record.get("digest") == run.digest() else None


def is_current(run: StudyRun, directory: Path) -> bool:
    return current_record(run, directory) is not None


def clean_commit(root: Path) -> str:
    """The full commit hash of HEAD of the git work tree at ``root``; RuntimeError if it is not a git work tree or
    tracked files have uncommitted changes (new untracked files, such as records, do not count)."""
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)

    head = git("rev-parse", "HEAD")
    if head.returncode != 0:
        raise RuntimeError(f"{root} is not a git work tree with a commit: a study records the commit that made it.")
    changed = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
    if changed:
        raise RuntimeError(f"{root} has uncommitted changes to tracked files ({changed.splitlines()[0].strip()} ...): "
                           "run studies from a clean work tree pinned to one commit (`git worktree add`).")
    return head.stdout.strip()


def run_study(runs: Sequence[StudyRun], execute: Callable[[StudyRun], dict], directory: Path,
              command: str = "python -m mtl.extras.studies", progress: bool = True, root: Path = PROJ_ROOT) -> list[dict]:
    """Each run's record, in order: read from ``directory`` when it was recorded for the same definition, else
    computed by ``execute(run)`` (a dict of JSON-ready results) and written before the next run starts. The bar's
    ETA counts only the runs still to do. ``root``: the git work tree whose code runs; it must stay clean and at one
    commit from start to end (``clean_commit``)."""
    paths = [run.path(directory) for run in runs]
    if len(set(paths)) != len(paths):
        raise ValueError("Two runs share a record file: every (study, setup, seed) must be unique.")
    todo = [run for run in runs if not is_current(run, directory)]
    commit = clean_commit(root) if todo else None
    bar = tqdm(total=len(todo), desc=f"{len(runs) - len(todo)} of {len(runs)} runs recorded", unit="run",
               disable=not progress)
    for run in todo:
        bar.set_postfix_str(f"{run.study}: {run.setup}, seed {run.seed}")
        started, cpu_started = time.perf_counter(), time.process_time()
        results = execute(run)
        if clean_commit(root) != commit:
            raise RuntimeError(f"HEAD of {root} moved from {commit[:7]} while {run.setup!r} ran: not recorded.")
        record = {**run.definition(), "digest": run.digest(), "seconds": round(time.perf_counter() - started, 1),
                  "cpu_seconds": round(time.process_time() - cpu_started, 1),  # all threads
                  "provenance": provenance(command, root), "results": results}
        write_record(run.path(directory), record)
        bar.update()
    bar.close()
    return [read_record(path) for path in paths]


def stale_records(runs: Sequence[StudyRun], directory: Path) -> list[Path]:
    """Record files under ``directory/<study>/`` of these runs' studies that no current run would write: made by
    another definition (digest differs) or by a run that no longer exists."""
    current = {run.path(directory): run.digest() for run in runs}
    stale = []
    for study in sorted({run.study for run in runs}):
        for path in sorted((Path(directory) / study).glob("*.json")):
            record = read_record(path)
            if record is None or current.get(path) != record.get("digest"):
                stale.append(path)
    return stale
