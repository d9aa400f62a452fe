"""The project's training recipe, in one place so that notebook 04 and the full-scale studies train it alike, for
more seeds and as single-task models with the same budget.

Choices, sized for two CPU cores (notebook 03 measures the freezing trade-offs, notebook 04 explains each choice):
MiniLM with mean pooling; the embeddings and the 4 lowest of its 6 blocks frozen and cached
(``mtl.encoder.prefix_cache``), so each step runs only the top 2 blocks and the heads; the three tasks mixed by
temperature sampling (T=2) with equal loss weights; classes weighted "balanced" inside each sentence task
(sentiment's neutral class is ~10 %); training subsets sized to fit the CPU budget. The learning rates and class
weighting were chosen on the validation split (seed 0) among four variants (``benchmarks/recipe_variants.py``).
``interrupted_at`` stops a run as a kill would, so notebook 04 can show a resumed run in one process.
"""
from __future__ import annotations

import importlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace

import pandas as pd

from mtl.data.examples import Example
from mtl.multitask.model import MultiTaskModel
from mtl.encoder.prefix_cache import PrefixCache
from mtl.multitask.tasks import build_model, load_datasets
from mtl.training.train import TrainConfig, train
from mtl.utils import set_seed

TASKS = ("topic", "sentiment", "ner")
TRAIN_LIMIT = 2000  # examples per task at most (topic has 1,492): the CPU budget, not the data, is the limit
VAL_LIMIT = 500  # validation examples per task at most, scored every epoch
MODEL = dict(backbone="minilm", pooling="mean", max_seq_length=64)
CONFIG = TrainConfig(
    epochs=4, steps_per_epoch=75, batch_size=32, encoder_lr=2e-4, head_lr=5e-3, warmup_ratio=0.1,
    sampling="temperature", temperature=2.0, loss_weighting="fixed", class_weighting="balanced", freeze=["bottom:4"],
    patience=2, progress=False,
)
LOOP = importlib.import_module("mtl.training.train")  # the module (``mtl.training.train`` names the function too)


def recipe_data(tasks: Sequence[str] = TASKS, seed: int = 0, val_limit: int | None = VAL_LIMIT,
                full_data: bool = False) -> tuple[dict[str, list[Example]], dict[str, list[Example]]]:
    """Training and validation sets of the recipe: stratified subsamples (``TRAIN_LIMIT``, ``val_limit``; fixed by
    ``seed``), or with ``full_data`` every training example (the full-scale studies of
    ``mtl.extras.studies.full_scale``)."""
    return (load_datasets(tasks, "train", None if full_data else TRAIN_LIMIT, seed),
            load_datasets(tasks, "validation", val_limit, seed))


def without_labels(examples: Sequence[Example], task: str) -> list[Example]:
    """The examples with their ``task`` label removed (a control: the same texts, one label source fewer)."""
    return [replace(ex, labels={name: label for name, label in ex.labels.items() if name != task}) for ex in examples]


def train_recipe(tasks: Sequence[str] = TASKS, seed: int = 0, steps_per_epoch: int | None = None,
                 prefix_cache: PrefixCache | None = None, val_limit: int = VAL_LIMIT,
                 datasets: Sequence[str] | None = None, drop_labels: Sequence[tuple[str, str]] = (),
                 full_data: bool = False, **overrides) -> tuple[MultiTaskModel, pd.DataFrame]:
    """Build and train the recipe's model for ``tasks``; the data subsample is the same for every seed.
    ``datasets``: the training sets it draws batches from (default: each task's own), e.g. ``("topic", "ner")`` for
    a topic model that also learns from the NER sentences' topic labels; ``drop_labels``: (dataset, task) labels
    removed from the training data, e.g. ``[("ner", "topic")]``. Validation: each task's own set.
    ``val_limit`` shrinks the validation sets (a short run that keeps its only epoch needs little validation);
    ``full_data``: all training examples instead of the recipe's subsample (``recipe_data``)."""
    train_sets, _ = recipe_data(tuple(datasets or tasks), full_data=full_data)
    for dataset, task in drop_labels:
        train_sets[dataset] = without_labels(train_sets[dataset], task)
    _, val_sets = recipe_data(tasks, val_limit=val_limit)
    config = replace(CONFIG, seed=seed, steps_per_epoch=steps_per_epoch or CONFIG.steps_per_epoch, **overrides)
    set_seed(seed)
    model = build_model(tasks, **MODEL)
    history = train(model, train_sets, val_sets, config, prefix_cache=prefix_cache)
    return model, history


class Interrupted(Exception):
    """What ``interrupted_at`` raises in place of a kill."""


@contextmanager
def interrupted_at(epoch: int, step: int) -> Iterator[None]:
    """Inside this block ``train`` stops as a killed run would, right after writing its checkpoint at ``step`` of
    ``epoch`` (``TrainConfig.checkpoint_every`` must land there); the interruption ends with the block. A run that
    never writes that checkpoint is an error, so a demonstration cannot pass by resuming from nothing."""
    real = LOOP.save_checkpoint

    def save_then_stop(path, *state):
        real(path, *state)
        loop = state[-1]
        if (loop.epoch, loop.step) == (epoch, step):
            raise Interrupted(f"stopped after the checkpoint at epoch {epoch}, step {step}")

    LOOP.save_checkpoint = save_then_stop
    try:
        yield
    except Interrupted:
        return
    finally:
        LOOP.save_checkpoint = real
    raise RuntimeError(f"training wrote no checkpoint at epoch {epoch}, step {step}: nothing was interrupted.")
