import numpy as np
import pytest

import mtl.baselines
from mtl.baselines import majority, tfidf_logreg, vader_lexicon
from mtl.data import load_sentiment
from mtl.metrics import TaskPredictions, classification_scores


def test_majority_predicts_the_most_frequent_label():
    assert majority(["a", "b", "b"], 2) == ["b", "b"]


def test_tfidf_logreg_learns_a_separable_toy_task():
    train = ["goal match striker", "football goal", "stock market shares", "bank shares profit"] * 5
    labels = ["sport", "sport", "business", "business"] * 5
    predicted, probs = tfidf_logreg(train, labels, ["the striker scored a goal", "shares in the bank"])
    assert predicted == ["sport", "business"] and probs.shape == (2, 2)


def test_tfidf_logreg_is_fitted_to_the_optimum_not_to_a_solver_path(monkeypatch):
    """Predictions must not move when the tolerance tightens 100-fold: the optimum, not where lbfgs happened to stop
    (which depends on the CPU's kernels), decides them. With sklearn's default tol=1e-4 they do move."""
    train, test = load_sentiment("train")[:3000], load_sentiment("test")[:1500]
    fit = lambda: tfidf_logreg([ex.text for ex in train], [ex.labels["sentiment"] for ex in train],
                               [ex.text for ex in test])[0]
    converged = fit()
    monkeypatch.setattr(mtl.baselines, "LOGREG_TOL", mtl.baselines.LOGREG_TOL / 100)
    assert fit() == converged


def test_vader_lexicon_thresholds():
    assert vader_lexicon(["I love this wonderful film", "This is terrible and awful", "The box is on the table"]) == [
        "positive", "negative", "neutral"]


def test_classification_scores_count_never_predicted_classes():
    scores = classification_scores(["a", "b", "c"], ["a", "b", "b"], labels=["a", "b", "c"])
    assert scores["accuracy"] == pytest.approx(2 / 3)
    assert scores["macro_f1"] == pytest.approx((1 + 2 / 3 + 0) / 3)


def test_entity_f1_is_entity_level():
    preds = TaskPredictions("token", ("O", "B-PER", "I-PER"),
                            true=[["B-PER", "I-PER", "O"]], pred=[["B-PER", "O", "O"]])
    scores = preds.scores()
    assert scores["entity_f1"] == 0.0  # half an entity is a wrong entity
    assert scores["token_accuracy"] == pytest.approx(2 / 3)
