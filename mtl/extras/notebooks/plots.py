"""Figures: one save helper (every PNG lands in figures/) and the plots more than one notebook draws."""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib

if not os.environ.get("MPLBACKEND"):  # Jupyter kernels set it (inline backend): keep theirs so figures render
    matplotlib.use("Agg")  # headless: CI and `make all` have no display
import matplotlib.pyplot as plt
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


def freezing_at_scale(curves, metric: str = "sentiment macro-F1 (test)", title: str = "",
                      spread: float = 0.05) -> plt.Figure:
    """One line per method of ``curves`` (``mtl.extras.studies.full_scale.tuned_curves``: per method and training
    size, the mean and standard deviation over seeds) of the score against training examples, in increasing size on
    a log axis, bars one standard deviation (none with one seed); the methods are set apart horizontally by a few
    per cent (``spread``, in log space) so that their bars do not hide each other; ticks at the sizes recorded."""
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    methods = list(dict.fromkeys(curves.method))
    shifts = np.exp(np.linspace(-spread, spread, len(methods))) if len(methods) > 1 else [1.0]
    for shift, method in zip(shifts, methods):
        rows = curves[curves.method == method].sort_values("train_size")
        ax.errorbar(rows.train_size * shift, rows["mean"], rows["std"].fillna(0), marker="o", capsize=3, ls="-",
                    label=method)
    sizes = sorted(curves.train_size.unique())
    ax.set(xscale="log", xlabel="training sentences (log scale)", ylabel=metric, title=title)
    ax.set_xticks(sizes, [f"{n:,}" for n in sizes])
    ax.xaxis.set_minor_locator(plt.NullLocator())  # only the recorded sizes: no minor labels to overlap
    if sizes:
        ax.set_xlim(sizes[0] / 1.6, sizes[-1] * 1.6)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)  # outside: hides no point
    fig.tight_layout()
    return fig


VERDICT_COLOURS = {"better": "tab:green", "worse": "tab:red", "as good as": "tab:blue"}  # others ("not separated"): grey


def family_intervals(ax: plt.Axes, table, margin: float | Sequence[float], xlabel: str, title: str = "") -> None:
    """A family of comparisons as a forest plot: one row per row of ``table`` (``difference``, ``ci_low``,
    ``ci_high``, ``verdict``, as ``mtl.evaluation.compare.family`` gives), top to bottom in its order, the difference
    a dot and its interval a bar coloured by verdict (grey: not separated), 0 drawn and the equivalence ``margin``
    shaded (or one margin per row, in the table's order, for a family whose tasks have different margins); the
    legend, below the axes so that it hides no row, names the verdicts shown."""
    labelled = set()
    for y, (_, row) in enumerate(table.iterrows()):
        low, mid, high = float(row.ci_low), float(row.difference), float(row.ci_high)
        ax.errorbar(mid, y, xerr=[[mid - low], [high - mid]], fmt="o", capsize=3,
                    color=VERDICT_COLOURS.get(row.verdict, "tab:grey"),
                    label=None if row.verdict in labelled else row.verdict)
        labelled.add(row.verdict)
    if np.ndim(margin) == 0:
        ax.axvspan(-margin, margin, color="grey", alpha=0.2, lw=0, label=f"equivalence margin ±{margin:g}")
    else:
        for y, m in enumerate(margin):
            ax.fill_betweenx([y - 0.4, y + 0.4], -m, m, color="grey", alpha=0.2, lw=0,
                             label=None if y else "equivalence margin (per row)")
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(range(len(table)), [str(name) for name in table.index])
    ax.set_ylim(len(table) - 0.5, -0.5)  # first row on top
    ax.set(xlabel=xlabel, title=title)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2, frameon=False)
