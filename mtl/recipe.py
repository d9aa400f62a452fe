"""The project's training recipe (notebook 04), in one place so notebook 05 can retrain it for more seeds and as
single-task models with the same budget.

Choices (a first cut sized for two CPU cores; notebooks 03 and 04 are to measure them): MiniLM with mean pooling; the embeddings and the 4 lowest of its 6
blocks frozen and cached (``mtl.prefix_cache``), so each step runs only the top 2 blocks and the heads; the three
tasks mixed by temperature sampling (T=2) with equal loss weights; training subsets sized to fit the CPU budget.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pandas as pd

from mtl.data import Example
from mtl.model import MultiTaskModel
from mtl.paths import CACHE_DIR
from mtl.prefix_cache import PrefixCache
from mtl.tasks import build_model, load_datasets, task_spec
from mtl.train import TrainConfig, train
from mtl.utils import set_seed

TASKS = ("topic", "sentiment", "ner")
TRAIN_LIMIT = 2000  # examples per task at most (topic has 1,492): the CPU budget, not the data, is the limit
VAL_LIMIT = 500  # validation examples per task at most, scored every epoch
MODEL = dict(backbone="minilm", pooling="mean", max_seq_length=64)
CONFIG = TrainConfig(
    epochs=4, steps_per_epoch=75, batch_size=32, encoder_lr=1e-4, head_lr=2e-3, warmup_ratio=0.1,
    sampling="temperature", temperature=2.0, loss_weighting="fixed", freeze=["bottom:4"], patience=2, progress=False,
)
FINAL_MODEL_DIR = CACHE_DIR / "final-model"


def recipe_data(tasks: Sequence[str] = TASKS, seed: int = 0) -> tuple[dict[str, list[Example]], dict[str, list[Example]]]:
    """Training and validation sets of the recipe (stratified subsamples, fixed by ``seed``)."""
    return load_datasets(tasks, "train", TRAIN_LIMIT, seed), load_datasets(tasks, "validation", VAL_LIMIT, seed)


def train_recipe(tasks: Sequence[str] = TASKS, seed: int = 0, steps_per_epoch: int | None = None,
                 prefix_cache: PrefixCache | None = None, **overrides) -> tuple[MultiTaskModel, pd.DataFrame]:
    """Build and train the recipe's model for ``tasks``; the data subsample is the same for every seed."""
    train_sets, val_sets = recipe_data(tasks)
    config = replace(CONFIG, seed=seed, steps_per_epoch=steps_per_epoch or CONFIG.steps_per_epoch, **overrides)
    set_seed(seed)
    model = build_model(tasks, **MODEL)
    history = train(model, train_sets, val_sets, config, prefix_cache=prefix_cache)
    return model, history


def final_model() -> MultiTaskModel:
    """The model notebook 04 trained and saved (seed 0); trained and saved here if it is not there yet."""
    if (FINAL_MODEL_DIR / "config.json").is_file():
        return MultiTaskModel.load(FINAL_MODEL_DIR, tasks=[task_spec(t) for t in TASKS])
    model, _ = train_recipe(seed=0)
    model.save(FINAL_MODEL_DIR)
    return model
