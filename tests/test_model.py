from types import SimpleNamespace

import pytest
import torch

from mtl.data.examples import Example, load_ner, load_sentiment, load_topic
from mtl.multitask.heads import IGNORE, TaskSpec, TokenHead
from mtl.multitask.model import MultiTaskModel


def test_forward_returns_logits_for_requested_tasks_only(tiny_model):
    features, _ = tiny_model.collate(load_topic("validation")[:3])
    logits = tiny_model(features, tasks=["topic"])
    assert list(logits) == ["topic"] and logits["topic"].shape == (3, 5)
    all_logits = tiny_model(features)
    assert all_logits["ner"].shape == (*features["input_ids"].shape, 9)
    with pytest.raises(KeyError, match="Unknown task.*'genre'.*has tasks"):
        tiny_model(features, tasks=["genre"])



def test_collate_puts_tags_on_first_word_piece_only(tiny_model):
    example = Example("Tony Blair visited Washington", {"ner": ("B-PER", "I-PER", "O", "B-LOC")},
                      ("Tony", "Blair", "visited", "Washington"))
    features, labels = tiny_model.collate([example, load_topic("train")[0]])
    ner = labels["ner"]
    pieces = tiny_model.encoder.tokenizer.convert_ids_to_tokens(features["input_ids"][0])
    tagged = [(piece, tiny_model.tasks["ner"].labels[i]) for piece, i in zip(pieces, ner[0].tolist()) if i != IGNORE]
    assert [tag for _, tag in tagged] == ["B-PER", "I-PER", "O", "B-LOC"]
    assert all(not piece.startswith("##") for piece, _ in tagged)
    assert (ner[1] == IGNORE).all()  # the headline has no NER label
    topic = tiny_model.tasks["topic"].labels.index(load_topic("train")[0].labels["topic"])
    assert labels["topic"].tolist() == [IGNORE, topic]


def test_an_example_labelled_for_two_tasks_gives_two_losses(tiny_model):
    batch = load_ner("train")[:4]  # silver tags + the article's topic
    features, labels = tiny_model.collate(batch)
    losses = tiny_model.task_losses(tiny_model(features, tasks=list(labels)), labels)
    assert set(losses) == {"ner", "topic"} and all(torch.isfinite(v) for v in losses.values())
    only_sentiment = tiny_model.collate(load_sentiment("train")[:4])[1]
    assert set(only_sentiment) == {"sentiment"}  # genre labels are ignored: this model has no genre head


def test_unknown_label_is_an_error_naming_task_and_label(tiny_model):
    with pytest.raises(ValueError, match="Task 'topic': label 'sport' is not in the label set"):
        tiny_model.collate([Example("A headline", {"topic": "sport"})])


def test_predict_gives_readable_labels_probabilities_and_spans(tiny_model):
    texts = ["Shares fell in London.", "What a great film!", ""]
    out = tiny_model.predict(texts)
    assert len(out) == 3
    for result in out:
        assert result["topic"]["label"] in tiny_model.tasks["topic"].labels
        assert sum(result["sentiment"]["probs"].values()) == pytest.approx(1, abs=1e-3)
        for entity in result["ner"]["entities"]:
            assert entity["type"] in ("PER", "ORG", "LOC", "MISC")
    for text, result in zip(texts, out):
        for entity in result["ner"]["entities"]:
            assert text[entity["start"]:entity["end"]] == entity["text"]


def test_token_predictions_become_entity_spans_over_words():
    labels = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC")
    text = "Tony Blair met Nokia in U.S."
    spans = [(0, 4), (5, 10), (11, 14), (15, 20), (21, 23), (24, 28)]  # the words' characters
    # pieces: [CLS] tony blair met nok ##ia in u . s . [SEP]; only a word's first piece is read
    word_ids = [None, 0, 1, 2, 3, 3, 4, 5, 5, 5, 5, None]
    tags = ["O", "B-PER", "I-PER", "O", "B-ORG", "O", "O", "B-LOC", "B-PER", "B-PER", "B-PER", "O"]
    probs = torch.zeros(len(tags), len(labels))
    for row, tag in enumerate(tags):
        probs[row, labels.index(tag)] = 1.0
    head = TokenHead(TaskSpec("ner", "token", labels), SimpleNamespace(hidden_size=4))  # reads only the width
    entities = head.readable(probs, word_ids, text, spans)["entities"]
    assert [(e["text"], e["type"], e["start"], e["end"]) for e in entities] == [
        ("Tony Blair", "PER", 0, 10), ("Nokia", "ORG", 15, 20), ("U.S.", "LOC", 24, 28)]
    cut = head.readable(probs[:4], word_ids[:4], text, spans)["entities"]  # words 3-5 cut off by truncation: O
    assert [e["text"] for e in cut] == ["Tony Blair"]


def test_save_and_load_round_trip(tiny_model, tmp_path):
    tiny_model.save(tmp_path / "m")
    loaded = MultiTaskModel.load(tmp_path / "m", tasks=list(tiny_model.tasks.values()))
    features, _ = tiny_model.collate(load_ner("validation")[:2])
    tiny_model.eval(), loaded.eval()
    for task, value in tiny_model(features).items():
        assert torch.allclose(value, loaded(features)[task], atol=1e-6)
    other = [TaskSpec("topic", "sentence", ("a", "b"))]
    with pytest.raises(ValueError, match="were expected"):
        MultiTaskModel.load(tmp_path / "m", tasks=other)


def test_frozen_components_stay_in_eval_mode(tiny_model):
    from mtl.finetuning.freezing import freeze

    freeze(tiny_model, "bottom:2")
    tiny_model.train()
    blocks = tiny_model.encoder.blocks
    assert [b.training for b in blocks] == [False, False, True, True]
    assert not tiny_model.encoder.transformer.auto_model.embeddings.training


def always_tag(model: MultiTaskModel, tag: str) -> MultiTaskModel:
    """The model's NER head made to output ``tag`` for every piece, so that entities show how words were split."""
    linear = model.heads["ner"].net[-1]
    with torch.no_grad():
        linear.weight.zero_()
        linear.bias.fill_(-10.0)
        linear.bias[model.tasks["ner"].labels.index(tag)] = 10.0
    return model


def test_predict_splits_a_text_into_words_as_the_training_data_was(tiny_model):
    text = "The U.S. won 3-0, it's true."
    [result] = always_tag(tiny_model, "B-PER").predict([text], tasks=["ner"])  # every word its own entity
    entities = result["ner"]["entities"]
    assert [e["text"] for e in entities] == ["The", "U.S.", "won", "3", "-", "0", ",", "it", "'s", "true", "."]
    assert all(text[e["start"]:e["end"]] == e["text"] for e in entities)
    [whole] = always_tag(tiny_model, "I-PER").predict([text], tasks=["ner"])[0]["ner"]["entities"]  # one entity
    assert (whole["start"], whole["end"]) == (0, len(text))


def test_predict_takes_words_and_gives_offsets_in_their_joined_text(tiny_model):
    model = always_tag(tiny_model, "B-LOC")
    words_result, text_result = model.predict([["U.S.", "won", "3-0"], "Shares fell."])
    assert [(e["text"], e["start"], e["end"]) for e in words_result["ner"]["entities"]] == [
        ("U.S.", 0, 4), ("won", 5, 8), ("3-0", 9, 12)]  # the caller's words, not re-split
    assert [e["text"] for e in text_result["ner"]["entities"]] == ["Shares", "fell", "."]
    assert words_result["topic"]["label"] in model.tasks["topic"].labels


def test_predict_cuts_words_past_the_length_limit_to_no_entity(tiny_model):
    text = " ".join(["Paris"] * 100)  # 100 words, 32 pieces at most
    entities = always_tag(tiny_model, "B-LOC").predict([text], tasks=["ner"])[0]["ner"]["entities"]
    assert len(entities) == tiny_model.encoder.max_seq_length - 2  # [CLS] and [SEP]


def test_predict_tokenises_texts_as_texts_when_no_token_task_runs(tiny_model, monkeypatch):
    seen = []
    tokenize = tiny_model.encoder.tokenize
    monkeypatch.setattr(tiny_model.encoder, "tokenize", lambda batch: seen.append(list(batch)) or tokenize(batch))
    tiny_model.predict(["it's 3-0"], tasks=["topic"])
    tiny_model.predict(["it's 3-0"], tasks=["topic", "ner"])
    assert seen == [["it's 3-0"], [("it", "'s", "3", "-", "0")]]  # as collate: by words only for token tasks


@pytest.mark.parametrize("inputs, error, message", [
    (["fine", "bad \ud800 text"], ValueError,
     r"Item 1 is not valid Unicode: a lone surrogate '\\ud800' at character 4"),
    ([["fine", ""]], TypeError, r"Item 0 must be a text or a non-empty list of non-empty strings"),
    ([[]], TypeError, r"Item 0 must be a text or a non-empty list"),
    ([["a", "\udfff"]], ValueError, r"Item 0 is not valid Unicode"),
    ([3], TypeError, r"Item 0 is int, not str"),
])
def test_predict_rejects_what_is_not_text_naming_the_item(tiny_model, inputs, error, message):
    with pytest.raises(error, match=message):
        tiny_model.predict(inputs)
