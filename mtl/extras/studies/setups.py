"""What the full-scale studies train, as plain data (each field is part of a recorded run's definition and digest).

- ``Scenario``: how the freezing study trains one model (``full_scale.METHODS``): the backbone, ``TrainConfig``
  overrides (``freeze``, ``unfreeze_schedule``, ``layer_lr_decay``, learning rates) and LoRA adapters.
- ``SetupModel`` and ``study_setups``: which models each setup of the sharing study trains (heads, steps per epoch,
  training sets, labels removed), with the same budget per task; ``COMPARISONS``: the pairs its family compares.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from mtl.extras.notebooks import recipe
from mtl.training.sampling import task_probabilities


@dataclass(frozen=True)
class Scenario:
    """One way to train the multi-task model."""

    backbone: str = "minilm"  # mtl.encoder.backbones name
    config: dict = field(default_factory=dict)  # TrainConfig overrides (freeze, unfreeze_schedule, encoder_lr, ...)
    lora: dict | None = None  # mtl.finetuning.lora.add_lora arguments (r, alpha, dropout, layers); None: no adapters


# The paired comparisons of the sharing study, (setup a, setup b, task), each read as a - b:
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
class SetupModel:
    """One model of a sharing-study setup: its heads, steps per epoch, training sets, and labels removed from them."""

    tasks: tuple[str, ...]
    steps: int
    datasets: tuple[str, ...] | None = None  # None: each task's own training set
    drop_labels: tuple[tuple[str, str], ...] = ()  # (dataset, task)


def study_setups(sizes: Mapping[str, int], steps_per_epoch: int, tasks: Sequence[str] = recipe.TASKS,
                 controls: bool = True) -> dict[str, list[SetupModel]]:
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
    setups = {"multi-task": [SetupModel(tuple(tasks), steps_per_epoch)],
              "single-task": [SetupModel((task,), single[task]) for task in tasks]}
    if controls:
        setups["multi-task, no lead topics"] = [SetupModel(tuple(tasks), steps_per_epoch,
                                                           drop_labels=(("ner", "topic"),))]
        setups["single-task, + lead topics"] = [SetupModel(("topic",), single["topic"] + single["ner"],
                                                           ("topic", "ner"))]
    return setups
