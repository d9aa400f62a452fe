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
    """Accuracy per confidence bin (bars, from ``mtl.metrics.reliability_table``) against the diagonal of perfect
    calibration; the share of predictions in each bin is written on its bar."""
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
