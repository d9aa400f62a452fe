"""Multi-task against single-task: the recipe (``mtl.extras.notebooks.recipe``) trained as one multi-task model, as
one model per task with the same number of steps per task, and as two controls that separate "more topic data" from
"sharing an encoder", for several seeds, each scored on the test sets. ``mtl.extras.studies.full_scale`` trains these
setups at full scale and compares them as the plan's "sharing" family (``sharing_family``, read by notebook 05);
``seed_study`` trains them at any budget.
"""
from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from mtl.extras.notebooks import recipe
from mtl.data.examples import Example
from mtl.extras.notebooks.reports import flat_scores, predict_tests, through_cache
from mtl.evaluation.metrics import TaskPredictions, main_score
from mtl.evaluation.compare import compare_runs, shared_seeds
from mtl.multitask.model import MultiTaskModel
from mtl.encoder.prefix_cache import PrefixCache
from mtl.training.sampling import task_probabilities


# The paired comparisons the study makes, (setup a, setup b, task), each read as a - b:
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
class Run:
    """One model of a study setup: its heads, steps per epoch, training sets, and labels removed from them."""

    tasks: tuple[str, ...]
    steps: int
    datasets: tuple[str, ...] | None = None  # None: each task's own training set
    drop_labels: tuple[tuple[str, str], ...] = ()  # (dataset, task)


def study_setups(sizes: Mapping[str, int], steps_per_epoch: int, tasks: Sequence[str] = recipe.TASKS,
                 controls: bool = True) -> dict[str, list[Run]]:
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
    setups = {"multi-task": [Run(tuple(tasks), steps_per_epoch)],
              "single-task": [Run((task,), single[task]) for task in tasks]}
    if controls:
        setups["multi-task, no lead topics"] = [Run(tuple(tasks), steps_per_epoch, drop_labels=(("ner", "topic"),))]
        setups["single-task, + lead topics"] = [Run(("topic",), single["topic"] + single["ner"], ("topic", "ner"))]
    return setups


@dataclass
class SeedStudy:
    """Test predictions of the recipe trained in several setups (``study_setups``), per seed."""

    setups: dict[str, list[Run]]
    predictions: dict[tuple[str, int], dict[str, TaskPredictions]] = field(default_factory=dict)  # (setup, seed)
    models: dict[tuple[str, int], dict[str, MultiTaskModel]] = field(default_factory=dict)  # kept seeds only
    seconds: dict[tuple[str, int], float] = field(default_factory=dict)  # training wall time (all its models)

    @property
    def seeds(self) -> list[int]:
        return sorted({seed for _, seed in self.predictions})

    def scores(self) -> pd.DataFrame:
        """One row per (setup, seed): each task's accuracy / macro-F1 or entity F1 on its test set."""
        rows = [{"setup": setup, "seed": seed, **flat_scores(preds)}
                for (setup, seed), preds in self.predictions.items()]
        return pd.DataFrame(rows).set_index(["setup", "seed"]).sort_index()

    def compare(self, comparisons: Sequence[tuple[str, str, str]], n_resamples: int = 2000,
                alpha: float = 0.05) -> pd.DataFrame:
        """One row per (setup a, setup b, task): ``compare_runs`` of a against b on the task's test predictions,
        the difference per seed both have, and ``significant``: p below ``alpha`` divided by the number of
        comparisons (Bonferroni)."""
        rows = {}
        for a, b, task in comparisons:
            result = compare_runs(self.predictions, a, b, task, n_resamples)
            per_seed = {f"seed {s}": main_score(self.predictions[a, s][task]) - main_score(self.predictions[b, s][task])
                        for s in shared_seeds(self.predictions, a, b)}
            rows[f"{a} - {b}", task] = {k: result[k] for k in ("metric", "a", "b", "difference", "ci_low", "ci_high",
                                                                "p_value")} | per_seed
        table = pd.DataFrame(rows).T.rename_axis(["comparison", "task"])
        table["significant"] = table.p_value.astype(float) < alpha / len(comparisons)
        return table


def seed_study(seeds: Sequence[int], steps_per_epoch: int, test_sets: Mapping[str, Sequence[Example]],
               cache: PrefixCache, tasks: Sequence[str] = recipe.TASKS, keep_models: Sequence[int] = (),
               val_limit: int = recipe.VAL_LIMIT, controls: bool = True, **overrides) -> SeedStudy:
    """For each seed, every setup of ``study_setups`` trained with ``recipe.train_recipe`` and scored on the test
    sets. All runs share ``cache`` (same frozen bottom), so the frozen layers run once per distinct text in the whole
    study. ``overrides`` go to ``TrainConfig`` (e.g. ``epochs=1``) for every setup alike, ``val_limit`` to
    ``recipe.train_recipe``. Models of the seeds in ``keep_models`` are kept."""
    train_sets, _ = recipe.recipe_data(tasks)
    study = SeedStudy(study_setups({task: len(examples) for task, examples in train_sets.items()}, steps_per_epoch,
                                   tasks, controls))
    for seed in seeds:
        for setup, runs in study.setups.items():
            predictions, models, started = {}, {}, time.perf_counter()
            for run in runs:
                model, _ = recipe.train_recipe(run.tasks, seed, run.steps, prefix_cache=cache, val_limit=val_limit,
                                               datasets=run.datasets, drop_labels=run.drop_labels, **overrides)
                with through_cache(model, cache, recipe.CONFIG.freeze):
                    predictions.update(predict_tests(model, test_sets))
                models["all" if len(run.tasks) > 1 else run.tasks[0]] = model
            study.predictions[setup, seed] = predictions
            study.seconds[setup, seed] = time.perf_counter() - started
            if seed in keep_models:
                study.models[setup, seed] = models
    return study
