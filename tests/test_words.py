"""mtl.data.words: raw text is split into the words the NER training data has, each with its character span."""
from __future__ import annotations

import json

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from mtl.data.examples import NER_FILE, TOPIC_FILE
from mtl.data.prepare import LEAD_SENTENCES, lead_sentences
from mtl.data.words import joined_words, split_words


def test_split_words_gives_spacy_tokens_and_their_character_spans():
    text = "The U.S. won 3-0, it's  true\n"
    words = split_words(text)
    assert words.words == ("The", "U.S.", "won", "3", "-", "0", ",", "it", "'s", "true")  # no whitespace words
    assert [text[start:end] for start, end in words.spans] == list(words.words)
    assert words.spans[-1] == (24, 28)  # after the double space


def test_split_words_gives_the_words_of_the_prepared_ner_data():
    """The NER data are en_core_web_sm's tokens of the BBC lead sentences: split_words must reproduce them from the
    sentences as mtl.data.prepare cut them (the first 40 articles' sentences here; all 6,381 agree, see mtl/data/words.py)."""
    articles = pd.read_csv(TOPIC_FILE, dtype=str, keep_default_na=False).head(40)
    with NER_FILE.open(encoding="utf-8") as lines:
        records = {record["id"]: record["words"] for record in map(json.loads, lines)}
    compared = 0
    for article, sentences in zip(articles.id, lead_sentences(articles.body.tolist())):
        assert len(sentences) <= LEAD_SENTENCES
        for number, sentence in enumerate(sentences):
            if f"{article}#{number}" in records:  # short sentences were skipped
                assert list(split_words(sentence).words) == records[f"{article}#{number}"], sentence
                compared += 1
    assert compared > 100


@given(st.text(max_size=60))
def test_split_words_spans_point_at_the_words_in_order(text):
    words = split_words(text)
    assert len(words.words) == len(words.spans)
    ends, starts = [0] + [end for _, end in words.spans], [start for start, _ in words.spans] + [len(text)]
    for word, (start, end), previous_end in zip(words.words, words.spans, ends):
        assert text[start:end] == word and word.strip() and start >= previous_end
    assert not "".join(text[a:b] for a, b in zip(ends, starts)).strip()  # nothing but whitespace between the words


def test_joined_words_keeps_given_words_with_spans_in_their_joined_text():
    words = joined_words(["U.S.", "won", "3-0"])
    assert words.text == "U.S. won 3-0" and words.spans == ((0, 4), (5, 8), (9, 12))
