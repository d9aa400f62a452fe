"""The full-scale studies: the training results of notebooks 03-05 at realistic budgets, too slow for CI, recorded
run by run under ``results/studies/`` by ``mtl.extras.studies.runner`` and read back by the notebooks and README.

- ``recipe``: notebook 04's recipe on all training data of every task (no subsample), epochs chosen on validation
  (early stopping), 3 seeds; ``baselines``: every baseline fitted on the same full training data, tuned on the same
  validation sets as the model.
- ``sharing``: notebook 05's multi-task against single-task setups with its two controls, at full scale.
- ``lr_grid`` and ``tuned_freezing``: what to freeze as a function of data, sentiment with 250 / 1,000 / all training
  sentences x heads only / top-2 / LoRA / full fine-tuning / gradual + discriminative, each method tuned alike
  (docs/analysis_plan.md): its learning rate chosen on validation from a grid at 1,000 sentences, then 5 seeds per
  method and size; read by ``what_to_freeze``.

Every run is scored on the full test split of its tasks; its record keeps the kept epoch's validation scores, the
test scores and the test predictions (label indices), from which paired comparisons are recomputed
(``mtl.evaluation.compare``).

Usage: ``python -m mtl.extras.studies [recipe baselines sharing lr_grid tuned_freezing] [--seeds 0 1 2]
[--sizes 250 1000]``, from a clean work tree (``git worktree add``: the runner refuses uncommitted changes)
(``make results`` runs them all; resumable: a rerun skips what is recorded).
"""
from __future__ import annotations

import argparse
import copy
import sys
from contextlib import nullcontext
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace

import numpy as np
import pandas as pd

from mtl.extras.notebooks import reports as ev
from mtl.extras.notebooks import recipe
from mtl.evaluation.baselines import fit_baselines
from mtl.data.examples import TASK_LABELS, Example
from mtl.extras.studies.setups import COMPARISONS, Scenario, study_setups
from mtl.finetuning.freezing import freeze, parameter_report, unfreeze
from mtl.finetuning.lora import add_lora
from mtl.evaluation.metrics import TaskPredictions, example_statistics
from mtl.evaluation.compare import compare_seeds, family, shared_seeds
from mtl.paths import RESULTS_DIR
from mtl.encoder.prefix_cache import PrefixCache
from mtl.multitask.heads import head_type
from mtl.extras.studies.runner import StudyRun, current_record, run_study
from mtl.multitask.tasks import build_model, load_datasets, task_spec
from mtl.training.train import TrainConfig, train
from mtl.utils import set_seed

STUDIES_DIR = RESULTS_DIR / "studies"
SEEDS = (0, 1, 2)
VAL_LIMIT = 1000  # validation examples per task at most: scored after every epoch to choose the epoch
COMMAND = "python -m mtl.extras.studies"

# ---- study 1 and 2: the recipe at full scale -------------------------------------------------------------------
FULL_RECIPE = replace(recipe.CONFIG, epochs=6, patience=1)  # steps per epoch: all training data once (703 steps)

# ---- study 3: what to freeze, as a function of training data (sentiment) ---------------------------------------
MIN_STEPS_PER_EPOCH = 25  # small sets are passed over several times per "epoch", so heads-only is not step-starved
METHODS = {  # notebook 03's ladder, the same scenarios
    "heads only": Scenario(config=dict(freeze=["encoder"])),
    "top-2": Scenario(config=dict(freeze=["bottom:4"])),
    "LoRA r=8": Scenario(lora=dict(r=8, alpha=16, dropout=0.1), config=dict(encoder_lr=1e-3)),
    "full fine-tuning": Scenario(),
    "gradual + discriminative": Scenario(config=dict(freeze=["encoder"], unfreeze_schedule={2: ["top:2"], 3: ["encoder"]},
                                                     layer_lr_decay=0.8)),
}


# ---- study 3, every method tuned alike (docs/analysis_plan.md) ---------------------------------------------------
TUNED_BASE = TrainConfig(epochs=6, batch_size=32, encoder_lr=2e-4, head_lr=1e-2, warmup_ratio=0.1, patience=2,
                         progress=False)  # the same budget, selection and stopping rule for every method
LR_FIELD = {"heads only": "head_lr", "top-2": "encoder_lr", "LoRA r=8": "encoder_lr", "full fine-tuning": "encoder_lr",
            "gradual + discriminative": "encoder_lr"}  # the rate each method's grid tunes
LR_GRID = {"heads only": (3e-3, 1e-2, 3e-2), "top-2": (2e-5, 6e-5, 2e-4), "LoRA r=8": (3e-4, 1e-3, 3e-3),
           "full fine-tuning": (2e-5, 6e-5, 2e-4), "gradual + discriminative": (2e-5, 6e-5, 2e-4)}
GRID_SIZE, GRID_SEEDS = 1000, (0, 1)  # the grid runs at one size with two seeds; the chosen rate serves every size
TUNED_SIZES, TUNED_SEEDS = (250, 1000, None), (0, 1, 2, 3, 4)


def full_epoch(tasks: Sequence[str] = recipe.TASKS) -> tuple[dict[str, int], int]:
    """Training examples per task (full splits) and the steps of one pass over all of them."""
    sizes = {task: len(examples) for task, examples in load_datasets(tasks, "train").items()}
    return sizes, sum(sizes.values()) // FULL_RECIPE.batch_size


def recipe_runs(seeds: Sequence[int] = SEEDS) -> list[StudyRun]:
    _, steps = full_epoch()
    params = {"tasks": list(recipe.TASKS), "train_limit": None, "val_limit": VAL_LIMIT, "model": recipe.MODEL,
              "config": asdict(replace(FULL_RECIPE, steps_per_epoch=steps))}
    return [StudyRun("recipe", "multi-task", seed, params) for seed in seeds]


def baseline_runs() -> list[StudyRun]:
    return [StudyRun("baselines", "baselines", 0, {"train_limit": None, "val_limit": VAL_LIMIT, "model": recipe.MODEL})]


def sharing_runs(seeds: Sequence[int] = SEEDS) -> list[StudyRun]:
    """Every setup of ``setups.study_setups`` but ``multi-task``: that one is the recipe study's model (the same
    tasks, data, steps and config), whose runs ``sharing_study`` reads instead of training it twice."""
    sizes, steps = full_epoch()  # the multi-task model's epoch; single-task models get their share of it
    runs = []
    for setup, models in study_setups(sizes, steps).items():
        if setup == "multi-task":
            continue
        params = {"models": [asdict(model) for model in models], "val_limit": VAL_LIMIT, "model": recipe.MODEL,
                  "config": asdict(FULL_RECIPE)}
        runs += [StudyRun("sharing", setup, seed, params) for seed in seeds]
    return runs


def _size_label(size: int | None) -> str:
    """How a setup's name gives its training size: "n=250", or "n=all" for every training sentence."""
    return f"n={size or 'all'}"


# Constant keys of every recorded scenario: its definition (and so its digest) carries them; no method sets them.
RECORDED_SCENARIO_FIELDS = {"train_tasks": None, "start_from": None, "train": True}


def tuned_run(method: str, rate: float, size: int | None, seed: int) -> StudyRun:
    """One run of the tuned freezing study: ``method`` with its tuned rate (``LR_FIELD``) set to ``rate``."""
    scenario = METHODS[method]
    config = replace(TUNED_BASE, **{**scenario.config, LR_FIELD[method]: rate})
    params = {"task": "sentiment", "train_size": size, "val_limit": VAL_LIMIT,
              "scenario": {**asdict(scenario), "config": {}, **RECORDED_SCENARIO_FIELDS}, "config": asdict(config),
              "min_steps_per_epoch": MIN_STEPS_PER_EPOCH}
    return StudyRun("tuned_freezing", f"{method}, lr={rate:g}, {_size_label(size)}", seed, params)


def _grid_means(method: str, rates: Sequence[float]) -> dict[float, float]:
    """Mean validation macro-F1 of the kept epochs over the grid's seeds, for the rates recorded for every seed."""
    means = {}
    for rate in rates:
        found = records([tuned_run(method, rate, GRID_SIZE, seed) for seed in GRID_SEEDS])
        if len(found) == len(GRID_SEEDS):
            means[rate] = sum(r["results"]["validation"]["sentiment/macro_f1"] for r in found) / len(found)
    return means


def rate_grid(method: str) -> tuple[list[float], float | None]:
    """``method``'s grid as its records have grown it, and its chosen rate (None while the grid is incomplete): the
    rate of the highest mean validation macro-F1 over the grid's seeds (a tie: the smaller rate); a rate chosen at an
    edge of the grid adds the next rate beyond that edge, one step of the grid's factor, and is chosen again."""
    rates = sorted(LR_GRID[method])
    while True:
        means = _grid_means(method, rates)
        if len(means) < len(rates):
            return rates, None
        best = max(rates, key=lambda rate: means[rate])  # max keeps the first (smallest) of ties
        if best == rates[-1]:
            rates.append(float(f"{rates[-1] * rates[-1] / rates[-2]:.3g}"))
        elif best == rates[0]:
            rates.insert(0, float(f"{rates[0] * rates[0] / rates[1]:.3g}"))
        else:
            return rates, best


def grid_runs(methods: Sequence[str] | None = None) -> list[StudyRun]:
    """The learning-rate grid: every rate of each method's grid (``rate_grid``) at ``GRID_SIZE`` sentences, seeds
    ``GRID_SEEDS``."""
    return [tuned_run(method, rate, GRID_SIZE, seed) for method in (methods or METHODS)
            for rate in rate_grid(method)[0] for seed in GRID_SEEDS]


def chosen_rates() -> dict[str, float]:
    """Each method's chosen rate (``rate_grid``), for the methods whose grid is complete."""
    return {method: rate for method in METHODS if (rate := rate_grid(method)[1]) is not None}


def tuned_runs(seeds: Sequence[int] | None = None, sizes: Sequence[int | None] | None = None) -> list[StudyRun]:
    """Every method at its chosen rate (``chosen_rates``), every size and seed (by default the plan's as they stand:
    ``TUNED_SEEDS``, ``TUNED_SIZES``); cheapest first, seeds innermost. A method whose grid is not complete yet has
    no runs here."""
    rates = chosen_rates()
    return [tuned_run(method, rates[method], size, seed) for size in (TUNED_SIZES if sizes is None else sizes)
            for method in METHODS if method in rates for seed in (TUNED_SEEDS if seeds is None else seeds)]


# ---- running one -----------------------------------------------------------------------------------------------

CACHES: dict[str, PrefixCache] = {}  # one per frozen bottom, kept for the process: later seeds reuse the hidden states


def cache_for(frozen: Sequence[str]) -> PrefixCache:
    return CACHES.setdefault(",".join(frozen), PrefixCache())


def compact(predictions: Mapping[str, TaskPredictions]) -> dict[str, list]:
    """Predicted label indices per test example, in example order: one int (sentence task) or list (token task)."""
    out = {}
    for task, preds in predictions.items():
        position = {label: i for i, label in enumerate(preds.labels)}
        rows = sorted(zip(preds.index, preds.pred))
        by_words = head_type(preds.kind).by_words  # one label per word, or one per text
        out[task] = [[position[t] for t in p] if by_words else position[p] for _, p in rows]
    return out


def compact_probabilities(predictions: Mapping[str, TaskPredictions]) -> dict[str, list[list[float]]]:
    """Each sentence task's class probabilities per test example, in example order, to 4 decimals (what calibration
    reads); token tasks keep none."""
    return {task: [[round(float(p), 4) for p in probs] for _, probs in sorted(zip(preds.index, preds.probs),
                                                                             key=lambda row: row[0])]
            for task, preds in predictions.items() if preds.probs}


def expand(task: str, predicted: Sequence, examples: Sequence[Example],
           probabilities: Sequence[Sequence[float]] | None = None) -> TaskPredictions:
    """``compact``'s inverse: the TaskPredictions of a recorded run on ``examples`` (the task's test split), with
    its class probabilities if the record kept them (``compact_probabilities``)."""
    labels = TASK_LABELS[task]
    by_words = head_type(task_spec(task).kind).by_words
    names = [[labels[i] for i in p] if by_words else labels[p] for p in predicted]
    preds = ev.label_predictions(task, examples, names)
    if probabilities is not None:
        preds.probs = [np.asarray(p) for p in probabilities]
    return preds


def scored(model, test_sets: Mapping[str, Sequence[Example]], frozen: Sequence[str] = (),
           probabilities: bool = False) -> dict:
    """Test scores and compact predictions (with ``probabilities``, also the sentence tasks' class probabilities);
    the ``frozen`` bottom (if any) served from its shared cache."""
    with ev.through_cache(model, cache_for(frozen), frozen) if frozen else nullcontext():
        predictions = ev.predict_tests(model, test_sets)
    out = {"test": ev.flat_scores(predictions), "predictions": compact(predictions)}
    return out | {"probabilities": compact_probabilities(predictions)} if probabilities else out


def kept_epoch(history) -> dict:
    """The validation scores of the epoch that ``train`` kept (the best; its weights are loaded), and its number."""
    best = history.loc[history["val/main"].idxmax()]  # the first best epoch, as ``train`` keeps it
    return {"epochs_run": int(history["epoch"].max()), "kept_epoch": int(best["epoch"]),
            "validation": {k[4:]: float(v) for k, v in best.items() if k.startswith("val/") and "@" not in k}}


def _tests(tasks: Sequence[str]) -> dict[str, list[Example]]:
    return load_datasets(tasks, "test")


def _execute_recipe(run: StudyRun) -> dict:
    frozen, (sizes, steps) = FULL_RECIPE.freeze, full_epoch()
    model, history = recipe.train_recipe(seed=run.seed, steps_per_epoch=steps, prefix_cache=cache_for(frozen),
                                         val_limit=VAL_LIMIT, full_data=True, **_overrides(FULL_RECIPE))
    return {"train_sizes": sizes, **kept_epoch(history),
            **scored(model, _tests(recipe.TASKS), frozen, probabilities=True)}  # calibration reads them


def _overrides(config: TrainConfig) -> dict:
    """The fields in which ``config`` differs from the recipe's, as ``train_recipe`` overrides."""
    return {k: v for k, v in asdict(config).items()
            if v != getattr(recipe.CONFIG, k) and k not in ("seed", "steps_per_epoch")}


def _execute_sharing(run: StudyRun) -> dict:
    frozen, tests, results = FULL_RECIPE.freeze, _tests(recipe.TASKS), {"test": {}, "predictions": {}, "models": []}
    for spec in run.params["models"]:
        model, history = recipe.train_recipe(tuple(spec["tasks"]), run.seed, spec["steps"], cache_for(frozen),
                                             VAL_LIMIT, spec["datasets"], [tuple(d) for d in spec["drop_labels"]],
                                             full_data=True, **_overrides(FULL_RECIPE))
        one = scored(model, tests, frozen)
        results["test"] |= one["test"]
        results["predictions"] |= one["predictions"]
        results["models"].append({"tasks": spec["tasks"], **kept_epoch(history)})
    return results


def _execute_freezing(run: StudyRun) -> dict:
    """A run of the tuned freezing study, decided by its parameters alone: the scenario, its
    ``TrainConfig`` (the scenario's overrides on top), the training size and the validation limit."""
    params, task = run.params, run.params["task"]
    scenario = Scenario(params["scenario"]["backbone"], {}, params["scenario"]["lora"])
    train_sets = load_datasets([task], "train", params["train_size"])  # one stratified subset for every method and seed
    val_sets = load_datasets([task], "validation", params["val_limit"])
    steps = max(len(train_sets[task]) // params["config"]["batch_size"], params["min_steps_per_epoch"])
    config = TrainConfig.from_dict({**params["config"], **params["scenario"]["config"], "seed": run.seed,
                                    "steps_per_epoch": steps})
    set_seed(run.seed)
    model = build_model([task], backbone=scenario.backbone, max_seq_length=recipe.MODEL["max_seq_length"])
    if scenario.lora is not None:
        add_lora(model, **scenario.lora)
    frozen = config.freeze if config.freeze and not config.unfreeze_schedule else []
    history = train(model, train_sets, val_sets, config, prefix_cache=cache_for(frozen) if frozen else None)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"train_size": len(train_sets[task]), "steps_per_epoch": steps, "trainable": trainable,
            **kept_epoch(history), **scored(model, _tests([task]), frozen)}


# The baselines of the full-scale study, {method: tasks}: as recorded (its majority class predicts no NER tags).
STUDY_BASELINES = {"majority class": ("topic", "sentiment"), "TF-IDF + LR": ("topic", "sentiment"),
                   "frozen MiniLM + LR": ("topic", "sentiment"), "VADER lexicon": ("sentiment",),
                   "most frequent tag per word": ("ner",)}


def baselines_on_all_data(methods: Mapping[str, Sequence[str]] = STUDY_BASELINES) -> dict:
    """``mtl.evaluation.baselines.fit_baselines`` (C and class weighting tuned on validation) on the full training
    splits; test predictions in ``compact`` form. ``methods``: all of the study's, or some of them (CI's spot-check
    leaves out the frozen-MiniLM probe, which encodes every training sentence)."""
    train_sets, tests = load_datasets(recipe.TASKS, "train"), _tests(recipe.TASKS)
    val_sets = load_datasets(recipe.TASKS, "validation", VAL_LIMIT)
    if "frozen MiniLM + LR" in methods:
        pretrained = build_model(recipe.TASKS, **recipe.MODEL)
        with ev.through_cache(pretrained, cache_for(["encoder"]), ["encoder"]):
            fits = fit_baselines(train_sets, val_sets, tests, methods, pretrained.encoder)
    else:
        fits = fit_baselines(train_sets, val_sets, tests, methods)
    out = {"choices": {f"{method}/{task}": {k: str(choice[k]) for k in ("C", "class_weight")}
                       for (method, task), choice in fits.choices.items()}, "test": {}, "predictions": {}}
    for method, by_task in fits.predictions.items():
        preds = {task: ev.label_predictions(task, tests[task], p) for task, p in by_task.items()}
        out["test"][method] = ev.flat_scores(preds)
        out["predictions"][method] = compact(preds)
    return out


def execute(run: StudyRun) -> dict:
    """Run one study run from its definition and return what its record keeps."""
    executors = {"recipe": _execute_recipe, "baselines": lambda _: baselines_on_all_data(),
                 "sharing": _execute_sharing, "tuned_freezing": _execute_freezing}
    if run.study not in executors:
        raise KeyError(f"Unknown study {run.study!r}.")
    return executors[run.study](run)


# ---- reading the records ---------------------------------------------------------------------------------------

def all_runs(seeds: Sequence[int] = SEEDS) -> list[StudyRun]:
    return recipe_runs(seeds) + baseline_runs() + sharing_runs(seeds) + planned_freezing_runs()


def planned_freezing_runs() -> list[StudyRun]:
    """The grid's runs and the tuned runs, each once: a grid run of the chosen rate is also a tuned run."""
    return list({run.path(STUDIES_DIR): run for run in grid_runs() + tuned_runs()}.values())


def records(runs: Sequence[StudyRun]) -> list[dict]:
    """The records of those ``runs`` that are recorded for their current definition (others are left out)."""
    return [record for record in (current_record(run, STUDIES_DIR) for run in runs) if record is not None]


def recorded(study: str, seeds: Sequence[int] = SEEDS) -> list[dict]:
    """The current records of one study (runs not yet recorded, or recorded by another definition, are left out)."""
    runs = {"recipe": recipe_runs, "sharing": sharing_runs, "tuned_freezing": lambda _: planned_freezing_runs()}
    return records(baseline_runs() if study == "baselines" else runs[study](seeds))


def run_predictions(study_records: Sequence[dict]) -> dict[tuple[str, int], dict[str, TaskPredictions]]:
    """The test predictions of recorded model runs, {(setup, seed): {task: TaskPredictions}}, to pair by seed
    (``shared_seeds``) and test example (``compare_seeds``)."""
    tests = _tests(sorted({task for record in study_records for task in record["results"]["predictions"]}))
    return {(record["setup"], record["seed"]): {
                task: expand(task, predicted, tests[task], record["results"].get("probabilities", {}).get(task))
                for task, predicted in record["results"]["predictions"].items()}
            for record in study_records}


def _sharing_records() -> list[dict]:
    """Study 2's records: the recipe study's runs (its multi-task setup, see ``sharing_runs``) and the other setups'."""
    return recorded("recipe") + recorded("sharing")


def sharing_epochs() -> pd.DataFrame:
    """Study 2's early stopping: per setup and model (its tasks), the epoch kept / epochs run of each recorded seed
    (seed order). A single-task model stops at its own task's best epoch; a multi-task model at the best mean."""
    rows = {}
    for record in sorted(_sharing_records(), key=lambda r: (r["study"] != "recipe", r["seed"])):
        models = record["results"].get("models", [{"tasks": list(recipe.TASKS), **record["results"]}])  # recipe: one
        for model in models:
            key = (record["setup"], " + ".join(model["tasks"]))
            rows.setdefault(key, {})[f"seed {record['seed']}"] = f"{model['kept_epoch']}/{model['epochs_run']}"
    if not rows:
        return pd.DataFrame()
    return pd.DataFrame(rows).T.rename_axis(["setup", "model"]).fillna("-")


CLEAN_STUDIES = ("tuned_freezing",)  # studies run under docs/analysis_plan.md: from a clean tree, one commit each


def provenance_problems(study_records: Sequence[dict]) -> list[str]:
    """What breaks the plan's provenance rule in these records of one study: a record made from a work tree with
    uncommitted changes, or records of the study made at more than one commit."""
    problems = [f"{r['setup']}, seed {r['seed']}: made from a dirty tree ({r['provenance'].get('commit')})"
                for r in study_records if "dirty" in r["provenance"].get("commit", "dirty")]
    commits = sorted({str(r["provenance"].get("commit")) for r in study_records})
    if len(commits) > 1:
        problems.append(f"made at {len(commits)} commits: {', '.join(map(str, commits))}")
    return problems


FREEZING_MARGIN = 0.01  # sentiment macro-F1: the equivalence margin of docs/analysis_plan.md


def what_to_freeze(reference: str = "heads only", seed: int = 0) -> pd.DataFrame:
    """The tuned freezing study's family (docs/analysis_plan.md): each method minus ``reference`` at each training
    size on sentiment test macro-F1, paired by seed and test sentence, with the interval over seeds and test examples
    (``compare_seeds``), Holm-adjusted p-values over the whole family, the detectable difference and the verdict
    against ``FREEZING_MARGIN``. Rows only where both have recorded seeds in common."""
    rates = chosen_rates()
    found = records(tuned_runs())
    problems = provenance_problems(found)
    if problems:
        raise ValueError(f"The tuned freezing records break the plan's provenance rule: {problems[:3]}")
    predictions = run_predictions(found)  # {(setup, seed): {"sentiment": TaskPredictions}}
    results = {}
    for size in TUNED_SIZES:
        setup = {method: tuned_run(method, rates[method], size, 0).setup for method in rates}
        for method in (m for m in rates if m != reference and reference in rates):
            seeds = shared_seeds(predictions, setup[method], setup[reference])
            if seeds:
                stats = [_seed_statistics([predictions[setup[m], s]["sentiment"] for s in seeds])
                         for m in (method, reference)]  # (S, n, k) each
                results[f"{method} - {reference}, {_size_label(size)}"] = compare_seeds(*stats, _main_score("sentiment"),
                                                                                      seed=seed)
    if not results:
        return pd.DataFrame()
    methods = len(METHODS) - 1
    return family(results, FREEZING_MARGIN, m=methods * len(TUNED_SIZES))  # Holm over the plan's whole family


MARGINS = {"topic": 0.02, "sentiment": 0.01, "ner": 0.01}  # main score per task: docs/analysis_plan.md's margins
FAMILY_SIZE = {"sharing": len(COMPARISONS), "against baselines": sum(map(len, STUDY_BASELINES.values()))}


def _seed_statistics(predictions: Sequence[TaskPredictions]) -> np.ndarray:
    """(S, n, k) per-example counts of each seed's predictions of one task: what ``compare_seeds`` pairs."""
    return np.stack([example_statistics(p) for p in predictions])


def _main_score(task: str):
    """The task's main score (macro-F1, or entity F1 against spaCy's tags) from summed counts (..., k) -> (...)."""
    return lambda summed: head_type(task_spec(task).kind).score_statistics(summed)


def _planned_family(results: Mapping[tuple[str, str], dict], name: str) -> pd.DataFrame:
    """``family`` of (comparison, task) results with each task's margin, corrected for the plan's full size."""
    table = family(results, {key: MARGINS[key[1]] for key in results}, m=FAMILY_SIZE[name])
    table.index = pd.MultiIndex.from_tuples(list(results), names=["comparison", "task"])
    return table.assign(margin=[MARGINS[task] for _, task in results])


def _study_problems(studies: Sequence[str]) -> list[str]:
    return [f"{study}: {problem}" for study in studies for problem in provenance_problems(recorded(study))]


def sharing_family(seed: int = 0) -> tuple[pd.DataFrame, list[str]]:
    """The plan's "sharing" family (docs/analysis_plan.md): each of ``setups.COMPARISONS`` (setup a minus setup b on
    a task's main score), paired by seed and test example (``compare_seeds``), Holm-adjusted over the family's 8,
    verdicts against each task's margin (``MARGINS``). The multi-task setup is the recipe study's model. Returns the
    table and the records' provenance problems (``provenance_problems`` per study): these records predate the plan's
    provenance rule, so they are shown beside the table rather than refused."""
    predictions = run_predictions(_sharing_records())
    results = {}
    for a, b, task in COMPARISONS:
        seeds = shared_seeds(predictions, a, b)
        if seeds:
            stats = [_seed_statistics([predictions[setup, s][task] for s in seeds]) for setup in (a, b)]
            results[f"{a} - {b}", task] = compare_seeds(*stats, _main_score(task), seed=seed)
    table = _planned_family(results, "sharing") if results else pd.DataFrame()
    return table, _study_problems(["recipe", "sharing"])


def against_baselines(seed: int = 0) -> tuple[pd.DataFrame, list[str]]:
    """The plan's "against baselines" family: the recipe at full scale (every recorded seed) minus each baseline of
    ``STUDY_BASELINES`` on each task it predicts, main score on the full test split, ``compare_seeds`` with the
    baseline as one deterministic seed (the same predictions for every seed), Holm-adjusted over the family's 8,
    verdicts against each task's margin. Returns the table and the records' provenance problems, as
    ``sharing_family``."""
    model, baselines = run_predictions(recorded("recipe")), recorded("baselines")
    results = {}
    if model and baselines:
        seeds = sorted(seed for _, seed in model)
        recorded_baselines, tests = baselines[0]["results"]["predictions"], _tests(recipe.TASKS)
        for method, tasks in STUDY_BASELINES.items():
            for task in (t for t in tasks if t in recorded_baselines.get(method, {})):
                theirs = expand(task, recorded_baselines[method][task], tests[task])
                ours = _seed_statistics([model["multi-task", s][task] for s in seeds])
                results[f"recipe - {method}", task] = compare_seeds(ours, _seed_statistics([theirs]),
                                                                    _main_score(task), seed=seed)
    table = _planned_family(results, "against baselines") if results else pd.DataFrame()
    return table, _study_problems(["recipe", "baselines"])


def provenance(studies: Sequence[str]) -> str:
    """Where the recorded runs of ``studies`` come from: their number and total hours, command(s), commit(s), CPU(s)
    and dates, from each record's provenance (one line, for a table's caption)."""
    runs = [r for name in studies for r in recorded(name)]
    if not runs:
        return f"No run recorded yet: `{COMMAND} {' '.join(studies)}`."
    about = lambda key: ", ".join(sorted({r["provenance"][key] for r in runs}))  # noqa: E731
    dates = sorted(r["provenance"]["date"] for r in runs)
    return (f"{len(runs)} runs, {sum(r['seconds'] for r in runs) / 3600:.1f} h in all, `{about('command')}` at "
            f"commit {about('commit')} on {about('cpu')}, {dates[0]} to {dates[-1]}.")


def trainable_parameters(backbone: str = "minilm") -> pd.DataFrame:
    """What each method of ``METHODS`` trains, before any training: trainable parameters per component of the
    study's model (sentiment alone), one column per method, and one per stage of gradual unfreezing's schedule
    (from the epoch it starts), so the counts of the methods and the stages can be read side by side."""
    base = build_model(["sentiment"], backbone=backbone, max_seq_length=recipe.MODEL["max_seq_length"])
    columns = {}
    for method, scenario in METHODS.items():
        model = copy.deepcopy(base)
        if scenario.lora is not None:
            add_lora(model, **scenario.lora)
        freeze(model, *scenario.config.get("freeze", []))
        schedule = scenario.config.get("unfreeze_schedule", {})
        if not schedule:
            columns[method] = parameter_report(model).set_index("component").trainable
            continue
        columns[f"{method}, from epoch 1"] = parameter_report(model).set_index("component").trainable
        for epoch in sorted(schedule):
            unfreeze(model, *schedule[epoch])
            columns[f"{method}, from epoch {epoch}"] = parameter_report(model).set_index("component").trainable
    return pd.DataFrame(columns)


def grid_table() -> pd.DataFrame:
    """The learning-rate grid as recorded, per method and rate: what the rate sets, the seeds recorded at
    ``GRID_SIZE`` sentences, their mean validation macro-F1 of the kept epochs (the only score the choice reads;
    NaN until every seed of the rate is recorded), whether it is the chosen rate (``rate_grid``), and whether the
    plan's amendment added it (beyond an edge of ``LR_GRID``)."""
    sets = {"head_lr": "heads", "encoder_lr": "encoder"}
    rows = []
    for method in METHODS:
        rates, chosen = rate_grid(method)
        means = _grid_means(method, rates)
        for rate in rates:
            found = records([tuned_run(method, rate, GRID_SIZE, seed) for seed in GRID_SEEDS])
            rows.append({"method": method, "rate": rate,
                         "sets": "adapters" if METHODS[method].lora else sets[LR_FIELD[method]], "seeds": len(found),
                         "validation macro-F1": means.get(rate, np.nan), "chosen": rate == chosen,
                         "added by the amendment": rate not in LR_GRID[method]})
    return pd.DataFrame(rows).set_index(["method", "rate"])


def freezing_cells(table: pd.DataFrame, reference: str = "heads only") -> pd.DataFrame:
    """The plan's "what to freeze" family as a grid, method (rows) x training size (columns): the verdict of each
    comparison ``what_to_freeze`` recorded (``table``), "not recorded yet" where the plan's cell is missing."""
    cells = {}
    for size in TUNED_SIZES:
        label = _size_label(size)
        cells[label] = {}
        for method in (m for m in METHODS if m != reference):
            name = f"{method} - {reference}, {label}"
            cells[label][method] = table.loc[name, "verdict"] if name in table.index else "not recorded yet"
    return pd.DataFrame(cells).rename_axis(f"minus {reference}")


def tuned_curves() -> pd.DataFrame:
    """The tuned freezing study's learning curves: one row per method (``METHODS`` order) and training size recorded
    at the chosen rate, with the training sentences, the seeds and sentiment test macro-F1 (mean and standard
    deviation over seeds; NaN with one seed)."""
    rows = [{"method": r["setup"].split(", lr=")[0], "train_size": r["results"]["train_size"], "seed": r["seed"],
             "score": r["results"]["test"]["sentiment/macro_f1"]} for r in records(tuned_runs())]
    columns = ["method", "train_size", "seeds", "mean", "std"]
    if not rows:
        return pd.DataFrame(columns=columns)
    curves = (pd.DataFrame(rows).groupby(["method", "train_size"]).score
              .agg(seeds="count", mean="mean", std="std").reset_index())
    order = {method: i for i, method in enumerate(METHODS)}
    return curves.sort_values(["method", "train_size"], key=lambda c: c.map(order) if c.name == "method" else c,
                              ignore_index=True)[columns]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mtl.extras.studies", description=__doc__.split("\n\n")[0])
    studies = ["recipe", "baselines", "sharing", "lr_grid", "tuned_freezing"]
    parser.add_argument("studies", nargs="*", default=studies, choices=studies)
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help=f"default {SEEDS}; tuned_freezing {TUNED_SEEDS}")
    parser.add_argument("--sizes", nargs="+", default=None, help="tuned_freezing sizes (numbers or 'all')")
    parser.add_argument("--methods", nargs="+", default=None, choices=list(METHODS), help="lr_grid methods")
    args = parser.parse_args(argv)
    seeds = args.seeds or list(SEEDS)
    sizes = TUNED_SIZES if args.sizes is None else tuple(None if s == "all" else int(s) for s in args.sizes)
    by_study = {"recipe": lambda: recipe_runs(seeds), "baselines": baseline_runs,
                "sharing": lambda: sharing_runs(seeds), "lr_grid": lambda: grid_runs(args.methods),
                "tuned_freezing": lambda: tuned_runs(args.seeds or TUNED_SEEDS, sizes)}
    command = " ".join([COMMAND, *(argv if argv is not None else sys.argv[1:])])
    for study in args.studies:
        run_study(by_study[study](), execute, STUDIES_DIR, command)


if __name__ == "__main__":
    main()
