"""Examples, the prepared data sets, and readers for users' own CSV/TSV, JSON Lines and CoNLL files.

An `Example` is one text with labels for any subset of tasks: a class name for a sentence task, or one BIO
tag per word for a token task. The prepared files are written by `python -m mtl.data.prepare`; data/README.md
(the data card) says where each comes from and how it was cleaned and split.
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd

from mtl.paths import DATA_DIR

SPLITS = ("train", "validation", "test")
TASK_LABELS: dict[str, tuple[str, ...]] = {
    "topic": ("business", "entertainment", "politics", "sports", "tech"),  # BBC News folder names
    "sentiment": ("negative", "neutral", "positive"),
    "genre": ("tweets", "movie", "amazon", "nyt"),
    "ner": ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"),
}

TOPIC_FILE = DATA_DIR / "topic.csv"
SENTIMENT_FILE = DATA_DIR / "sentiment.csv"
NER_FILE = DATA_DIR / "ner.jsonl"
LEE_DOCUMENTS_FILE = DATA_DIR / "lee" / "documents.txt"
LEE_SIMILARITY_FILE = DATA_DIR / "lee" / "similarity.tsv"

Label = str | tuple[str, ...]


@dataclass(frozen=True)
class Example:
    """One text and its labels: task name -> class name, or -> one BIO tag per word for token tasks.

    A task missing from `labels` means "no label for this task", so one example may serve several tasks.
    `words` is the tokenisation that token labels refer to; then `text == " ".join(words)`.
    """

    text: str
    labels: dict[str, Label]
    words: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.words is not None and self.text != " ".join(self.words):
            raise ValueError(f"text must be the words joined by spaces: {self.text!r} != {' '.join(self.words)!r}")
        for task, label in self.labels.items():
            if isinstance(label, str):
                continue
            if self.words is None:
                raise ValueError(f"task {task!r} has token labels but the example has no words")
            if len(label) != len(self.words):
                raise ValueError(f"task {task!r} has {len(label)} tags for {len(self.words)} words")


class DataError(ValueError):
    """A problem in a data file; the message names the file and, where there is one, the line."""


class UnknownLabelError(DataError):
    """A label outside the label set the reader was given."""


# --- the prepared data sets ------------------------------------------------------------------------------

def load_topic(split: str) -> list[Example]:
    """BBC News headlines labelled with their topic (Task A)."""
    rows = _rows(_read_csv_cached(_prepared(TOPIC_FILE)), split)
    return [Example(text, {"topic": label}) for text, label in zip(rows.text, rows.label)]


def load_sentiment(split: str) -> list[Example]:
    """VADER ground-truth sentences labelled with sentiment (Task B) and with their genre."""
    rows = _rows(_read_csv_cached(_prepared(SENTIMENT_FILE)), split)
    return [Example(text, {"sentiment": label, "genre": genre})
            for text, label, genre in zip(rows.text, rows.label, rows.genre)]


def load_ner(split: str) -> list[Example]:
    """BBC lead sentences with spaCy's silver BIO tags and the topic of their article.

    The tags are en_core_web_sm's predictions, not human annotation: scores on them measure agreement with spaCy.
    """
    _check_split(split)
    return [Example(" ".join(row["words"]), {"ner": tuple(row["tags"]), "topic": row["topic"]}, tuple(row["words"]))
            for row in _read_jsonl_cached(_prepared(NER_FILE)) if row["split"] == split]


def load_lee() -> tuple[list[str], np.ndarray]:
    """The Lee corpus: 50 news documents and their 50x50 symmetric mean human similarity (1 on the diagonal)."""
    documents = _prepared(LEE_DOCUMENTS_FILE).read_text(encoding="utf-8").splitlines()
    return documents, np.loadtxt(_prepared(LEE_SIMILARITY_FILE), delimiter="\t")


def _prepared(path: Path) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `python -m mtl.data.prepare` first")
    return path


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")


def _rows(frame: pd.DataFrame, split: str) -> pd.DataFrame:
    _check_split(split)
    return frame[frame.split == split]


def _read_csv_cached(path: Path) -> pd.DataFrame:
    return _read_csv(path, path.stat().st_mtime_ns)


def _read_jsonl_cached(path: Path) -> list[dict]:
    return _read_jsonl(path, path.stat().st_mtime_ns)


@lru_cache(maxsize=8)
def _read_csv(path: Path, mtime_ns: int) -> pd.DataFrame:
    """Parse a prepared CSV once per version of the file (the mtime is part of the cache key)."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)  # a text such as "NA" stays a string


@lru_cache(maxsize=8)
def _read_jsonl(path: Path, mtime_ns: int) -> list[dict]:
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines]


# --- users' own data -------------------------------------------------------------------------------------
# Each reader turns every line into part of an example or raises a `DataError` naming the file and line: nothing
# is skipped but blank lines, so every problem shows before training starts.

Column = str | int  # a header name, or a 0-based index (negative: from the end)
BIO_TAG = re.compile(r"O|[BI]-\S+")


def read_csv(path: str | os.PathLike, text_column: Column, label_column: Column, task: str, sep: str | None = None,
             label_names: Sequence[str] | None = None, header: bool = True) -> list[Example]:
    """Examples from a CSV or TSV file (TSV by the `.tsv` extension or ``sep="\\t"``), one per row.

    Columns are header names or 0-based indices; without a header (``header=False``) columns are indices and every
    line is a row. CSV follows RFC 4180 quoting (a quoted field may hold commas and line breaks; malformed quoting
    is an error); TSV has no quoting, as IANA's TSV and GLUE's files: a line is a row, a tab separates fields. Text
    and label lose surrounding whitespace. An empty text or label, a row whose number of fields differs from the
    first row's, or (when `label_names` is given) an unknown label is a `DataError` naming the file and line.
    """
    path = Path(path)
    sep = sep or ("\t" if path.suffix.lower() == ".tsv" else ",")
    dialect = {"quoting": csv.QUOTE_NONE} if sep == "\t" else {"strict": True}
    reader = csv.reader(io.StringIO(_read_utf8(path), newline=""), delimiter=sep, **dialect)
    examples, first, line = [], None, 1  # first: (line, row) of the first row; line: where the next record starts
    try:
        for row in reader:
            if row and first is None:
                first = (line, row)
                names = row if header else None
                columns = [_column(c, names, len(row), path, line) for c in (text_column, label_column)]
                if columns[0] == columns[1]:
                    raise DataError(f"{path}:{line}: text and label are the same column ({text_column!r})")
            if row and (not header or first[0] != line):
                if len(row) != len(first[1]):
                    raise DataError(f"{path}:{line}: {len(row)} fields where "
                                    f"{'the header' if header else f'line {first[0]}'} has {len(first[1])}")
                text, label = (row[i].strip() for i in columns)
                if not text:
                    raise DataError(f"{path}:{line}: empty text in column {text_column!r}")
                if not label:
                    raise DataError(f"{path}:{line}: empty label in column {label_column!r}")
                _check_label(label, label_names, path, line)
                examples.append(Example(text, {task: label}))
            line = reader.line_num + 1
    except csv.Error as error:
        raise DataError(f"{path}:{line}: malformed CSV: {error}") from None
    if first is None:
        raise DataError(f"{path}: empty file")
    if not examples:
        raise DataError(f"{path}: no examples after the header")
    return examples


def read_jsonl(path: str | os.PathLike, text_field: str, label_field: str, task: str,
               label_names: Sequence[str] | None = None, kind: str = "sentence") -> list[Example]:
    """Examples from a JSON Lines file: one object per line, blank lines skipped.

    For a sentence task the text field holds the text and the label field the class name (an integer counts as its
    decimal string, as `0` and `1` in a CSV file). For a token task (``kind="token"``) the text field holds the list
    of words and the label field one BIO tag per word, like data/ner.jsonl's ``words`` and ``tags``. Anything else,
    e.g. a missing field, a tag list of another length than the words or (when `label_names` is given) an unknown
    label, is a `DataError` naming the file and line.
    """
    if kind not in ("sentence", "token"):
        raise ValueError(f"kind must be 'sentence' or 'token', got {kind!r}")
    path = Path(path)
    examples = []
    for line, record in _json_lines(path):
        for name in (text_field, label_field):
            if name not in record:
                raise DataError(f"{path}:{line}: no field {name!r}; the object has {sorted(record)}")
        text, label = record[text_field], record[label_field]
        if kind == "token":
            words = _words(text, path, line, f"field {text_field!r}")
            if not isinstance(label, list) or not all(isinstance(tag, str) for tag in label):
                raise DataError(f"{path}:{line}: field {label_field!r} must be a list of tags, got {label!r:.60}")
            if len(label) != len(words):
                raise DataError(f"{path}:{line}: {len(label)} tags in {label_field!r} for {len(words)} words")
            for tag in label:
                _check_tag(tag, label_names, path, line)
            examples.append(Example(" ".join(words), {task: tuple(label)}, words))
            continue
        if not isinstance(text, str):
            raise DataError(f"{path}:{line}: field {text_field!r} must be a string, got {text!r:.60}")
        if isinstance(label, int) and not isinstance(label, bool):
            label = str(label)
        if not isinstance(label, str):
            raise DataError(f"{path}:{line}: field {label_field!r} must be a string or an integer, got {label!r:.60}")
        text, label = text.strip(), label.strip()
        _check_unicode(text, path, line)
        if not text:
            raise DataError(f"{path}:{line}: empty text in field {text_field!r}")
        if not label:
            raise DataError(f"{path}:{line}: empty label in field {label_field!r}")
        _check_unicode(label, path, line)
        _check_label(label, label_names, path, line)
        examples.append(Example(text, {task: label}))
    if not examples:
        raise DataError(f"{path}: no examples (the file is empty or blank)")
    return examples


def read_conll(path: str | os.PathLike, task: str = "ner", label_names: Sequence[str] | None = None,
               tag_column: int = -1, word_column: int = 0) -> list[Example]:
    """Examples from a CoNLL-style file: one token per line in columns separated by spaces or tabs, a blank line
    between sentences, -DOCSTART- lines skipped.

    The word is in ``word_column`` (the first by default), its BIO tag in ``tag_column`` (the last by default, as
    NER in CoNLL-2003's `token POS chunk NER`); every token line has as many columns as the file's first one. Tags
    are taken as written (an I- after O is accepted, as in IOB1); a tag that is not O, B-TYPE or I-TYPE, or (when
    `label_names` is given) an unknown tag, is a `DataError` naming the file and line.
    """
    path = Path(path)
    examples: list[Example] = []
    words: list[str] = []
    tags: list[str] = []
    first = None  # (line, number of columns) of the first token line
    for number, line in enumerate(_read_utf8(path).split("\n") + [""], start=1):
        if line.startswith("-DOCSTART-"):
            continue
        fields = line.split()
        if not fields:
            if words:
                examples.append(Example(" ".join(words), {task: tuple(tags)}, tuple(words)))
            words, tags = [], []
            continue
        if first is None:
            first = (number, len(fields))
            for name, column in (("word_column", word_column), ("tag_column", tag_column)):
                if not -len(fields) <= column < len(fields):
                    raise DataError(f"{path}:{number}: no column {column} ({name}): the line has {len(fields)} "
                                    f"columns: {line!r:.80}")
            if word_column % len(fields) == tag_column % len(fields):
                raise DataError(f"{path}:{number}: word and tag are the same column ({word_column}); a token line "
                                f"needs at least the word and its tag: {line!r:.80}")
        if len(fields) != first[1]:
            raise DataError(f"{path}:{number}: {len(fields)} columns where line {first[0]} has {first[1]}: "
                            f"{line!r:.80}")
        _check_tag(fields[tag_column], label_names, path, number)
        words.append(fields[word_column])
        tags.append(fields[tag_column])
    if not examples:
        raise DataError(f"{path}: no sentences")
    return examples


def read_texts(source: str | os.PathLike | BinaryIO, jsonl: bool | None = None) -> list[str | tuple[str, ...]]:
    """Inputs to predict on, in order: one text per line, or (JSON Lines: ``jsonl``, by default a `.jsonl` file)
    one object per line with a "text" (a string) or a "words" field (a list of words). ``source`` is a path or a
    binary stream such as ``sys.stdin.buffer``. A blank text line, a line that is not such an object, or a text
    that is not valid Unicode is a `DataError` naming the file and line."""
    if hasattr(source, "read"):
        path = Path(getattr(source, "name", "<stream>"))
        content = _decode(source.read(), path)
    else:
        path = Path(source)
        content = _read_utf8(path)
    if jsonl if jsonl is not None else path.suffix.lower() == ".jsonl":
        inputs = []
        for line, record in _json_lines(path, content):
            if ("text" in record) == ("words" in record):
                raise DataError(f"{path}:{line}: expected a field \"text\" or a field \"words\", got {sorted(record)}")
            if "words" in record:
                inputs.append(_words(record["words"], path, line, 'field "words"'))
            elif not isinstance(record["text"], str) or not record["text"].strip():
                raise DataError(f"{path}:{line}: field \"text\" must be a non-empty string, got {record['text']!r:.60}")
            else:
                _check_unicode(record["text"], path, line)
                inputs.append(record["text"])
    else:
        lines = content.split("\n")
        inputs = [line.removesuffix("\r") for line in (lines[:-1] if lines[-1] == "" else lines)]
        for number, text in enumerate(inputs, start=1):
            if not text.strip():
                raise DataError(f"{path}:{number}: empty line (one text per line)")
    if not inputs:
        raise DataError(f"{path}: no texts")
    return inputs


def lone_surrogate(text: str) -> int | None:
    """Where ``text`` has a lone surrogate, or None if it is valid Unicode. A lone surrogate is half of a UTF-16 pair
    (e.g. an emoji cut by slicing); JSON can spell one ("\\ud800"), no tokenizer accepts it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        return error.start
    return None


def check_no_leakage(*splits: Iterable[Example | str]) -> None:
    """Raise `DataError` if a text occurs in more than one split (splits are named by position)."""
    seen: dict[str, int] = {}
    for index, split in enumerate(splits):
        for text in {item.text if isinstance(item, Example) else item for item in split}:
            if text in seen:
                raise DataError(f"text {text!r} is in split {seen[text]} and split {index}")
            seen[text] = index


def _read_utf8(path: Path) -> str:
    """The file's text; a missing file or a byte that is not UTF-8 is a `DataError` (giving the byte's offset and
    line)."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DataError(f"{path}: cannot read the file: {error.strerror}") from None
    return _decode(data, path)


def _decode(data: bytes, name: str | os.PathLike) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise DataError(f"{name}:{line}: not UTF-8 (byte 0x{data[error.start]:02x} at offset {error.start}); "
                        "re-save the file as UTF-8") from None


def _json_lines(path: Path, content: str | None = None) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line; a line that is not a JSON object is a `DataError`."""
    for number, line in enumerate((_read_utf8(path) if content is None else content).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError) as error:  # JSONDecodeError, too many digits, nested too deeply
            raise DataError(f"{path}:{number}: not valid JSON: {error}") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}:{number}: expected a JSON object, got {line.strip()!r:.60}")
        yield number, record


def _words(value, path: Path, line: int, what: str) -> tuple[str, ...]:
    """A JSON list of words: non-empty strings without whitespace, so that joining them by spaces keeps them apart."""
    if not isinstance(value, list) or not value or not all(isinstance(word, str) for word in value):
        raise DataError(f"{path}:{line}: {what} must be a non-empty list of words, got {value!r:.60}")
    for i, word in enumerate(value):
        if not word or word.split() != [word]:
            raise DataError(f"{path}:{line}: word {i} of {what} is empty or contains whitespace: {word!r}")
        _check_unicode(word, path, line)
    return tuple(value)


def _check_unicode(text: str, path: Path, line: int) -> None:
    position = lone_surrogate(text)
    if position is not None:
        raise DataError(f"{path}:{line}: not valid Unicode: a lone surrogate {text[position]!r} in {text!r:.60}")


def _column(column: Column, header: list[str] | None, width: int, path: Path, line: int) -> int:
    """The 0-based position of a column given by header name or index."""
    if isinstance(column, str):
        if header is None:
            raise DataError(f"{path}: column {column!r} is a name, but the file has no header: give its 0-based index")
        if column not in header:
            raise DataError(f"{path}:{line}: no column {column!r}; the header has {header}")
        return header.index(column)
    if not -width <= column < width:
        raise DataError(f"{path}:{line}: no column {column}: the row has {width} fields")
    return column % width


def _check_label(label: str, label_names: Sequence[str] | None, path: Path, line: int) -> None:
    if label_names is not None and label not in label_names:
        raise UnknownLabelError(f"{path}:{line}: unknown label {label!r}; expected one of {list(label_names)}")


def _check_tag(tag: str, label_names: Sequence[str] | None, path: Path, line: int) -> None:
    if not BIO_TAG.fullmatch(tag):
        raise DataError(f"{path}:{line}: tag {tag!r} is not a BIO tag (O, B-TYPE or I-TYPE)")
    _check_label(tag, label_names, path, line)


def check_texts(texts: Sequence[str] | Sequence[Sequence[str]], words: bool = False) -> None:
    """Reject what cannot be encoded, naming the item and the problem; empty strings are fine (they encode as
    [CLS][SEP]). With ``words``, an item may also be a non-empty list of non-empty words."""
    if isinstance(texts, str):
        raise TypeError("Expected a list of strings, got a single string: wrap it in a list.")
    if len(texts) == 0:
        raise ValueError("Expected at least one text, got an empty list.")
    for i, text in enumerate(texts):
        if words and not isinstance(text, str) and isinstance(text, Sequence):
            if len(text) == 0 or not all(isinstance(word, str) and word for word in text):
                raise TypeError(f"Item {i} must be a text or a non-empty list of non-empty strings, got {text!r:.60}")
            for word in text:
                _check_item_unicode(word, f"Item {i}")
        elif isinstance(text, str):
            _check_item_unicode(text, f"Item {i}")
        else:
            raise TypeError(f"Item {i} is {type(text).__name__}, not str: {text!r:.60}")


def _check_item_unicode(text: str, item: str) -> None:
    """A lone surrogate is named here: the tokenizer's own TypeError names neither the item nor the problem."""
    position = lone_surrogate(text)
    if position is not None:
        raise ValueError(f"{item} is not valid Unicode: a lone surrogate {text[position]!r} at character {position} "
                         f"({text[max(0, position - 20):position]!r} before it).")
