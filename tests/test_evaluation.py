"""mtl.extras.notebooks.reports, the calibration helpers of mtl.evaluation.metrics and the calibration plots of
mtl.extras.notebooks.plots (notebook 05)."""
import matplotlib.pyplot as plt
import numpy as np
import pytest
from seqeval.metrics import f1_score as seqeval_f1
from sklearn.metrics import f1_score

from mtl.extras.notebooks import recipe
from mtl.data.examples import Example
from mtl.evaluation.baselines import most_frequent_tag
from mtl.extras.notebooks.reports import (class_report, confusion, entity_report, predict_tests, prediction_frame,
                                          through_cache)
from mtl.evaluation.metrics import TaskPredictions, example_statistics, expected_calibration_error, main_score, reliability_table
from mtl.evaluation.compare import resampling_weights, shared_seeds
from mtl.multitask.heads import head_type
from mtl.extras.notebooks.plots import reliability_diagram
from mtl.encoder.prefix_cache import PrefixCache
from mtl.multitask.tasks import stratified_positions

LABELS = ("a", "b", "c")
TAGS = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC")


def sentence_preds(true, pred, probs=None, index=None) -> TaskPredictions:
    probs = probs if probs is not None else [np.eye(len(LABELS))[LABELS.index(p)] * 0.8 + 0.2 / 3 for p in pred]
    return TaskPredictions("sentence", LABELS, list(index if index is not None else range(len(true))), list(true),
                           list(pred), [np.asarray(p) for p in probs])


def random_sentence_preds(rng, n=200, accuracy=0.7) -> TaskPredictions:
    true = rng.choice(LABELS, size=n, p=[0.5, 0.3, 0.2])
    pred = np.where(rng.random(n) < accuracy, true, rng.choice(LABELS, size=n))
    return sentence_preds(true, pred)


def random_tag_sequences(rng, n=60):
    sequences = []
    for _ in range(n):
        length = int(rng.integers(3, 12))
        sequences.append([str(t) for t in rng.choice(TAGS, size=length, p=[0.6, 0.15, 0.1, 0.1, 0.05])])
    return sequences


# ---- calibration ------------------------------------------------------------------------------------------------

def test_ece_is_zero_when_accuracy_matches_confidence_in_every_bin():
    confidence = [0.75] * 4 + [0.25] * 4
    correct = [1, 1, 1, 0] + [1, 0, 0, 0]
    assert expected_calibration_error(confidence, correct) == pytest.approx(0.0)


def test_ece_of_confident_mistakes_is_their_confidence():
    assert expected_calibration_error([0.9, 0.95], [False, False]) == pytest.approx(0.925)


def test_ece_weights_bins_by_count():
    # bin (0.9, 1]: 3 predictions at 0.95, all right (gap 0.05); bin (0.5, 0.6]: 1 at 0.55, wrong (gap 0.55)
    ece = expected_calibration_error([0.95, 0.95, 0.95, 0.55], [1, 1, 1, 0])
    assert ece == pytest.approx((3 * 0.05 + 0.55) / 4)


def test_reliability_table_bins_are_right_closed_and_cover_zero_and_one():
    table = reliability_table([0.0, 0.1, 0.1001, 1.0], [1, 1, 0, 1], n_bins=10)
    assert list(table["count"]) == [2, 1, 0, 0, 0, 0, 0, 0, 0, 1]
    assert table["count"].sum() == 4 and np.isnan(table.accuracy[2])
    assert table.loc[0, "confidence"] == pytest.approx(0.05) and table.loc[1, "accuracy"] == 0.0


@pytest.mark.parametrize("confidence, correct", [([1.2], [1]), ([0.5, 0.5], [1]), ([], [])])
def test_reliability_table_rejects_bad_input(confidence, correct):
    with pytest.raises(ValueError):
        reliability_table(confidence, correct)


def test_reliability_diagram_draws_a_bar_per_bin():
    rng = np.random.default_rng(0)
    fig, ax = plt.subplots()
    reliability_diagram(ax, reliability_table(rng.random(50), rng.random(50) < 0.5), "calibration")
    assert len(ax.patches) >= 1
    plt.close(fig)


# ---- reports ----------------------------------------------------------------------------------------------------

def test_class_report_per_class_in_label_order_and_its_macro_mean_is_macro_f1():

    preds = sentence_preds(["a", "a", "b", "c"], ["a", "b", "b", "a"])
    report = class_report(preds)
    assert list(report.index) == list(LABELS) and list(report.columns) == ["precision", "recall", "f1", "support"]
    assert report.loc["a", "precision"] == pytest.approx(0.5) and report.loc["a", "recall"] == pytest.approx(0.5)
    assert report.loc["c"].tolist() == [0.0, 0.0, 0.0, 1]  # never predicted right
    assert report.f1.mean() == pytest.approx(preds.scores()["macro_f1"])


def test_entity_report_per_type_and_micro_average():
    true = [["B-PER", "I-PER", "O", "B-LOC"], ["B-LOC", "O"]]
    pred = [["B-PER", "I-PER", "O", "O"], ["B-LOC", "B-PER"]]
    report = entity_report(TaskPredictions("token", TAGS, [0, 1], true, pred))
    assert list(report.index) == ["LOC", "PER", "micro avg"]
    assert report.loc["PER", "precision"] == pytest.approx(0.5) and report.loc["PER", "recall"] == 1.0
    assert report.loc["LOC", "support"] == 2 and report.loc["LOC", "recall"] == pytest.approx(0.5)
    assert report.loc["micro avg", "f1"] == pytest.approx(seqeval_f1(true, pred))


def test_confusion_merges_bio_tags_into_entity_types():
    preds = TaskPredictions("token", TAGS, [0], [["B-PER", "I-PER", "O"]], [["B-LOC", "I-PER", "O"]])
    matrix, labels = confusion(preds)
    assert labels == ["O", "PER", "LOC"]
    assert matrix.tolist() == [[1, 0, 0], [0, 1, 1], [0, 0, 0]]
    sentence_matrix, sentence_labels = confusion(sentence_preds(["a", "b"], ["a", "a"]))
    assert sentence_labels == list(LABELS) and sentence_matrix[1, 0] == 1


def test_reports_reject_the_wrong_task_kind():
    with pytest.raises(ValueError, match="token task"):
        class_report(TaskPredictions("token", TAGS, [0], [["O"]], [["O"]]))


# ---- paired statistics ------------------------------------------------------------------------------------------

def test_example_statistics_reproduce_macro_f1_and_seqeval_entity_f1():
    rng = np.random.default_rng(1)
    preds = random_sentence_preds(rng)
    stats = example_statistics(preds)
    assert stats.shape == (200, 9)
    assert head_type("sentence").score_statistics(stats.sum(0)) == pytest.approx(
        f1_score(preds.true, preds.pred, labels=list(LABELS), average="macro", zero_division=0))
    true, pred = random_tag_sequences(rng), random_tag_sequences(rng)
    pred = [p[: len(t)] + ["O"] * (len(t) - len(p)) for t, p in zip(true, pred)]
    token = TaskPredictions("token", TAGS, list(range(len(true))), true, pred)
    assert head_type("token").score_statistics(example_statistics(token).sum(0)) == pytest.approx(seqeval_f1(true, pred))


def test_example_statistics_follow_example_order():
    shuffled = sentence_preds(["a", "b"], ["a", "a"], index=[1, 0])
    ordered = sentence_preds(["b", "a"], ["a", "a"], index=[0, 1])
    np.testing.assert_array_equal(example_statistics(shuffled), example_statistics(ordered))


def test_main_score_is_zero_without_predicted_entities():
    preds = TaskPredictions("token", TAGS, [0], [["B-PER", "O"]], [["O", "O"]])
    assert main_score(preds) == 0.0
    assert main_score(sentence_preds(["a", "b", "c"], ["a", "b", "c"])) == 1.0


def test_most_frequent_tag_memorises_words_and_defaults_to_o():
    train_words = [["Paris", "is", "big"], ["Paris", "Hilton"], ["Paris", "Hilton"]]
    train_tags = [["B-LOC", "O", "O"], ["B-PER", "I-PER"], ["B-PER", "I-PER"]]
    assert most_frequent_tag(train_words, train_tags, [["Paris", "Hilton", "sings"]]) == [["B-PER", "I-PER", "O"]]
    assert most_frequent_tag([["a"], ["a"]], [["B-LOC"], ["B-PER"]], [["a"]]) == [["B-LOC"]]  # tie: seen first


def test_score_statistics_of_a_class_never_seen_is_zero():
    stats = example_statistics(sentence_preds(["a", "a"], ["a", "a"]))
    assert head_type("sentence").score_statistics(stats.sum(0)) == pytest.approx(1 / 3)


def test_resampling_weights_draw_n_examples_per_resample_reproducibly_in_chunks():
    chunks = list(resampling_weights(7, 600, seed=3))
    assert [len(chunk) for chunk in chunks] == [250, 250, 100]
    weights = np.concatenate(chunks)
    assert weights.shape == (600, 7) and (weights.sum(1) == 7).all() and (weights.max(1) > 1).any()  # replacement
    assert (weights == np.concatenate(list(resampling_weights(7, 600, seed=3)))).all()
    assert (weights != np.concatenate(list(resampling_weights(7, 600, seed=4)))).any()
    with pytest.raises(ValueError, match="1 example and 1 resample"):
        next(resampling_weights(7, 0))


def test_shared_seeds_are_the_seeds_both_runs_have_in_order():
    predictions = {(run, seed): {} for run, seeds in [("x", (2, 0, 1)), ("y", (3, 1, 2))] for seed in seeds}
    assert shared_seeds(predictions, "x", "y") == [1, 2]
    assert shared_seeds(predictions, "x", "z") == []


def test_stratified_positions_keep_the_class_shares():
    examples = [Example(str(i), {"sentiment": "positive" if i % 4 else "negative"}) for i in range(40)]
    assert stratified_positions(examples, "sentiment", 40) == list(range(40))
    positions = sorted(stratified_positions(examples, "sentiment", 20, seed=1))
    assert len(positions) == 20
    assert sum(examples[i].labels["sentiment"] == "negative" for i in positions) == 5  # a quarter, as in the data


# ---- error analysis ---------------------------------------------------------------------------------------------

def test_prediction_frame_puts_each_prediction_beside_its_example():
    examples = [Example(f"text {i}", {"t": lab, "genre": g}) for i, (lab, g) in enumerate(
        [("a", "x"), ("b", "x"), ("c", "y"), ("a", "y")])]
    probs = [[0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.6, 0.2, 0.2], [0.9, 0.05, 0.05]]
    preds = sentence_preds(["c", "b", "a", "a"], ["a", "b", "b", "a"], [probs[i] for i in (2, 1, 0, 3)],
                           index=[2, 1, 0, 3])
    frame = prediction_frame(preds, examples, extra=["genre"])
    assert list(frame.index) == [0, 1, 2, 3] and list(frame.text) == ["text 0", "text 1", "text 2", "text 3"]
    assert list(frame.correct) == [False, True, False, True] and frame.loc[0, "confidence"] == pytest.approx(0.7)
    assert list(frame.genre) == ["x", "x", "y", "y"] and frame.loc[3, "p_a"] == pytest.approx(0.9)


# ---- models -----------------------------------------------------------------------------------------------------

def tiny_examples():
    topic = [Example(f"headline number {i} about {w}", {"topic": t}) for i, (w, t) in enumerate(
        [("markets", "business"), ("films", "entertainment"), ("votes", "politics"), ("goals", "sports"),
         ("phones", "tech")] * 2)]
    words = ("Alice", "met", "Bob", "in", "Paris")
    ner = [Example(" ".join(words), {"ner": ("B-PER", "O", "B-PER", "O", "B-LOC"), "topic": "politics"}, words)]
    return {"topic": topic, "ner": ner}


def test_through_cache_gives_the_same_predictions_and_restores_trainable_flags(tiny_model):
    tests = tiny_examples()
    plain = predict_tests(tiny_model, tests)
    flags = [p.requires_grad for p in tiny_model.parameters()]
    cache = PrefixCache()
    with through_cache(tiny_model, cache, ["bottom:2"]):
        cached = predict_tests(tiny_model, tests)
        assert tiny_model.encoder.prefix_cache is cache
    assert len(cache) > 0 and tiny_model.encoder.prefix_cache is None
    assert [p.requires_grad for p in tiny_model.parameters()] == flags
    assert set(plain) == {"topic", "ner"} and len(plain["topic"].true) == 10  # topic only on the headlines
    np.testing.assert_allclose(np.asarray(cached["topic"].probs), np.asarray(plain["topic"].probs), atol=1e-5)
    assert cached["ner"].pred == plain["ner"].pred


def test_the_controls_see_the_topic_data_they_claim(monkeypatch):
    """"+ lead topics" trains a topic-only model on the headlines and the NER sentences; "no lead topics" keeps the
    NER sentences but without their topic labels; validation is each task's own set either way."""
    seen = []
    monkeypatch.setattr(recipe, "TRAIN_LIMIT", 24)
    monkeypatch.setattr(recipe, "MODEL", dict(backbone="scratch", pooling="mean", max_seq_length=32))
    monkeypatch.setattr(recipe, "train", lambda model, train_sets, val_sets, config, **kw: seen.append(
        (list(model.tasks), train_sets, val_sets)))
    recipe.train_recipe(("topic",), datasets=("topic", "ner"), val_limit=8)
    recipe.train_recipe(("topic", "ner"), drop_labels=[("ner", "topic")], val_limit=8)
    (tasks, train_sets, val_sets), (_, dropped, _) = seen
    assert tasks == ["topic"] and set(train_sets) == {"topic", "ner"} and set(val_sets) == {"topic"}
    assert all("topic" in ex.labels for ex in train_sets["ner"])
    assert [ex.text for ex in dropped["ner"]] == [ex.text for ex in train_sets["ner"]]  # the same sentences
    assert not any("topic" in ex.labels for ex in dropped["ner"]) and all("ner" in ex.labels for ex in dropped["ner"])


