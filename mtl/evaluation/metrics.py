"""Held-out predictions, their scores, and whether two methods differ: ``TaskPredictions`` (scored by its task's
kind, ``mtl.multitask.task_kinds``: accuracy and macro-F1, entity-level F1); the paired comparison, ``compare_scores``
for any score of resampled test examples, ``compare`` for two models' predictions and ``compare_runs`` for two named
runs; and calibration (reliability bins, expected calibration error; Guo et al., "On Calibration of Modern Neural
Networks", ICML 2017). Nothing here runs a model (``mtl.evaluation.predictions`` does)."""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
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


Score = Callable[[np.ndarray], np.ndarray]
"""A method's score on resampled test examples: (m, n) weights, how often each of the n examples is drawn in each of
m resamples, -> (S, m) scores, one row per seed. Weights of ones score the test set as it is."""

RESAMPLE_CHUNK = 250  # resamples scored at once: bounds the (chunk, n) weights and what a score builds from them


def resampling_weights(examples: int, n_resamples: int = 2000, seed: int = 0) -> Iterator[np.ndarray]:
    """The bootstrap's resamples as weights: chunks (m, n) of how often each of the n examples is drawn when n are
    drawn with replacement, ``n_resamples`` rows in all, from one generator seeded with ``seed``: every comparison
    with the same seed and number of examples sees the same resamples."""
    if examples < 1 or n_resamples < 1:
        raise ValueError(f"Need at least 1 example and 1 resample, got {examples} and {n_resamples}.")
    rng = np.random.default_rng(seed)
    for start in range(0, n_resamples, RESAMPLE_CHUNK):
        m = min(RESAMPLE_CHUNK, n_resamples - start)
        draws = rng.integers(0, examples, size=(m, examples)) + examples * np.arange(m)[:, None]
        yield np.bincount(draws.ravel(), minlength=m * examples).reshape(m, examples).astype(np.float64)


def compare_scores(score_a: Score, score_b: Score, examples: int, n_resamples: int = 2000,
                   seed: int = 0) -> dict[str, float]:
    """Is method A better than method B, or is the difference within test-set noise? The paired bootstrap over test
    examples (Efron & Tibshirani 1993; Berg-Kirkpatrick et al., EMNLP 2012, for NLP).

    ``score_a`` and ``score_b`` score the two methods on the same ``examples`` test examples (``Score``), with the
    same number of seeds, or one for a method that has none. Each resample (``resampling_weights``) scores every
    seed of both methods on the same drawn examples, so the pairing by example and by seed is kept, and any score of
    the drawn examples works, also one that is not a mean over them (macro-F1, entity F1, a rank correlation over
    pairs of examples). Returns the mean scores over seeds ``a`` and ``b``, the ``difference``, its 95 % percentile
    interval ``ci_low``..``ci_high``, a two-sided ``p_value`` for "no difference" (the share of resampled
    differences at least as far from the observed one as the observed one is from 0: the bootstrap distribution
    shifted to the null), and the numbers of ``examples`` and ``seeds``.
    """
    ones = np.ones((1, examples))
    observed_a, observed_b = score_a(ones)[:, 0], score_b(ones)[:, 0]  # (S,): the test set as it is
    seeds = {len(observed_a), len(observed_b)}
    if len(seeds - {1}) > 1:
        raise ValueError(f"Paired methods need the same number of seeds (or one), got {len(observed_a)} and "
                         f"{len(observed_b)}.")
    observed = float(observed_a.mean() - observed_b.mean())
    differences = np.concatenate([score_a(weights).mean(0) - score_b(weights).mean(0)  # (m,): means over seeds
                                  for weights in resampling_weights(examples, n_resamples, seed)])
    extreme = np.sum(np.abs(differences - observed) >= abs(observed))
    low, high = np.percentile(differences, [2.5, 97.5])
    return {"a": float(observed_a.mean()), "b": float(observed_b.mean()), "difference": observed,
            "ci_low": float(low), "ci_high": float(high), "p_value": float((extreme + 1) / (n_resamples + 1)),
            "examples": examples, "seeds": max(seeds)}


def compare(a: Sequence[TaskPredictions], b: Sequence[TaskPredictions], n_resamples: int = 2000, seed: int = 0,
            metric: str | None = None) -> dict[str, float]:
    """``compare_scores`` of two models' predictions of one task: the main score (macro-F1 / entity F1; or
    ``metric``, e.g. "accuracy" of a sentence task), model A minus model B, with that ``metric`` in the result.

    ``a[i]`` and ``b[i]`` are the two models' predictions on the same test examples for seed ``i``. A resample's
    score is computed from the examples' additive counts (``example_statistics``), so scores that are not means
    over examples are handled exactly, which a per-example test such as McNemar's cannot do.
    """
    if len(a) != len(b) or len(a) == 0:
        raise ValueError(f"Need the same positive number of seeds for both models, got {len(a)} and {len(b)}.")
    kinds = {p.kind for p in [*a, *b]}
    if len(kinds) != 1:
        raise ValueError(f"All predictions must be of one task kind, got {sorted(kinds)}.")
    if len({tuple(sorted(p.index)) for p in [*a, *b]}) != 1:
        raise ValueError("Paired predictions must cover the same test examples (their `index` lists differ).")
    kind = task_kind(kinds.pop())
    metric = kind.check_metric(metric)

    def score(predictions: Sequence[TaskPredictions]) -> Score:
        stats = np.stack([example_statistics(p) for p in predictions])  # (S, n, k)
        return lambda weights: kind.score_statistics(weights @ stats, metric)  # (S, m, k) -> (S, m)

    return {"metric": metric, **compare_scores(score(a), score(b), len(a[0].index), n_resamples, seed)}


def shared_seeds(predictions: Mapping[tuple[str, int], object], a: str, b: str) -> list[int]:
    """The seeds, in order, for which ``predictions`` (keyed by (run, seed)) hold both run ``a`` and run ``b``."""
    return sorted({s for run, s in predictions if run == a} & {s for run, s in predictions if run == b})


def compare_runs(predictions: Mapping[tuple[str, int], Mapping[str, TaskPredictions]], a: str, b: str, task: str,
                 n_resamples: int = 2000, seed: int = 0) -> dict[str, float]:
    """``compare`` of run ``a`` against run ``b`` on ``task``, from predictions keyed by (run, seed) and then by
    task: paired by test example and by the seeds both runs have (``shared_seeds``)."""
    seeds = shared_seeds(predictions, a, b)
    if not seeds:
        raise KeyError(f"No seed has predictions of both {a!r} and {b!r}.")
    for run in (a, b):
        if task not in predictions[run, seeds[0]]:
            raise KeyError(f"Run {run!r} has no {task!r} predictions.")
    return compare([predictions[a, s][task] for s in seeds], [predictions[b, s][task] for s in seeds], n_resamples,
                   seed)


def separated(interval):
    """Does a 95 % interval exclude zero, i.e. is the difference measurable rather than within noise? ``interval``:
    anything with ``ci_low`` and ``ci_high`` (a ``compare`` result, a table row, or a whole table: then one
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
