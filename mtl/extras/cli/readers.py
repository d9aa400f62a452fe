"""Readers of users' own files: labelled examples from CSV/TSV, JSON Lines and CoNLL files, and texts to predict on.

Every line becomes part of an example or raises a `DataError` naming the file and line: nothing is skipped but blank
lines, so every problem shows before training starts.
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from mtl.data.examples import DataError, Example, lone_surrogate

Column = str | int  # a header name, or a 0-based index (negative: from the end)
BIO_TAG = re.compile(r"O|[BI]-\S+")


class UnknownLabelError(DataError):
    """A label outside the label set the reader was given."""


def read_csv(path: str | os.PathLike, text_column: Column, label_column: Column, task: str, sep: str | None = None,
             label_names: Sequence[str] | None = None, header: bool = True) -> list[Example]:
    """Examples from a CSV or TSV file (TSV by the `.tsv` extension or ``sep="\\t"``), one per row.

    Without a header (``header=False``) columns are indices and every line is a row. CSV follows RFC 4180 quoting (a
    quoted field may hold commas and line breaks; malformed quoting is an error); TSV has no quoting, as IANA's TSV
    and GLUE's files. Text and label are stripped. An empty text or label, a row whose number of fields differs from
    the first row's, or an unknown label (when `label_names` is given) is a `DataError` naming the file and line.
    """
    path, content = _read_utf8(path)
    sep = sep or ("\t" if path.suffix.lower() == ".tsv" else ",")
    dialect = {"quoting": csv.QUOTE_NONE} if sep == "\t" else {"strict": True}
    reader = csv.reader(io.StringIO(content, newline=""), delimiter=sep, **dialect)
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
                examples.append(_sentence(row[columns[0]], row[columns[1]], task, label_names, path, line,
                                          f"column {text_column!r}", f"column {label_column!r}"))
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

    A sentence task's text field holds the text, its label field the class name (an integer counts as its decimal
    string, as in a CSV file). A token task's (``kind="token"``) text field holds the list of words, its label field
    one BIO tag per word, as data/ner.jsonl's ``words`` and ``tags``. Anything else is a `DataError` naming the file
    and line.
    """
    if kind not in ("sentence", "token"):
        raise ValueError(f"kind must be 'sentence' or 'token', got {kind!r}")
    path, content = _read_utf8(path)
    examples = []
    for line, record in _json_lines(path, content):
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
        examples.append(_sentence(text, label, task, label_names, path, line,
                                  f"field {text_field!r}", f"field {label_field!r}"))
    if not examples:
        raise DataError(f"{path}: no examples (the file is empty or blank)")
    return examples


def read_conll(path: str | os.PathLike, task: str = "ner", label_names: Sequence[str] | None = None,
               tag_column: int = -1, word_column: int = 0) -> list[Example]:
    """Examples from a CoNLL-style file: one token per line in columns separated by spaces or tabs, a blank line
    between sentences, -DOCSTART- lines skipped.

    The word is in ``word_column``, its BIO tag in ``tag_column`` (by default the last, as NER in CoNLL-2003's
    `token POS chunk NER`); every token line has as many columns as the file's first one. Tags are taken as written
    (an I- after O is accepted, as in IOB1); a tag that is not O, B-TYPE or I-TYPE, or an unknown tag (when
    `label_names` is given), is a `DataError` naming the file and line.
    """
    path, content = _read_utf8(path)
    examples, words, tags = [], [], []
    first = None  # (line, number of columns) of the first token line
    for number, line in enumerate(content.split("\n") + [""], start=1):
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
    """Inputs to predict on, in order, from a path or a binary stream such as ``sys.stdin.buffer``: one text per
    line, or (``jsonl``; by default a `.jsonl` file) one object per line with a "text" (a string) or a "words" field
    (a list of words). A blank text line, a line that is not such an object, or text that is not valid Unicode is a
    `DataError` naming the file and line."""
    path, content = _read_utf8(source)
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


def _read_utf8(source: str | os.PathLike | BinaryIO) -> tuple[Path, str]:
    """(path, text) of a file or binary stream; an unreadable file or a byte that is not UTF-8 is a `DataError` (the
    latter giving the byte's offset and line)."""
    if hasattr(source, "read"):
        path, data = Path(getattr(source, "name", "<stream>")), source.read()
    else:
        path = Path(source)
        try:
            data = path.read_bytes()
        except OSError as error:
            raise DataError(f"{path}: cannot read the file: {error.strerror}") from None
    try:
        return path, data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not UTF-8 (byte 0x{data[error.start]:02x} at offset {error.start}); "
                        "re-save the file as UTF-8") from None


def _json_lines(path: Path, content: str) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line; a line that is not a JSON object is a `DataError`."""
    for number, line in enumerate(content.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError) as error:  # JSONDecodeError, too many digits, nested too deeply
            raise DataError(f"{path}:{number}: not valid JSON: {error}") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}:{number}: expected a JSON object, got {line.strip()!r:.60}")
        yield number, record


def _sentence(text: str, label: str, task: str, label_names: Sequence[str] | None, path: Path, line: int,
              text_from: str, label_from: str) -> Example:
    """A sentence example with text and label stripped; ``text_from`` and ``label_from`` name where they were read."""
    text, label = text.strip(), label.strip()
    for value, what, where in ((text, "text", text_from), (label, "label", label_from)):
        _check_unicode(value, path, line)
        if not value:
            raise DataError(f"{path}:{line}: empty {what} in {where}")
    _check_label(label, label_names, path, line)
    return Example(text, {task: label})


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
