"""Held-out predictions and scores per task: accuracy and macro-F1 (scikit-learn), entity-level F1 (seqeval), and
calibration (reliability bins, expected calibration error; Guo et al., "On Calibration of Modern Neural Networks",
ICML 2017)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from seqeval.metrics import f1_score as entity_f1
from sklearn.metrics import accuracy_score, f1_score

from mtl.data import Example
from mtl.model import IGNORE, MultiTaskModel


@dataclass
class TaskPredictions:
    """Gold and predicted labels of one task over the examples that carry its label."""

    kind: str
    labels: tuple[str, ...]
    index: list[int] = field(default_factory=list)  # position of each row in the evaluated example list
    true: list = field(default_factory=list)  # label names, or one tag list per sentence (token tasks)
    pred: list = field(default_factory=list)
    probs: list = field(default_factory=list)  # (C,) probability vectors, sentence tasks only

    def scores(self) -> dict[str, float]:
        if self.kind == "token":
            flat_true = [t for seq in self.true for t in seq]
            flat_pred = [t for seq in self.pred for t in seq]
            return {"entity_f1": float(entity_f1(self.true, self.pred)),
                    "token_accuracy": float(accuracy_score(flat_true, flat_pred))}
        return classification_scores(self.true, self.pred, self.labels)


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
                else:
                    keep = gold[row] != IGNORE
                    if not keep.any():
                        continue
                    preds.true.append([preds.labels[j] for j in gold[row][keep]])
                    preds.pred.append([preds.labels[j] for j in pred[row][keep]])
                preds.index.append(int(i))
    model.train(was_training)
    return out


def evaluate(model: MultiTaskModel, datasets: Mapping[str, Sequence[Example]],
             batch_size: int = 128) -> dict[str, float]:
    """Flat scores {"task/metric": value} over every dataset; a task labelled in several datasets is pooled."""
    pooled: dict[str, TaskPredictions] = {}
    for examples in datasets.values():
        for name, preds in predict_examples(model, examples, batch_size).items():
            if name in pooled:
                for attr in ("true", "pred", "probs"):
                    getattr(pooled[name], attr).extend(getattr(preds, attr))
            else:
                pooled[name] = preds
    return {f"{name}/{metric}": value for name, preds in pooled.items() for metric, value in preds.scores().items()}


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
