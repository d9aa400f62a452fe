"""Held-out evaluation beyond one number (notebook 05): what the scores are made of, and whether a difference is real.

- ``through_cache`` / ``predict_tests``: each task scored on its own test set, the frozen bottom of the encoder
  served from a ``PrefixCache`` shared by every model in the notebook.
- ``sentence_report``, ``entity_report``, ``confusion``: macro precision / recall / F1, one-vs-rest ROC-AUC and
  confusion matrices (scikit-learn); entity-level scores per type (seqeval).
- ``paired_by_group``: is a difference between two models bigger than test-set noise within each group of examples
  (``mtl.evaluation.compare.compare``)?
- ``prediction_frame``, ``confident_mistakes``, ``scores_by``: predictions per example for error analysis.
- ``inference_cost``: parameters and prediction time of one multi-task model against one model per task.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support, roc_auc_score

from mtl.data.examples import TASK_LABELS, Example
from mtl.finetuning.freezing import freeze
from mtl.evaluation.metrics import TaskPredictions, classification_scores
from mtl.evaluation.compare import compare
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


def label_scores(task: str, examples: Sequence[Example], predicted: Sequence) -> dict[str, float]:
    """{"task/metric": value} of a baseline's predictions, as ``flat_scores`` scores a model's."""
    return flat_scores({task: label_predictions(task, examples, predicted)})


def label_table(predictions: Mapping[str, Mapping[str, Sequence]], test_sets: Mapping[str, Sequence[Example]],
                positions: Mapping[str, Sequence[int]] | None = None) -> pd.DataFrame:
    """One row of ``label_scores`` per method: ``predictions[method][task]`` has one prediction per example of
    ``test_sets[task]``; with ``positions``, only the examples at ``positions[task]`` are scored."""
    rows = {}
    for method, by_task in predictions.items():
        rows[method] = {}
        for task, predicted in by_task.items():
            keep = range(len(test_sets[task])) if positions is None else positions[task]
            rows[method] |= label_scores(task, [test_sets[task][i] for i in keep], [predicted[i] for i in keep])
    return pd.DataFrame(rows).T


def subset(preds: TaskPredictions, positions: Sequence[int]) -> TaskPredictions:
    """The predictions of the examples at ``positions``, re-indexed to their place in ``positions`` (so they pair
    with predictions made on ``[examples[i] for i in positions]``)."""
    rank = {position: r for r, position in enumerate(positions)}
    rows = [j for j, i in enumerate(preds.index) if i in rank]
    pick = lambda values: [values[j] for j in rows] if values else []  # noqa: E731
    return TaskPredictions(preds.kind, preds.labels, [rank[preds.index[j]] for j in rows], pick(preds.true),
                           pick(preds.pred), pick(preds.probs))


def paired_by_group(a: TaskPredictions, b: TaskPredictions, groups: Sequence[str],
                    n_resamples: int = 2000) -> pd.DataFrame:
    """``compare`` of a against b within each group of examples (e.g. sentiment by genre), one row per group in
    sorted order; ``groups[i]`` is the group of example i (example order, as ``prediction_frame`` rows)."""
    positions = {group: [i for i, g in enumerate(groups) if g == group] for group in sorted(set(groups))}
    return pd.DataFrame({group: compare([subset(a, kept)], [subset(b, kept)], n_resamples)
                         for group, kept in positions.items()}).T


def sentence_report(preds: TaskPredictions) -> dict[str, float]:
    """Accuracy, macro precision / recall / F1 and macro one-vs-rest ROC-AUC (from the class probabilities)."""
    _check_kind(preds, "sentence")
    labels = list(preds.labels)
    precision, recall, f1, _ = precision_recall_fscore_support(preds.true, preds.pred, labels=labels,
                                                               average="macro", zero_division=0)
    probs = np.asarray(preds.probs, dtype=np.float64)
    probs /= probs.sum(axis=1, keepdims=True)  # float32 softmax rows may miss 1 by 1e-7; scikit-learn checks
    auc = roc_auc_score(preds.true, probs, multi_class="ovr", average="macro", labels=labels)
    return {"n": len(preds.true), "accuracy": classification_scores(preds.true, preds.pred)["accuracy"],
            "macro_precision": float(precision), "macro_recall": float(recall), "macro_f1": float(f1),
            "roc_auc_ovr": float(auc)}


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


def mean_std(frame: pd.DataFrame, by: str = "setup", decimals: int = 3) -> pd.DataFrame:
    """"mean ± std" strings of the numeric columns per group of rows (``by``: an index level or a column); the std
    is the sample standard deviation over the group's rows (ddof=1)."""
    grouped = frame.groupby(level=by) if by in frame.index.names else frame.groupby(by)
    mean, std = grouped.mean(numeric_only=True), grouped.std(numeric_only=True)
    return mean.map(lambda v: f"{v:.{decimals}f}") + " ± " + std.map(lambda v: f"{v:.{decimals}f}")


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


def confident_mistakes(frame: pd.DataFrame, k: int = 8, width: int = 110) -> pd.DataFrame:
    """The ``k`` wrong predictions with the highest confidence (ties by example order), text cut to ``width``."""
    wrong = frame[~frame.correct].sort_values("confidence", ascending=False, kind="stable").head(k)
    shown = wrong.drop(columns=[c for c in wrong if c.startswith("p_")] + ["correct"])
    return shown.assign(text=shown.text.map(lambda t: t if len(t) <= width else t[: width - 1] + "…"))


def scores_by(frame: pd.DataFrame, column: str, labels: Sequence[str] | None = None) -> pd.DataFrame:
    """Examples, accuracy and macro-F1 per value of ``column`` (e.g. genre), from ``prediction_frame`` rows."""
    rows = {value: {"n": len(group), **classification_scores(group.true, group.pred, labels)}
            for value, group in frame.groupby(column, sort=True)}
    return pd.DataFrame(rows).T.astype({"n": int})


# ---- cost ----------------------------------------------------------------------------------------------------------

def parameter_count(models: Sequence[MultiTaskModel]) -> int:
    """Parameters of all ``models`` together (each model's shared tensors counted once)."""
    return sum(sum(p.numel() for p in model.parameters()) for model in models)


def best_time(fn: Callable[[], object], repeats: int = 3) -> float:
    """The fastest of ``repeats`` wall-clock timings of ``fn()`` in seconds (the least disturbed by other work)."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def inference_cost(multi_task: MultiTaskModel, single_task: Sequence[MultiTaskModel], texts: Sequence[str],
                   repeats: int = 3) -> pd.DataFrame:
    """Parameters and ``predict`` time for every task on ``texts``: one multi-task model (one encoder pass per text)
    against one model per task (one pass per text and task). Timings: fastest of ``repeats``, the two setups
    alternating so that background load hits both alike."""
    for model in [multi_task, *single_task]:  # warm-up: first calls allocate
        model.predict(texts[:8])
    seconds = {"multi": [], "single": []}
    for _ in range(repeats):
        seconds["multi"].append(best_time(lambda: multi_task.predict(texts), 1))
        seconds["single"].append(best_time(lambda: [model.predict(texts) for model in single_task], 1))
    return pd.DataFrame({
        "models": [1, len(single_task)],
        "parameters": [parameter_count([multi_task]), parameter_count(single_task)],
        "seconds": [min(seconds["multi"]), min(seconds["single"])],
    }, index=["one multi-task model", "one model per task"])
