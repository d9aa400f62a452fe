"""Length-sorted batching gives every row back in input order: encode, MultiTaskModel.predict, mtl.evaluation.predictions.predict,
embed_with_poolings; and every pass of the model over a data set batches by token count, not characters.

Each function batches texts sorted by length (less padding) and must undo the sort. The texts below are in an
order unlike their length order, and the batches are small, so a missing or wrong inverse permutation shows up as
rows that differ from the same text run alone.
"""
from __future__ import annotations

import numpy as np
import pytest

from mtl.data.examples import Example
from mtl.evaluation.predictions import predict
from mtl.evaluation.similarity import embed_with_poolings

TEXTS = [
    "Shares fell.",
    "The central bank in Frankfurt raised interest rates again on Thursday, surprising analysts in London.",
    "A new phone from Apple.",
    "",
    "Chelsea beat Arsenal two goals to one at Stamford Bridge in front of a record crowd.",
    "Rain.",
    "Parliament debated the education bill late into the night.",
]
assert sorted(TEXTS, key=len) != TEXTS and sorted(TEXTS, key=len, reverse=True) != TEXTS


def test_the_batches_really_are_sorted_by_length(tiny_model, monkeypatch):
    encoder, seen = tiny_model.encoder, []
    preprocess = encoder.model.preprocess  # sentence-transformers' encode tokenises each batch with it
    monkeypatch.setattr(encoder.model, "preprocess", lambda batch, **kw: seen.append(list(batch)) or
                        preprocess(batch, **kw))
    encoder.encode(TEXTS, batch_size=2)
    assert [len(batch) for batch in seen] == [2, 2, 2, 1]
    assert [t for batch in seen for t in batch] == sorted(TEXTS, key=len, reverse=True)


def test_encode_restores_input_order(tiny_model):
    encoder = tiny_model.encoder
    batched = encoder.encode(TEXTS, batch_size=2)
    alone = np.concatenate([encoder.encode([t]) for t in TEXTS])
    np.testing.assert_allclose(batched, alone, atol=1e-5)
    tensor = encoder.encode(TEXTS, batch_size=3, convert_to_tensor=True)
    np.testing.assert_allclose(tensor.numpy(), alone, atol=1e-5)


def test_predict_restores_input_order(tiny_model):
    texts = [t for t in TEXTS if t]  # entity offsets need words
    batched = tiny_model.predict(texts, batch_size=2)
    alone = [tiny_model.predict([t])[0] for t in texts]
    assert len(batched) == len(texts)
    for text, got, expected in zip(texts, batched, alone):
        for task in ("topic", "sentiment"):
            assert got[task]["label"] == expected[task]["label"]
            assert got[task]["probs"] == pytest.approx(expected[task]["probs"], abs=2e-4)
        assert [(e["text"], e["start"]) for e in got["ner"]["entities"]] == \
               [(e["text"], e["start"]) for e in expected["ner"]["entities"]]
        for entity in got["ner"]["entities"]:  # offsets refer to this row's own text
            assert text[entity["start"] : entity["end"]] == entity["text"] != ""


def test_predict_keeps_each_row_with_its_example(tiny_model):
    labels = ["business", "tech", "politics", "sports", "entertainment", "tech", "politics"]
    examples = [Example(text, {"topic": label}) for text, label in zip(TEXTS, labels)]
    out = predict(tiny_model, examples, batch_size=2)["topic"]
    assert sorted(out.index) == list(range(len(examples)))
    alone = {i: predict(tiny_model, [ex], batch_size=1)["topic"] for i, ex in enumerate(examples)}
    for row, i in enumerate(out.index):
        assert out.true[row] == examples[i].labels["topic"]  # the gold label travelled with its example
        assert out.pred[row] == alone[i].pred[0]
        np.testing.assert_allclose(out.probs[row], alone[i].probs[0], atol=1e-5)


def test_embed_with_poolings_restores_input_order(tiny_model):
    encoder = tiny_model.encoder
    batched = embed_with_poolings(encoder, TEXTS, ["mean", "max"], batch_size=2)
    for mode in ("mean", "max"):
        alone = np.concatenate([embed_with_poolings(encoder, [t], [mode])[mode] for t in TEXTS])
        np.testing.assert_allclose(batched[mode], alone, atol=1e-5)


# Ordered by characters, these two disagree with their token counts: one long word of many word pieces, and many
# short words that are one token each.
FEW_CHARACTERS_MANY_TOKENS = "Zqxjkvw wqzxj vkqzj"
MANY_CHARACTERS_FEW_TOKENS = "the of and to in the of and"


def test_the_model_batches_by_token_count_not_characters(tiny_model, monkeypatch):
    texts = [MANY_CHARACTERS_FEW_TOKENS, FEW_CHARACTERS_MANY_TOKENS, "Rain."]
    counts = tiny_model.encoder.token_counts(texts)
    assert counts[1] > counts[0] and len(texts[1]) < len(texts[0])  # the premise: the two orders differ
    examples = [Example(text, {"topic": "tech"}) for text in texts]
    assert [list(batch) for batch in tiny_model.batches(examples, 1)] == [[1], [0], [2]]

    seen = []  # what predict and MultiTaskModel.predict really run, batch by batch
    tokenize = tiny_model.encoder.tokenize
    monkeypatch.setattr(tiny_model.encoder, "tokenize", lambda inputs: seen.append(list(inputs)) or tokenize(inputs))
    predict(tiny_model, examples, batch_size=1, tasks=["topic"])
    tiny_model.predict(texts, tasks=["topic"], batch_size=1)
    assert [batch[0] for batch in seen] == [texts[1], texts[0], texts[2]] * 2


def test_token_counts_are_the_tokenised_lengths(tiny_model):
    encoder = tiny_model.encoder
    texts = TEXTS + ["word " * 100]  # the last one is truncated at max_seq_length
    assert encoder.token_counts(texts) == [int(encoder.tokenize([t])["attention_mask"].sum()) for t in texts]
    words = [t.split() for t in TEXTS if t]
    assert encoder.token_counts(words) == [int(encoder.tokenize([w])["attention_mask"].sum()) for w in words]
