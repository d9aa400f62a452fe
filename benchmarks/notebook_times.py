"""How long the notebook suite takes: each notebook's wall time and the slowest cells across all of them.

Every ``notebooks/0*.ipynb`` that exists (or the notebooks named on the command line) is executed top to bottom
with nbclient, from a copy in a temporary folder: the committed notebook keeps its outputs. The kernel's working
directory is ``notebooks/``, as under ``make notebooks`` and nbval, so relative paths resolve as they do there.
Figures go to a temporary folder too (a first, untimed cell points ``mtl.paths.FIGURES_DIR`` there), so the
committed PNGs in figures/ are not rewritten. A notebook that fails is reported with the failing cell, and the
others still run.

Cell times are the kernel's own timestamps (from the execute request to the reply), so they do not include the
kernel's start-up; a notebook's total is its wall time including start-up.

Usage: ``python benchmarks/notebook_times.py [--top 10] [--timeout 1800] [NOTEBOOK ...]``.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError

from mtl.paths import PROJ_ROOT

NOTEBOOKS_DIR = PROJ_ROOT / "notebooks"
SETUP_CELL = """\
import pathlib
import mtl.paths  # cheap; mtl.extras.notebooks.plots, imported later by the notebook, reads FIGURES_DIR from here
mtl.paths.FIGURES_DIR = pathlib.Path({figures!r})  # keep the committed figures as they are
"""


@dataclass
class CellTime:
    notebook: str
    index: int  # position in the notebook's list of cells (markdown cells included), as in the .ipynb file
    first_line: str
    seconds: float


@dataclass
class NotebookTime:
    notebook: str
    code_cells: int
    seconds: float = 0.0
    status: str = "ok"
    cells: list[CellTime] = field(default_factory=list)


def cell_seconds(cell) -> float | None:
    """Seconds from the execute request to the reply, from the timestamps nbclient records in the cell metadata."""
    stamps = cell.get("metadata", {}).get("execution", {})
    start = stamps.get("iopub.execute_input") or stamps.get("shell.execute_request")
    end = stamps.get("shell.execute_reply")
    if not (start and end):
        return None
    parse = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    return (parse(end) - parse(start)).total_seconds()


def first_line(source: str, width: int = 60) -> str:
    line = next((ln.strip() for ln in source.splitlines() if ln.strip()), "")
    return line if len(line) <= width else line[: width - 3] + "..."


def time_notebook(path: Path, timeout: int, scratch: Path) -> NotebookTime:
    """Execute a copy of ``path`` and collect its cells' times."""
    notebook = nbformat.read(path, as_version=4)
    copy = scratch / path.name
    figures = scratch / "figures"
    notebook.cells.insert(0, nbformat.v4.new_code_cell(SETUP_CELL.format(figures=str(figures))))
    nbformat.write(notebook, copy)
    result = NotebookTime(path.name, sum(c.cell_type == "code" for c in notebook.cells) - 1)
    kernel = notebook.metadata.get("kernelspec", {}).get("name", "python3")
    client = NotebookClient(notebook, timeout=timeout, kernel_name=kernel, record_timing=True,
                            resources={"metadata": {"path": str(path.parent)}})  # run from notebooks/
    start = time.perf_counter()
    try:
        client.execute()
    except Exception as err:  # an error, a timeout, a kernel that dies: report it, go on with the next notebook
        unfinished = next((i for i, c in enumerate(notebook.cells) if c.cell_type == "code" and (
            "shell.execute_reply" not in c.get("metadata", {}).get("execution", {})
            or any(o.get("output_type") == "error" for o in c.get("outputs", [])))), None)
        kind = {CellExecutionError: "error", CellTimeoutError: "timeout"}.get(type(err), type(err).__name__)
        result.status = kind + (f" in cell {unfinished - 1}" if unfinished else "")  # [0] is the setup cell
    result.seconds = time.perf_counter() - start
    nbformat.write(notebook, copy)  # the executed copy, for a look at what ran (deleted with the folder)
    for index, cell in enumerate(notebook.cells[1:]):  # [0] is the setup cell
        seconds = cell_seconds(cell) if cell.cell_type == "code" else None
        if seconds is not None:
            result.cells.append(CellTime(path.name, index, first_line(cell.source), seconds))
    return result


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebooks/0*.ipynb")
    parser.add_argument("--top", type=int, default=10, help="how many of the slowest cells to list")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds allowed per cell")
    args = parser.parse_args()

    paths = [p.resolve() for p in args.notebooks] or sorted(NOTEBOOKS_DIR.glob("0*.ipynb"))
    if not paths:
        raise SystemExit(f"No notebooks found in {NOTEBOOKS_DIR}.")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    results = []
    scratch = Path(tempfile.mkdtemp(prefix="notebook_times_"))
    try:
        for path in paths:
            print(f"running {path.name} ...", flush=True)
            results.append(time_notebook(path, args.timeout, scratch))
            print(f"  {results[-1].seconds:.1f} s, {results[-1].status}", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    print(f"\nSlowest {args.top} cells")
    cells = sorted((c for r in results for c in r.cells), key=lambda c: -c.seconds)[: args.top]
    print(markdown_table(["notebook", "cell", "first line", "seconds"],
                         [[c.notebook, str(c.index), f"`{c.first_line.replace('|', '/')}`", f"{c.seconds:.1f}"]
                          for c in cells]))
    print("\nPer notebook")
    rows = [[r.notebook, str(r.code_cells), f"{sum(c.seconds for c in r.cells):.1f}", f"{r.seconds:.1f}", r.status]
            for r in results]
    rows.append(["total", str(sum(r.code_cells for r in results)),
                 f"{sum(c.seconds for r in results for c in r.cells):.1f}", f"{sum(r.seconds for r in results):.1f}",
                 "ok" if all(r.status == "ok" for r in results) else "failures"])
    print(markdown_table(["notebook", "code cells", "cells (s)", "wall (s)", "status"], rows))


if __name__ == "__main__":
    main()
