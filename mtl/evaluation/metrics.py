"""Held-out predictions and their scores, and whether two models differ: ``TaskPredictions`` (scored by its task's
kind, ``mtl.multitask.task_kinds``: accuracy and macro-F1, entity-level F1), the paired bootstrap, and calibration (reliability
bins, expected calibration error; Guo et al., "On Calibration of Modern Neural Networks", ICML 2017). Nothing here
runs a model (``mtl.evaluation.predictions`` does)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mtl.multitask.task_kinds import classification_scores, task_kind  # noqa: F401  (classification_scores: the metric's home)


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
        return task_kind(self.kind).scores(self.true, self.pred, self.labels)


def example_statistics(preds: TaskPredictions) -> np.ndarray:
    """(n, k) additive counts per example, in example order, from which the task's scores follow
    (``TaskKind.example_statistics``): what the bootstrap resamples."""
    order = np.argsort(preds.index, kind="stable")
    return task_kind(preds.kind).example_statistics([preds.true[i] for i in order], [preds.pred[i] for i in order],
                                                    preds.labels)


def main_score(preds: TaskPredictions) -> float:
    """The task's main score (macro-F1 or entity F1), from ``example_statistics``: the one computation of it."""
    return float(task_kind(preds.kind).score_statistics(example_statistics(preds).sum(0)))


def paired_bootstrap(a: Sequence[TaskPredictions], b: Sequence[TaskPredictions], n_resamples: int = 2000,
                     seed: int = 0, metric: str | None = None) -> dict[str, float]:
    """Paired bootstrap for the difference of the main score (macro-F1 / entity F1; or ``metric`` "accuracy" of a
    sentence task), model A minus model B.

    ``a[i]`` and ``b[i]`` are the two models' predictions of one task on the same test examples for seed ``i``. The
    observed difference is mean_i score(a[i]) - mean_i score(b[i]). Each resample draws test examples with
    replacement and scores every seed of both models on that same resample, so the pairing by example and by seed
    is kept. Returns the means, the difference, its 95 % percentile interval, and a two-sided p-value for "no
    difference": the share of resampled differences at least as far from the observed one as the observed one is
    from 0 (the bootstrap distribution shifted to the null). Scores that are not means over examples (macro-F1,
    entity F1) are handled exactly, which a per-example test such as McNemar's cannot do.
    """
    if len(a) != len(b) or len(a) == 0:
        raise ValueError(f"Need the same positive number of seeds for both models, got {len(a)} and {len(b)}.")
    kinds = {p.kind for p in [*a, *b]}
    if len(kinds) != 1:
        raise ValueError(f"All predictions must be of one task kind, got {sorted(kinds)}.")
    indices = {tuple(sorted(p.index)) for p in [*a, *b]}
    if len(indices) != 1:
        raise ValueError("Paired predictions must cover the same test examples (their `index` lists differ).")
    kind = task_kind(kinds.pop())
    stats_a = np.stack([example_statistics(p) for p in a])  # (S, n, k)
    stats_b = np.stack([example_statistics(p) for p in b])
    n = stats_a.shape[1]
    metric = kind.check_metric(metric)
    score_a, score_b = kind.score_statistics(stats_a.sum(1), metric), kind.score_statistics(stats_b.sum(1), metric)  # (S,)
    observed = float(score_a.mean() - score_b.mean())
    rng = np.random.default_rng(seed)
    differences = []
    for start in range(0, n_resamples, 250):
        m = min(250, n_resamples - start)
        draws = rng.integers(0, n, size=(m, n)) + n * np.arange(m)[:, None]
        counts = np.bincount(draws.ravel(), minlength=m * n).reshape(m, n).astype(np.float64)  # (m, n) weights
        resampled_a = kind.score_statistics(counts @ stats_a, metric).mean(0)  # (S, m, k) -> (S, m) -> (m,)
        resampled_b = kind.score_statistics(counts @ stats_b, metric).mean(0)
        differences.append(resampled_a - resampled_b)
    differences = np.concatenate(differences)
    extreme = np.sum(np.abs(differences - observed) >= abs(observed))
    low, high = np.percentile(differences, [2.5, 97.5])
    return {"metric": metric, "a": float(score_a.mean()), "b": float(score_b.mean()),
            "difference": observed, "ci_low": float(low), "ci_high": float(high),
            "p_value": float((extreme + 1) / (n_resamples + 1)), "examples": n, "seeds": len(a)}


def separated(interval):
    """Does a 95 % interval exclude zero, i.e. is the difference measurable rather than within noise? ``interval``:
    anything with ``ci_low`` and ``ci_high`` (a ``paired_bootstrap`` result, a table row, or a whole table: then one
    bool per row)."""
    return (interval["ci_low"] > 0) | (interval["ci_high"] < 0)


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
