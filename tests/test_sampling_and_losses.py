import numpy as np
import pytest
import torch

from mtl.training.losses import LossWeighting
from mtl.training.sampling import task_probabilities, task_schedule

SIZES = {"topic": 100, "sentiment": 900}


def test_probabilities_of_each_strategy():
    assert task_probabilities(SIZES, "proportional") == pytest.approx({"topic": 0.1, "sentiment": 0.9})
    assert task_probabilities(SIZES, "round_robin") == pytest.approx({"topic": 0.5, "sentiment": 0.5})
    assert task_probabilities(SIZES, "temperature", 2.0) == pytest.approx({"topic": 0.25, "sentiment": 0.75})
    assert task_probabilities(SIZES, "temperature", 1.0) == pytest.approx(task_probabilities(SIZES, "proportional"))


def test_schedule_follows_the_probabilities_and_is_seeded():
    schedule = task_schedule(SIZES, "temperature", 4000, np.random.default_rng(0))
    assert abs(schedule.count("topic") / 4000 - 0.25) < 0.03
    assert schedule == task_schedule(SIZES, "temperature", 4000, np.random.default_rng(0))
    assert task_schedule(SIZES, "round_robin", 4, np.random.default_rng(0)) == ["topic", "sentiment"] * 2


@pytest.mark.parametrize("bad", [{"strategy": "random"}, {"sizes": {"a": 0}}, {"temperature": 0.0}])
def test_bad_sampling_arguments_are_errors(bad):
    args = {"sizes": SIZES, "strategy": "temperature", "temperature": 2.0} | bad
    with pytest.raises(ValueError):
        task_probabilities(**args)


def test_fixed_weights_and_unknown_task():
    losses = {"topic": torch.tensor(2.0), "sentiment": torch.tensor(1.0)}
    assert LossWeighting(list(SIZES), "fixed", {"topic": 0.5})(losses).item() == pytest.approx(2.0)
    with pytest.raises(KeyError, match="unknown task"):
        LossWeighting(list(SIZES), "fixed", {"ner": 1.0})


def test_uncertainty_weighting_learns_to_down_weight_the_noisier_task():
    weighting = LossWeighting(list(SIZES), "uncertainty")
    optimizer = torch.optim.SGD(weighting.parameters(), lr=0.1)
    for _ in range(200):  # constant losses: the optimum of exp(-s) L + s is s = log L
        loss = weighting({"topic": torch.tensor(4.0), "sentiment": torch.tensor(0.5)})
        optimizer.zero_grad(); loss.backward(); optimizer.step()
    weights = weighting.current_weights()
    assert weights["topic"] == pytest.approx(1 / 4.0, rel=0.05) and weights["sentiment"] == pytest.approx(2.0, rel=0.05)
