"""mtl.multitask.task_kinds: a kind registered from outside the package works through model, training, prediction, scoring,
comparison and reports, with no change anywhere else (each kind is one object)."""
import pytest
import torch

from mtl.multitask import task_kinds
from mtl.data.examples import Example
from mtl.extras.notebooks.reports import confusion
from mtl.multitask.heads import TaskSpec
from mtl.evaluation.metrics import main_score, paired_bootstrap
from mtl.multitask.model import MultiTaskModel
from mtl.evaluation.predictions import evaluate, predict_examples
from mtl.multitask.task_kinds import IGNORE, SentenceKind
from mtl.training.train import TrainConfig, train


class FirstWordKind(SentenceKind):
    """A toy kind: one class per text like a sentence task, but read from the token embedding of the text's first
    word (its first piece) instead of the pooled vector; scored by accuracy only."""

    name, main_metric, metrics = "first-word", "accuracy", ("accuracy",)
    encoder_output, by_words = "token_embeddings", True

    def head_input_dim(self, encoder):
        return encoder.hidden_size

    def targets(self, label_ids, features):
        out = torch.full(features["input_ids"].shape, IGNORE, dtype=torch.long)  # (B, T)
        for row, label in enumerate(label_ids):
            if label is not None:
                out[row, min(task_kinds.first_pieces(features.word_ids(row)))] = label
        return out

    def _first(self, probs, word_ids):
        return probs[min(task_kinds.first_pieces(word_ids))]

    def gold_and_predicted(self, label, probs, word_ids, labels):
        return super().gold_and_predicted(label, self._first(probs, word_ids), word_ids, labels)

    def readable(self, probs, word_ids, text, spans, labels):
        return super().readable(self._first(probs, word_ids), word_ids, text, spans, labels)

    def scores(self, true, pred, labels):
        return {"accuracy": super().scores(true, pred, labels)["accuracy"]}


@pytest.fixture
def toy_kind():
    kind = task_kinds.register(FirstWordKind())
    yield kind
    del task_kinds.KINDS[kind.name]


def starts(examples_per_class=8):
    """Texts whose first word decides the label."""
    words = {"yes": ["Yes", "Sure", "Indeed", "Right"], "no": ["No", "Never", "Nope", "Wrong"]}
    return [Example(f"{first} the weather is fine today", {"start": label})
            for label, firsts in words.items() for first in firsts * (examples_per_class // 4)]


def test_an_unregistered_kind_is_refused_naming_the_registered_ones():
    with pytest.raises(ValueError, match="unknown kind 'first-word'.*'sentence', 'token'"):
        TaskSpec("start", "first-word", ("yes", "no"))


def test_a_registered_kind_trains_predicts_scores_and_compares(tiny_model, toy_kind):
    tiny_encoder = tiny_model.encoder  # the from-scratch backbone of conftest
    model = MultiTaskModel(tiny_encoder, [TaskSpec("start", "first-word", ("yes", "no")),
                                          TaskSpec("topic", "sentence", ("a", "b"))])
    assert model.heads["start"].net[-1].in_features == tiny_encoder.hidden_size  # reads token embeddings
    features, labels = model.collate(starts()[:2])
    assert labels["start"].shape == features["input_ids"].shape and (labels["start"] != IGNORE).sum() == 2
    with pytest.raises(ValueError, match="label 'maybe' is not in the label set"):
        model.check_examples([Example("Maybe so", {"start": "maybe"})], "toy data")

    data = starts()
    history = train(model, {"start": data}, {"start": data}, TrainConfig(epochs=3, batch_size=8, head_lr=1e-2,
                                                                          progress=False, cache_frozen=False))
    assert "val/start/accuracy" in history and history["val/main"].notna().all()  # selected on the kind's metric
    assert set(evaluate(model, {"start": data})) == {"start/accuracy"}

    preds = predict_examples(model, data)["start"]
    assert preds.kind == "first-word" and len(preds.true) == len(data) and len(preds.probs) == len(data)
    assert main_score(preds) == pytest.approx(preds.scores()["accuracy"])
    assert paired_bootstrap([preds], [preds], 100)["difference"] == 0
    matrix, order = confusion(preds)
    assert order == ["yes", "no"] and matrix.sum() == len(data)
    out = model.predict(["Never mind the weather"], tasks=["start"])
    assert set(out[0]["start"]) == {"label", "probs"}

