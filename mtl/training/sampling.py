"""Which dataset the next batch comes from: the multi-task mixing schedule.

- ``proportional``: p_i = n_i / sum n (each example seen about equally often; big tasks dominate updates).
- ``round_robin``:  tasks in turn (each task gets the same number of updates, small tasks repeat more).
- ``temperature``:  p_i ∝ n_i ** (1 / T) (T=1 proportional, T→∞ uniform), as in multilingual BERT / T5 mixing.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

SAMPLING_STRATEGIES = ("proportional", "round_robin", "temperature")


def task_probabilities(sizes: Mapping[str, int], strategy: str, temperature: float = 2.0) -> dict[str, float]:
    """Probability of drawing each dataset for a step (round robin: the long-run share)."""
    if strategy not in SAMPLING_STRATEGIES:
        raise ValueError(f"Unknown sampling strategy {strategy!r}; valid strategies are {SAMPLING_STRATEGIES}.")
    if not sizes or min(sizes.values()) < 1:
        raise ValueError(f"Every dataset needs at least one example, got sizes {dict(sizes)}.")
    if strategy == "temperature" and temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}.")
    n = np.array(list(sizes.values()), dtype=float)
    weights = {"proportional": n, "round_robin": np.ones_like(n), "temperature": n ** (1.0 / temperature)}[strategy]
    return dict(zip(sizes, (weights / weights.sum()).tolist()))


def task_schedule(sizes: Mapping[str, int], strategy: str, steps: int, rng: np.random.Generator,
                  temperature: float = 2.0) -> list[str]:
    """The dataset name for each of ``steps`` steps."""
    names = list(sizes)
    if strategy == "round_robin":
        task_probabilities(sizes, strategy)  # validates
        return [names[i % len(names)] for i in range(steps)]
    probs = task_probabilities(sizes, strategy, temperature)
    return [names[i] for i in rng.choice(len(names), size=steps, p=list(probs.values()))]
