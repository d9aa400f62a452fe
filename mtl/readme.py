"""README's results tables, generated from the notebooks' recorded results (``results/*.json``, ``mtl.results``).

``python -m mtl.readme`` rewrites every block between ``<!-- results: NAME -->`` and ``<!-- /results -->`` in
README.md; ``tests/test_readme.py`` fails when a block differs from what the results say, so a number in README
cannot drift from the notebooks that produced it.
"""
from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

from mtl.paths import PROJ_ROOT
from mtl.results import load

README = PROJ_ROOT / "README.md"
BLOCK = re.compile(r"(<!-- results: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /results -->)", re.DOTALL)


def table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows]) + "\n"


def f3(value: float) -> str:
    return f"{value:.3f}"


def interval(values: dict, prefix: str) -> str:
    """"+0.025 (0.010 to 0.041)" from ``prefix/difference``, ``prefix/ci_low``, ``prefix/ci_high``."""
    return f"{values[prefix + '/difference']:+.3f} ({values[prefix + '/ci_low']:+.3f} to {values[prefix + '/ci_high']:+.3f})"


def transfer() -> str:
    """Notebook 03: what trains, its parameters, validation scores (mean over seeds), wall time vs full fine-tuning."""
    r = load("03_training_considerations")
    scenarios = [key.split("/")[1] for key in r if key.startswith("scenarios/") and key.endswith("/trainable")]
    rows = [[name, f"{r[f'scenarios/{name}/trainable']:,}", f3(r[f"scenarios/{name}/topic/accuracy"]),
             f3(r[f"scenarios/{name}/sentiment/macro_f1"]), f"{r[f'seconds_vs_full/{name}/seconds']:.2f}"]
            for name in scenarios]
    return table(["what trains", "trainable parameters", "topic accuracy", "sentiment macro-F1",
                  "wall time / full fine-tuning"], rows)


BLOCKS: dict[str, Callable[[], str]] = {"transfer": transfer}


def render(text: str) -> str:
    """``text`` with every results block regenerated; an unknown block name is an error."""
    def fill(match: re.Match) -> str:
        name = match["name"]
        if name not in BLOCKS:
            raise KeyError(f"README block {name!r} has no generator; known blocks: {sorted(BLOCKS)}.")
        return match[1] + BLOCKS[name]() + match[4]
    return BLOCK.sub(fill, text)


def main(path: Path = README) -> None:
    path.write_text(render(path.read_text()))
    print(f"{path}: {len(BLOCK.findall(path.read_text()))} results blocks regenerated")


if __name__ == "__main__":
    sys.exit(main())
