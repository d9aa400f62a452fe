"""README's results tables, generated from the notebooks' recorded results (``results/*.json``,
``mtl.extras.notebooks.results``) and the full-scale studies' records (``mtl.extras.studies.full_scale``).

``python -m mtl.extras.studies.readme`` rewrites every block between ``<!-- results: NAME -->`` and
``<!-- /results -->`` in README.md; ``tests/test_readme.py`` fails when a block differs from what the results say, so
a number in README cannot drift from the notebooks that produced it.
"""
from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

from mtl.evaluation.compare import separated
from mtl.extras.notebooks.results import load
from mtl.extras.notebooks.sharing import COMPARISONS
from mtl.extras.studies import full_scale as studies
from mtl.paths import PROJ_ROOT

README = PROJ_ROOT / "README.md"
BLOCK = re.compile(r"(<!-- results: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /results -->)", re.DOTALL)


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


def embeddings() -> str:
    """Notebook 01: Spearman's rho against human similarity per backbone and pooling, and the orders it tests."""
    r = load("01_sentence_embeddings")
    names = {"minilm": "all-MiniLM-L6-v2", "mpnet": "all-mpnet-base-v2", "scratch": "from scratch, random weights"}
    rows = [[f"{label} ({r[f'backbone/{name}/params_millions']:.1f} M parameters)",
             *(f3(r[f"spearman/{name}/{pooling}"]) for pooling in ("cls", "mean", "max"))]
            for name, label in names.items()]
    return table(["backbone", "cls", "mean", "max"], rows)


def embedding_orders() -> str:
    """Notebook 01: every tested order of two embeddings, paired bootstrap over the Lee documents, 95 % interval."""
    r = load("01_sentence_embeddings")
    pairs = sorted({key.split("/")[1] for key in r if key.startswith("bootstrap/")})
    rows = [[pair.replace(" vs ", " - "), interval(r, f"bootstrap/{pair}/"),
             "yes" if separated({k: r[f"bootstrap/{pair}/{k}"] for k in ("ci_low", "ci_high")}) else "within noise"]
            for pair in pairs]
    return table(["a - b (Spearman's rho)", "difference (95 % interval)", "separated?"], rows)


def transfer() -> str:
    """Notebook 03: what trains, its parameters, validation scores (mean over seeds), wall time vs full fine-tuning."""
    r = load("03_training_considerations")
    order = ["all frozen", "heads only", "heads only, 10x steps", "top-1", "top-2", "gradual + discriminative",
             "LoRA r=8", "full fine-tuning", "scratch, heads only", "scratch, full training"]  # the notebook's order
    found = [key.split("/")[1] for key in r if key.startswith("scenarios/") and key.endswith("/trainable")]
    scenarios = [name for name in order if name in found] + sorted(set(found) - set(order))
    rows = [[name, f"{r[f'scenarios/{name}/trainable']:,}", f3(r[f"scenarios/{name}/topic/accuracy"]),
             f3(r[f"scenarios/{name}/sentiment/macro_f1"]), f"{r[f'seconds_vs_full/{name}/seconds']:.2f}"]
            for name in scenarios]
    return table(["what trains", "trainable parameters", "topic accuracy", "sentiment macro-F1",
                  "wall time / full fine-tuning"], rows)


def bigger_encoder() -> str:
    """Notebook 03: all-mpnet-base-v2 against MiniLM, heads only and top-2, paired bootstrap over validation x seeds."""
    r = load("03_training_considerations")
    keys = sorted({tuple(key.split("/")[1:3]) for key in r if key.startswith("mpnet_compare/")}, key=lambda k: (k[1], k[0]))
    rows = [[f"{pair} ({task})", f3(r[f"mpnet_compare/{task}/{pair}/a"]), f3(r[f"mpnet_compare/{task}/{pair}/b"]),
             interval(r, f"mpnet_compare/{task}/{pair}/")] for task, pair in keys]
    return table(["a - b (macro-F1, validation)", "a", "b", "difference (95 % interval)"], rows)


def test_split() -> str:
    """Notebooks 04-05: every method on the held-out test split (the final model: seed 0)."""
    r = load("05_evaluation")
    methods = sorted({key.split("/")[1] for key in r if key.startswith("baselines/")},
                     key=["majority class", "TF-IDF + LR (recipe subsample)", "TF-IDF + LR (full train split)",
                          "frozen MiniLM + LR (recipe subsample)", "VADER lexicon", "most frequent tag per word"].index)
    cell = lambda key: f3(r[key]) if key in r else "-"  # noqa: E731
    rows = [[method, cell(f"baselines/{method}/topic/accuracy"), cell(f"baselines/{method}/sentiment/macro_f1"),
             cell(f"baselines/{method}/ner/entity_f1")] for method in methods]
    rows.append(["**multi-task model** (notebook 04)", f3(r["final/topic/accuracy"]), f3(r["final/sentiment/macro_f1"]),
                 f3(r["final_ner/micro avg/f1"])])
    return table(["method", "topic accuracy", "sentiment macro-F1", "NER entity F1 (vs spaCy)"], rows)


def model_vs_baselines() -> str:
    """Notebook 05: the final model minus each strong baseline on the test split, paired bootstrap, 95 % interval."""
    r = load("05_evaluation")
    names = sorted({key.split("/")[1] for key in r if key.startswith("final_vs_baselines/")})
    rows = [[name.removeprefix("model - "), f3(r[f"final_vs_baselines/{name}/a"]), f3(r[f"final_vs_baselines/{name}/b"]),
             interval(r, f"final_vs_baselines/{name}/")] for name in names]
    return table(["baseline (task)", "model", "baseline", "model - baseline (95 % interval)"], rows)


def sharing() -> str:
    """Notebook 05: multi- against single-task and the two controls, paired bootstrap over test examples x seeds."""
    r = load("05_evaluation")
    pairs = sorted({tuple(key.split("/")[1:3]) for key in r if key.startswith("paired/")}, key=lambda p: (p[1], p[0]))
    rows = [[comparison, task, f3(r[f"paired/{comparison}/{task}/a"]), f3(r[f"paired/{comparison}/{task}/b"]),
             interval(r, f"paired/{comparison}/{task}/")] for comparison, task in pairs]
    return table(["a - b", "task", "a", "b", "difference (95 % interval)"], rows)


RECIPE_METRICS = ["topic/accuracy", "sentiment/macro_f1", "ner/entity_f1"]


def mean_std(mean: float, std: float) -> str:
    return "-" if mean != mean else f3(mean) if std != std else f"{mean:.3f} ± {std:.3f}"  # NaN: not recorded / 1 seed


def provenance_line(study_names: list[str]) -> str:
    """The records' provenance (``mtl.extras.studies.full_scale.provenance``), in italics under a table."""
    return f"_{studies.provenance(study_names)}_\n"


def full_scale_recipe() -> str:
    """Study 1: the recipe on all training data, mean ± std over recorded seeds, and every baseline fitted on the same
    full training data, on the test splits."""
    model = studies.seed_table("recipe", RECIPE_METRICS)
    epochs = ", ".join(f"{r['results']['kept_epoch']}/{r['results']['epochs_run']}" for r in studies.recorded("recipe"))
    rows = [[f"multi-task model, all training data ({int(n)} seed{'s' * (n > 1)})",
             *(mean_std(model.loc[setup, f"{m} mean"], model.loc[setup, f"{m} std"]) for m in RECIPE_METRICS), epochs]
            for setup, n in model.seeds.items()]
    for record in studies.recorded("baselines"):
        for method, scores in record["results"]["test"].items():
            rows.append([f"{method} (all training data)", *(f3(scores[m]) if m in scores else "-" for m in RECIPE_METRICS),
                         ""])
    rows.append(["project target", "0.920", "0.680", "0.700", ""])
    return table(["method", "topic accuracy", "sentiment macro-F1", "NER entity F1 (vs spaCy)",
                  "epoch kept / run, per seed"], rows) + "\n" + provenance_line(["recipe", "baselines"])


def full_scale_vs_baselines() -> str:
    """Study 1: the full-scale recipe minus each baseline, main score per task, paired bootstrap (95 % interval)."""
    gaps = studies.recipe_against_baselines()
    if gaps.empty:
        return "_Not recorded yet._\n"
    metric = {"topic": "macro-F1", "sentiment": "macro-F1", "ner": "entity F1"}
    rows = [[f"{method} ({task}, {metric[task]})", f3(g.a), f3(g.b), interval(g)]
            for (method, task), g in gaps.iterrows()]
    return table(["baseline (task, score)", "model", "baseline", "model - baseline (95 % interval)"], rows)


def full_scale_sharing() -> str:
    """Study 2: notebook 05's comparisons of multi- and single-task setups on all training data, paired bootstrap
    over test examples and every seed recorded for all setups (95 % interval, Bonferroni)."""
    study = studies.sharing_study()
    if not study.seeds:
        return "_Not recorded yet._\n"
    compared = study.compare(COMPARISONS)
    rows = [[comparison, task, f3(c.a), f3(c.b), interval(c), "yes" if c.significant else "no"]
            for (comparison, task), c in compared.iterrows()]
    return (table(["a - b", "task", "a", "b", f"difference (95 % interval), {len(study.seeds)} seeds",
                   f"p < 0.05 / {len(compared)}?"], rows) + "\n" + provenance_line(["recipe", "sharing"]))  # multi-task: recipe


def full_scale_freezing() -> str:
    """Study 3: sentiment test macro-F1 (mean ± std over recorded seeds) per method and number of training
    sentences."""
    frame = studies.seed_table("freezing", ["sentiment/macro_f1"])
    sizes = [f"n={size or 'all'}" for size in studies.SIZES]
    rows = []
    for method in studies.METHODS:
        cells = []
        for size in sizes:
            setup = f"{method}, {size}"
            cells.append(mean_std(frame.loc[setup, "sentiment/macro_f1 mean"], frame.loc[setup, "sentiment/macro_f1 std"])
                         + f" ({int(frame.loc[setup, 'seeds'])})" if setup in frame.index else "-")
        rows.append([method, *cells])
    header = ["method", *(f"{s.removeprefix('n=')} sentences" for s in sizes)]
    return table(header, rows) + "\n" + provenance_line(["freezing"])


def full_scale_freezing_gains() -> str:
    """Study 3: each method minus heads only per training size, paired bootstrap over test sentences and seeds."""
    gains = studies.freezing_gains()
    if gains.empty:
        return "_No pair of runs recorded yet._\n"
    sizes = list(dict.fromkeys(size for _, size in gains.index))
    rows = []
    for method in dict.fromkeys(method for method, _ in gains.index):
        cells = []
        for size in sizes:
            if (method, size) not in gains.index:
                cells.append("-")
                continue
            g = gains.loc[(method, size)]
            cells.append(f"{interval(g)}, {int(g.seeds)} seed{'s' * (int(g.seeds) > 1)}")
        rows.append([f"{method} - heads only", *cells])
    return table(["sentiment macro-F1", *(f"{size} sentences" for size in sizes)], rows)


def full_scale_cost() -> str:
    """What ``make results`` cost: per study, the recorded runs, their wall hours and the CPUs they ran on."""
    rows, total = [], 0.0
    for name in ("recipe", "baselines", "sharing", "freezing"):
        runs = studies.recorded(name)
        hours = sum(r["seconds"] for r in runs) / 3600
        total += hours
        cpus = ", ".join(sorted({r["provenance"]["cpu"].split(" (")[0] for r in runs}))
        rows.append([name, str(len(runs)), f"{hours:.1f}", cpus])
    rows.append(["**all**", str(sum(int(row[1]) for row in rows)), f"{total:.1f}", ""])
    return table(["study", "runs recorded", "wall hours", "CPUs (2 cores each)"], rows)


BLOCKS: dict[str, Callable[[], str]] = {"embeddings": embeddings, "embedding-orders": embedding_orders,
                                        "transfer": transfer, "bigger-encoder": bigger_encoder, "test-split": test_split,
                                        "model-vs-baselines": model_vs_baselines, "sharing": sharing,
                                        "full-scale-recipe": full_scale_recipe, "full-scale-vs-baselines": full_scale_vs_baselines,
                                        "full-scale-sharing": full_scale_sharing, "full-scale-cost": full_scale_cost,
                                        "full-scale-freezing": full_scale_freezing,
                                        "full-scale-freezing-gains": full_scale_freezing_gains}


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
