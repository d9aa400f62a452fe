"""Words: the units a token task tags, each with its character span in the text.

The built-in NER data are spaCy tokens ("'s", "3", "-", "0"): `mtl.data.prepare` tagged the BBC sentences with
en_core_web_sm, whose tokenizer is spaCy's rule-based English one. Inference splits raw text by the same rules,
``spacy.blank("en")`` (no trained pipeline; it loads in half a second), which gives data/ner.jsonl's words exactly on
every one of its 6,381 sentences (tests/test_words.py checks a sample against the prepared file). Whitespace is never
a word, as in the prepared data.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache


@dataclass(frozen=True)
class Words:
    """A text split into words; ``spans[i]`` is the (start, end) character offset of ``words[i]`` in ``text``."""

    text: str
    words: tuple[str, ...]
    spans: tuple[tuple[int, int], ...]


def split_words(text: str) -> Words:
    """The words of a raw text by spaCy's English rules, as the training data was tokenised."""
    tokens = [token for token in _english_tokenizer()(text) if not token.is_space]
    return Words(text, tuple(t.text for t in tokens), tuple((t.idx, t.idx + len(t.text)) for t in tokens))


def joined_words(words: Sequence[str]) -> Words:
    """Words a caller split already; their text is the words joined by single spaces (as ``Example.text``)."""
    spans, start = [], 0
    for word in words:
        spans.append((start, start + len(word)))
        start += len(word) + 1
    return Words(" ".join(words), tuple(words), tuple(spans))


@cache
def _english_tokenizer():
    import spacy  # a second to import: only when a text is split into words, and only once

    return spacy.blank("en").tokenizer
