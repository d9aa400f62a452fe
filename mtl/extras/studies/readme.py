"""The numbers shown in README.md and docs/, generated from the notebooks' recorded results (``results/*.json``,
``mtl.extras.notebooks.results``) and the full-scale studies' records (``mtl.extras.studies.full_scale``).

``python -m mtl.extras.studies.readme`` rewrites every block between ``<!-- results: NAME -->`` and
``<!-- /results -->`` in README.md and docs/*.md; ``tests/test_readme.py`` fails when a block differs from what the
records say, so a number on those pages cannot drift from the evidence that produced it. docs/analysis_plan.md is
binding and never rewritten.
"""
from __future__ import annotations

import re
import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path

import pandas as pd

from mtl.extras.notebooks.results import load
from mtl.extras.studies import full_scale as studies
from mtl.paths import PROJ_ROOT

README = PROJ_ROOT / "README.md"
DOCS = PROJ_ROOT / "docs"
PLAN = DOCS / "analysis_plan.md"  # binding: written before the reruns, never regenerated
BLOCK = re.compile(r"(<!-- results: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /results -->)", re.DOTALL)
NOTEBOOK = {name[:2]: f"notebooks/{name}.ipynb" for name in ("01_sentence_embeddings", "03_training_considerations",
                                                              "04_training_loop", "05_evaluation")}
PLAN_LINK = "[analysis plan](docs/analysis_plan.md)"
TASK_NAMES = {"topic": "topic", "sentiment": "sentiment", "ner": "NER"}


def documents() -> list[Path]:
    """The pages whose blocks are generated: README.md and docs/*.md but the analysis plan."""
    return [README, *sorted(path for path in DOCS.glob("*.md") if path != PLAN)]


def table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows]) + "\n"


def f3(value: float) -> str:
    return f"{value:.3f}"


def interval(values, prefix: str = "") -> str:
    """"+0.025 (+0.010 to +0.041)" from the ``difference``, ``ci_low`` and ``ci_high`` of ``values`` (a comparison,
    a table row, or recorded results whose keys start with ``prefix``)."""
    difference, low, high = (values[prefix + key] for key in ("difference", "ci_low", "ci_high"))
    return f"{difference:+.3f} ({low:+.3f} to {high:+.3f})"


def link(notebook: str) -> str:
    return f"[notebook {notebook}]({NOTEBOOK[notebook]})"


# ---- the plan's families of comparisons, computed once per process (each takes seconds) -------------------------
@cache
def baselines_family() -> tuple[pd.DataFrame, tuple[str, ...]]:
    table, problems = studies.against_baselines()
    return table, tuple(problems)


@cache
def sharing_family() -> tuple[pd.DataFrame, tuple[str, ...]]:
    table, problems = studies.sharing_family()
    return table, tuple(problems)


@cache
def freezing_family() -> pd.DataFrame:
    return studies.what_to_freeze()


def said(row) -> str:
    """A comparison as prose: its difference and interval, the verdict and, when not separated, the smallest
    difference the study could have detected."""
    seeds = int(row.seeds)
    verdict = row.verdict if "seed" in row.verdict else f"{row.verdict}, {seeds} seed{'s' * (seeds != 1)}"
    detectable = f", detectable {f3(row.detectable)}" if row.verdict.startswith("not separated") else ""
    return f"{interval(row)}, {verdict}{detectable}"


# ---- README: the findings at a glance --------------------------------------------------------------------------
EMBEDDING_PAIRS = {"scratch mean": "a small encoder with random weights", "minilm max": "max pooling",
                   "minilm cls": "CLS pooling", "mpnet mean": "MPNet, mean pooling"}  # each against MiniLM, mean


def _embeddings_finding() -> str:
    r = load("01_sentence_embeddings")
    shown = [f"{label} {interval(r, f'bootstrap/{pair} vs minilm mean/')}, "
             f"{r[f'bootstrap/{pair} vs minilm mean/verdict']}" for pair, label in EMBEDDING_PAIRS.items()]
    heading = ("Pretrained weights are what make sentence embeddings agree with people"
               if r["bootstrap/scratch mean vs minilm mean/verdict"] == "worse" else "Pretrained against random weights")
    return (f"**{heading}** ({link('01')}): Spearman's rho between cosines and human similarity (Lee corpus), each "
            f"against MiniLM with mean pooling: {'; '.join(shown)}.")


def _freezing_finding() -> str:
    family = freezing_family()
    if family.empty:
        return f"**What to train** ({link('03')}): the rerun under the {PLAN_LINK} has no comparison recorded yet."
    parts = []
    for size in dict.fromkeys(name.rsplit(", n=", 1)[1] for name in family.index):
        rows = family[[name.endswith(f", n={size}") for name in family.index]]
        best = rows.difference.idxmax()
        parts.append(f"at {f'{int(size):,}' if size.isdigit() else size} sentences, "
                     f"{best.rsplit(', n=', 1)[0].replace(' - ', ' minus ')}: {said(rows.loc[best])}")
    return (f"**What to train, by the amount of labelled data** ({link('03')}): sentiment macro-F1, every method's "
            f"learning rate tuned alike, the largest gain over training the heads only so far (the rerun under the "
            f"{PLAN_LINK} is in progress): {'; '.join(parts)}.")


def _strongest(comparisons: pd.DataFrame, task: str) -> str:
    """The model minus the strongest baseline on ``task`` (the highest baseline score), as prose."""
    rows = comparisons.xs(task, level="task")
    name = rows.b.astype(float).idxmax()
    row = rows.loc[name]
    return f"{TASK_NAMES[task]} {f3(row.a)} against {f3(row.b)} ({name.removeprefix('recipe - ')}): {said(row)}"


def _status(problems: tuple[str, ...]) -> str:
    if problems:
        return f"records that predate the {PLAN_LINK}, being rerun"
    return f"under the {PLAN_LINK}"


def findings() -> str:
    """The README's findings at a glance: a bullet per question, each number with its 95 % interval and verdict
    (docs/analysis_plan.md's families) and the notebook that shows it; studies being rerun say so."""
    bullets = [_embeddings_finding(), _freezing_finding()]
    baselines, problems = baselines_family()
    if not baselines.empty:
        seeds = int(baselines.seeds.max())
        bullets += [
            f"**The multi-task model against the strongest baseline** ({link('04')}, {link('05')}): all training "
            f"data, {seeds} seeds, test macro-F1, {_status(problems)}: "
            f"{_strongest(baselines, 'sentiment')}; {_strongest(baselines, 'topic')}.",
            f"**NER is agreement with a teacher** ({link('05')}): entity F1 against spaCy's tags (its "
            f"`en_core_web_sm` predictions, not human labels), the same model: "
            f"{_strongest(baselines, 'ner').removeprefix('NER ')}."]
    sharing, problems = sharing_family()
    if not sharing.empty:
        pairs = [f"{TASK_NAMES[task]} {said(sharing.loc[('multi-task - single-task', task)])}"
                 for task in ("ner", "topic", "sentiment") if ("multi-task - single-task", task) in sharing.index]
        bullets.append(f"**Sharing one encoder** ({link('05')}): multi-task minus one model per task, all training "
                       f"data, {_status(problems)}: {'; '.join(pairs)}.")
    return "".join(f"- {bullet}\n" for bullet in bullets)


# ---- docs/studies.md: the full-scale studies -------------------------------------------------------------------
def family_table(comparisons: pd.DataFrame, problems: tuple[str, ...]) -> str:
    """A family of the plan (comparison, task): scores, difference and interval, seeds, the smallest detectable
    difference and the verdict; beside it, whether the records predate the plan's provenance rule."""
    if comparisons.empty:
        return "_Not recorded yet._\n"
    rows = [[comparison, TASK_NAMES[task], f3(row.a), f3(row.b), interval(row), str(int(row.seeds)),
             f3(row.detectable), row.verdict] for (comparison, task), row in comparisons.iterrows()]
    note = ""
    if problems:
        studies_named = sorted({problem.split(":")[0] for problem in problems})
        note = (f"\n_Records of {' and '.join(studies_named)} predate the plan's provenance rule (a work tree with "
                "uncommitted changes, or several commits); the rerun replaces them._\n")
    return table(["a - b", "task", "a", "b", "a - b (95 % interval)", "seeds", "detectable", "verdict"], rows) + note


def against_baselines() -> str:
    """The plan's "against baselines" family: the recipe on all training data minus each baseline."""
    return family_table(*baselines_family())


def sharing() -> str:
    """The plan's "sharing" family: multi- against single-task setups on all training data."""
    return family_table(*sharing_family())


def what_to_freeze() -> str:
    """The tuned freezing study's family: each method minus heads only per training size, seed-aware interval,
    Holm over the plan's whole family, the smallest detectable difference and the verdict."""
    family = freezing_family()
    if family.empty:
        return "_No pair of runs recorded yet._\n"
    rates = studies.chosen_rates()
    size = lambda name: f"{int(n):,}" if (n := name.rsplit(", n=", 1)[1]).isdigit() else n  # noqa: E731
    rows = [[f"{name.rsplit(' - ', 1)[0]}, {size(name)} sentences", f3(row.a), f3(row.b),
             interval(row), str(int(row.seeds)), f3(row.detectable), row.verdict] for name, row in family.iterrows()]
    return (table(["method (a), training sentences", "a", "heads only (b)", "a - b (95 % interval)", "seeds",
                   "detectable", "verdict"], rows)
            + "\nLearning rates chosen on validation: "
            + ", ".join(f"{method} {rate:g}" for method, rate in rates.items()) + ".\n")


def full_scale_cost() -> str:
    """What the recorded full-scale runs cost: per study, the runs, their wall hours and the CPUs they ran on."""
    rows, total = [], 0.0
    for name in ("recipe", "baselines", "sharing", "tuned_freezing"):
        runs = studies.recorded(name)
        hours = sum(r["seconds"] for r in runs) / 3600
        total += hours
        cpus = ", ".join(sorted({r["provenance"]["cpu"].split(" (")[0] for r in runs}))
        rows.append([name.replace("_", " "), str(len(runs)), f"{hours:.1f}", cpus])
    rows.append(["**all**", str(sum(int(row[1]) for row in rows)), f"{total:.1f}", ""])
    return table(["study", "runs recorded", "wall hours", "CPUs (2 cores each)"], rows)


BLOCKS: dict[str, Callable[[], str]] = {"findings": findings, "against-baselines": against_baselines,
                                        "sharing": sharing, "what-to-freeze": what_to_freeze,
                                        "full-scale-cost": full_scale_cost}


def render(text: str) -> str:
    """``text`` with every results block regenerated; an unknown block name is an error."""
    def fill(match: re.Match) -> str:
        name = match["name"]
        if name not in BLOCKS:
            raise KeyError(f"Results block {name!r} has no generator; known blocks: {sorted(BLOCKS)}.")
        return match[1] + BLOCKS[name]() + match[4]
    return BLOCK.sub(fill, text)


def main(paths: list[Path] | None = None) -> None:
    for path in paths or documents():
        text = path.read_text()
        rendered = render(text)
        if rendered != text:
            path.write_text(rendered)
        print(f"{path.relative_to(PROJ_ROOT)}: {len(BLOCK.findall(rendered))} results blocks"
              f"{' regenerated' if rendered != text else ', unchanged'}")


if __name__ == "__main__":
    sys.exit(main())
