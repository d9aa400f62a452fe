"""mtl.extras.studies.full_scale: the full-scale studies' definitions, their committed records, and a CI spot-check of one cheap run.

The studies themselves take hours (``make results``); CI re-runs only the cheapest run and checks every committed
record against the current definitions and data.
"""
import numpy as np
import pandas as pd
import pytest

from mtl.extras.notebooks import recipe
from mtl.extras.studies import setups
from mtl.extras.studies import full_scale as studies
from mtl.extras.studies.runner import read_record, stale_records, write_record
from mtl.multitask.tasks import load_datasets

# One cheap run of each study is re-run by CI and compared with its record (the recipe study has no cheap run: its
# every run trains on all data for up to 6 epochs; it is reproduced by the sharing study's multi-task setup instead)
SPOT_CHECK = studies.tuned_runs(seeds=(0,), sizes=(250,))[0]  # heads only, 250 sentences, seed 0: seconds
SHARING_RUN = next(run for run in studies.sharing_runs(seeds=(0,)) if run.setup == "single-task, + lead topics")
CHEAP_BASELINES = {method: tasks for method, tasks in studies.STUDY_BASELINES.items() if method != "frozen MiniLM + LR"}
SPOT_TOLERANCE = 0.03  # test macro-F1 after training may move this much on another CPU (float kernels, trajectory)
RECORDS = [path for path in sorted(studies.STUDIES_DIR.glob("*/*.json"))]


def test_no_committed_record_comes_from_another_study_definition():
    stale = stale_records(studies.all_runs(), studies.STUDIES_DIR)
    assert not stale, (f"{len(stale)} recorded run(s) were made by another study definition, e.g. {stale[0]}: "
                       f"delete them and regenerate with `make results` (python -m mtl.extras.studies).")


@pytest.mark.parametrize("path", RECORDS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_recorded_predictions_give_the_recorded_test_scores_on_the_current_test_split(path):
    record = read_record(path)
    assert {"command", "commit", "cpu", "date"} <= set(record["provenance"]) and record["seconds"] > 0
    results = record["results"]
    by_method = results["predictions"] if record["study"] == "baselines" else {"": results["predictions"]}
    for method, predictions in by_method.items():
        tests = load_datasets(list(predictions), "test")
        expected = results["test"][method] if method else results["test"]
        rescored = studies.ev.flat_scores({task: studies.expand(task, p, tests[task]) for task, p in predictions.items()})
        assert rescored == pytest.approx({k: expected[k] for k in rescored}, abs=1e-9), method


def test_compact_and_expand_are_inverse_for_sentence_and_token_tasks():
    tests = {task: load_datasets([task], "test")[task][:20] for task in ("sentiment", "ner")}
    gold = {task: studies.ev.label_predictions(task, tests[task], [ex.labels[task] for ex in tests[task]])
            for task in tests}
    packed = studies.compact(gold)
    assert all(isinstance(i, int) for i in packed["sentiment"]) and all(isinstance(s, list) for s in packed["ner"])
    for task in tests:
        back = studies.expand(task, packed[task], tests[task])
        as_lists = lambda rows: [list(r) if isinstance(r, (list, tuple)) else r for r in rows]  # noqa: E731
        assert as_lists(back.pred) == as_lists(gold[task].pred) and as_lists(back.true) == as_lists(gold[task].true)


def test_recorded_probabilities_come_back_with_their_examples():
    tests = load_datasets(["sentiment"], "test")["sentiment"][:6]
    labels = studies.TASK_LABELS["sentiment"]
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(len(labels)), size=len(tests))  # (6, C)
    order = [3, 0, 5, 1, 4, 2]  # predictions are collected in batch order, not example order
    preds = studies.TaskPredictions("sentence", labels, order, [tests[i].labels["sentiment"] for i in order],
                                    [labels[int(probs[i].argmax())] for i in order], [probs[i] for i in order])
    kept = studies.compact_probabilities({"sentiment": preds})["sentiment"]
    np.testing.assert_allclose(kept, probs, atol=5e-5)  # example order, 4 decimals
    back = studies.expand("sentiment", studies.compact({"sentiment": preds})["sentiment"], tests, kept)
    assert back.pred == [labels[int(p.argmax())] for p in probs]
    np.testing.assert_allclose(np.stack(back.probs), probs, atol=5e-5)
    assert studies.compact_probabilities({"ner": studies.TaskPredictions("token", ("O", "B-PER"))}) == {}


def test_the_kept_epoch_is_the_first_best_one():
    history = pd.DataFrame({"epoch": [1, 2, 3, 4], "val/main": [0.5, 0.7, 0.7, 0.6], "val/topic/macro_f1": [.1, .2, .3, .4],
                            "val/topic@ner/macro_f1": [0, 0, 0, 0], "seconds": [1, 2, 3, 4]})
    kept = studies.kept_epoch(history)
    assert kept == {"epochs_run": 4, "kept_epoch": 2, "validation": {"main": 0.7, "topic/macro_f1": 0.2}}


def test_every_study_run_is_unique():
    runs = studies.all_runs()
    assert len({run.path(studies.STUDIES_DIR) for run in runs}) == len(runs)


def test_spot_check_the_cheapest_run_reproduces_its_record():
    record = read_record(SPOT_CHECK.path(studies.STUDIES_DIR))
    assert record is not None, "the spot-checked run is not recorded: run `python -m mtl.extras.studies tuned_freezing --sizes 250`"
    assert record["digest"] == SPOT_CHECK.digest()
    again = studies.execute(SPOT_CHECK)
    assert again["train_size"] == record["results"]["train_size"] == 250
    assert again["test"] == pytest.approx(record["results"]["test"], abs=SPOT_TOLERANCE)


def test_spot_check_the_baselines_on_all_training_data_reproduce_their_record():
    """Every baseline of the study but the frozen-MiniLM probe (it encodes every training sentence: minutes), refitted
    on all training data and tuned on validation again: the same test scores (no training noise: fitted to
    convergence; 0.002 for solver rounding across CPUs)."""
    record = read_record(studies.baseline_runs()[0].path(studies.STUDIES_DIR))
    assert record is not None, "the baselines are not recorded: run `python -m mtl.extras.studies baselines`"
    again = studies.baselines_on_all_data(CHEAP_BASELINES)
    assert set(again["test"]) == set(CHEAP_BASELINES)
    for method, scores in again["test"].items():
        assert scores == pytest.approx(record["results"]["test"][method], abs=0.002), method


def test_a_sharing_setup_trains_its_models_on_the_datasets_it_names_and_records_them(monkeypatch):
    """``execute`` of a sharing run, at a tiny budget: the topic-only model with the lead sentences' topics draws
    batches from the topic and the NER datasets (the NER sentences carry their article's topic), and the record
    holds that model's kept epoch, its test scores and one prediction per test example. (A full-scale sharing run
    takes minutes per epoch: the study's records are re-scored by the test above, and reproduced when rerun.)"""
    small = lambda tasks, split, limit=None, seed=0: load_datasets(tasks, split, 48, seed)  # noqa: E731
    monkeypatch.setattr(recipe, "load_datasets", small)
    monkeypatch.setattr(studies, "_tests", lambda tasks: small(tasks, "test"))
    monkeypatch.setattr(studies, "FULL_RECIPE", studies.replace(studies.FULL_RECIPE, epochs=1))
    seen = []
    train = recipe.train
    monkeypatch.setattr(recipe, "train", lambda model, train_sets, *args, **kw: seen.append(train_sets) or
                        train(model, train_sets, *args, **kw))
    params = {**SHARING_RUN.params, "models": [{**m, "steps": 3} for m in SHARING_RUN.params["models"]]}
    run = studies.StudyRun("sharing", SHARING_RUN.setup, 0, params)
    result = studies.execute(run)
    assert [sorted(sets) for sets in seen] == [["ner", "topic"]]
    assert all("topic" in ex.labels for ex in seen[0]["ner"])  # the NER sentences lend their article's topic
    assert [list(m["tasks"]) for m in result["models"]] == [["topic"]] and result["models"][0]["kept_epoch"] == 1
    assert set(result["test"]) == {"topic/accuracy", "topic/macro_f1"}
    assert len(result["predictions"]["topic"]) == 48


def test_the_sharing_studys_multi_task_setup_is_the_recipe_study_and_is_read_from_its_records():
    """The multi-task setup trains exactly what a recipe run trains (all tasks, every task's data, no label dropped,
    one epoch of all training data), so the sharing study has no run of its own for it and reads the recipe's."""
    sizes, steps = studies.full_epoch()
    multi = setups.study_setups(sizes, steps)["multi-task"]
    assert multi == [setups.SetupModel(tuple(recipe.TASKS), steps)]
    recipe_config = studies.recipe_runs((0,))[0].params["config"]
    assert recipe_config["steps_per_epoch"] == steps and recipe_config["freeze"] == studies.FULL_RECIPE.freeze
    assert "multi-task" not in {run.setup for run in studies.sharing_runs()}


def test_trainable_parameters_follow_each_methods_freezing_and_gradual_unfreezings_stages():
    table = studies.trainable_parameters()
    blocks = [name for name in table.index if name.startswith("layer.")]
    head, total = table.loc["head.sentiment"], table.loc["total"]
    assert (table.drop(index="total").sum() == total).all()
    assert (head > 0).all() and total["heads only"] == head["heads only"]  # the encoder frozen: the head alone
    assert (table.loc[blocks[-2:], "top-2"] > 0).all() and (table.loc[["embeddings", *blocks[:-2]], "top-2"] == 0).all()
    assert (table.loc[blocks, "LoRA r=8"] > 0).all() and table.loc["embeddings", "LoRA r=8"] == 0
    assert (table.loc[blocks, "LoRA r=8"] < table.loc[blocks, "full fine-tuning"] / 50).all()  # adapters only
    stages = [column for column in table if column.startswith("gradual + discriminative")]
    assert [table[column].tolist() for column in stages] == [table[method].tolist() for method in
                                                              ("heads only", "top-2", "full fine-tuning")]


def test_tuned_curves_and_the_family_grid_summarise_the_recorded_cells(tmp_path, monkeypatch):
    monkeypatch.setattr(studies, "STUDIES_DIR", tmp_path)
    write_grid(tmp_path, lambda method, rate, seed: 0.6 if rate == studies.LR_GRID[method][1] else 0.5)
    gold = [studies.TASK_LABELS["sentiment"].index(ex.labels["sentiment"])
            for ex in load_datasets(["sentiment"], "test")["sentiment"]]
    rng = np.random.default_rng(0)
    scores = {}
    for run in studies.tuned_runs(seeds=(0, 1, 2), sizes=(250,)):
        if run.setup.startswith("LoRA"):
            continue  # a cell not recorded yet
        predicted = [g if rng.random() < (0.8 if run.setup.startswith("top-2") else 0.5) else (g + 1) % 3 for g in gold]
        test = studies.ev.flat_scores({"sentiment": studies.expand("sentiment", predicted, load_datasets(
            ["sentiment"], "test")["sentiment"])})["sentiment/macro_f1"]
        scores.setdefault(run.setup.split(",")[0], []).append(test)
        write_record(run.path(tmp_path), fake_record(run, 0.6, test, predicted))
    curves = studies.tuned_curves().set_index(["method", "train_size"])
    assert curves.loc[("top-2", 250), "mean"] == pytest.approx(np.mean(scores["top-2"]))
    assert curves.loc[("top-2", 250), "std"] == pytest.approx(np.std(scores["top-2"], ddof=1))
    assert curves.loc[("heads only", 1000), "seeds"] == 2  # the grid's seeds of the chosen rate count at 1,000
    assert list(dict.fromkeys(curves.index.get_level_values("method"))) == list(studies.METHODS)  # the ladder's order
    assert ("LoRA r=8", 250) not in curves.index and ("LoRA r=8", 1000) in curves.index  # from the grid's records
    monkeypatch.setattr(studies, "TUNED_SIZES", (250, None))  # the fake grid records keep no predictions
    table = studies.what_to_freeze()
    cells = studies.freezing_cells(table)
    assert list(cells.columns) == ["n=250", "n=all"] and "heads only" not in cells.index
    assert cells.loc["top-2", "n=250"] == "better" == table.loc["top-2 - heads only, n=250", "verdict"]
    assert cells.loc["LoRA r=8", "n=250"] == cells.loc["top-2", "n=all"] == "not recorded yet"
    assert (cells != "not recorded yet").sum().sum() == len(table)
    grid = studies.grid_table()
    assert grid.chosen.sum() == len(studies.METHODS) and not grid["added by the amendment"].any()
    assert grid.loc[("LoRA r=8", studies.LR_GRID["LoRA r=8"][1]), "sets"] == "adapters"
    assert (grid.loc[grid.chosen, "validation macro-F1"] == 0.6).all()


def fake_record(run, validation: float, test: float, predicted=None) -> dict:
    """A record of ``run`` as the runner writes it, with the given kept-epoch validation and test macro-F1."""
    results = {"validation": {"sentiment/macro_f1": validation}, "test": {"sentiment/macro_f1": test},
               "kept_epoch": 1, "epochs_run": 1, "train_size": run.params.get("train_size")}
    if predicted is not None:
        results["predictions"] = {"sentiment": predicted}
    return {**run.definition(), "digest": run.digest(), "seconds": 1.0, "provenance": {"commit": "abc1234"},
            "results": results}


def write_grid(directory, validation, test=lambda v: 0.5, methods=None):
    """Fake grid records: ``validation(method, rate, seed)`` as each run's kept-epoch validation macro-F1."""
    for run in studies.grid_runs(methods):
        method, rate = run.setup.split(", lr=")[0], float(run.setup.split("lr=")[1].split(",")[0])
        v = validation(method, rate, run.seed)
        write_record(run.path(directory), fake_record(run, v, test(v)))


def test_learning_rates_are_chosen_on_validation_and_never_read_test_scores(tmp_path, monkeypatch):
    """The grid's choice follows the validation scores, whatever the test scores say (here the opposite)."""
    monkeypatch.setattr(studies, "STUDIES_DIR", tmp_path)
    best = {method: rates[1] for method, rates in studies.LR_GRID.items()}  # inside every grid
    score = lambda method, rate, seed: 0.6 if rate == best[method] else 0.5 + 0.01 * seed  # noqa: E731
    for test in (lambda v: 1 - v, lambda v: v):
        write_grid(tmp_path, score, test)
        assert studies.chosen_rates() == best
    low, middle, high = studies.LR_GRID["heads only"]
    write_grid(tmp_path, lambda method, rate, seed: 0.5 if rate == low else 0.6, methods=["heads only"])
    assert studies.chosen_rates()["heads only"] == middle  # a tie: the smaller rate
    write_grid(tmp_path, lambda method, rate, seed: 0.6, methods=["heads only"])
    assert studies.rate_grid("heads only")[0][0] < low and "heads only" not in studies.chosen_rates()  # at the edge


def test_a_rate_chosen_at_the_edge_of_its_grid_extends_the_grid_until_it_is_inside(tmp_path, monkeypatch):
    monkeypatch.setattr(studies, "STUDIES_DIR", tmp_path)
    grid = list(studies.LR_GRID["full fine-tuning"])  # 2e-5, 6e-5, 2e-4
    rising = lambda method, rate, seed: min(rate, 7e-4) * 100  # noqa: E731  best at 7e-4 and above
    write_grid(tmp_path, rising, methods=["full fine-tuning"])
    rates, chosen = studies.rate_grid("full fine-tuning")
    assert rates == grid + [pytest.approx(6.67e-4)] and chosen is None  # one step of the grid's factor, not yet run
    write_grid(tmp_path, rising, methods=["full fine-tuning"])  # the new rate recorded: still the best, at the edge
    rates, chosen = studies.rate_grid("full fine-tuning")
    assert len(rates) == 5 and chosen is None
    write_grid(tmp_path, lambda method, rate, seed: 0.6 - abs(rate - 6.67e-4), methods=["full fine-tuning"])
    assert studies.rate_grid("full fine-tuning")[1] == pytest.approx(6.67e-4)  # inside the grid now


def test_what_to_freeze_compares_each_method_with_heads_only_over_shared_seeds(tmp_path, monkeypatch):
    monkeypatch.setattr(studies, "STUDIES_DIR", tmp_path)
    monkeypatch.setattr(studies, "TUNED_SIZES", (250,))
    write_grid(tmp_path, lambda method, rate, seed: 0.6 if rate == studies.LR_GRID[method][1] else 0.5)
    gold = [studies.TASK_LABELS["sentiment"].index(ex.labels["sentiment"])
            for ex in load_datasets(["sentiment"], "test")["sentiment"]]
    rng = np.random.default_rng(0)
    for run in studies.tuned_runs(seeds=(0, 1, 2), sizes=(250,)):
        method = run.setup.split(",")[0]
        right = 0.8 if method == "top-2" else 0.5  # top-2 far better than heads only; the others alike
        predicted = [g if rng.random() < right else (g + 1) % 3 for g in gold]
        write_record(run.path(tmp_path), fake_record(run, 0.6, 0.5, predicted))
    table = studies.what_to_freeze()
    assert set(table.index) == {f"{m} - heads only, n=250" for m in studies.METHODS if m != "heads only"}
    assert (table.seeds == 3).all() and table.loc["top-2 - heads only, n=250", "verdict"] == "better"
    others = table.drop("top-2 - heads only, n=250")
    assert not others.verdict.isin(["better", "worse"]).any() and (others.p_holm >= others.p_value).all()


def test_provenance_problems_name_dirty_records_and_mixed_commits():
    run = studies.grid_runs()[0]
    clean = {**fake_record(run, 0.5, 0.5), "provenance": {"commit": "abc1234"}}
    assert studies.provenance_problems([clean, clean]) == []
    dirty = {**clean, "provenance": {"commit": "abc1234 dirty"}}
    assert "dirty tree" in studies.provenance_problems([clean, dirty])[0]
    other = {**clean, "provenance": {"commit": "def5678"}}
    assert studies.provenance_problems([clean, other]) == ["made at 2 commits: abc1234, def5678"]


@pytest.mark.parametrize("study", studies.CLEAN_STUDIES)
def test_every_record_of_a_planned_study_comes_from_one_clean_commit(study):
    found = [read_record(path) for path in sorted((studies.STUDIES_DIR / study).glob("*.json"))]
    assert studies.provenance_problems(found) == []


VERDICTS = ("better", "worse", "as good as", "not separated with 3 seeds")


def test_the_sharing_family_is_the_plans_eight_comparisons_with_each_tasks_margin():
    table, problems = studies.sharing_family()
    assert list(table.index) == [(f"{a} - {b}", task) for a, b, task in setups.COMPARISONS]
    assert (table.seeds == 3).all() and table.verdict.isin(VERDICTS).all()
    assert table.margin.to_dict() == {key: studies.MARGINS[key[1]] for key in table.index}
    assert (table.p_holm >= table.p_value).all() and (table.ci_low < table.difference).all()
    recorded = {r["seed"]: r["results"]["test"]["ner/entity_f1"] for r in studies.recorded("recipe")}
    assert table.loc[("multi-task - single-task", "ner"), "a"] == pytest.approx(np.mean(list(recorded.values())))
    assert any("dirty tree" in problem for problem in problems)  # the records predate the provenance rule


def test_against_baselines_pairs_every_seed_of_the_recipe_with_each_deterministic_baseline():
    table, problems = studies.against_baselines()
    assert list(table.index) == [(f"recipe - {method}", task) for method, tasks in studies.STUDY_BASELINES.items()
                                 for task in tasks]
    assert len(table) == studies.FAMILY_SIZE["against baselines"] == 8
    baseline = studies.recorded("baselines")[0]["results"]["test"]
    for (comparison, task), row in table.iterrows():  # b is the baseline's own recorded test score
        metric = "ner/entity_f1" if task == "ner" else f"{task}/macro_f1"
        assert row.b == pytest.approx(baseline[comparison.removeprefix("recipe - ")][metric])
    assert table.loc[("recipe - majority class", "topic"), "verdict"] == "better"
    assert (table.seeds == 3).all() and table.verdict.isin(VERDICTS).all()
    assert any(problem.startswith("baselines:") for problem in problems)


def test_single_task_steps_share_the_multi_task_schedule():
    sizes = {"topic": 1492, "sentiment": 2000, "ner": 2000}
    steps = setups.single_task_steps(sizes, 100, "temperature", 2.0)
    assert steps == {"topic": 30, "sentiment": 35, "ner": 35}
    assert setups.single_task_steps(sizes, 60, "round_robin") == {"topic": 20, "sentiment": 20, "ner": 20}
    assert setups.single_task_steps({"a": 1, "b": 10_000}, 3, "proportional") == {"a": 1, "b": 3}  # at least 1 step
