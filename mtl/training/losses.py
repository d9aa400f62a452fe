"""How per-task losses become one number to minimise.

- fixed weights: L = sum_i w_i L_i.
- learned uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018): each task has a learned log-variance s_i and
  L = sum_i exp(-s_i) L_i + s_i, so a noisy or hard task is down-weighted, and the + s_i term stops s_i from
  growing without bound. (This is the usual classification form, without the paper's 1/2 factors.)
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from mtl.data.examples import Example
from mtl.multitask.model import MultiTaskModel

LOSS_WEIGHTINGS = ("fixed", "uncertainty")


class LossWeighting(nn.Module):
    """Combines {task: loss} into a scalar; has parameters (the log-variances) only for ``uncertainty``."""

    def __init__(self, tasks: Sequence[str], mode: str = "fixed", weights: Mapping[str, float] | None = None):
        super().__init__()
        if mode not in LOSS_WEIGHTINGS:
            raise ValueError(f"Unknown loss weighting {mode!r}; valid modes are {LOSS_WEIGHTINGS}.")
        unknown = set(weights or {}) - set(tasks)
        if unknown:
            raise KeyError(f"Loss weights name unknown task(s) {sorted(unknown)}; tasks are {list(tasks)}.")
        self.mode = mode
        self.weights = {t: float((weights or {}).get(t, 1.0)) for t in tasks}
        self.log_vars = nn.ParameterDict({t: nn.Parameter(torch.zeros(())) for t in tasks}) if mode == "uncertainty" else None

    def forward(self, losses: Mapping[str, Tensor]) -> Tensor:
        if self.log_vars is None:
            return sum(self.weights[t] * loss for t, loss in losses.items())
        return sum(torch.exp(-self.log_vars[t]) * loss + self.log_vars[t] for t, loss in losses.items())

    def current_weights(self) -> dict[str, float]:
        """The effective weight of each task's loss right now."""
        if self.log_vars is None:
            return dict(self.weights)
        return {t: float(torch.exp(-s.detach())) for t, s in self.log_vars.items()}


class MultiTaskObjective(nn.Module):
    """Model + loss weighting as one module, so one DistributedDataParallel wrapper covers both.

    Each process holds a shard of one global batch. A task's loss is its loss sum on this shard divided by the
    weight of its labelled positions in the whole batch, times the number of processes: the gradient average that
    DistributedDataParallel takes is then the gradient of the whole batch's mean loss, however the labelled rows
    or tokens fall into the shards."""

    def __init__(self, model: MultiTaskModel, weighting: LossWeighting,
                 class_weights: Mapping[str, Tensor] | None = None):
        super().__init__()
        self.model, self.weighting = model, weighting
        class_weights = class_weights or {}
        self.weighted_tasks = list(class_weights)
        for name, weights in class_weights.items():
            self.register_buffer(f"class_weights_{name}", weights)  # (K,), moved by .to(device)

    def class_weights(self) -> dict[str, Tensor]:
        return {name: getattr(self, f"class_weights_{name}") for name in self.weighted_tasks}

    def label_totals(self, tasks: Sequence[str], labels: dict[str, Tensor]) -> Tensor:
        """(len(tasks),) weight of the labelled positions of each task in this shard (0 if it has none)."""
        weights, heads = self.class_weights(), self.model.heads
        return torch.stack([heads[name].label_weight(labels[name], weights.get(name)) if name in labels
                            else torch.tensor(0.0) for name in tasks]).float()

    def forward(self, features, labels: dict[str, Tensor], batch_totals: Mapping[str, Tensor],
                num_processes: int = 1) -> tuple[Tensor, dict[str, Tensor]]:
        """The weighted loss and {task: loss}: each labelled task's head on this shard with its targets gives its
        summed loss (``Head.forward``); ``batch_totals[task]`` is the task's labelled weight in the whole global
        batch; a task in it without labels in this shard contributes 0 here (its share is elsewhere)."""
        encoded, weights = self.model.encoder(features), self.class_weights()
        heads = self.model.heads
        outputs = {name: heads[name](encoded, targets, weights.get(name)) for name, targets in labels.items()}
        zero = next(self.parameters()).new_zeros(())
        losses = {name: (outputs[name].loss if name in outputs else zero) * num_processes / total
                  for name, total in batch_totals.items()}
        return self.weighting(losses), losses


def balanced_class_weights(model: MultiTaskModel, train_sets: Mapping[str, Sequence[Example]]) -> dict[str, Tensor]:
    """(C,) class weights per task whose head weighs classes (``Head.balanced_class_weights``; sentence tasks:
    n / (C n_c), scikit-learn's "balanced"), from its training labels pooled over every dataset that labels it."""
    weights = {}
    for name, head in model.heads.items():
        labels = [ex.labels[name] for examples in train_sets.values() for ex in examples if name in ex.labels]
        weight = head.balanced_class_weights(labels, head.task.labels) if labels else None
        if weight is not None:
            weights[name] = weight
    return weights
