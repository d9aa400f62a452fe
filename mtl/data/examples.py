"""Examples, the prepared data sets, and the checks every source of examples or texts shares.

An `Example` is one text with labels for any subset of tasks: a class name for a sentence task, or one BIO
tag per word for a token task. The prepared files are written by `python -m mtl.data.prepare`; data/README.md
(the data card) says where each comes from and how it was cleaned and split.
"""
from __future__ import annotations

import json
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
    rows = _split_rows(TOPIC_FILE, split)
    return [Example(text, {"topic": label}) for text, label in zip(rows.text, rows.label)]


def load_sentiment(split: str) -> list[Example]:
    """VADER ground-truth sentences labelled with sentiment (Task B) and with their genre."""
    rows = _split_rows(SENTIMENT_FILE, split)
    return [Example(text, {"sentiment": label, "genre": genre})
            for text, label, genre in zip(rows.text, rows.label, rows.genre)]


def load_ner(split: str) -> list[Example]:
    """BBC lead sentences with spaCy's silver BIO tags and the topic of their article.

    The tags are en_core_web_sm's predictions, not human annotation: scores on them measure agreement with spaCy.
    """
    return [Example(" ".join(row["words"]), {"ner": tuple(row["tags"]), "topic": row["topic"]}, tuple(row["words"]))
            for row in _split_rows(NER_FILE, split)]


def load_lee() -> tuple[list[str], np.ndarray]:
    """The Lee corpus: 50 news documents and their 50x50 symmetric mean human similarity (1 on the diagonal)."""
    documents = _prepared(LEE_DOCUMENTS_FILE).read_text(encoding="utf-8").splitlines()
    return documents, np.loadtxt(_prepared(LEE_SIMILARITY_FILE), delimiter="\t")


def _prepared(path: Path) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `python -m mtl.data.prepare` first")
    return path


def _split_rows(path: Path, split: str) -> pd.DataFrame | list[dict]:
    """One split's rows of a prepared CSV file (a DataFrame) or JSON Lines file (dicts)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    rows = _parse(_prepared(path), path.stat().st_mtime_ns)
    if isinstance(rows, pd.DataFrame):
        return rows[rows.split == split]
    return [row for row in rows if row["split"] == split]


@lru_cache(maxsize=8)
def _parse(path: Path, mtime_ns: int) -> pd.DataFrame | list[dict]:
    """A prepared file, parsed once per version of it (the mtime is part of the cache key)."""
    if path.suffix == ".jsonl":
        with path.open(encoding="utf-8") as lines:
            return [json.loads(line) for line in lines]
    return pd.read_csv(path, dtype=str, keep_default_na=False)  # a text such as "NA" stays a string


# --- checks shared by the prepared data, users' files and texts to encode ----------------------------------

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
