"""Figures: one save helper (every PNG lands in figures/) and the plots more than one notebook draws."""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib

if not os.environ.get("MPLBACKEND"):  # Jupyter kernels set it (inline backend): keep theirs so figures render
    matplotlib.use("Agg")  # headless: CI and `make all` have no display
import matplotlib.pyplot as plt
from matplotlib.ticker import NullFormatter
import numpy as np
import seaborn as sns

from mtl.paths import FIGURES_DIR

sns.set_theme(style="whitegrid", context="notebook")


def save_figure(fig: plt.Figure, name: str) -> Path:
    """Write ``figures/<name>.png`` (fixed dpi, tight box) and return its path."""
    FIGURES_DIR.mkdir(parents=True, exist_ok=True)
    path = FIGURES_DIR / f"{name}.png"
    fig.savefig(path, dpi=110, bbox_inches="tight", metadata={"Software": None})  # no version stamp: stable files
    return path


def similarity_heatmap(ax: plt.Axes, sim: np.ndarray, labels: Sequence[str], title: str) -> None:
    """Cosine similarities of a few sentences, annotated, on a fixed [-1, 1] colour scale."""
    sns.heatmap(sim, ax=ax, vmin=-1, vmax=1, cmap="RdBu_r", annot=True, fmt=".2f", annot_kws={"size": 7},
                xticklabels=labels, yticklabels=labels, cbar=False, square=True)
    ax.set_title(title, fontsize=10)
    ax.tick_params(labelsize=7)


def confusion_heatmap(ax: plt.Axes, matrix: np.ndarray, labels: Sequence[str], title: str) -> None:
    """A row-normalised confusion matrix (rows: true label) with counts annotated."""
    rates = matrix / np.clip(matrix.sum(axis=1, keepdims=True), 1, None)
    sns.heatmap(rates, ax=ax, vmin=0, vmax=1, cmap="Blues", annot=matrix, fmt="d", cbar=False,
                xticklabels=labels, yticklabels=labels, square=True)
    ax.set(title=title, xlabel="predicted", ylabel="true")


def reliability_diagram(ax: plt.Axes, table, title: str) -> None:
    """Accuracy per confidence bin (bars, from ``mtl.evaluation.metrics.reliability_table``) against the diagonal of
    perfect calibration; the share of predictions in each bin is written on its bar."""
    filled = table[table["count"] > 0]
    width = float(table.upper.iloc[0] - table.lower.iloc[0])
    ax.bar(filled.lower, filled.accuracy, width=width, align="edge", edgecolor="black", color="tab:blue",
           alpha=0.8, label="accuracy in bin")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    ax.scatter(filled.confidence, filled.accuracy, color="black", s=12, zorder=3, label="(mean confidence, accuracy)")
    share = filled["count"] / filled["count"].sum()
    for lower, accuracy, s in zip(filled.lower, filled.accuracy, share):
        ax.text(lower + width / 2, min(accuracy + 0.02, 0.97), f"{s:.0%}", ha="center", fontsize=7)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (probability of the predicted class)", ylabel="accuracy",
           title=title)
    ax.legend(loc="upper left", fontsize=8)


def projection_scatter(ax: plt.Axes, points: np.ndarray, labels: Sequence[str], title: str,
                       order: Sequence[str] | None = None) -> None:
    """A 2-D projection (n, 2) of embeddings, one colour per label (legend in ``order``)."""
    sns.scatterplot(x=points[:, 0], y=points[:, 1], hue=list(labels), hue_order=order, ax=ax, s=12, alpha=0.7,
                    linewidth=0, palette="tab10")
    ax.set(title=title, xticks=[], yticks=[], xlabel="PC 1", ylabel="PC 2")
    ax.legend(fontsize=7, markerscale=1.5, loc="best")


def transfer_tradeoffs(runs, tasks: Sequence[str], floor: str = "all frozen", labels_below: Sequence[str] = (),
                       title: str = "") -> plt.Figure:
    """Notebook 03's trade-off grid: per task (rows) the validation accuracy of each scenario (mean ± std over seeds)
    against its trainable parameters and its wall time per run (columns, log scales); ``floor`` (a scenario with
    nothing trained) is the dashed line; from-scratch scenarios (names starting "scratch") are squares;
    ``labels_below``: scenarios whose label goes under their point (a twin that shares its x)."""
    columns = [f"{task}/accuracy" for task in tasks]
    grouped = runs.groupby("scenario", sort=False)
    means, stds = grouped[["trainable", "seconds", *columns]].mean(), grouped[columns].std()
    shown = [s for s in means.index if s != floor]
    fig, axes = plt.subplots(len(tasks), 2, figsize=(13, 4.5 * len(tasks)), sharey="row", squeeze=False)
    for row, column in enumerate(columns):
        for col, (x, label) in enumerate([("trainable", "trainable parameters (log)"),
                                          ("seconds", "wall time per run, s (log)")]):
            ax = axes[row, col]
            for scenario in shown:
                point = (means.loc[scenario, x], means.loc[scenario, column])
                ax.errorbar(*point, stds.loc[scenario, column], fmt="s" if scenario.startswith("scratch") else "o",
                            capsize=3, label=scenario)
                ax.annotate(scenario, point, fontsize=7, textcoords="offset points",
                            xytext=(4, -10 if scenario in labels_below else 4))
            if floor in means.index:
                ax.axhline(means.loc[floor, column], color="grey", ls="--", lw=1)
            ax.set(xscale="log", xlabel=label, ylabel=f"{tasks[row]} accuracy (validation)")
            ax.xaxis.set_minor_formatter(NullFormatter())  # decades only: minor labels overlap
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def learning_curves(curves, metric: str = "sentiment macro-F1 (test)", title: str = "") -> plt.Figure:
    """One line per method (``mtl.extras.studies.full_scale.freezing_curves``: mean ± std over seeds per training
    size) of the test score against training examples, wall time per run and trainable parameters (log scales); the
    marker grows with the training size, so the three panels can be read together."""
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8), sharey=True)
    sizes = sorted(curves.train_size.unique())
    marker_size = {n: 4 + 3 * i for i, n in enumerate(sizes)}
    for method, rows in curves.groupby("method", sort=False):
        rows = rows.sort_values("train_size")
        colour = None
        for ax, x in zip(axes, ["train_size", "seconds", "trainable"]):
            line = ax.errorbar(rows[x], rows["mean"], rows["std"].fillna(0), capsize=3, label=method, color=colour,
                               marker="none", ls="-" if x != "trainable" else "none", alpha=0.9)
            colour = line.lines[0].get_color()
            ax.scatter(rows[x], rows["mean"], s=[marker_size[n] ** 2 for n in rows.train_size], color=colour, zorder=3)
    for ax, label in zip(axes, ["training sentences (log)", "wall time per run, s (log)", "trainable parameters (log)"]):
        ax.set(xscale="log", xlabel=label)
    axes[0].set_xticks(sizes, [f"{n:,}" for n in sizes])
    axes[0].xaxis.set_minor_formatter(NullFormatter())
    axes[0].set_ylabel(metric)
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def paired_differences(tables, title: str = "") -> plt.Figure:
    """A forest plot of paired comparisons: one row per (comparison, task) of ``tables`` ({budget name: the table of
    ``sharing.SeedStudy.compare``}), the difference as a dot and its 95 % interval as a bar, one colour per budget,
    filled where the difference is significant (its ``significant`` column), hollow where it is not; 0 dashed."""
    rows = list(dict.fromkeys(key for table in tables.values() for key in table.index))  # (comparison, task)
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(rows) * len(tables) + 1.2))
    offsets = np.linspace(-0.2, 0.2, len(tables)) if len(tables) > 1 else [0.0]
    for offset, (name, table) in zip(offsets, tables.items()):
        colour = None
        for y, key in enumerate(rows):
            if key not in table.index:
                continue
            row = table.loc[key]
            low, mid, high = float(row.ci_low), float(row.difference), float(row.ci_high)
            line = ax.errorbar(mid, y + offset, xerr=[[mid - low], [high - mid]], fmt="o", capsize=3, color=colour,
                               markerfacecolor=None if row.significant else "white",
                               label=name if colour is None else None)
            colour = line.lines[0].get_color()
    ax.axvline(0, color="grey", ls="--", lw=1)
    ax.set_yticks(range(len(rows)), [f"{comparison} ({task})" for comparison, task in rows])
    ax.invert_yaxis()
    ax.set(xlabel="a - b: macro-F1 or entity F1, 95 % paired bootstrap interval",
           title=f"{title}\n(filled: significant; hollow: within noise)".strip())
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=len(tables), frameon=False)
    fig.tight_layout()
    return fig
