"""Training scenarios compared under one budget (notebook 03): each run gives one row of scores, size and time.

A ``Scenario`` says what is trained: the backbone, ``TrainConfig`` overrides (``freeze``, ``unfreeze_schedule``,
``layer_lr_decay``, learning rates), LoRA adapters, which tasks supply training data, and optionally the trained
model of another scenario (same seed) to continue from. ``run_experiment`` trains one scenario for one seed and
returns its row; ``run_scenarios`` runs every scenario for every seed with one shared ``PrefixCache`` (runs with the
same frozen bottom reuse its hidden states instead of recomputing them).
"""
from __future__ import annotations

import copy
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import pandas as pd

from mtl.data import Example
from mtl.freezing import freeze, unfreeze
from mtl.lora import add_lora
from mtl.metrics import evaluate
from mtl.model import MultiTaskModel
from mtl.prefix_cache import PrefixCache
from mtl.tasks import build_model
from mtl.train import TrainConfig, train
from mtl.utils import set_seed


@dataclass(frozen=True)
class Scenario:
    """One way to train the multi-task model."""

    backbone: str = "minilm"  # mtl.backbones name
    config: dict = field(default_factory=dict)  # TrainConfig overrides (freeze, unfreeze_schedule, encoder_lr, ...)
    lora: dict | None = None  # mtl.lora.add_lora arguments (r, alpha, dropout, layers); None: no adapters
    train_tasks: tuple[str, ...] | None = None  # tasks whose data trains and selects the epoch; None: all
    start_from: str | None = None  # a scenario whose trained model (same seed) this one continues, all unfrozen
    train: bool = True  # False: evaluate as built, nothing trained (everything frozen)


def run_experiment(scenario: Scenario, seed: int, tasks: Sequence[str], train_sets: Mapping[str, Sequence[Example]],
                   val_sets: Mapping[str, Sequence[Example]], base: TrainConfig, *, start: MultiTaskModel | None = None,
                   prefix_cache: PrefixCache | None = None, max_seq_length: int = 64) -> tuple[dict, MultiTaskModel]:
    """Train one scenario with one seed; return its row and the trained model.

    The row: ``seed``, ``trainable`` (parameters with gradients at the end of training, heads included), ``total``,
    ``seconds`` (wall time of training, its validation passes included, and of scoring tasks that were not trained)
    and ``<task>/<metric>`` on the validation sets of all ``tasks``: for the trained tasks at the epoch ``train``
    keeps (the best by their validation score), for the others on the final model.
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
        history = train(model, {t: train_sets[t] for t in trained}, {t: val_sets[t] for t in trained}, config,
                        prefix_cache=prefix_cache)
        best = history.loc[history["val/main"].idxmax()]
        scores = {key[len("val/"):]: float(best[key]) for key in history if key.startswith("val/") and key != "val/main"}
    else:
        freeze(model, "encoder", "heads")
        scores = {}
    untrained = [t for t in tasks if t not in trained or not scenario.train]
    if untrained:  # tasks that did not select the epoch: scored once, on the final model
        model.encoder.use_prefix_cache(True, prefix_cache)
        scores.update(evaluate(model, {t: val_sets[t] for t in untrained}, base.eval_batch_size))
        model.encoder.use_prefix_cache(False)
    seconds = time.perf_counter() - started
    row = {"seed": seed, "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
           "total": sum(p.numel() for p in model.parameters()), "seconds": seconds,
           **{key: scores[key] for key in sorted(scores)}}
    return row, model


def run_scenarios(scenarios: Mapping[str, Scenario], seeds: Sequence[int], tasks: Sequence[str],
                  train_sets: Mapping[str, Sequence[Example]], val_sets: Mapping[str, Sequence[Example]],
                  base: TrainConfig, max_seq_length: int = 64) -> pd.DataFrame:
    """Every scenario for every seed, in order; one row each (``scenario`` first). All runs share one prefix cache:
    runs with the same frozen bottom (seeds, and consecutive scenarios such as heads-only and a frozen drift check)
    reuse its hidden states, and it starts over by itself when the frozen bottom changes. Models that a later
    scenario starts from are kept until the end."""
    needed = {s.start_from for s in scenarios.values() if s.start_from is not None}
    unknown = needed - set(scenarios)
    if unknown:
        raise KeyError(f"start_from names unknown scenario(s) {sorted(unknown)}; scenarios are {list(scenarios)}.")
    kept: dict[tuple[str, int], MultiTaskModel] = {}
    rows = []
    cache = PrefixCache()
    for name, scenario in scenarios.items():
        if scenario.start_from is not None and scenario.start_from not in {r["scenario"] for r in rows}:
            raise ValueError(f"Scenario {name!r} starts from {scenario.start_from!r}, which must come before it.")
        for seed in seeds:
            start = kept.get((scenario.start_from, seed))
            row, model = run_experiment(scenario, seed, tasks, train_sets, val_sets, base, start=start,
                                        prefix_cache=cache, max_seq_length=max_seq_length)
            rows.append({"scenario": name, **row})
            if name in needed:
                kept[name, seed] = model
    return pd.DataFrame(rows)


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
