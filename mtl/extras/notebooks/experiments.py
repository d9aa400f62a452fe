"""Training scenarios compared under one budget (notebook 03): each run gives one row of scores, size and time.

A ``Scenario`` says what is trained: the backbone, ``TrainConfig`` overrides (``freeze``, ``unfreeze_schedule``,
``layer_lr_decay``, learning rates), LoRA adapters, which tasks supply training data, and optionally the trained
model of another scenario (same seed) to continue from. ``run_experiment`` trains one scenario for one seed and
returns its row; ``run_scenarios`` runs every scenario for every seed with one shared ``PrefixCache`` (runs with the
same frozen bottom reuse its hidden states instead of recomputing them); ``compare_scenarios`` tells whether two
scenarios differ by more than validation-set noise.
"""
from __future__ import annotations

import copy
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import pandas as pd

from mtl.data.examples import Example
from mtl.finetuning.freezing import freeze, unfreeze
from mtl.finetuning.lora import add_lora
from mtl.evaluation.metrics import TaskPredictions
from mtl.evaluation.compare import compare_runs
from mtl.evaluation.predictions import predict
from mtl.multitask.model import MultiTaskModel
from mtl.encoder.prefix_cache import PrefixCache
from mtl.multitask.tasks import build_model
from mtl.training.train import TrainConfig, train
from mtl.utils import set_seed


@dataclass(frozen=True)
class Scenario:
    """One way to train the multi-task model."""

    backbone: str = "minilm"  # mtl.encoder.backbones name
    config: dict = field(default_factory=dict)  # TrainConfig overrides (freeze, unfreeze_schedule, encoder_lr, ...)
    lora: dict | None = None  # mtl.finetuning.lora.add_lora arguments (r, alpha, dropout, layers); None: no adapters
    train_tasks: tuple[str, ...] | None = None  # tasks whose data trains and selects the epoch; None: all
    start_from: str | None = None  # a scenario whose trained model (same seed) this one continues, all unfrozen
    train: bool = True  # False: evaluate as built, nothing trained (everything frozen)


def run_experiment(scenario: Scenario, seed: int, tasks: Sequence[str], train_sets: Mapping[str, Sequence[Example]],
                   val_sets: Mapping[str, Sequence[Example]], base: TrainConfig, *, start: MultiTaskModel | None = None,
                   prefix_cache: PrefixCache | None = None,
                   max_seq_length: int = 64) -> tuple[dict, MultiTaskModel, dict[str, TaskPredictions]]:
    """Train one scenario with one seed; return its row, the trained model and its validation predictions per task.

    The row: ``seed``, ``trainable`` (parameters with gradients at the end of training, heads included), ``total``,
    ``seconds`` (wall time of training, its validation passes included, and of scoring tasks that were not trained)
    and ``<task>/<metric>`` on the validation sets of all ``tasks``, scored on the final model: for the trained tasks
    that is the epoch ``train`` keeps (the best by their validation score).
    """
    set_seed(seed)  # head initialisation
    if start is None:
        model = build_model(tasks, backbone=scenario.backbone, max_seq_length=max_seq_length)
    else:
        model = copy.deepcopy(start)
        unfreeze(model, "encoder", "heads")  # what is frozen is this scenario's choice, not the previous one's
    if scenario.lora is not None:
        add_lora(model, **scenario.lora)
    started = time.perf_counter()
    trained = list(scenario.train_tasks or tasks)
    if scenario.train:
        config = replace(base, seed=seed, **scenario.config)
        train(model, {t: train_sets[t] for t in trained}, {t: val_sets[t] for t in trained}, config,
              prefix_cache=prefix_cache)  # ends with the kept epoch's weights loaded
    else:
        freeze(model, "encoder", "heads")
    model.encoder.use_prefix_cache(True, prefix_cache)  # what is frozen now runs from the cache
    predictions = {t: predict(model, val_sets[t], base.eval_batch_size, tasks=[t])[t] for t in tasks}
    model.encoder.use_prefix_cache(False)
    scores = {f"{t}/{metric}": value for t, preds in predictions.items() for metric, value in preds.scores().items()}
    seconds = time.perf_counter() - started
    row = {"seed": seed, "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
           "total": sum(p.numel() for p in model.parameters()), "seconds": seconds,
           **{key: scores[key] for key in sorted(scores)}}
    return row, model, predictions


def run_scenarios(scenarios: Mapping[str, Scenario], seeds: Sequence[int], tasks: Sequence[str],
                  train_sets: Mapping[str, Sequence[Example]], val_sets: Mapping[str, Sequence[Example]],
                  base: TrainConfig, max_seq_length: int = 64) -> tuple[pd.DataFrame, dict]:
    """Every scenario for every seed, in order: one row each (``scenario`` first), and the validation predictions
    {(scenario, seed): {task: TaskPredictions}} for paired comparisons (``compare_scenarios``). All runs share one
    prefix cache: runs with the same frozen bottom (seeds, and consecutive scenarios such as heads-only and a frozen
    drift check) reuse its hidden states, and it starts over by itself when the frozen bottom changes. Models that a
    later scenario starts from are kept until the end."""
    needed = {s.start_from for s in scenarios.values() if s.start_from is not None}
    unknown = needed - set(scenarios)
    if unknown:
        raise KeyError(f"start_from names unknown scenario(s) {sorted(unknown)}; scenarios are {list(scenarios)}.")
    kept: dict[tuple[str, int], MultiTaskModel] = {}
    rows, predictions = [], {}
    cache = PrefixCache()
    for name, scenario in scenarios.items():
        if scenario.start_from is not None and scenario.start_from not in {r["scenario"] for r in rows}:
            raise ValueError(f"Scenario {name!r} starts from {scenario.start_from!r}, which must come before it.")
        for seed in seeds:
            start = kept.get((scenario.start_from, seed))
            row, model, predictions[name, seed] = run_experiment(scenario, seed, tasks, train_sets, val_sets, base,
                                                                 start=start, prefix_cache=cache,
                                                                 max_seq_length=max_seq_length)
            rows.append({"scenario": name, **row})
            if name in needed:
                kept[name, seed] = model
    return pd.DataFrame(rows), predictions


def compare_scenarios(predictions: Mapping[tuple[str, int], Mapping[str, TaskPredictions]],
                      pairs: Sequence[tuple[str, str]], task: str, n_resamples: int = 2000) -> pd.DataFrame:
    """One row "a - b" per (a, b) in ``pairs``: ``compare_runs`` of scenario a against scenario b on ``task``'s main
    score (macro-F1 / entity F1), paired by validation example and by the seeds both scenarios ran."""
    rows = {f"{a} - {b}": compare_runs(predictions, a, b, task, n_resamples) for a, b in pairs}
    return pd.DataFrame(rows).T[["a", "b", "difference", "ci_low", "ci_high", "p_value"]].astype(float)


def summarize(results: pd.DataFrame, metrics: Sequence[str], digits: int = 3) -> pd.DataFrame:
    """Mean and standard deviation over seeds per scenario (in first-seen order) as "0.871 ± 0.012" strings, after
    the number of trainable parameters. Wall times are left out: they vary between runs (see ``timing``)."""
    grouped = results.groupby("scenario", sort=False)
    table = pd.DataFrame({"trainable": grouped["trainable"].max()})
    for metric in metrics:
        mean, std = grouped[metric].mean(), grouped[metric].std(ddof=1).fillna(0.0)
        table[metric] = [f"{m:.{digits}f} ± {s:.{digits}f}" for m, s in zip(mean, std)]
    return table


def timing(results: pd.DataFrame) -> pd.DataFrame:
    """Wall time per scenario: the first seed (which fills a shared prefix cache) and the mean of the others."""
    grouped = results.groupby("scenario", sort=False)["seconds"]
    return pd.DataFrame({"first seed s": grouped.first(), "later seeds s": grouped.apply(lambda s: s.iloc[1:].mean()),
                         "mean s": grouped.mean()}).round(1)
