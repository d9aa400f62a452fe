"""Multi-task against single-task: the recipe (``mtl.extras.notebooks.recipe``) trained as one multi-task model, as
one model per task with the same number of steps per task, and as two controls that separate "more topic data" from
"sharing an encoder", for several seeds, each scored on the test sets. ``mtl.extras.studies.full_scale`` trains these
setups at full scale and compares them as the plan's "sharing" family (``sharing_family``, read by notebook 05).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mtl.extras.notebooks import recipe
from mtl.training.sampling import task_probabilities


# The paired comparisons the study makes, (setup a, setup b, task), each read as a - b:
COMPARISONS = [
    *[("multi-task", "single-task", task) for task in recipe.TASKS],  # what a user gets from one model
    *[("multi-task, no lead topics", "single-task", task) for task in recipe.TASKS],  # sharing, same data per task
    ("single-task, + lead topics", "single-task", "topic"),  # the lead sentences' topics, without sharing
    ("multi-task", "single-task, + lead topics", "topic"),  # sharing, when both see those topics
]


def single_task_steps(sizes: Mapping[str, int], steps_per_epoch: int, strategy: str = recipe.CONFIG.sampling,
                      temperature: float = recipe.CONFIG.temperature) -> dict[str, int]:
    """Steps per epoch of a single-task model with the same budget as the multi-task one: the expected number of
    multi-task steps that draw a batch of that task, ``steps_per_epoch * p_task`` (``mtl.training.sampling``),
    rounded."""
    probabilities = task_probabilities(sizes, strategy, temperature)
    return {task: max(1, round(steps_per_epoch * p)) for task, p in probabilities.items()}


@dataclass(frozen=True)
class Run:
    """One model of a study setup: its heads, steps per epoch, training sets, and labels removed from them."""

    tasks: tuple[str, ...]
    steps: int
    datasets: tuple[str, ...] | None = None  # None: each task's own training set
    drop_labels: tuple[tuple[str, str], ...] = ()  # (dataset, task)


def study_setups(sizes: Mapping[str, int], steps_per_epoch: int, tasks: Sequence[str] = recipe.TASKS,
                 controls: bool = True) -> dict[str, list[Run]]:
    """The models each setup trains, with the same budget per task (``single_task_steps``).

    - ``multi-task``: one model, every task's data; the NER sentences also carry their article's topic, so its topic
      head learns from them too;
    - ``single-task``: one model per task, on that task's data only.
    With ``controls``, two setups that separate "more topic data" from "sharing one encoder":
    - ``multi-task, no lead topics``: the multi-task model with the NER sentences' topic labels removed (the same
      topic data as the single-task topic model, the encoder still shared);
    - ``single-task, + lead topics``: a topic-only model that also draws the NER sentences (their topic labels only),
      for the steps that carry topic labels in the multi-task schedule (its topic and NER steps)."""
    single = single_task_steps(sizes, steps_per_epoch)
    setups = {"multi-task": [Run(tuple(tasks), steps_per_epoch)],
              "single-task": [Run((task,), single[task]) for task in tasks]}
    if controls:
        setups["multi-task, no lead topics"] = [Run(tuple(tasks), steps_per_epoch, drop_labels=(("ner", "topic"),))]
        setups["single-task, + lead topics"] = [Run(("topic",), single["topic"] + single["ner"], ("topic", "ner"))]
    return setups


