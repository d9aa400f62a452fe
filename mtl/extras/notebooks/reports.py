"""Held-out evaluation beyond one number (notebook 05): what the scores are made of, and whether a difference is real.

- ``through_cache`` / ``predict_tests``: each task scored on its own test set, the frozen bottom of the encoder
  served from a ``PrefixCache`` shared by every model in the notebook.
- ``entity_report``, ``class_report``, ``confusion``: scores per entity type (seqeval) and per class, confusion
  matrices (scikit-learn).
- ``prediction_frame``: predictions per example for error analysis; ``parameter_count`` of several models.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix

from mtl.data.examples import TASK_LABELS, Example
from mtl.finetuning.freezing import freeze
from mtl.evaluation.metrics import TaskPredictions
from mtl.multitask.model import MultiTaskModel
from mtl.encoder.prefix_cache import PrefixCache
from mtl.evaluation.predictions import predict
from mtl.multitask.heads import head_type
from mtl.multitask.tasks import task_spec


# ---- scoring a model on the test sets --------------------------------------------------------------------------

@contextmanager
def through_cache(model: MultiTaskModel, cache: PrefixCache, frozen: Sequence[str]) -> Iterator[MultiTaskModel]:
    """Within the block, ``model`` runs with the components ``frozen`` (e.g. ``["bottom:4"]``) frozen and their output
    taken from ``cache``; afterwards its trainable flags are restored. The cache checks the frozen weights itself, so
    a model whose bottom differs from the cache's only costs a refill, never a wrong answer."""
    flags = [p.requires_grad for p in model.parameters()]
    freeze(model, *frozen)
    model.encoder.use_prefix_cache(True, cache)
    try:
        yield model
    finally:
        model.encoder.use_prefix_cache(False)
        for param, flag in zip(model.parameters(), flags):
            param.requires_grad_(flag)
        model.train(model.training)


def predict_tests(model: MultiTaskModel, test_sets: Mapping[str, Sequence[Example]],
                  batch_size: int = 128) -> dict[str, TaskPredictions]:
    """Each of the model's tasks on its own test set only (``test_sets[task]``): topic on the headlines, although the
    NER sentences carry topic labels too."""
    return {task: predict(model, test_sets[task], batch_size, tasks=[task])[task]
            for task in model.tasks if task in test_sets}


def flat_scores(predictions: Mapping[str, TaskPredictions]) -> dict[str, float]:
    """{"task/metric": value}: accuracy and macro-F1 for sentence tasks, entity F1 for token tasks."""
    return {f"{task}/{metric}": value for task, preds in predictions.items()
            for metric, value in preds.scores().items() if metric != "token_accuracy"}


def label_predictions(task: str, examples: Sequence[Example], predicted: Sequence) -> TaskPredictions:
    """A baseline's predicted labels (sentence tasks) or tag lists (token tasks), one per example, as
    ``TaskPredictions`` (in example order), so it can be scored and paired with a model like any other."""
    gold = [ex.labels[task] for ex in examples]
    if len(gold) != len(predicted):
        raise ValueError(f"{len(predicted)} predictions for {len(gold)} examples of task {task!r}.")
    return TaskPredictions(task_spec(task).kind, TASK_LABELS[task], list(range(len(gold))), gold, list(predicted))


def entity_report(preds: TaskPredictions) -> pd.DataFrame:
    """Entity-level precision, recall, F1 and support per entity type, then the micro average (seqeval's default
    mode: an entity counts only if its type and both boundaries match)."""
    _check_kind(preds, "token")
    return head_type(preds.kind).breakdown(preds.true, preds.pred, preds.labels)


def class_report(preds: TaskPredictions) -> pd.DataFrame:
    """Precision, recall, F1 and support per class of a sentence task, in label order (a class never predicted has
    precision 0); the per-class view of ``sentence_report``'s macro averages."""
    _check_kind(preds, "sentence")
    return head_type(preds.kind).breakdown(preds.true, preds.pred, preds.labels)


def confusion(preds: TaskPredictions) -> tuple[np.ndarray, list[str]]:
    """Confusion matrix (rows: true) and its labels; token tasks per word, B-/I- merged into the entity type."""
    true, pred, labels = head_type(preds.kind).confusion_inputs(preds.true, preds.pred, preds.labels)
    return confusion_matrix(true, pred, labels=labels), labels


def _check_kind(preds: TaskPredictions, kind: str) -> None:
    if preds.kind != kind:
        raise ValueError(f"Expected predictions of a {kind} task, got a {preds.kind} task.")


# ---- error analysis ----------------------------------------------------------------------------------------------

def prediction_frame(preds: TaskPredictions, examples: Sequence[Example], extra: Sequence[str] = ()) -> pd.DataFrame:
    """One row per example of a sentence task, in example order: text, true and predicted label, the predicted
    label's probability (``confidence``), ``correct``, one column per label probability, and the examples' labels
    for the tasks in ``extra`` (e.g. the sentiment sentences' genre)."""
    _check_kind(preds, "sentence")
    probs = np.asarray(preds.probs)
    frame = pd.DataFrame({"text": [examples[i].text for i in preds.index], "true": preds.true, "pred": preds.pred,
                          "confidence": probs.max(axis=1)}, index=pd.Index(preds.index, name="example"))
    frame["correct"] = frame.true == frame.pred
    for j, label in enumerate(preds.labels):
        frame[f"p_{label}"] = probs[:, j]
    for task in extra:
        frame[task] = [examples[i].labels.get(task) for i in preds.index]
    return frame.sort_index()


# ---- cost ----------------------------------------------------------------------------------------------------------

def parameter_count(models: Sequence[MultiTaskModel]) -> int:
    """Parameters of all ``models`` together (each model's shared tensors counted once)."""
    return sum(sum(p.numel() for p in model.parameters()) for model in models)


