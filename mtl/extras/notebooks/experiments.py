"""A way to train the multi-task model, as the freezing study (``mtl.extras.studies.full_scale.METHODS``) names it:
the backbone, ``TrainConfig`` overrides (``freeze``, ``unfreeze_schedule``, ``layer_lr_decay``, learning rates), LoRA
adapters, which tasks supply training data, and optionally the trained model of another scenario to continue from.
Every field is part of a study run's definition (its record's digest).
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Scenario:
    """One way to train the multi-task model."""

    backbone: str = "minilm"  # mtl.encoder.backbones name
    config: dict = field(default_factory=dict)  # TrainConfig overrides (freeze, unfreeze_schedule, encoder_lr, ...)
    lora: dict | None = None  # mtl.finetuning.lora.add_lora arguments (r, alpha, dropout, layers); None: no adapters
    train_tasks: tuple[str, ...] | None = None  # tasks whose data trains and selects the epoch; None: all
    start_from: str | None = None  # a scenario whose trained model (same seed) this one continues, all unfrozen
    train: bool = True  # False: evaluate as built, nothing trained (everything frozen)
