import numpy as np
import pytest

import mtl.evaluation.baselines
from sklearn.metrics import f1_score

from mtl.evaluation.baselines import LOGREG_GRID, fit_logreg, majority, tfidf_logreg, vader_lexicon
from mtl.data.examples import load_sentiment
from mtl.evaluation.metrics import TaskPredictions, classification_scores


def test_majority_predicts_the_most_frequent_label():
    assert majority(["a", "b", "b"], 2) == ["b", "b"]


def test_tfidf_logreg_learns_a_separable_toy_task():
    train = ["goal match striker", "football goal", "stock market shares", "bank shares profit"] * 5
    labels = ["sport", "sport", "business", "business"] * 5
    fit = tfidf_logreg(train, labels, ["the striker scored a goal", "shares in the bank"])
    assert fit.predictions == ["sport", "business"] and fit.probabilities.shape == (2, 2)
    assert fit.params == {"C": 10.0, "class_weight": None} and fit.validation_macro_f1 is None


def test_logreg_hyper_parameters_are_chosen_on_the_validation_split():
    """Imbalanced training data whose minority class only a class-weighted model predicts on validation: the grid
    must pick class_weight="balanced", and report that choice and its validation score."""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (95, 2)), rng.normal(1.2, 1, (5, 2))])
    y = ["common"] * 95 + ["rare"] * 5
    val_x = np.concatenate([rng.normal(0, 1, (50, 2)), rng.normal(1.2, 1, (50, 2))])
    val_y = ["common"] * 50 + ["rare"] * 50
    fit = fit_logreg(x, y, val_x, validation=(val_x, val_y))
    assert fit.params["class_weight"] == "balanced" and fit.params["C"] in LOGREG_GRID["C"]
    untuned = fit_logreg(x, y, val_x)
    untuned_f1 = f1_score(val_y, untuned.predictions, average="macro")
    assert fit.validation_macro_f1 == pytest.approx(f1_score(val_y, fit.predictions, average="macro"))
    assert fit.validation_macro_f1 > untuned_f1 + 0.1


def test_tfidf_logreg_is_fitted_to_the_optimum_not_to_a_solver_path(monkeypatch):
    """Predictions must not move when the tolerance tightens 100-fold: the optimum, not where lbfgs happened to stop
    (which depends on the CPU's kernels), decides them. With sklearn's default tol=1e-4 they do move. Tried at the
    grid's weakest regularisation, the slowest to converge."""
    train, test = load_sentiment("train")[:3000], load_sentiment("test")[:1500]
    monkeypatch.setitem(mtl.evaluation.baselines.LOGREG_GRID, "C", (max(mtl.evaluation.baselines.LOGREG_GRID["C"]),))  # hardest to fit
    texts = lambda examples: [ex.text for ex in examples]  # noqa: E731
    fit = lambda: tfidf_logreg(texts(train), [ex.labels["sentiment"] for ex in train], texts(test),
                               validation=(texts(test), [ex.labels["sentiment"] for ex in test])).predictions
    converged = fit()
    monkeypatch.setattr(mtl.evaluation.baselines, "LOGREG_TOL", mtl.evaluation.baselines.LOGREG_TOL / 100)
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


def test_validation_scores_each_task_on_its_own_dataset_and_reports_the_others(tiny_model):
    """Model selection must see the population the test measures: topic on the headlines, not pooled with the NER
    sentences' topics, which are reported separately; a task without a dataset of its own is pooled."""
    from mtl.evaluation.predictions import evaluate
    from mtl.multitask.tasks import load_datasets

    val = load_datasets(["topic", "ner"], "validation", limit=12)
    scores = evaluate(tiny_model, val)
    assert scores["topic/accuracy"] == evaluate(tiny_model, {"topic": val["topic"]})["topic/accuracy"]
    assert scores["topic@ner/accuracy"] == evaluate(tiny_model, {"x": val["ner"]})["topic/accuracy"]  # pooled: one set
    assert "ner/entity_f1" in scores and not any(key.startswith("sentiment") for key in scores)


def test_ner_is_scored_on_whole_sentences_words_past_the_length_limit_count_as_o(tiny_model):
    from mtl.data.examples import Example
    from mtl.evaluation.predictions import predict

    words = tuple(f"w{i}" for i in range(60))  # far more than max_seq_length=32 word pieces
    tags = ["B-PER"] + ["O"] * 58 + ["B-LOC"]  # the last entity lies past the limit
    preds = predict(tiny_model, [Example(" ".join(words), {"ner": tags}, words)], tasks=["ner"])["ner"]
    assert preds.true == [tags] and len(preds.pred[0]) == 60
    assert preds.pred[0][-20:] == ["O"] * 20  # never seen by the model: predicted "O", so the LOC entity is missed


def _toy_sets():
    from mtl.data.examples import Example
    topic = [("goal match striker", "sport"), ("football goal", "sport"), ("stock market shares", "business"),
             ("bank shares profit", "business")]
    ner = [(("Paris", "is", "big"), ("B-LOC", "O", "O")), (("Anna", "is", "here"), ("B-PER", "O", "O"))]  # tuples, as loaded
    sets = {"topic": [Example(t, {"topic": y}) for t, y in topic * 5],
            "ner": [Example(" ".join(w), {"ner": tags}, w) for w, tags in ner * 3]}
    test = {"topic": [Example("the striker scored a goal", {"topic": "sport"}),
                      Example("shares in the bank", {"topic": "business"})],
            "ner": [Example("Anna is in Paris", {"ner": ["B-PER", "O", "O", "B-LOC"]}, ("Anna", "is", "in", "Paris"))]}
    return sets, test


def test_fit_baselines_fits_each_method_on_the_tasks_it_applies_to_and_records_validation_choices():
    from mtl.evaluation.baselines import fit_baselines
    train, test = _toy_sets()
    fits = fit_baselines(train, test, test, {"majority class": ("topic", "ner"), "TF-IDF + LR": ("topic", "sentiment"),
                                             "most frequent tag per word": ("ner",)})
    assert fits.predictions["TF-IDF + LR"] == {"topic": ["sport", "business"]}  # sentiment: not in the test sets
    assert fits.predictions["majority class"]["ner"] == [["O"] * 4]  # token task: the most frequent tag, per word
    assert len(fits.predictions["majority class"]["topic"]) == 2
    assert fits.predictions["most frequent tag per word"]["ner"] == [["B-PER", "O", "O", "B-LOC"]]
    assert set(fits.choices) == {("TF-IDF + LR", "topic")}  # only fitted models have choices
    assert fits.choices["TF-IDF + LR", "topic"]["validation macro-F1"] == pytest.approx(1.0)
    named = fit_baselines(train, test, test, {"majority class": ("topic",), "TF-IDF + LR": ("topic",)}, suffix=" (x)")
    assert list(named.predictions) == ["majority class", "TF-IDF + LR (x)"]  # only the tuned regressions are renamed
    assert list(named.choices) == [("TF-IDF + LR (x)", "topic")]


def test_fit_baselines_rejects_unknown_methods_and_a_probe_without_its_encoder():
    from mtl.evaluation.baselines import fit_baselines
    train, test = _toy_sets()
    with pytest.raises(KeyError, match="Unknown baseline"):
        fit_baselines(train, test, test, {"nearest neighbour": ("topic",)})
    with pytest.raises(ValueError, match="encoder"):
        fit_baselines(train, test, test, {"frozen MiniLM + LR": ("topic",)})
