"""The multi-task training loop (``train``), an explicit PyTorch loop on Hugging Face Accelerate, and its config.

Epochs are selected by the mean of each task's main score on its own validation set, the population its test split
measures (history column ``val/<task>/<metric>``; a task also labelled in another dataset is reported as
``val/<task>@<dataset>/...`` and not selected on). The same code runs on CPU, one GPU, or several processes with
``accelerate launch``: every process draws the same global batch and trains on its own shard of it.
"""
from __future__ import annotations

import math
import time
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from accelerate import Accelerator, DataLoaderConfiguration, DistributedDataParallelKwargs
from torch import Tensor, nn
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from mtl.data.examples import Example
from mtl.encoder.precision import accelerate_mixed_precision, check_precision_name
from mtl.encoder.prefix_cache import PrefixCache
from mtl.evaluation.predictions import evaluate
from mtl.finetuning.freezing import freeze, select, unfreeze
from mtl.finetuning.rates import layer_learning_rates, parameter_groups
from mtl.multitask.model import MultiTaskModel
from mtl.training.checkpoint import LoopState, atomic_directory, resume, save_checkpoint
from mtl.training.losses import LOSS_WEIGHTINGS, LossWeighting, MultiTaskObjective, balanced_class_weights
from mtl.training.sampling import SAMPLING_STRATEGIES, BatchStream, task_schedule, upcoming_examples
from mtl.utils import set_seed


@dataclass
class TrainConfig:
    """Everything that decides a training run (notebook 04's recipe is ``mtl.extras.notebooks.recipe.CONFIG``)."""

    epochs: int = 4  # number of epochs; one epoch = ``steps_per_epoch`` optimiser steps
    steps_per_epoch: int | None = None  # None: all training examples once (sum of sizes // batch_size)
    batch_size: int = 32  # examples per step, across all processes
    encoder_lr: float = 5e-5  # AdamW learning rate of the encoder (pretrained weights move gently)
    head_lr: float = 1e-3  # AdamW learning rate of the heads and loss weights (new weights move fast)
    weight_decay: float = 0.01  # AdamW decoupled weight decay (not on biases and LayerNorm)
    warmup_ratio: float = 0.1  # share of all steps with linearly rising learning rate, then linear decay to 0
    max_grad_norm: float = 1.0  # gradient clipping threshold (global L2 norm)
    sampling: str = "proportional"  # dataset mixing: proportional | round_robin | temperature (mtl.training.sampling)
    temperature: float = 2.0  # T of temperature sampling, p_i ∝ n_i^(1/T)
    loss_weighting: str = "fixed"  # fixed | uncertainty (Kendall et al. 2018; mtl.training.losses)
    task_weights: dict[str, float] = field(default_factory=dict)  # fixed weights per task; missing = 1.0
    class_weighting: str = "none"  # none | balanced: sentence-task classes weighted n / (K n_c), as macro-F1 scores
    patience: int | None = 2  # stop after this many epochs without a better validation score; None: never
    seed: int = 0  # seeds weights of new heads, dropout, batch order and task schedule
    freeze: list[str] = field(default_factory=list)  # components frozen before training (mtl.finetuning.freezing selectors)
    unfreeze_schedule: dict[int, list[str]] = field(default_factory=dict)  # {epoch: selectors unfrozen as it starts}
    layer_lr_decay: float = 1.0  # block i of L learns at encoder_lr * decay**(L-1-i), embeddings at decay**L; 1: one rate
    cache_frozen: bool = True  # compute the frozen bottom of the backbone once (mtl.encoder.prefix_cache)
    output_dir: str | None = None  # if set: best/ (best model), last/ (resumable checkpoint), history.csv
    checkpoint_every: int | None = None  # also write last/ every this many steps (it is always written per epoch)
    eval_batch_size: int = 128  # batch size for validation
    progress: bool = True  # tqdm bar per epoch
    precision: str = "fp32"  # fp32 | bf16 | fp16 (CUDA) | auto: Accelerate's mixed precision (mtl.encoder.precision)

    def __post_init__(self):
        """Check every value against its valid range, so a bad config fails when it is built, not mid-run."""
        def finite_at_least_0(v):
            return math.isfinite(v) and v >= 0

        rules = [  # (field, is the value valid?, what is valid); NaN fails every comparison
            ("epochs", lambda v: v >= 1, "positive (>= 1)"),
            ("steps_per_epoch", lambda v: v is None or v >= 1, "positive (>= 1) or None"),
            ("batch_size", lambda v: v >= 1, "positive (>= 1)"),
            ("encoder_lr", finite_at_least_0, "a finite number >= 0"),
            ("head_lr", finite_at_least_0, "a finite number >= 0"),
            ("weight_decay", finite_at_least_0, "a finite number >= 0"),
            ("warmup_ratio", lambda v: 0 <= v <= 1, "in [0, 1]"),
            ("max_grad_norm", lambda v: v > 0, "> 0"),
            ("sampling", lambda v: v in SAMPLING_STRATEGIES, f"one of {SAMPLING_STRATEGIES}"),
            ("temperature", lambda v: math.isfinite(v) and v > 0, "a finite number > 0"),
            ("loss_weighting", lambda v: v in LOSS_WEIGHTINGS, f"one of {LOSS_WEIGHTINGS}"),
            ("class_weighting", lambda v: v in ("none", "balanced"), "one of ('none', 'balanced')"),
            ("patience", lambda v: v is None or v >= 1, "positive (>= 1) or None"),
            ("seed", lambda v: v >= 0, ">= 0"),
            ("layer_lr_decay", lambda v: math.isfinite(v) and v > 0, "a finite number > 0"),
            ("checkpoint_every", lambda v: v is None or v >= 1, "positive (>= 1) or None (per epoch only)"),
            ("eval_batch_size", lambda v: v >= 1, "positive (>= 1)"),
        ]
        for name, valid, what in rules:
            if not valid(getattr(self, name)):
                raise ValueError(f"TrainConfig.{name} must be {what}, got {getattr(self, name)!r}.")
        for task, weight in self.task_weights.items():
            if not finite_at_least_0(weight):
                raise ValueError(f"TrainConfig.task_weights[{task!r}] must be a finite number >= 0, got {weight!r}.")
        check_precision_name(self.precision)
        schedule = {}
        for epoch, selectors in self.unfreeze_schedule.items():  # JSON object keys are strings: "2" -> 2
            if not str(epoch).isdigit() or not 1 <= int(epoch) <= self.epochs:
                raise ValueError(f"unfreeze_schedule keys must be epochs 1..{self.epochs}, got {epoch!r}.")
            if not isinstance(selectors, list) or not all(isinstance(s, str) for s in selectors):
                raise TypeError(f"unfreeze_schedule[{epoch!r}] must be a list of selectors, got {selectors!r}.")
            schedule[int(epoch)] = list(selectors)
        self.unfreeze_schedule = dict(sorted(schedule.items()))

    @classmethod
    def from_dict(cls, values: Mapping) -> TrainConfig:
        """Build from a dict (e.g. JSON); an unknown field or a value of the wrong type is an error naming it."""
        hints = typing.get_type_hints(cls)
        unknown = sorted(set(values) - set(hints))
        if unknown:
            raise ValueError(f"Unknown TrainConfig field(s) {unknown}; valid fields are {sorted(hints)}.")
        for name, value in values.items():
            if not _matches(value, hints[name]):
                expected = hints[name].__name__ if isinstance(hints[name], type) else hints[name]  # int, int | None
                raise TypeError(f"TrainConfig.{name} must be {expected}, got {type(value).__name__} {value!r}.")
        return cls(**values)


def _matches(value, hint) -> bool:
    """isinstance for the simple type hints TrainConfig uses (int | None, dict[str, float], list[str], ...)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if typing.get_origin(hint) is not None:
        return isinstance(value, typing.get_origin(hint))
    if isinstance(value, bool) and hint is not bool:
        return False
    return isinstance(value, (int, float)) if hint is float else isinstance(value, hint)


def train(model: MultiTaskModel, train_sets: Mapping[str, Sequence[Example]],
          val_sets: Mapping[str, Sequence[Example]], config: TrainConfig | None = None,
          resume_from: str | Path | None = None, prefix_cache: PrefixCache | None = None) -> pd.DataFrame:
    """Train in place and end with the best validation weights loaded; returns the history, one row per epoch.
    ``resume_from``: the ``last`` checkpoint of a run with the same config and data, continued exactly where it
    stopped. ``prefix_cache``: a cache shared by runs with the same frozen bottom (``mtl.encoder.prefix_cache``)."""
    config = config or TrainConfig()
    set_seed(config.seed)
    check_inputs(model, train_sets, val_sets, config, resume_from)
    sizes = {name: len(examples) for name, examples in train_sets.items()}
    steps_per_epoch = config.steps_per_epoch or max(1, sum(sizes.values()) // config.batch_size)
    model.encoder.use_prefix_cache(config.cache_frozen, prefix_cache)  # the frozen bottom of each example, once
    accelerator, objective, prepared, optimizer, scheduler = setup(model, train_sets, config, steps_per_epoch)
    rank, world = accelerator.process_index, accelerator.num_processes
    rng = np.random.default_rng(config.seed)  # the same on every process: same schedule, same global batches
    streams = {name: BatchStream(examples, rng) for name, examples in train_sets.items()}
    resumable = (model, objective.weighting, optimizer, scheduler, rng, streams)  # in a checkpoint with the loop
    loop = resume(Path(resume_from), *resumable) if resume_from is not None else LoopState()
    best = BestWeights(model, config, write=accelerator.is_main_process)
    output = Path(config.output_dir) if config.output_dir and accelerator.is_main_process else None  # main writes
    filled: dict[int, set[int]] = {}  # frozen depth -> ids of the examples whose frozen bottom is cached
    while loop.epoch <= config.epochs:
        for epoch in range(1, loop.epoch + 1):  # gradual unfreezing; a resumed run catches up
            unfreeze(model, *config.unfreeze_schedule.get(epoch, []))
        if loop.schedule is None:  # else resumed mid-epoch
            loop.schedule = task_schedule(sizes, config.sampling, steps_per_epoch, rng, config.temperature)
        prepared.train()
        started = time.perf_counter() - loop.seconds
        with model.encoder.frozen_bottom_unchanged():  # nothing is (un)frozen within an epoch: checked once
            if model.encoder.prefix_cache is not None and model.encoder.cached_depth():
                upcoming = upcoming_examples(streams, loop.schedule[loop.step:], config.batch_size, rng, rank, world)
                fill_prefix_cache(model, accelerator, [*upcoming.values(), *val_sets.values()], filled)
            trainable = [p for p in prepared.parameters() if p.requires_grad]
            show = config.progress and accelerator.is_main_process
            for dataset in tqdm(loop.schedule[loop.step:], desc=f"epoch {loop.epoch}", disable=not show):
                batch = streams[dataset].next(config.batch_size)  # the global batch, the same on every process
                features, labels = model.collate(batch[rank::world])  # this process's shard
                totals = batch_totals(objective, accelerator, batch, labels)  # {task: its labelled weight}
                loss, losses = prepared(features, labels, totals, world)  # weighted sum, {task: loss}
                accelerator.backward(loss)
                grad_norm = accelerator.clip_grad_norm_(trainable, config.max_grad_norm)
                check_finite(loss, grad_norm, accelerator, loop, dataset, batch)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
                shown = accelerator.reduce(torch.stack([value.detach() for value in losses.values()]), "mean")
                loop.count_step(dict(zip(losses, shown.tolist())))  # the whole batch's losses
                if output and config.checkpoint_every and loop.step % config.checkpoint_every == 0:
                    loop.seconds = time.perf_counter() - started
                    save_checkpoint(output / "last", *resumable, loop)
            with accelerator.autocast():  # validation in the training precision
                scores = evaluate(model, val_sets, config.eval_batch_size)
        score = selection_score(scores, model)
        loop.history.append(history_row(loop, scores, score, objective.weighting, scheduler, started))
        best.update(loop, score, final=loop.epoch == config.epochs)  # keep the best epoch's weights
        loop.next_epoch()
        if output:
            save_checkpoint(output / "last", *resumable, loop)
        if config.patience is not None and loop.stale >= config.patience:
            break
    if loop.stale:  # the last epoch was not the best one
        best.restore()
    model.encoder.use_prefix_cache(False)  # free the cached hidden states
    history = pd.DataFrame(loop.history)
    if output:
        history.to_csv(output / "history.csv", index=False)
    accelerator.wait_for_everyone()
    return history


def check_inputs(model: MultiTaskModel, train_sets: Mapping[str, Sequence[Example]],
                 val_sets: Mapping[str, Sequence[Example]], config: TrainConfig, resume_from) -> None:
    """Fail before anything changes on what would otherwise fail mid-run or epochs later: empty datasets, bad
    labels, misspelt selectors, ``layer_lr_decay`` on blocks of an unknown family, checkpoints without a folder."""
    sizes = {name: len(examples) for name, examples in {**train_sets, **val_sets}.items()}
    if not train_sets or not val_sets or min(sizes.values()) == 0:
        raise ValueError(f"Every training and validation dataset needs examples, got sizes {sizes}.")
    for split, datasets in (("training", train_sets), ("validation", val_sets)):
        for name, examples in datasets.items():
            model.check_examples(examples, f"{split} set {name!r}")
    if config.checkpoint_every and not config.output_dir:
        raise ValueError("checkpoint_every needs an output_dir to write checkpoints to.")
    if resume_from is not None and not config.output_dir:
        raise ValueError("resume_from needs config.output_dir: the best model so far is in <output_dir>/best.")
    for selector in config.freeze + [s for selectors in config.unfreeze_schedule.values() for s in selectors]:
        select(model, selector)
    layer_learning_rates(model, config.encoder_lr, config.layer_lr_decay)


def setup(model: MultiTaskModel, train_sets: Mapping[str, Sequence[Example]], config: TrainConfig,
          steps_per_epoch: int):
    """Freeze what the config says; build Accelerate, the objective (model + loss weighting), AdamW and the warm-up
    + linear decay schedule, and return them with the objective as Accelerate prepared it (in DistributedDataParallel
    on several processes, which synchronises only what is trainable by then)."""
    freeze(model, *config.freeze)
    # Every process draws one global batch of ``batch_size`` and trains on its shard: Accelerate's ``split_batches``
    # semantics, under which its prepared scheduler steps once per optimiser step (not once per process).
    accelerator = Accelerator(mixed_precision=accelerate_mixed_precision(config.precision),
                              dataloader_config=DataLoaderConfiguration(split_batches=True),
                              kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    if config.batch_size < accelerator.num_processes:
        raise ValueError(f"batch_size {config.batch_size} is smaller than the {accelerator.num_processes} processes "
                         "it is split over.")
    if config.unfreeze_schedule and accelerator.num_processes > 1:
        raise NotImplementedError("unfreeze_schedule needs a single process: DistributedDataParallel only "
                                  "synchronises the parameters that were trainable when it wrapped the model.")
    weighting = LossWeighting(list(model.tasks), config.loss_weighting, config.task_weights)
    class_weights = balanced_class_weights(model, train_sets) if config.class_weighting == "balanced" else {}
    objective = MultiTaskObjective(model, weighting, class_weights).to(accelerator.device)
    optimizer = torch.optim.AdamW(parameter_groups(objective, config))
    total_steps = config.epochs * steps_per_epoch
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * total_steps), total_steps)
    prepared, optimizer, scheduler = accelerator.prepare(objective, optimizer, scheduler)
    return accelerator, objective, prepared, optimizer, scheduler


def fill_prefix_cache(model: MultiTaskModel, accelerator: Accelerator, example_sets: Sequence[Sequence[Example]],
                      filled: dict[int, set[int]]) -> None:
    """Compute the frozen bottom of the examples (one list per dataset) before the epoch's first step, in
    length-sorted batches; ``filled`` keeps the ids done per frozen depth, so no later epoch looks them up again."""
    done = filled.setdefault(model.encoder.cached_depth(), set())
    with accelerator.autocast():  # the precision the steps run in (entries are kept apart by precision)
        for examples in example_sets:
            model.fill_prefix_cache([ex for ex in examples if id(ex) not in done])
            done.update(map(id, examples))


def batch_totals(objective: MultiTaskObjective, accelerator: Accelerator, batch: Sequence[Example],
                 labels: dict[str, Tensor]) -> dict[str, Tensor]:
    """{task: weight of its labelled positions in the whole global ``batch``}, summed over the processes' shards of
    ``labels``; a task whose labels all fell away (e.g. NER words all truncated) is left out: it has no loss."""
    tasks = [name for name in objective.model.tasks if any(name in ex.labels for ex in batch)]
    totals = accelerator.reduce(objective.label_totals(tasks, labels).to(accelerator.device), "sum")
    return {name: total for name, total in zip(tasks, totals) if total > 0}


def check_finite(loss: Tensor, grad_norm: Tensor, accelerator: Accelerator, loop: LoopState, dataset: str,
                 batch: Sequence[Example]) -> None:
    """Stop on a non-finite loss or gradient norm before the optimiser step spoils the weights, naming the step and
    batch (under fp16 the gradient scaler skips steps with inf gradients itself)."""
    if not (torch.isfinite(loss) and (torch.isfinite(grad_norm) or accelerator.scaler is not None)):
        raise FloatingPointError(
            f"Loss is {loss.item()} (gradient norm {grad_norm.item()}) at epoch {loop.epoch}, step {loop.step + 1} "
            f"(dataset {dataset!r}, batch starting {batch[0].text!r:.80}); training stopped, the last checkpoint is "
            "kept.")


def selection_score(scores: Mapping[str, float], model: MultiTaskModel) -> float:
    """What selects epochs: the mean over tasks of each task's main metric (its kind's: macro-F1, entity F1)."""
    keys = [f"{name}/{head.main_metric}" for name, head in model.heads.items()]
    values = [scores[key] for key in keys if key in scores]
    return float(np.mean(values)) if values else float("nan")


def history_row(loop: LoopState, scores: Mapping[str, float], score: float, weighting: LossWeighting, scheduler,
                started: float) -> dict:
    """The epoch's row: mean training loss per task, validation scores, loss weights, learning rate, seconds."""
    losses = {f"train_loss/{k}": loop.loss_sums[k] / loop.loss_counts[k] for k in loop.loss_sums}
    weights = {f"weight/{k}": v for k, v in weighting.current_weights().items()}
    return {"epoch": loop.epoch, **losses, **{f"val/{k}": v for k, v in scores.items()}, "val/main": score,
            **weights, "lr/encoder": scheduler.get_last_lr()[0], "seconds": time.perf_counter() - started}


class BestWeights:
    """The best epoch's weights, written to ``<output_dir>/best`` and kept in memory to put back at the end. In
    memory only the tensors training can change: trainable parameters, those ``unfreeze_schedule`` will unfreeze,
    and buffers (with the whole encoder frozen, 3 k of 22.6 M parameters)."""

    def __init__(self, model: MultiTaskModel, config: TrainConfig, write: bool):
        self.model = model
        self.folder = Path(config.output_dir) / "best" if config.output_dir else None
        self.write = write and self.folder is not None  # the main process writes, every process may read
        parts = model.components()
        scheduled = {id(p) for selectors in config.unfreeze_schedule.values() for selector in selectors
                     for name in select(model, selector) for p in parts[name].parameters()}
        self.changeable = {name for name, tensor in model.state_dict(keep_vars=True).items()
                           if not isinstance(tensor, nn.Parameter) or tensor.requires_grad or id(tensor) in scheduled}
        self.state: dict[str, Tensor] | None = None  # a resumed run's best so far is on disk only

    def update(self, loop: LoopState, score: float, final: bool) -> None:
        """Keep the weights if ``score`` beats the best so far, else count the epoch as stale."""
        if score > loop.best_score:
            loop.best_score, loop.stale = score, 0
            if not final:  # after the final epoch the model itself holds the best weights
                self.state = {name: t.clone() for name, t in self.model.state_dict().items() if name in self.changeable}
            if self.write:
                atomic_directory(self.folder, self.model.save)
        else:
            loop.stale += 1

    def restore(self) -> None:
        if self.state is None:  # resumed after the best epoch
            self.state = MultiTaskModel.load(self.folder, tasks=list(self.model.tasks.values())).state_dict()
        self.model.load_state_dict(self.state, strict=False)  # the rest training cannot have changed
