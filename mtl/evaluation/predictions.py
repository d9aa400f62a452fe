"""The model run over labelled examples: predictions per task (``TaskPredictions``, for scores, comparisons and error
analysis) and the flat validation scores that training selects epochs on."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from mtl.data.examples import Example
from mtl.evaluation.metrics import TaskPredictions
from mtl.multitask.model import MultiTaskModel


@torch.inference_mode()
def predict(model: MultiTaskModel, examples: Sequence[Example], batch_size: int = 128,
            tasks: Sequence[str] | None = None) -> dict[str, TaskPredictions]:
    """Run the model over labelled examples (batches sorted by token count) and collect gold and predicted labels per task
    (``Head.gold_and_predicted``) for the examples that carry the task's label."""
    names = [n for n in model.check_tasks(tasks) if any(n in ex.labels for ex in examples)]
    out = {n: TaskPredictions(model.tasks[n].kind, model.tasks[n].labels) for n in names}
    was_training = model.training
    model.eval()
    for idx in model.batches(examples, batch_size):
        features, labels = model.collate([examples[i] for i in idx])
        logits = model(features, [n for n in names if n in labels])
        for name, task_logits in logits.items():
            preds, head = out[name], model.heads[name]
            probs = task_logits.float().softmax(-1).cpu()  # float32 also under bf16 autocast (in training)
            for row, i in enumerate(idx):
                if name not in examples[i].labels:
                    continue
                true, pred, p = head.gold_and_predicted(examples[i].labels[name], probs[row], features.word_ids(row))
                preds.true.append(true)
                preds.pred.append(pred)
                if p is not None:
                    preds.probs.append(p)
                preds.index.append(int(i))
    model.train(was_training)
    return out


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
        for name, preds in predict(model, examples, batch_size).items():
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
