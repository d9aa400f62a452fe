"""mtl.extras.notebooks.experiments: scenarios x seeds give one row each and the validation predictions behind it;
``compare_scenarios`` pairs two scenarios by example and seed."""
from __future__ import annotations

import pytest

from mtl.extras.notebooks.experiments import Scenario, compare_scenarios, run_scenarios
from mtl.evaluation.metrics import main_score
from mtl.multitask.tasks import load_datasets
from mtl.training.train import TrainConfig

TASKS = ("topic", "sentiment")
BASE = TrainConfig(epochs=1, steps_per_epoch=2, batch_size=8, head_lr=1e-2, patience=None, progress=False)
SCENARIOS = {
    "untrained": Scenario(backbone="scratch", train=False),
    "heads": Scenario(backbone="scratch", config=dict(freeze=["encoder"])),
    "sentiment on top": Scenario(backbone="scratch", start_from="heads", train_tasks=("sentiment",)),
}


@pytest.fixture(scope="module")
def study():
    train_sets, val_sets = load_datasets(TASKS, "train", limit=16), load_datasets(TASKS, "validation", limit=12)
    return run_scenarios(SCENARIOS, (0, 1), TASKS, train_sets, val_sets, BASE, max_seq_length=32), val_sets


def test_every_scenario_and_seed_gives_a_row_scored_from_its_predictions(study):
    (rows, predictions), val_sets = study
    assert list(zip(rows.scenario, rows.seed)) == [(s, seed) for s in SCENARIOS for seed in (0, 1)]
    assert set(predictions) == {(s, seed) for s in SCENARIOS for seed in (0, 1)}
    for _, row in rows.iterrows():
        preds = predictions[row.scenario, row.seed]
        assert set(preds) == set(TASKS) and len(preds["topic"].true) == len(val_sets["topic"])
        assert row["topic/macro_f1"] == pytest.approx(main_score(preds["topic"]))
    assert (rows.loc[rows.scenario == "untrained", "trainable"] == 0).all()
    heads = rows.loc[rows.scenario == "heads", "trainable"].iloc[0]
    assert 0 < heads < rows.loc[rows.scenario == "sentiment on top", "trainable"].iloc[0]  # all unfrozen after start


def test_compare_scenarios_pairs_scenarios_by_example_and_seed(study):
    (_, predictions), _ = study
    table = compare_scenarios(predictions, [("heads", "untrained"), ("heads", "heads")], "topic", n_resamples=200)
    assert list(table.columns) == ["a", "b", "difference", "ci_low", "ci_high", "p_value"]
    assert (table.dtypes == float).all()  # printed as numbers, as notebook 03 shows them
    same = table.loc["heads - heads"]
    assert same.difference == 0 and same.ci_low == 0 == same.ci_high
    row = table.loc["heads - untrained"]
    assert row.difference == pytest.approx(row.a - row.b) and row.ci_low <= row.difference <= row.ci_high
    with pytest.raises(KeyError, match="No seed has predictions of both"):
        compare_scenarios(predictions, [("heads", "nope")], "topic")


def test_a_scenario_must_start_from_a_known_earlier_one():
    with pytest.raises(KeyError, match="unknown scenario"):
        run_scenarios({"b": Scenario(start_from="a")}, (0,), TASKS, {}, {}, BASE)
