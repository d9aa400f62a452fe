"""The full-scale studies: the training results of notebooks 03-05 at realistic budgets, too slow for CI, recorded
run by run under ``results/studies/`` by ``mtl.extras.studies.runner`` and read back by the notebooks and README.

- ``recipe``: notebook 04's recipe on all training data of every task (no subsample), epochs chosen on validation
  (early stopping), 3 seeds; ``baselines``: every baseline fitted on the same full training data, tuned on the same
  validation sets as the model.
- ``sharing``: notebook 05's multi-task against single-task setups with its two controls, at full scale.
- ``freezing``: what to freeze as a function of data: sentiment with 250 / 1,000 / 4,000 / all training examples x
  heads only / top-2 / LoRA / full fine-tuning / gradual + discriminative, one learning rate for all.
- ``lr_grid`` and ``tuned_freezing``: the same methods, each tuned alike (docs/analysis_plan.md): its learning rate
  chosen on validation from a grid at 1,000 sentences, then 5 seeds per method and size; read by ``what_to_freeze``.

Every run is scored on the full test split of its tasks; its record keeps the kept epoch's validation scores, the
test scores and the test predictions (label indices), from which paired comparisons are recomputed
(``mtl.evaluation.compare``).

Usage: ``python -m mtl.extras.studies [recipe baselines sharing freezing lr_grid tuned_freezing] [--seeds 0 1 2]
[--sizes 250 1000]``, from a clean work tree (``git worktree add``: the runner refuses uncommitted changes)
(``make results`` runs them all; resumable: a rerun skips what is recorded).
"""
from __future__ import annotations

import argparse
import sys
from contextlib import nullcontext
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace

import numpy as np
import pandas as pd

from mtl.extras.notebooks import reports as ev
from mtl.extras.notebooks import recipe
from mtl.extras.notebooks import sharing
from mtl.evaluation.baselines import fit_baselines
from mtl.data.examples import TASK_LABELS, Example
from mtl.extras.notebooks.experiments import Scenario
from mtl.finetuning.lora import add_lora
from mtl.evaluation.metrics import TaskPredictions, example_statistics
from mtl.evaluation.compare import compare, compare_runs, compare_seeds, family, shared_seeds
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
SIZES = (250, 1000, 4000, None)  # None: all 16,533 training sentences
FREEZING_BASE = TrainConfig(epochs=6, batch_size=32, encoder_lr=2e-4, head_lr=1e-2, warmup_ratio=0.1, patience=1,
                            progress=False)
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
TUNED_BASE = replace(FREEZING_BASE, patience=2)  # the same budget, selection and stopping rule for every method
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
    """Every setup of ``sharing.study_setups`` but ``multi-task``: that one is the recipe study's model (the same
    tasks, data, steps and config), whose runs ``sharing_study`` reads instead of training it twice."""
    sizes, steps = full_epoch()  # the multi-task model's epoch; single-task models get their share of it
    runs = []
    for setup, models in sharing.study_setups(sizes, steps).items():
        if setup == "multi-task":
            continue
        params = {"models": [asdict(model) for model in models], "val_limit": VAL_LIMIT, "model": recipe.MODEL,
                  "config": asdict(FULL_RECIPE)}
        runs += [StudyRun("sharing", setup, seed, params) for seed in seeds]
    return runs


def freezing_runs(seeds: Sequence[int] = SEEDS, sizes: Sequence[int | None] = SIZES,
                  methods: Sequence[str] | None = None) -> list[StudyRun]:
    """Cheapest first (size, then method), seeds innermost so runs with one frozen bottom share a cache; ``methods``:
    a subset of ``METHODS`` (default all)."""
    unknown = set(methods or ()) - set(METHODS)
    if unknown:
        raise KeyError(f"Unknown method(s) {sorted(unknown)}; the methods are {list(METHODS)}.")
    runs = []
    for size in sizes:
        for method, scenario in METHODS.items():
            if methods is not None and method not in methods:
                continue
            params = {"task": "sentiment", "train_size": size, "val_limit": VAL_LIMIT, "scenario": asdict(scenario),
                      "config": asdict(FREEZING_BASE), "min_steps_per_epoch": MIN_STEPS_PER_EPOCH}
            runs += [StudyRun("freezing", f"{method}, n={size or 'all'}", seed, params) for seed in seeds]
    return runs


def tuned_run(method: str, rate: float, size: int | None, seed: int) -> StudyRun:
    """One run of the tuned freezing study: ``method`` with its tuned rate (``LR_FIELD``) set to ``rate``."""
    scenario = METHODS[method]
    config = replace(TUNED_BASE, **{**scenario.config, LR_FIELD[method]: rate})
    params = {"task": "sentiment", "train_size": size, "val_limit": VAL_LIMIT,
              "scenario": {**asdict(scenario), "config": {}}, "config": asdict(config),
              "min_steps_per_epoch": MIN_STEPS_PER_EPOCH}
    return StudyRun("tuned_freezing", f"{method}, lr={rate:g}, n={size or 'all'}", seed, params)


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


def tuned_runs(seeds: Sequence[int] = TUNED_SEEDS, sizes: Sequence[int | None] = TUNED_SIZES) -> list[StudyRun]:
    """Every method at its chosen rate (``chosen_rates``), every size and seed; cheapest first, seeds innermost. A
    method whose grid is not complete yet has no runs here."""
    rates = chosen_rates()
    return [tuned_run(method, rates[method], size, seed) for size in sizes for method in METHODS if method in rates
            for seed in seeds]


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


def expand(task: str, predicted: Sequence, examples: Sequence[Example]) -> TaskPredictions:
    """``compact``'s inverse: the TaskPredictions of a recorded run on ``examples`` (the task's test split)."""
    labels = TASK_LABELS[task]
    by_words = head_type(task_spec(task).kind).by_words
    names = [[labels[i] for i in p] if by_words else labels[p] for p in predicted]
    return ev.label_predictions(task, examples, names)


def scored(model, test_sets: Mapping[str, Sequence[Example]], frozen: Sequence[str] = ()) -> dict:
    """Test scores and compact predictions; the ``frozen`` bottom (if any) served from its shared cache."""
    with ev.through_cache(model, cache_for(frozen), frozen) if frozen else nullcontext():
        predictions = ev.predict_tests(model, test_sets)
    return {"test": ev.flat_scores(predictions), "predictions": compact(predictions)}


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
    return {"train_sizes": sizes, **kept_epoch(history), **scored(model, _tests(recipe.TASKS), frozen)}


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
    """A run of the freezing or the tuned freezing study, decided by its parameters alone: the scenario, its
    ``TrainConfig`` (the scenario's overrides on top), the training size and the validation limit."""
    params, task = run.params, run.params["task"]
    scenario = Scenario(**{**params["scenario"], "config": {}})
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
                 "sharing": _execute_sharing, "freezing": _execute_freezing, "tuned_freezing": _execute_freezing}
    if run.study not in executors:
        raise KeyError(f"Unknown study {run.study!r}.")
    return executors[run.study](run)


# ---- reading the records ---------------------------------------------------------------------------------------

def all_runs(seeds: Sequence[int] = SEEDS) -> list[StudyRun]:
    return recipe_runs(seeds) + baseline_runs() + sharing_runs(seeds) + freezing_runs(seeds) + planned_freezing_runs()


def planned_freezing_runs() -> list[StudyRun]:
    """The grid's runs and the tuned runs, each once: a grid run of the chosen rate is also a tuned run."""
    return list({run.path(STUDIES_DIR): run for run in grid_runs() + tuned_runs()}.values())


def records(runs: Sequence[StudyRun]) -> list[dict]:
    """The records of those ``runs`` that are recorded for their current definition (others are left out)."""
    return [record for record in (current_record(run, STUDIES_DIR) for run in runs) if record is not None]


def recorded(study: str, seeds: Sequence[int] = SEEDS) -> list[dict]:
    """The current records of one study (runs not yet recorded, or recorded by another definition, are left out)."""
    runs = {"recipe": recipe_runs, "sharing": sharing_runs, "freezing": freezing_runs,
            "tuned_freezing": lambda _: planned_freezing_runs()}
    return records(baseline_runs() if study == "baselines" else runs[study](seeds))


def seed_table(study: str, metrics: Sequence[str]) -> pd.DataFrame:
    """Per setup of a study's recorded runs: the number of seeds, each test metric as mean and std over seeds, and the
    mean wall time per run (s)."""
    rows = []
    for record in recorded(study):
        rows.append({"setup": record["setup"], "seed": record["seed"], "seconds": record["seconds"],
                     **{m: record["results"]["test"].get(m) for m in metrics}})
    if not rows:
        return pd.DataFrame(columns=["seeds", *metrics, "seconds"])
    frame = pd.DataFrame(rows)
    grouped = frame.groupby("setup", sort=False)
    table = pd.DataFrame({"seeds": grouped.seed.count()})
    for metric in metrics:
        table[f"{metric} mean"], table[f"{metric} std"] = grouped[metric].mean(), grouped[metric].std(ddof=1)
    table["seconds"] = grouped.seconds.mean()
    return table


def run_predictions(study_records: Sequence[dict]) -> dict[tuple[str, int], dict[str, TaskPredictions]]:
    """The test predictions of recorded model runs, {(setup, seed): {task: TaskPredictions}}, to pair with
    ``compare_runs``."""
    tests = _tests(sorted({task for record in study_records for task in record["results"]["predictions"]}))
    return {(record["setup"], record["seed"]): {task: expand(task, predicted, tests[task])
                                                for task, predicted in record["results"]["predictions"].items()}
            for record in study_records}


def recorded_predictions(study: str, setup: str, task: str) -> list[TaskPredictions]:
    """The test predictions on ``task`` of every recorded seed of one setup (seed order), to pair with others."""
    predictions = run_predictions([record for record in recorded(study) if record["setup"] == setup])
    return [predictions[setup, seed][task] for seed in sorted(seed for _, seed in predictions)]


def _sharing_records() -> list[dict]:
    """Study 2's records: the recipe study's runs (its multi-task setup, see ``sharing_runs``) and the other setups'."""
    return recorded("recipe") + recorded("sharing")


def sharing_study() -> sharing.SeedStudy:
    """Study 2's records as a ``sharing.SeedStudy`` (full test splits), so the full-scale study is compared with the
    same code as notebook 05's CI-sized one (``compare``, ``scores``). Only seeds recorded for every setup count."""
    sizes, steps = full_epoch()
    study = sharing.SeedStudy(sharing.study_setups(sizes, steps))
    found, setups = _sharing_records(), {}
    for record in found:
        setups.setdefault(record["seed"], set()).add(record["setup"])
    complete = [record for record in found if setups[record["seed"]] == set(study.setups)]
    study.predictions = run_predictions(complete)
    study.seconds = {(record["setup"], record["seed"]): record["seconds"] for record in complete}
    return study


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


def recipe_against_baselines(n_resamples: int = 2000) -> pd.DataFrame:
    """The full-scale recipe (every recorded seed) minus each baseline on each task it predicts, main score on the
    test split: ``compare`` over test examples (a baseline is deterministic: the same predictions for every seed).
    Empty until both studies have records."""
    model, baselines = run_predictions(recorded("recipe")), recorded("baselines")
    if not model or not baselines:
        return pd.DataFrame(columns=["a", "b", "difference", "ci_low", "ci_high", "seeds"])
    ours = [model["multi-task", seed] for seed in sorted(seed for _, seed in model)]
    rows = {}
    for method, by_task in baselines[0]["results"]["predictions"].items():
        for task, predicted in by_task.items():
            theirs = expand(task, predicted, _tests([task])[task])
            result = compare([seed[task] for seed in ours], [theirs] * len(ours), n_resamples)
            rows[method, task] = {k: result[k] for k in ("a", "b", "difference", "ci_low", "ci_high", "seeds")}
    return pd.DataFrame(rows).T.rename_axis(["baseline", "task"])


def freezing_gains(reference: str = "heads only", n_resamples: int = 2000) -> pd.DataFrame:
    """Each method minus ``reference`` on sentiment test macro-F1 per training size: ``compare_runs`` over test
    sentences and the seeds both have recorded (rows only where both have one)."""
    predictions = run_predictions(recorded("freezing"))
    rows = {}
    for size in SIZES:
        for method in METHODS:
            a, b = f"{method}, n={size or 'all'}", f"{reference}, n={size or 'all'}"
            if method != reference and shared_seeds(predictions, a, b):
                result = compare_runs(predictions, a, b, "sentiment", n_resamples)
                rows[method, size or "all"] = {k: result[k] for k in ("difference", "ci_low", "ci_high", "seeds")}
    if not rows:
        return pd.DataFrame(columns=["difference", "ci_low", "ci_high", "seeds"])
    return pd.DataFrame(rows).T.rename_axis(["method", "train size"])


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
    by_key = {(r["setup"], r["seed"]): r for r in found}
    tests = _tests(["sentiment"])["sentiment"]
    score = lambda summed: head_type("sentence").score_statistics(summed)  # noqa: E731  macro-F1 from counts
    results = {}
    for size in TUNED_SIZES:
        setup = {method: f"{method}, lr={rates[method]:g}, n={size or 'all'}" for method in rates}
        for method in (m for m in rates if m != reference and reference in rates):
            seeds = sorted({s for (name, s) in by_key if name == setup[method]}
                           & {s for (name, s) in by_key if name == setup[reference]})
            if not seeds:
                continue
            stats = [np.stack([example_statistics(expand("sentiment", by_key[setup[m], s]["results"]["predictions"]
                                                         ["sentiment"], tests)) for s in seeds])
                     for m in (method, reference)]  # (S, n, k) each
            results[f"{method} - {reference}, n={size or 'all'}"] = compare_seeds(*stats, score, seed=seed)
    if not results:
        return pd.DataFrame()
    methods = len(METHODS) - 1
    return family(results, FREEZING_MARGIN, m=methods * len(TUNED_SIZES))  # Holm over the plan's whole family


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


def freezing_curves() -> pd.DataFrame:
    """Study 3's learning curves: one row per recorded (method, training size) with the training sentences, seeds,
    sentiment test macro-F1 (mean, std over seeds), wall seconds per run, trainable parameters at the end of
    training, and per seed (in seed order) the epoch kept / epochs run: early stopping shows there."""
    rows = []
    for record in sorted(recorded("freezing"), key=lambda r: r["seed"]):
        method = record["setup"].rsplit(", n=", 1)[0]
        results = record["results"]
        rows.append({"method": method, "train_size": results["train_size"], "seed": record["seed"],
                     "score": results["test"]["sentiment/macro_f1"], "seconds": record["seconds"],
                     "trainable": results["trainable"], "epochs": f"{results['kept_epoch']}/{results['epochs_run']}"})
    columns = ["method", "train_size", "seeds", "mean", "std", "seconds", "trainable", "epochs"]
    if not rows:
        return pd.DataFrame(columns=columns)
    grouped = pd.DataFrame(rows).groupby(["method", "train_size"], sort=False)
    curves = grouped.agg(seeds=("seed", "count"), mean=("score", "mean"), std=("score", "std"),
                         seconds=("seconds", "mean"), trainable=("trainable", "max"),
                         epochs=("epochs", ", ".join)).reset_index()
    order = {method: i for i, method in enumerate(METHODS)}
    return curves.sort_values(["method", "train_size"], key=lambda c: c.map(order) if c.name == "method" else c,
                              ignore_index=True)[columns]


def pays_from(gains: pd.DataFrame, method: str) -> str | int | None:
    """The smallest training size from which ``method``'s gain (``freezing_gains``) has an interval above zero at
    every recorded size (None: at none, or not at the largest one recorded)."""
    if method not in gains.index.get_level_values("method"):
        return None
    rows = gains.loc[method]
    paying = (rows.ci_low.astype(float) > 0).tolist()
    if not paying[-1]:
        return None
    first = len(paying) - 1
    while first > 0 and paying[first - 1]:
        first -= 1
    return rows.index[first]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mtl.extras.studies", description=__doc__.split("\n\n")[0])
    studies = ["recipe", "baselines", "sharing", "freezing", "lr_grid", "tuned_freezing"]
    parser.add_argument("studies", nargs="*", default=studies, choices=studies)
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help=f"default {SEEDS}; tuned_freezing {TUNED_SEEDS}")
    parser.add_argument("--sizes", nargs="+", default=None, help="freezing study sizes (numbers or 'all')")
    parser.add_argument("--methods", nargs="+", default=None, choices=list(METHODS), help="freezing study methods")
    args = parser.parse_args(argv)
    seeds = args.seeds or list(SEEDS)
    sizes = SIZES if args.sizes is None else tuple(None if s == "all" else int(s) for s in args.sizes)
    by_study = {"recipe": lambda: recipe_runs(seeds), "baselines": baseline_runs,
                "sharing": lambda: sharing_runs(seeds), "freezing": lambda: freezing_runs(seeds, sizes, args.methods),
                "lr_grid": lambda: grid_runs(args.methods),
                "tuned_freezing": lambda: tuned_runs(args.seeds or TUNED_SEEDS, TUNED_SIZES if args.sizes is None else sizes)}
    command = " ".join([COMMAND, *(argv if argv is not None else sys.argv[1:])])
    for study in args.studies:
        run_study(by_study[study](), execute, STUDIES_DIR, command)


if __name__ == "__main__":
    main()
