"""What each step trains on: the dataset (the multi-task mixing schedule) and its next shuffled batch.

- ``proportional``: p_i = n_i / sum n (each example seen about equally often; big tasks dominate updates).
- ``round_robin``:  tasks in turn (each task gets the same number of updates, small tasks repeat more).
- ``temperature``:  p_i ∝ n_i ** (1 / T) (T=1 proportional, T→∞ uniform), as in multilingual BERT / T5 mixing.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import numpy as np

from mtl.data.examples import Example

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


class BatchStream:
    """Endless shuffled batches from one dataset: a fresh permutation each time the data is used up."""

    def __init__(self, examples: Sequence[Example], rng: np.random.Generator):
        if len(examples) == 0:
            raise ValueError("Cannot train on an empty dataset.")
        self.examples, self.rng = examples, rng
        self.order, self.position = rng.permutation(len(examples)), 0

    def copy(self, rng: np.random.Generator) -> BatchStream:
        """The same examples, order and position, drawing later permutations from ``rng``."""
        twin = object.__new__(BatchStream)
        twin.examples, twin.rng, twin.order, twin.position = self.examples, rng, self.order, self.position
        return twin

    def next(self, size: int) -> list[Example]:
        batch = []
        while len(batch) < size:
            if self.position == len(self.order):
                self.order, self.position = self.rng.permutation(len(self.examples)), 0
            take = self.order[self.position : self.position + size - len(batch)]
            batch += [self.examples[i] for i in take]
            self.position += len(take)
        return batch


def upcoming_examples(streams: Mapping[str, BatchStream], schedule: Sequence[str], batch_size: int,
                      rng: np.random.Generator, rank: int = 0, world: int = 1) -> dict[str, list[Example]]:
    """The distinct examples this process will train on in ``schedule``'s steps (its shard of each global batch),
    per dataset: drawn from twins of the streams and of their random generator, so the real ones are untouched."""
    twin_rng = copy.deepcopy(rng)
    twins = {name: stream.copy(twin_rng) for name, stream in streams.items()}
    drawn: dict[str, dict[int, Example]] = {}
    for dataset in schedule:
        for example in twins[dataset].next(batch_size)[rank::world]:
            drawn.setdefault(dataset, {})[id(example)] = example
    return {dataset: list(examples.values()) for dataset, examples in drawn.items()}
