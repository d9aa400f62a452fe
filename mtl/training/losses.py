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
