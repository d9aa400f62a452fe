"""The multi-task training loop: an explicit PyTorch loop on Hugging Face Accelerate.

Each step: pick a dataset by the sampling schedule, draw a batch from it, run the heads for every task the batch
has labels for, combine the task losses (fixed or learned weights), clip, step AdamW and the warm-up + linear
decay schedule. After each epoch: validation scores per task and dataset, the history row, the best weights (by
the mean of each task's main score on its own validation set, the population its test split measures: history
column ``val/<task>/<metric>``; a task also labelled in another dataset is reported as ``val/<task>@<dataset>/...``
and not selected on), early stopping. The same code runs on CPU, one GPU, or several processes with
``accelerate launch``: every process draws the same global batch and trains on its own shard of it.
"""
from __future__ import annotations

import copy
import math
import time
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from accelerate import Accelerator, DataLoaderConfiguration, DistributedDataParallelKwargs
from torch import Tensor, nn
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from mtl.training.checkpoint import (atomic_directory, load_state, numpy_state, optimizer_tensors, restore_numpy,
                            restore_optimizer, restore_rng, rng_states, save_state)
from mtl.data.examples import Example
from mtl.finetuning.freezing import freeze, select, unfreeze
from mtl.training.losses import LOSS_WEIGHTINGS, LossWeighting
from mtl.evaluation.predictions import evaluate
from mtl.multitask.task_kinds import IGNORE, task_kind
from mtl.multitask.model import MultiTaskModel
from mtl.encoder.precision import accelerate_mixed_precision, check_precision_name
from mtl.encoder.prefix_cache import PrefixCache
from mtl.training.sampling import SAMPLING_STRATEGIES, task_schedule
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


class MultiTaskObjective(nn.Module):
    """Model + loss weighting as one module, so one DistributedDataParallel wrapper covers both.

    Each process holds a shard of one global batch. A task's loss is its loss sum on this shard divided by the
    weight of its labelled positions in the whole batch (``batch_totals``), times the number of processes: the
    gradient average that DistributedDataParallel takes is then the gradient of the whole batch's mean loss,
    whatever the number of processes and however the labelled rows or tokens fall into the shards."""

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
        weights = self.class_weights()
        totals = []
        for name in tasks:
            target = labels[name][labels[name] != IGNORE] if name in labels else torch.zeros(0, dtype=torch.long)
            totals.append(weights[name][target].sum() if name in weights else torch.tensor(float(len(target))))
        return torch.stack(totals).float()

    def forward(self, features, labels: dict[str, Tensor], batch_totals: Mapping[str, Tensor],
                num_processes: int = 1) -> tuple[Tensor, dict[str, Tensor]]:
        """The weighted loss and {task: loss}; ``batch_totals[task]`` is the task's labelled weight in the whole
        global batch; a task in it without labels in this shard contributes 0 here (its share is elsewhere)."""
        sums = self.model.task_loss_sums(self.model(features, tasks=list(labels)), labels, self.class_weights())
        zero = next(self.parameters()).new_zeros(())
        losses = {name: (sums[name][0] if name in sums else zero) * num_processes / total
                  for name, total in batch_totals.items()}
        return self.weighting(losses), losses


def balanced_class_weights(model: MultiTaskModel, train_sets: Mapping[str, Sequence[Example]]) -> dict[str, Tensor]:
    """(K,) class weights per task whose kind weighs classes (``TaskKind.class_weights``; sentence tasks: n / (K n_c),
    scikit-learn's "balanced"), from its training labels pooled over every dataset that labels it."""
    weights = {}
    for name, task in model.tasks.items():
        labels = [ex.labels[name] for examples in train_sets.values() for ex in examples if name in ex.labels]
        weight = task_kind(task.kind).class_weights(labels, task.labels) if labels else None
        if weight is not None:
            weights[name] = weight
    return weights


def parameter_groups(objective: MultiTaskObjective, config: TrainConfig) -> list[dict]:
    """AdamW groups: encoder vs heads (own learning rates), the encoder split per component when ``layer_lr_decay``
    is not 1 (see ``layer_learning_rates``); no weight decay on biases, norms, log-variances. Encoder groups come
    first, top-down, so group 0 always runs at ``encoder_lr``."""
    rates = layer_learning_rates(objective.model, config.encoder_lr, config.layer_lr_decay)
    component_of = {id(p): name for name, module in objective.model.components().items() if name in rates
                    for p in module.parameters()}
    groups: dict[tuple[str, bool], list[nn.Parameter]] = {}
    for name, param in objective.named_parameters():  # frozen ones too: AdamW skips them while they have no grad
        part = "heads"
        if name.startswith("model.encoder."):
            part = component_of.get(id(param), "encoder") if config.layer_lr_decay != 1.0 else "encoder"
        groups.setdefault((part, param.ndim >= 2), []).append(param)
    lr = {**rates, "encoder": config.encoder_lr, "heads": config.head_lr}
    order = sorted(groups, key=lambda key: (key[0] == "heads", -lr[key[0]]))  # stable: ties keep model order
    return [{"params": groups[part, decay], "lr": lr[part], "weight_decay": config.weight_decay if decay else 0.0,
             "name": part} for part, decay in order]


def layer_learning_rates(model: MultiTaskModel, encoder_lr: float, decay: float = 1.0) -> dict[str, float]:
    """Learning rate per encoder component (discriminative fine-tuning, Howard & Ruder 2018): the top block gets
    ``encoder_lr``, each block below ``decay`` times the one above, the embeddings ``decay`` times the lowest block;
    the projection and LayerNorm after the blocks get ``encoder_lr``."""
    if decay != 1.0:
        model.encoder.require_architecture(f"layer_lr_decay={decay}")  # a backbone of unknown blocks: an error
    names = [name for name in model.components() if not name.startswith("head.")]
    depth = sum(name.startswith("layer.") for name in names)
    position = {name: int(name.split(".")[1]) for name in names if name.startswith("layer.")}
    position["embeddings"] = -1
    return {name: encoder_lr * decay ** (depth - 1 - position[name]) if name in position else encoder_lr
            for name in names}


def changeable_state(model: MultiTaskModel, config: TrainConfig) -> set[str]:
    """Names of the state-dict tensors that training with ``config`` can change: trainable parameters, those that
    ``unfreeze_schedule`` will unfreeze, and buffers. Only these are copied to keep the best epoch's weights (with
    the whole encoder frozen, 3 k of 22.6 M parameters)."""
    parts = model.components()
    scheduled = {id(p) for selectors in config.unfreeze_schedule.values() for selector in selectors
                 for name in select(model, selector) for p in parts[name].parameters()}
    return {name for name, tensor in model.state_dict(keep_vars=True).items()
            if not isinstance(tensor, nn.Parameter) or tensor.requires_grad or id(tensor) in scheduled}


def selection_score(scores: Mapping[str, float], model: MultiTaskModel) -> float:
    """What selects epochs: the mean over tasks of each task's main metric (its kind's: macro-F1, entity F1)."""
    keys = [f"{name}/{task_kind(task.kind).main_metric}" for name, task in model.tasks.items()]
    values = [scores[key] for key in keys if key in scores]
    return float(np.mean(values)) if values else float("nan")


def train(model: MultiTaskModel, train_sets: Mapping[str, Sequence[Example]],
          val_sets: Mapping[str, Sequence[Example]], config: TrainConfig | None = None,
          resume_from: str | Path | None = None, prefix_cache: PrefixCache | None = None) -> pd.DataFrame:
    """Train in place and end with the best validation weights loaded; returns the history, one row per epoch.

    ``resume_from``: a ``last`` checkpoint folder written by a previous run with the same config and data; the run
    continues exactly where that one stopped (same batches, dropout masks and final weights).
    ``prefix_cache``: a cache to reuse across runs that share the frozen bottom (see ``mtl.encoder.prefix_cache``).
    """
    config = config or TrainConfig()
    set_seed(config.seed)
    sizes = {name: len(examples) for name, examples in {**train_sets, **val_sets}.items()}
    if not train_sets or not val_sets or min(sizes.values()) == 0:
        raise ValueError(f"Every training and validation dataset needs examples, got sizes {sizes}.")
    for split, datasets in (("training", train_sets), ("validation", val_sets)):
        for name, examples in datasets.items():
            model.check_examples(examples, f"{split} set {name!r}")  # bad labels fail now, not mid-epoch
    if config.checkpoint_every and not config.output_dir:
        raise ValueError("checkpoint_every needs an output_dir to write checkpoints to.")
    if resume_from is not None and not config.output_dir:
        raise ValueError("resume_from needs config.output_dir: the best model so far is in <output_dir>/best.")
    for selector in config.freeze + [s for selectors in config.unfreeze_schedule.values() for s in selectors]:
        select(model, selector)  # a typo fails now, not epochs later
    layer_learning_rates(model, config.encoder_lr, config.layer_lr_decay)  # so does layer_lr_decay on unknown blocks
    if config.freeze:
        freeze(model, *config.freeze)
    model.encoder.use_prefix_cache(config.cache_frozen, prefix_cache)
    # The loop draws one global batch of ``batch_size`` on every process and trains each on its shard: Accelerate's
    # ``split_batches`` semantics, under which its prepared scheduler steps once per optimiser step (by default it
    # would assume a batch per process and step ``num_processes`` times).
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
    train_sizes = {name: len(examples) for name, examples in train_sets.items()}
    steps_per_epoch = config.steps_per_epoch or max(1, sum(train_sizes.values()) // config.batch_size)
    total_steps = config.epochs * steps_per_epoch
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * total_steps), total_steps)
    prepared, optimizer, scheduler = accelerator.prepare(objective, optimizer, scheduler)  # DDP-wrapped on several

    rng = np.random.default_rng(config.seed)  # the same on every process: same schedule, same global batches
    streams = {name: BatchStream(examples, rng) for name, examples in train_sets.items()}
    loop = LoopState()
    if resume_from is not None:
        loop = resume(Path(resume_from), model, weighting, optimizer, scheduler, rng, streams)
    output = Path(config.output_dir) if config.output_dir else None
    changeable = changeable_state(model, config)
    best_state = None  # in memory from the first improvement on; a resumed run's best so far is in output/best
    rank, world = accelerator.process_index, accelerator.num_processes
    show = config.progress and accelerator.is_main_process
    filled: dict[int, set[int]] = {}  # frozen depth -> ids of the examples whose frozen bottom is in the prefix cache
    while loop.epoch <= config.epochs:
        unfrozen = [s for epoch, selectors in config.unfreeze_schedule.items() if epoch <= loop.epoch for s in selectors]
        if unfrozen:  # gradual unfreezing; every entry up to this epoch, so a resumed run catches up
            unfreeze(model, *unfrozen)  # the prefix cache notices the smaller frozen depth and starts over
        if loop.schedule is None:
            loop.schedule = task_schedule(train_sizes, config.sampling, steps_per_epoch, rng, config.temperature)
        prepared.train()
        started = time.perf_counter() - loop.seconds
        # Nothing is frozen or unfrozen within an epoch and frozen tensors get no gradient, so the frozen bottom is
        # checked once per epoch, not at every forward pass (SentenceEncoder.frozen_bottom_unchanged).
        with model.encoder.frozen_bottom_unchanged():
            if model.encoder.prefix_cache is not None and (depth := model.encoder.cached_depth()):
                # before the first step: the frozen bottom of the examples the epoch will draw and of the validation
                # sets, each example once per depth (finding that 700 are cached took 7 % of a heads-only run)
                upcoming = upcoming_examples(streams, loop.schedule[loop.step:], config.batch_size, rng, rank, world)
                done = filled.setdefault(depth, set())
                with accelerator.autocast():  # the precision the steps run in (entries are kept apart by precision)
                    for examples in [*upcoming.values(), *val_sets.values()]:
                        model.fill_prefix_cache([ex for ex in examples if id(ex) not in done])
                        done.update(map(id, examples))
            trainable = [p for p in prepared.parameters() if p.requires_grad]  # fixed within an epoch
            for dataset in tqdm(loop.schedule[loop.step:], desc=f"epoch {loop.epoch}", disable=not show):
                batch = streams[dataset].next(config.batch_size)  # the global batch, the same on every process
                tasks = [name for name in model.tasks if any(name in ex.labels for ex in batch)]
                features, labels = model.collate(batch[rank::world])  # this process's shard
                totals = accelerator.reduce(objective.label_totals(tasks, labels).to(accelerator.device), "sum")
                # a task whose labels all fell away (e.g. NER words all truncated) has no loss
                kept = [name for name, total in zip(tasks, totals) if total > 0]
                loss, losses = prepared(features, labels, {name: totals[tasks.index(name)] for name in kept}, world)
                accelerator.backward(loss)
                grad_norm = accelerator.clip_grad_norm_(trainable, config.max_grad_norm)
                # checked before the step spoils the weights (fp16: the gradient scaler skips inf gradients itself)
                scaled = accelerator.scaler is not None
                if not (torch.isfinite(loss) and (torch.isfinite(grad_norm) or scaled)):
                    raise FloatingPointError(
                        f"Loss is {loss.item()} (gradient norm {grad_norm.item()}) at epoch {loop.epoch}, step "
                        f"{loop.step + 1} (dataset {dataset!r}, batch starting {batch[0].text!r:.80}); training "
                        "stopped, the last checkpoint is kept.")
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
                shown = accelerator.reduce(torch.stack([losses[name].detach() for name in kept]), "mean")  # whole batch
                for name, value in zip(kept, shown.tolist()):
                    loop.loss_sums[name] = loop.loss_sums.get(name, 0.0) + value
                    loop.loss_counts[name] = loop.loss_counts.get(name, 0) + 1
                loop.step += 1
                if config.checkpoint_every and loop.step % config.checkpoint_every == 0 and accelerator.is_main_process:
                    loop.seconds = time.perf_counter() - started
                    save_checkpoint(output / "last", model, weighting, optimizer, scheduler, rng, streams, loop)
            with accelerator.autocast():  # validation in the training precision
                scores = evaluate(model, val_sets, config.eval_batch_size)
        score = selection_score(scores, model)
        loop.history.append({
            "epoch": loop.epoch, **{f"train_loss/{k}": loop.loss_sums[k] / loop.loss_counts[k] for k in loop.loss_sums},
            **{f"val/{k}": v for k, v in scores.items()}, "val/main": score,
            **{f"weight/{k}": v for k, v in weighting.current_weights().items()},
            "lr/encoder": scheduler.get_last_lr()[0], "seconds": time.perf_counter() - started})
        if score > loop.best_score:
            loop.best_score, loop.stale = score, 0
            if loop.epoch < config.epochs:  # after the final epoch the model itself holds the best weights
                best_state = {name: tensor.clone() for name, tensor in model.state_dict().items() if name in changeable}
            if output and accelerator.is_main_process:
                atomic_directory(output / "best", model.save)
        else:
            loop.stale += 1
        loop.next_epoch()
        if output and accelerator.is_main_process:
            save_checkpoint(output / "last", model, weighting, optimizer, scheduler, rng, streams, loop)
        if config.patience is not None and loop.stale >= config.patience:
            break
    if loop.stale:  # the last epoch was not the best one: put the best weights back
        if best_state is None:  # resumed after the best epoch: its weights are on disk
            best_state = MultiTaskModel.load(output / "best", tasks=list(model.tasks.values())).state_dict()
        model.load_state_dict(best_state, strict=False)  # the rest training cannot have changed
    model.encoder.use_prefix_cache(False)  # free the cached hidden states
    history = pd.DataFrame(loop.history)
    if output and accelerator.is_main_process:
        history.to_csv(output / "history.csv", index=False)
    accelerator.wait_for_everyone()
    return history


@dataclass
class LoopState:
    """Where the loop is: enough, with the RNG and optimiser states, to resume mid-epoch exactly."""

    epoch: int = 1
    step: int = 0  # steps done in this epoch
    schedule: list[str] | None = None  # this epoch's dataset per step
    loss_sums: dict[str, float] = field(default_factory=dict)
    loss_counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0  # time spent in this epoch before a checkpoint
    history: list[dict] = field(default_factory=list)
    best_score: float = -math.inf
    stale: int = 0  # epochs since the best one

    def next_epoch(self) -> None:
        self.epoch, self.step, self.schedule, self.seconds = self.epoch + 1, 0, None, 0.0
        self.loss_sums, self.loss_counts = {}, {}


def save_checkpoint(path: Path, model, weighting, optimizer, scheduler, rng, streams, loop: LoopState) -> None:
    """Everything needed to resume, written atomically (a crash mid-write keeps the previous checkpoint)."""
    opt_tensors, opt_meta = optimizer_tensors(optimizer)
    rng_tensors, rng_meta = rng_states()
    tensors = {**opt_tensors, **rng_tensors,
               **{f"weighting.{k}": v.detach().cpu().reshape(1) for k, v in weighting.state_dict().items()},
               **{f"stream.{name}": torch.from_numpy(s.order.copy()) for name, s in streams.items()}}
    meta = {**opt_meta, **rng_meta, "scheduler": scheduler.state_dict(), "numpy_rng": numpy_state(rng),
            "stream_positions": {name: s.position for name, s in streams.items()},
            "loop": {**asdict(loop), "best_score": None if loop.best_score == -math.inf else loop.best_score}}

    def write(folder: Path) -> None:
        model.save(folder)
        save_state(folder, tensors, meta)

    atomic_directory(path, write)


def resume(path: Path, model, weighting, optimizer, scheduler, rng, streams) -> LoopState:
    """Load a ``last`` checkpoint into the freshly built objects and return the loop state."""
    tensors, meta = load_state(path)
    saved = MultiTaskModel.load(path, tasks=list(model.tasks.values()))
    model.load_state_dict(saved.state_dict())
    weighting.load_state_dict({k[len("weighting."):]: v.reshape(()) for k, v in tensors.items()
                               if k.startswith("weighting.")})
    restore_optimizer(optimizer, tensors, meta)
    scheduler.load_state_dict(meta["scheduler"])
    restore_rng(tensors, meta)
    restore_numpy(rng, meta["numpy_rng"])
    for name, stream in streams.items():
        order = tensors.get(f"stream.{name}", torch.zeros(0, dtype=torch.long)).numpy()
        if len(order) != len(stream.examples):
            raise ValueError(f"{path} was written for {len(order)} training examples in {name!r}, but there are "
                             f"{len(stream.examples)}; resume with the same data and config.")
        stream.order, stream.position = order, meta["stream_positions"][name]
    loop = LoopState(**meta["loop"])
    loop.best_score = -math.inf if loop.best_score is None else loop.best_score
    return loop
