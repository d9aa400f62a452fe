"""Held-out predictions and scores per task: accuracy and macro-F1 (scikit-learn), entity-level F1 (seqeval), and
calibration (reliability bins, expected calibration error; Guo et al., "On Calibration of Modern Neural Networks",
ICML 2017)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from seqeval.metrics.sequence_labeling import get_entities
from sklearn.metrics import accuracy_score, f1_score

from mtl.data import Example
from mtl.model import IGNORE, MultiTaskModel

MAIN_METRIC = {"sentence": "macro_f1", "token": "entity_f1"}  # what selects epochs and what comparisons compare


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
        if self.kind == "token":
            flat_true = [t for seq in self.true for t in seq]
            flat_pred = [t for seq in self.pred for t in seq]
            return {"entity_f1": main_score(self), "token_accuracy": float(accuracy_score(flat_true, flat_pred))}
        return classification_scores(self.true, self.pred, self.labels)


def example_statistics(preds: TaskPredictions) -> np.ndarray:
    """(n, k) additive counts per test example, in example order, from which the task's main score follows:
    sentence tasks: per class [true positive, predicted, true] (k = 3 * classes) for macro-F1; token tasks:
    [correct entities, predicted entities, true entities] (k = 3) for entity-level micro-F1 (seqeval's entities)."""
    order = np.argsort(preds.index, kind="stable")
    if preds.kind == "sentence":
        labels = np.asarray(preds.labels)
        true = np.asarray(preds.true)[order][:, None] == labels  # (n, C) one-hot
        pred = np.asarray(preds.pred)[order][:, None] == labels
        return np.concatenate([true & pred, pred, true], axis=1).astype(np.float64)
    rows = []
    for i in order:
        true, pred = set(get_entities(list(preds.true[i]))), set(get_entities(list(preds.pred[i])))
        rows.append((len(true & pred), len(pred), len(true)))
    return np.asarray(rows, dtype=np.float64).reshape(-1, 3)


def main_score(preds: TaskPredictions) -> float:
    """The task's main score (macro-F1 or entity F1) from ``example_statistics``: the one computation of entity F1
    (seqeval's entities, micro-averaged; 0, without seqeval's warning, when nothing is predicted)."""
    return float(score_statistics(example_statistics(preds).sum(0), preds.kind))


def score_statistics(stats: np.ndarray, kind: str, metric: str | None = None) -> np.ndarray:
    """A score from summed ``example_statistics`` (..., k): the kind's main metric by default (macro-F1 for sentence
    tasks, entity F1 for token tasks), or "accuracy" of a sentence task (its correct share)."""
    if kind not in MAIN_METRIC:
        raise ValueError(f"Unknown task kind {kind!r}; valid kinds are {tuple(MAIN_METRIC)}.")
    metric = metric or MAIN_METRIC[kind]
    if metric not in (MAIN_METRIC[kind], "accuracy") or (metric == "accuracy" and kind != "sentence"):
        raise ValueError(f"A {kind} task's score is {MAIN_METRIC[kind]!r}" +
                         (" or 'accuracy'" if kind == "sentence" else "") + f", got {metric!r}.")
    k = stats.shape[-1] // 3
    correct, predicted, true = stats[..., :k], stats[..., k:2 * k], stats[..., 2 * k:]
    if metric == "accuracy":
        return correct.sum(-1) / true.sum(-1)  # every example is true for exactly one class
    denominator = predicted + true
    f1 = np.divide(2 * correct, denominator, out=np.zeros_like(denominator), where=denominator > 0)
    return f1.mean(-1)  # token tasks: k = 1, the mean is the value itself


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
    kind = kinds.pop()
    stats_a = np.stack([example_statistics(p) for p in a])  # (S, n, k)
    stats_b = np.stack([example_statistics(p) for p in b])
    n = stats_a.shape[1]
    metric = metric or MAIN_METRIC[kind]
    score_a, score_b = score_statistics(stats_a.sum(1), kind, metric), score_statistics(stats_b.sum(1), kind, metric)  # (S,)
    observed = float(score_a.mean() - score_b.mean())
    rng = np.random.default_rng(seed)
    differences = []
    for start in range(0, n_resamples, 250):
        m = min(250, n_resamples - start)
        draws = rng.integers(0, n, size=(m, n)) + n * np.arange(m)[:, None]
        counts = np.bincount(draws.ravel(), minlength=m * n).reshape(m, n).astype(np.float64)  # (m, n) weights
        resampled_a = score_statistics(counts @ stats_a, kind, metric).mean(0)  # (S, m, k) -> (S, m) -> (m,)
        resampled_b = score_statistics(counts @ stats_b, kind, metric).mean(0)
        differences.append(resampled_a - resampled_b)
    differences = np.concatenate(differences)
    extreme = np.sum(np.abs(differences - observed) >= abs(observed))
    low, high = np.percentile(differences, [2.5, 97.5])
    return {"metric": metric, "a": float(score_a.mean()), "b": float(score_b.mean()),
            "difference": observed, "ci_low": float(low), "ci_high": float(high),
            "p_value": float((extreme + 1) / (n_resamples + 1)), "examples": n, "seeds": len(a)}


def classification_scores(true: Sequence[str], pred: Sequence[str],
                          labels: Sequence[str] | None = None) -> dict[str, float]:
    """Accuracy and macro-F1 (over ``labels`` if given, so a never-predicted class counts as F1 0)."""
    return {"accuracy": float(accuracy_score(true, pred)),
            "macro_f1": float(f1_score(true, pred, average="macro", labels=None if labels is None else list(labels),
                                       zero_division=0))}


@torch.inference_mode()
def predict_examples(model: MultiTaskModel, examples: Sequence[Example], batch_size: int = 128,
                     tasks: Sequence[str] | None = None) -> dict[str, TaskPredictions]:
    """Run the model over labelled examples (length-sorted batches) and collect predictions per task."""
    names = [n for n in model.check_tasks(tasks) if any(n in ex.labels for ex in examples)]
    out = {n: TaskPredictions(model.tasks[n].kind, model.tasks[n].labels) for n in names}
    was_training = model.training
    model.eval()
    order = np.argsort([-len(ex.text) for ex in examples], kind="stable")
    for start in range(0, len(examples), batch_size):
        idx = order[start : start + batch_size]
        features, labels = model.collate([examples[i] for i in idx])
        logits = model(features, [n for n in names if n in labels])
        for name, task_logits in logits.items():
            gold, pred, preds = labels[name].cpu(), task_logits.argmax(-1).cpu(), out[name]
            probs = task_logits.float().softmax(-1).cpu()  # float32 also under bf16 autocast (in training)
            for row, i in enumerate(idx):
                if preds.kind == "sentence":
                    if gold[row] == IGNORE:
                        continue
                    preds.probs.append(probs[row].numpy())
                    preds.true.append(preds.labels[gold[row]])
                    preds.pred.append(preds.labels[pred[row]])
                else:  # whole sentence: a word past max_seq_length (no piece in the batch) is predicted "O"
                    example = examples[i]
                    if name not in example.labels:
                        continue
                    tags = ["O"] * len(example.labels[name])
                    for position, word in first_pieces(features.word_ids(row)).items():
                        tags[word] = preds.labels[pred[row][position]]
                    preds.true.append(list(example.labels[name]))
                    preds.pred.append(tags)
                preds.index.append(int(i))
    model.train(was_training)
    return out


def first_pieces(word_ids: Sequence[int | None]) -> dict[int, int]:
    """{position: word} of each word's first word piece (where token heads are trained and read)."""
    first, previous = {}, None
    for position, word in enumerate(word_ids):
        if word is not None and word != previous:
            first[position] = word
        previous = word
    return first


def evaluate(model: MultiTaskModel, datasets: Mapping[str, Sequence[Example]],
             batch_size: int = 128) -> dict[str, float]:
    """Flat validation scores per task and dataset. ``"task/metric"``: the task on its own dataset (the one named
    after it, the population its test split measures; without one, pooled over every dataset that labels it): what
    model selection reads. ``"task@dataset/metric"``: the task on another dataset that labels it too (e.g. topic
    on the NER sentences), reported, not selected on."""
    scores: dict[str, float] = {}
    pooled: dict[str, TaskPredictions] = {}
    offset = 0
    for dataset, examples in datasets.items():
        for name, preds in predict_examples(model, examples, batch_size).items():
            if name == dataset:
                scores |= {f"{name}/{metric}": value for metric, value in preds.scores().items()}
                continue
            scores |= {f"{name}@{dataset}/{metric}": value for metric, value in preds.scores().items()}
            if name not in datasets:  # no dataset of its own: pool the others
                pooled.setdefault(name, TaskPredictions(preds.kind, preds.labels)).extend(preds, offset)
        offset += len(examples)
    for name, preds in pooled.items():
        scores |= {f"{name}/{metric}": value for metric, value in preds.scores().items()}
    return scores


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
