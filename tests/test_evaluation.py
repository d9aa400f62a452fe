"""mtl.extras.notebooks.reports, the paired comparisons of mtl.evaluation.compare, the calibration helpers of
mtl.evaluation.metrics, and the
calibration plots of mtl.extras.notebooks.plots (notebook 05)."""
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from seqeval.metrics import f1_score as seqeval_f1
from sklearn.metrics import f1_score

from mtl.extras.notebooks import recipe
from mtl.data.examples import Example
from mtl.evaluation.baselines import most_frequent_tag
from mtl.extras.notebooks.reports import (class_report, confident_mistakes, confusion, entity_report, inference_cost,
                                          label_scores, label_table, mean_std, paired_by_group, predict_tests,
                                          prediction_frame, scores_by, sentence_report, subset, through_cache)
from mtl.extras.notebooks.sharing import Run, seed_study, single_task_steps
from mtl.evaluation.metrics import TaskPredictions, example_statistics, expected_calibration_error, main_score, reliability_table
from mtl.evaluation.compare import compare, compare_runs, compare_scores, resampling_weights, separated, shared_seeds
from mtl.multitask.heads import head_type
from mtl.extras.notebooks.plots import projection_scatter, reliability_diagram
from mtl.encoder.prefix_cache import PrefixCache
from mtl.multitask.tasks import load_datasets, stratified_positions

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


def test_reliability_diagram_and_projection_scatter_draw():
    rng = np.random.default_rng(0)
    fig, axes = plt.subplots(1, 2)
    reliability_diagram(axes[0], reliability_table(rng.random(50), rng.random(50) < 0.5), "calibration")
    projection_scatter(axes[1], rng.normal(size=(30, 2)), ["x", "y", "z"] * 10, "projection", order=["z", "y", "x"])
    assert len(axes[0].patches) >= 1 and axes[1].get_legend() is not None
    plt.close(fig)


# ---- reports ----------------------------------------------------------------------------------------------------

def test_sentence_report_matches_scikit_learn():
    preds = random_sentence_preds(np.random.default_rng(0))
    report = sentence_report(preds)
    assert report["macro_f1"] == pytest.approx(f1_score(preds.true, preds.pred, average="macro"))
    assert report["n"] == 200 and 0.5 < report["roc_auc_ovr"] <= 1.0
    assert set(report) == {"n", "accuracy", "macro_precision", "macro_recall", "macro_f1", "roc_auc_ovr"}


def test_roc_auc_is_one_for_perfectly_ranked_probabilities():
    true = ["a", "b", "c", "a"]
    probs = [[0.6, 0.3, 0.1], [0.1, 0.6, 0.3], [0.2, 0.2, 0.6], [0.5, 0.2, 0.3]]
    assert sentence_report(sentence_preds(true, true, probs))["roc_auc_ovr"] == pytest.approx(1.0)


def test_class_report_per_class_in_label_order_and_its_macro_mean_is_macro_f1():

    preds = sentence_preds(["a", "a", "b", "c"], ["a", "b", "b", "a"])
    report = class_report(preds)
    assert list(report.index) == list(LABELS) and list(report.columns) == ["precision", "recall", "f1", "support"]
    assert report.loc["a", "precision"] == pytest.approx(0.5) and report.loc["a", "recall"] == pytest.approx(0.5)
    assert report.loc["c"].tolist() == [0.0, 0.0, 0.0, 1]  # never predicted right
    assert report.f1.mean() == pytest.approx(sentence_report(preds)["macro_f1"])


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
        sentence_report(TaskPredictions("token", TAGS, [0], [["O"]], [["O"]]))


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


def test_compare_of_accuracy_matches_the_accuracy_difference():
    rng = np.random.default_rng(5)
    true = rng.choice(LABELS, size=300)
    a = sentence_preds(true, np.where(rng.random(300) < 0.8, true, "a"))
    b = sentence_preds(true, np.where(rng.random(300) < 0.7, true, "b"))
    accuracy = lambda p: np.mean(np.asarray(p.true) == np.asarray(p.pred))  # noqa: E731
    result = compare([a], [b], n_resamples=300, metric="accuracy")
    assert result["metric"] == "accuracy" and result["difference"] == pytest.approx(accuracy(a) - accuracy(b))
    assert result["ci_low"] < result["difference"] < result["ci_high"]
    assert compare([a], [b], n_resamples=300)["difference"] != pytest.approx(result["difference"])  # macro-F1
    token = TaskPredictions("token", TAGS, [0], [["O"]], [["O"]])
    with pytest.raises(ValueError, match="entity_f1"):
        compare([token], [token], metric="accuracy")


def test_compare_of_identical_models_finds_no_difference():
    rng = np.random.default_rng(2)
    seeds = [random_sentence_preds(rng) for _ in range(3)]
    result = compare(seeds, seeds, n_resamples=300)
    assert result["difference"] == 0.0 and result["p_value"] == 1.0
    assert result["ci_low"] == result["ci_high"] == 0.0 and result["seeds"] == 3 and result["examples"] == 200


def test_compare_detects_a_real_difference_and_not_a_tiny_one():
    rng = np.random.default_rng(3)
    true = rng.choice(LABELS, size=400)
    better = [sentence_preds(true, np.where(rng.random(400) < 0.9, true, "a")) for _ in range(3)]
    worse = [sentence_preds(true, np.where(rng.random(400) < 0.6, true, "a")) for _ in range(3)]
    clear = compare(better, worse, n_resamples=500)
    assert clear["difference"] > 0.15 and clear["p_value"] < 0.01 and clear["ci_low"] > 0
    assert clear["ci_low"] <= clear["difference"] <= clear["ci_high"]
    nudged = [sentence_preds(p.true, p.pred[:-1] + [p.true[-1]]) for p in worse]  # one more example right
    small = compare(nudged, worse, n_resamples=500)
    assert 0 < small["difference"] < 0.01 and small["p_value"] > 0.05
    assert separated(clear) and not separated(small)
    table = pd.DataFrame([clear, small, compare(worse, better, n_resamples=500)])  # a whole table: per row
    assert separated(table).tolist() == [True, False, True]


def test_compare_is_reproducible_and_works_for_token_tasks():
    rng = np.random.default_rng(4)
    true = random_tag_sequences(rng)
    a = [TaskPredictions("token", TAGS, list(range(len(true))), true, [list(t) for t in true])]
    b = [TaskPredictions("token", TAGS, list(range(len(true))), true, [["O"] * len(t) for t in true])]
    first, second = compare(a, b, 200, seed=7), compare(a, b, 200, seed=7)
    assert first == second and first["metric"] == "entity_f1" and first["difference"] == pytest.approx(1.0)


def test_compare_rejects_unpaired_input():
    a = sentence_preds(["a", "b"], ["a", "b"], index=[0, 1])
    with pytest.raises(ValueError, match="same test examples"):
        compare([a], [sentence_preds(["a", "b"], ["a", "b"], index=[0, 2])])
    with pytest.raises(ValueError, match="number of seeds"):
        compare([a, a], [a])


def test_resampling_weights_draw_n_examples_per_resample_reproducibly_in_chunks():
    chunks = list(resampling_weights(7, 600, seed=3))
    assert [len(chunk) for chunk in chunks] == [250, 250, 100]
    weights = np.concatenate(chunks)
    assert weights.shape == (600, 7) and (weights.sum(1) == 7).all() and (weights.max(1) > 1).any()  # replacement
    assert (weights == np.concatenate(list(resampling_weights(7, 600, seed=3)))).all()
    assert (weights != np.concatenate(list(resampling_weights(7, 600, seed=4)))).any()
    with pytest.raises(ValueError, match="1 example and 1 resample"):
        next(resampling_weights(7, 0))


def test_compare_scores_takes_any_score_of_the_resampled_examples():
    rng = np.random.default_rng(11)
    values = rng.normal(size=(3, 50))  # one score per example and seed: the mean is the method's score

    def mean_of(rows):
        return lambda weights: (weights @ rows.T).T / weights.sum(1)  # (S, m)

    result = compare_scores(mean_of(values + 1.0), mean_of(values), 50, n_resamples=200)
    assert result["difference"] == pytest.approx(1.0) and result["ci_low"] == pytest.approx(1.0)
    assert result["seeds"] == 3 and result["examples"] == 50 and result["p_value"] == pytest.approx(1 / 201)
    single = compare_scores(mean_of(values), mean_of(values[:1]), 50, n_resamples=200)  # one seed: every seed's
    assert single["seeds"] == 3 and single["b"] == pytest.approx(values[0].mean())
    with pytest.raises(ValueError, match="same number of seeds"):
        compare_scores(mean_of(values), mean_of(values[:2]), 50)


def test_compare_runs_pairs_the_seeds_both_runs_have():
    rng = np.random.default_rng(12)
    true = rng.choice(LABELS, size=100)
    predictions = {(run, seed): {"t": sentence_preds(true, np.where(rng.random(100) < accuracy, true, "a"))}
                   for run, accuracy, seeds in [("x", 0.9, (0, 1, 2)), ("y", 0.6, (1, 2, 3))] for seed in seeds}
    assert shared_seeds(predictions, "x", "y") == [1, 2]
    result = compare_runs(predictions, "x", "y", "t", n_resamples=100)
    assert result == compare([predictions["x", s]["t"] for s in (1, 2)], [predictions["y", s]["t"] for s in (1, 2)],
                             n_resamples=100)
    assert result["seeds"] == 2
    with pytest.raises(KeyError, match="No seed has predictions of both 'x' and 'z'"):
        compare_runs(predictions, "x", "z", "t")


def test_single_task_steps_share_the_multi_task_schedule():
    sizes = {"topic": 1492, "sentiment": 2000, "ner": 2000}
    steps = single_task_steps(sizes, 100, "temperature", 2.0)
    assert steps == {"topic": 30, "sentiment": 35, "ner": 35}
    assert single_task_steps(sizes, 60, "round_robin") == {"topic": 20, "sentiment": 20, "ner": 20}
    assert single_task_steps({"a": 1, "b": 10_000}, 3, "proportional") == {"a": 1, "b": 3}  # at least one step


def test_label_scores_of_sentence_and_token_predictions():
    topic = [Example("x", {"topic": "sports"}), Example("y", {"topic": "tech"})]
    assert label_scores("topic", topic, ["sports", "sports"]) == {"topic/accuracy": 0.5,
                                                                  "topic/macro_f1": pytest.approx((2 / 3) / 5)}
    words = ("Alice", "sings")
    ner = [Example("Alice sings", {"ner": ("B-PER", "O")}, words)]
    assert label_scores("ner", ner, [["B-PER", "O"]]) == {"ner/entity_f1": 1.0}
    assert label_scores("ner", ner, [["O", "O"]]) == {"ner/entity_f1": 0.0}
    with pytest.raises(ValueError, match="1 predictions for 2 examples"):
        label_scores("topic", topic, ["sports"])


def test_label_table_scores_each_method_on_all_or_some_positions():
    tests = {"topic": [Example("x", {"topic": "sports"}), Example("y", {"topic": "tech"})]}
    predictions = {"always sports": {"topic": ["sports", "sports"]}, "perfect": {"topic": ["sports", "tech"]}}
    table = label_table(predictions, tests)
    assert table.loc["always sports", "topic/accuracy"] == 0.5 and table.loc["perfect", "topic/accuracy"] == 1.0
    assert label_table(predictions, tests, {"topic": [0]}).loc["always sports", "topic/accuracy"] == 1.0


def test_stratified_positions_and_subset_pair_with_predictions_on_the_sample():
    examples = [Example(str(i), {"sentiment": "positive" if i % 4 else "negative"}) for i in range(40)]
    assert stratified_positions(examples, "sentiment", 40) == list(range(40))
    positions = sorted(stratified_positions(examples, "sentiment", 20, seed=1))
    assert len(positions) == 20
    assert sum(examples[i].labels["sentiment"] == "negative" for i in positions) == 5  # a quarter, as in the data
    preds = sentence_preds(["a", "b", "c", "a"], ["a", "a", "c", "b"], index=[3, 0, 2, 1])
    part = subset(preds, [1, 3])  # examples 1 and 3 become 0 and 1
    assert sorted(zip(part.index, part.true, part.pred)) == [(0, "a", "b"), (1, "a", "a")]
    assert len(part.probs) == 2


def test_mean_std_formats_each_group():
    frame = pd.DataFrame({"setup": ["x", "x", "y", "y"], "score": [0.5, 0.7, 0.1, 0.1]})
    table = mean_std(frame)
    assert table.loc["x", "score"] == "0.600 ± 0.141" and table.loc["y", "score"] == "0.100 ± 0.000"


# ---- error analysis ---------------------------------------------------------------------------------------------

def test_prediction_frame_confident_mistakes_and_scores_by_group():
    examples = [Example(f"text {i}", {"t": lab, "genre": g}) for i, (lab, g) in enumerate(
        [("a", "x"), ("b", "x"), ("c", "y"), ("a", "y")])]
    probs = [[0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.6, 0.2, 0.2], [0.9, 0.05, 0.05]]
    preds = sentence_preds(["c", "b", "a", "a"], ["a", "b", "b", "a"], [probs[i] for i in (2, 1, 0, 3)],
                           index=[2, 1, 0, 3])
    frame = prediction_frame(preds, examples, extra=["genre"])
    assert list(frame.index) == [0, 1, 2, 3] and list(frame.text) == ["text 0", "text 1", "text 2", "text 3"]
    assert list(frame.correct) == [False, True, False, True] and frame.loc[0, "confidence"] == pytest.approx(0.7)
    assert list(frame.genre) == ["x", "x", "y", "y"] and frame.loc[3, "p_a"] == pytest.approx(0.9)
    mistakes = confident_mistakes(frame, k=1)
    assert list(mistakes.index) == [0] and "p_a" not in mistakes
    by_genre = scores_by(frame, "genre", LABELS)
    assert by_genre.loc["x", "n"] == 2 and by_genre.loc["x", "accuracy"] == 0.5


def test_confident_mistakes_cuts_long_texts():
    frame = pd.DataFrame({"text": ["word " * 50], "true": ["a"], "pred": ["b"], "confidence": [0.9],
                          "correct": [False]})
    assert len(confident_mistakes(frame, width=20).text.iloc[0]) == 20


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


def test_inference_cost_counts_parameters_of_every_model(tiny_model):
    cost = inference_cost(tiny_model, [tiny_model, tiny_model], ["a short text", "another one"], repeats=1)
    params = sum(p.numel() for p in tiny_model.parameters())
    assert cost.parameters.tolist() == [params, 2 * params] and cost.models.tolist() == [1, 2]
    assert (cost.seconds > 0).all()


def test_seed_study_trains_every_setup_for_every_seed(monkeypatch):
    monkeypatch.setattr(recipe, "MODEL", dict(backbone="scratch", pooling="mean", max_seq_length=32))
    monkeypatch.setattr(recipe, "TRAIN_LIMIT", 24)
    tests = load_datasets(["topic", "ner"], "test", 10)
    study = seed_study([0, 1], 4, tests, PrefixCache(), tasks=("topic", "ner"), keep_models=[0], val_limit=8,
                       epochs=1)
    setups = ["multi-task", "multi-task, no lead topics", "single-task", "single-task, + lead topics"]
    assert study.seeds == [0, 1] and sorted(study.setups) == setups
    assert [run.steps for run in study.setups["single-task"]] == [2, 2]
    assert study.setups["single-task, + lead topics"] == [Run(("topic",), 4, ("topic", "ner"))]  # topic + NER steps
    scores = study.scores()
    assert list(scores.index) == [(setup, seed) for setup in setups for seed in (0, 1)]
    assert {"topic/accuracy", "topic/macro_f1", "ner/entity_f1"} <= set(scores.columns)
    assert np.isnan(scores.loc[("single-task, + lead topics", 0), "ner/entity_f1"])  # no NER head
    assert set(study.models) == {(setup, 0) for setup in setups}
    assert set(study.models["single-task", 0]) == {"topic", "ner"} and set(study.models["multi-task", 0]) == {"all"}
    result = compare_runs(study.predictions, "multi-task", "single-task", "topic", n_resamples=50)
    assert result["seeds"] == 2 and result["examples"] == 10
    with pytest.raises(KeyError, match="'single-task, \\+ lead topics' has no 'ner' predictions"):
        compare_runs(study.predictions, "single-task, + lead topics", "single-task", "ner")
    table = study.compare([("multi-task", "single-task", "topic"), ("multi-task", "multi-task", "ner")], 50)
    same = table.loc[("multi-task - multi-task", "ner")]
    assert same.difference == 0 and same["seed 0"] == 0 and not same.significant
    row = table.loc[("multi-task - single-task", "topic")]
    assert row.difference == pytest.approx(np.mean([row["seed 0"], row["seed 1"]]))  # the mean of the seeds' gaps


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


def test_paired_by_group_compares_within_each_group_only():
    rng = np.random.default_rng(6)
    true = rng.choice(LABELS, size=300)
    groups = ["x"] * 150 + ["y"] * 150
    a = sentence_preds(true, list(true[:150]) + ["a"] * 150)  # perfect on x, constant on y
    b = sentence_preds(true, ["a"] * 150 + list(true[150:]))  # the reverse
    table = paired_by_group(a, b, groups, n_resamples=200)
    assert list(table.index) == ["x", "y"] and list(table.examples) == [150, 150]
    assert table.loc["x", "ci_low"] > 0 and table.loc["y", "ci_high"] < 0
    assert table.loc["x", "difference"] == pytest.approx(-table.loc["y", "difference"], abs=0.05)
