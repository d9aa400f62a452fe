"""Held-out predictions and their scores: ``TaskPredictions`` (scored by its task's head type, ``mtl.multitask.heads``:
accuracy and macro-F1, entity-level F1), the per-example counts that comparisons resample (``example_statistics``;
the comparisons are in ``mtl.evaluation.compare``), and calibration (reliability bins, expected calibration error; Guo et al., "On Calibration of Modern Neural
Networks", ICML 2017). Nothing here runs a model (``mtl.evaluation.predictions`` does)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mtl.multitask.heads import SentenceHead, head_type

classification_scores = SentenceHead.scores  # accuracy and macro-F1 of label lists (the head's own scores)


@dataclass
class TaskPredictions:
    """Gold and predicted labels of one task over the examples that carry its label."""

    kind: str
    labels: tuple[str, ...]
    index: list[int] = field(default_factory=list)  # position of each row in the evaluated example list
    true: list = field(default_factory=list)  # label names, or one tag list per sentence (token tasks)
    pred: list = field(default_factory=list)
    probs: list = field(default_factory=list)  # (C,) probability vectors, sentence tasks only

    def extend(self, other: TaskPredictions, offset: int) -> None:
        """Append the predictions of another example list that starts at position ``offset`` of the concatenation."""
        self.index += [offset + i for i in other.index]
        self.true += other.true
        self.pred += other.pred
        self.probs += other.probs

    def scores(self) -> dict[str, float]:
        """All scores of the task's kind, e.g. accuracy and macro-F1, or entity F1 and token accuracy."""
        return head_type(self.kind).scores(self.true, self.pred, self.labels)


def example_statistics(preds: TaskPredictions) -> np.ndarray:
    """(n, k) additive counts per example, in example order, from which the task's scores follow
    (``Head.example_statistics``): what the bootstrap resamples."""
    order = np.argsort(preds.index, kind="stable")
    return head_type(preds.kind).example_statistics([preds.true[i] for i in order], [preds.pred[i] for i in order],
                                                    preds.labels)


def main_score(preds: TaskPredictions) -> float:
    """The task's main score (macro-F1 or entity F1), from ``example_statistics``: the one computation of it."""
    return float(head_type(preds.kind).score_statistics(example_statistics(preds).sum(0)))


def reliability_table(confidence: Sequence[float], correct: Sequence[bool], n_bins: int = 10) -> pd.DataFrame:
    """Predictions grouped into ``n_bins`` equal-width bins of confidence (the probability of the predicted class):
    per bin its edges, ``count``, mean ``confidence`` and ``accuracy`` (NaN for an empty bin). Bins are (lo, hi],
    the first one [0, hi]."""
    confidence, correct = np.asarray(confidence, dtype=float), np.asarray(correct, dtype=float)
    if confidence.shape != correct.shape or confidence.ndim != 1 or len(confidence) == 0:
        raise ValueError(f"Expected two equally long non-empty 1-D sequences, got shapes {confidence.shape} "
                         f"and {correct.shape}.")
    if n_bins < 1 or confidence.min() < 0 or confidence.max() > 1:
        raise ValueError("Confidences must lie in [0, 1] and n_bins must be positive.")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)  # (lo, hi]; 0 -> first bin
    count = np.bincount(bins, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(bins, confidence, n_bins) / count
        accuracy = np.bincount(bins, correct, n_bins) / count
    return pd.DataFrame({"lower": edges[:-1], "upper": edges[1:], "count": count,
                         "confidence": mean_confidence, "accuracy": accuracy})


def expected_calibration_error(confidence: Sequence[float], correct: Sequence[bool], n_bins: int = 10) -> float:
    """ECE: the count-weighted mean of |accuracy - confidence| over equal-width confidence bins (0 = calibrated)."""
    table = reliability_table(confidence, correct, n_bins)
    filled = table[table["count"] > 0]
    return float((filled["count"] * (filled.accuracy - filled.confidence).abs()).sum() / filled["count"].sum())
