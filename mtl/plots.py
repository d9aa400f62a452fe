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
