"""Property-based tests of the readers of users' files (hypothesis): random rows come back as the examples they
describe, and random bytes give examples or a `DataError` naming the file, never another exception."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mtl.data.examples import DataError, Example
from mtl.extras.cli.readers import read_conll, read_csv, read_jsonl, read_texts

# tmp_path is shared by the examples of one test: each example writes its file first
SETTINGS = settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
READERS = {
    "csv with header": lambda p: read_csv(p, "text", "label", "t"),
    "csv by index": lambda p: read_csv(p, 1, 0, "t", header=False),
    "tsv without header": lambda p: read_csv(p, -1, 0, "t", sep="\t", header=False),
    "jsonl sentence": lambda p: read_jsonl(p, "text", "label", "t"),
    "jsonl token": lambda p: read_jsonl(p, "words", "tags", "t", kind="token"),
    "conll": lambda p: read_conll(p, "t"),
    "conll tag column 1": lambda p: read_conll(p, "t", tag_column=1),
    "texts": lambda p: read_texts(p, jsonl=False),
    "json texts": lambda p: read_texts(p, jsonl=True),
}
# bytes that are often meaningful to one of the formats, mixed with anything
PIECES = st.sampled_from([b",", b"\t", b" ", b"\n", b"\r\n", b'"', b"{", b"}", b"[", b"]", b":", b'"text"', b'"label"',
                          b'"words"', b'"tags"', b"text,label\n", b"B-PER", b"I-LOC", b"O", b"-DOCSTART-", b"\\ud800",
                          b"\xff", b"\xc3\xa9", b"\x00", b"\xef\xbb\xbf", b"1e9999", b"0" * 5000])
RANDOM_BYTES = st.one_of(st.binary(max_size=300), st.lists(st.one_of(PIECES, st.binary(max_size=8)), max_size=40)
                         .map(b"".join))


def check_result(read, path: Path) -> list[Example]:
    """The reader's examples, or [] after a DataError that names the file; any other exception fails the test."""
    try:
        examples = read(path)
    except DataError as error:
        assert str(path) in str(error)
        return []
    assert examples
    for item in examples:  # an Example, or an input to predict on: a text or its words
        text = item.text if isinstance(item, Example) else item if isinstance(item, str) else " ".join(item)
        assert text.strip() and text.encode("utf-8")  # valid, non-blank text (a lone surrogate would raise here)
    return examples


@pytest.mark.parametrize("reader", READERS)
@SETTINGS
@given(content=RANDOM_BYTES)
@example(content=b"[" * 100_000)  # deeper than json's recursion limit
@example(content=b'{"text": "a", "label": 1' + b"0" * 5000 + b"}")  # more digits than int() converts
def test_random_bytes_give_examples_or_a_data_error(tmp_path, reader, content):
    path = tmp_path / "input"
    path.write_bytes(content)
    check_result(READERS[reader], path)


FIELD = st.text(st.characters(codec="utf-8"), max_size=12)  # any text, also blank, with quotes, commas and newlines
LABEL = st.sampled_from(["pos", "neg", " pos", "", "neg\n", "a,b", '"q"'])


@SETTINGS
@given(rows=st.lists(st.tuples(FIELD, LABEL), max_size=8), header=st.booleans())
def test_random_csv_rows_come_back_as_their_examples(tmp_path, rows, header):
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerows(([("label", "text")] if header else []) + [(label, text) for text, label in rows])
    path = tmp_path / "rows.csv"
    path.write_text(buffer.getvalue(), encoding="utf-8", newline="")
    if rows and all(text.strip() and label.strip() for text, label in rows):
        assert read_csv(path, 1, 0, "t", header=header) == [Example(text.strip(), {"t": label.strip()})
                                                              for text, label in rows]
    else:
        with pytest.raises(DataError, match=str(path)):
            read_csv(path, 1, 0, "t", header=header)


JSON_VALUE = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | FIELD,
                          lambda inner: st.lists(inner, max_size=3) | st.dictionaries(FIELD, inner, max_size=3),
                          max_leaves=6)


@SETTINGS
@given(records=st.lists(st.dictionaries(st.sampled_from(["text", "label", "words", "tags", "x"]), JSON_VALUE,
                                        max_size=4), max_size=5),
       surrogate=st.booleans())
def test_random_json_records_give_examples_or_a_data_error(tmp_path, records, surrogate):
    lines = [json.dumps(record) for record in records]
    if surrogate:  # JSON can spell what is not text
        lines.append('{"text": "\\ud800", "label": "x", "words": ["\\ud800"], "tags": ["O"]}')
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(lines), encoding="utf-8")
    for read in (READERS["jsonl sentence"], READERS["jsonl token"], READERS["json texts"]):
        check_result(read, path)


WORD = st.text(st.characters(codec="utf-8"), min_size=1, max_size=6).filter(
    lambda w: w.split() == [w] and not w.startswith("-DOCSTART-"))
TAG = st.sampled_from(["O", "B-PER", "I-PER", "B-LOC", "I-MISC"])


@SETTINGS
@given(sentences=st.lists(st.lists(st.tuples(WORD, WORD, TAG), min_size=1, max_size=5), min_size=1, max_size=4),
       separator=st.sampled_from([" ", "\t", " \t "]))
def test_random_conll_sentences_come_back_as_their_examples(tmp_path, sentences, separator):
    blocks = ["\n".join(separator.join(token) for token in sentence) for sentence in sentences]
    path = tmp_path / "random.conll"
    path.write_text("-DOCSTART- -X- O\n\n" + "\n\n".join(blocks) + "\n", encoding="utf-8")
    assert read_conll(path) == [Example(" ".join(w for w, _, _ in s), {"ner": tuple(t for _, _, t in s)},
                                        tuple(w for w, _, _ in s)) for s in sentences]
