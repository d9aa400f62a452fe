"""Examples, the prepared data sets, and loaders for users' own CSV/TSV and CoNLL files.

An `Example` is one text with labels for any subset of tasks: a class name for a sentence task, or one BIO
tag per word for a token task. The prepared files are written by `python -m mtl.prepare`; data/README.md
(the data card) says where each comes from and how it was cleaned and split.
"""
from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

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
        raise FileNotFoundError(f"{path} is missing: run `python -m mtl.prepare` first")
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

def read_csv(path: str | os.PathLike, text_column: str, label_column: str, task: str,
             sep: str | None = None, label_names: Sequence[str] | None = None) -> list[Example]:
    """Examples from a CSV (or, by extension `.tsv`, a TSV) file with a header row.

    Every row becomes an example: an empty text or label, a row with the wrong number of fields, or (when
    `label_names` is given) an unknown label is a `DataError` naming the file and line, never skipped.
    """
    path = Path(path)
    sep = sep or ("\t" if path.suffix.lower() == ".tsv" else ",")
    reader = csv.reader(io.StringIO(_read_utf8(path), newline=""), delimiter=sep)
    header = next(reader, None)
    if header is None:
        raise DataError(f"{path}: empty file")
    for column in (text_column, label_column):
        if column not in header:
            raise DataError(f"{path}:1: no column {column!r}; the header has {header}")
    text_at, label_at = header.index(text_column), header.index(label_column)
    examples = []
    line = reader.line_num + 1  # first line of the next record (a quoted field may span lines)
    for row in reader:
        if row:  # a blank line is not a record
            if len(row) != len(header):
                raise DataError(f"{path}:{line}: {len(row)} fields where the header has {len(header)}")
            text, label = row[text_at].strip(), row[label_at].strip()
            if not text:
                raise DataError(f"{path}:{line}: empty text in column {text_column!r}")
            if not label:
                raise DataError(f"{path}:{line}: empty label in column {label_column!r}")
            _check_label(label, label_names, path, line)
            examples.append(Example(text, {task: label}))
        line = reader.line_num + 1
    if not examples:
        raise DataError(f"{path}: no examples after the header")
    return examples


def read_conll(path: str | os.PathLike, task: str = "ner", label_names: Sequence[str] | None = None) -> list[Example]:
    """Examples from a CoNLL-style file: one `token tag` per line, a blank line between sentences.

    Lines starting with -DOCSTART- are skipped. Tags are taken as written (an I- after O is accepted); a line
    without exactly two fields or (when `label_names` is given) an unknown tag is a `DataError`.
    """
    path = Path(path)
    examples: list[Example] = []
    words: list[str] = []
    tags: list[str] = []
    for number, line in enumerate(_read_utf8(path).splitlines() + [""], start=1):
        if line.startswith("-DOCSTART-"):
            continue
        fields = line.split()
        if not fields:
            if words:
                examples.append(Example(" ".join(words), {task: tuple(tags)}, tuple(words)))
            words, tags = [], []
            continue
        if len(fields) != 2:
            raise DataError(f"{path}:{number}: expected 'token tag', found {len(fields)} fields: {line!r}")
        _check_label(fields[1], label_names, path, number)
        words.append(fields[0])
        tags.append(fields[1])
    if not examples:
        raise DataError(f"{path}: no sentences")
    return examples


def check_no_leakage(*splits: Iterable[Example | str]) -> None:
    """Raise `DataError` if a text occurs in more than one split (splits are named by position)."""
    seen: dict[str, int] = {}
    for index, split in enumerate(splits):
        for text in {item.text if isinstance(item, Example) else item for item in split}:
            if text in seen:
                raise DataError(f"text {text!r} is in split {seen[text]} and split {index}")
            seen[text] = index


def _read_utf8(path: Path) -> str:
    """The file's text; a byte that is not UTF-8 is a `DataError` giving its offset and line."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not UTF-8 (byte 0x{data[error.start]:02x} at offset {error.start}); "
                        "re-save the file as UTF-8") from None


def _check_label(label: str, label_names: Sequence[str] | None, path: Path, line: int) -> None:
    if label_names is not None and label not in label_names:
        raise DataError(f"{path}:{line}: unknown label {label!r}; expected one of {list(label_names)}")
