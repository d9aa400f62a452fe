"""mtl.multitask.heads: each head owns its kind (input, targets, loss, decoding, scores); the checkpoint layout of the
heads; and a head type added from outside the package works through model, training, prediction, scoring,
comparison and reports, with no change anywhere else."""
import pytest
import torch
import torch.nn.functional as F

from mtl.data.examples import Example
from mtl.evaluation.metrics import main_score
from mtl.evaluation.compare import compare_seeds
from mtl.evaluation.metrics import example_statistics
from mtl.evaluation.predictions import evaluate, predict
from mtl.extras.notebooks.reports import confusion
from mtl.multitask.heads import HEAD_TYPES, IGNORE, SentenceHead, TaskSpec, TokenHead, first_pieces, head_type
from mtl.multitask.model import MultiTaskModel
from mtl.multitask.tasks import build_model
from mtl.training.train import TrainConfig, train


class FirstWordHead(SentenceHead):
    """A toy head: one class per text like a sentence head, but read from the token embedding of the text's first
    word (its first piece) instead of the pooled vector; scored by accuracy only."""

    kind, main_metric, metrics = "first-word", "accuracy", ("accuracy",)
    encoder_output, by_words = "token_embeddings", True

    @staticmethod
    def input_dim(encoder):
        return encoder.hidden_size

    def targets(self, labels, features):
        out = torch.full(features["input_ids"].shape, IGNORE, dtype=torch.long)  # (B, T)
        for row, label in enumerate(labels):
            if label is not None:
                out[row, min(first_pieces(features.word_ids(row)))] = self.task.labels.index(self.checked(label))
        return out

    def gold_and_predicted(self, label, probs, word_ids):
        return super().gold_and_predicted(label, probs[min(first_pieces(word_ids))], word_ids)

    def readable(self, probs, word_ids, text, spans):
        return super().readable(probs[min(first_pieces(word_ids))], word_ids, text, spans)

    @classmethod
    def scores(cls, true, pred, labels):
        return {"accuracy": SentenceHead.scores(true, pred, labels)["accuracy"]}


@pytest.fixture
def first_word(monkeypatch):
    monkeypatch.setitem(HEAD_TYPES, "first-word", FirstWordHead)


def starts(examples_per_class=8):
    """Texts whose first word decides the label."""
    words = {"yes": ["Yes", "Sure", "Indeed", "Right"], "no": ["No", "Never", "Nope", "Wrong"]}
    return [Example(f"{first} the weather is fine today", {"start": label})
            for label, firsts in words.items() for first in firsts * (examples_per_class // 4)]


def test_an_unknown_kind_is_refused_naming_the_known_ones():
    with pytest.raises(ValueError, match="unknown kind 'first-word'.*'sentence', 'token'"):
        TaskSpec("start", "first-word", ("yes", "no"))
    with pytest.raises(ValueError, match="Unknown task kind 'first-word'; valid kinds are .*'sentence', 'token'"):
        head_type("first-word")
    assert head_type("sentence") is SentenceHead and head_type("token") is TokenHead


def test_heads_keep_the_checkpoint_layout(tiny_model):
    """``heads.<task>.net.<i>``: saved models and checkpoints of a linear or an MLP head load."""
    assert list(tiny_model.heads.state_dict()) == [f"{task}.net.1.{p}" for task in ("topic", "sentiment", "ner")
                                                   for p in ("weight", "bias")]
    assert tiny_model.heads["topic"].net[1].in_features == tiny_model.encoder.dim
    assert tiny_model.heads["ner"].net[1].in_features == tiny_model.encoder.hidden_size
    mlp = build_model(["topic"], backbone="scratch", max_seq_length=32, head_hidden_dim=8)
    assert [k for k in mlp.heads.state_dict() if k.endswith("weight")] == ["topic.net.1.weight", "topic.net.4.weight"]


def test_forward_with_targets_gives_the_summed_loss_and_weight_of_the_labelled_positions(tiny_model):
    example = Example("Tony Blair visited Washington", {"ner": ("B-PER", "I-PER", "O", "B-LOC"), "topic": "politics"},
                      ("Tony", "Blair", "visited", "Washington"))
    features, labels = tiny_model.collate([example, Example("No tags here", {"topic": "business"})])
    tiny_model.eval()
    encoded = tiny_model.encoder(features)
    ner = tiny_model.heads["ner"](encoded, labels["ner"])
    assert ner.logits.shape == (*features["input_ids"].shape, 9) and ner.weight == 4  # one tag per word
    assert torch.allclose(ner.loss, F.cross_entropy(ner.logits[labels["ner"] != IGNORE],
                                                    labels["ner"][labels["ner"] != IGNORE], reduction="sum"))
    weights = torch.arange(1.0, 6.0)  # (C,)
    topic = tiny_model.heads["topic"](encoded, labels["topic"], weights)
    assert topic.weight == weights[labels["topic"]].sum() and tiny_model.heads["topic"](encoded).loss is None


def test_scores_are_class_level_so_predictions_without_a_model_are_scored():
    assert SentenceHead.scores(["a", "b", "c"], ["a", "b", "b"], ["a", "b", "c"])["macro_f1"] == pytest.approx(5 / 9)
    true, pred = [["B-PER", "I-PER", "O"]], [["B-PER", "I-PER", "B-LOC"]]
    assert TokenHead.scores(true, pred, ()) == {"entity_f1": pytest.approx(2 / 3),
                                                "token_accuracy": pytest.approx(2 / 3)}
    with pytest.raises(ValueError, match="A token task's score is one of \\('entity_f1',\\), got 'accuracy'"):
        TokenHead.check_metric("accuracy")
    assert TokenHead.balanced_class_weights(true, ("O", "B-PER")) is None
    weights = SentenceHead.balanced_class_weights(["a", "a", "b"], ["a", "b", "c"])  # n / (C n_c), unseen 1
    assert weights.tolist() == pytest.approx([0.75, 1.5, 1])


def test_a_new_head_type_trains_predicts_scores_and_compares(tiny_model, first_word):
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
    assert "val/start/accuracy" in history and history["val/main"].notna().all()  # selected on the head's metric
    assert set(evaluate(model, {"start": data})) == {"start/accuracy"}

    preds = predict(model, data)["start"]
    assert preds.kind == "first-word" and len(preds.true) == len(data) and len(preds.probs) == len(data)
    assert main_score(preds) == pytest.approx(preds.scores()["accuracy"])
    stats = example_statistics(preds)[None]  # (1 seed, n, k): the head's counts, compared like any other task's
    assert compare_seeds(stats, stats, model.heads["start"].score_statistics, 100)["difference"] == 0
    matrix, order = confusion(preds)
    assert order == ["yes", "no"] and matrix.sum() == len(data)
    out = model.predict(["Never mind the weather"], tasks=["start"])
    assert set(out[0]["start"]) == {"label", "probs"}
