"""Tasks from a user's own files: a config entry names the training file (validation and test files optional), how
to read it (with ``mtl.extras.cli.readers``) and, if wanted, the label set.

    {"name": "news", "kind": "sentence", "train": "news_train.tsv", "test": "news_test.tsv", "header": false,
     "text_column": 1, "label_column": 0}
    {"name": "entities", "kind": "token", "train": "train.conll", "validation": "dev.conll"}

Without ``labels`` the label set is the sorted labels of the training file; a validation or test label outside it is
an error naming the file and line. Without a validation file part of the training file is held out (``hold_out``).
Validation or test texts that also occur in the training file are warned about.
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

from sklearn.model_selection import train_test_split

from mtl.data.examples import SPLITS, DataError, Example, check_no_leakage
from mtl.extras.cli.readers import BIO_TAG, UnknownLabelError, read_conll, read_csv, read_jsonl
from mtl.multitask.heads import HEAD_TYPES, TaskSpec

FORMAT_KINDS = {"csv": ("sentence",), "tsv": ("sentence",), "jsonl": ("sentence", "token"), "conll": ("token",)}
DEFAULT_FIELDS = {"sentence": ("text", "label"), "token": ("words", "tags")}  # JSON Lines, and CSV/TSV with a header


@dataclass(frozen=True)
class FileTask:
    """One task read from files; every value is checked when it is built (a ``ValueError`` naming the field)."""

    name: str  # the task's name: its head, its metrics ("name/macro_f1"), its key in predictions
    kind: str  # "sentence" (one label per text) or "token" (one BIO tag per word)
    train: str  # path of the training file
    validation: str | None = None  # None: hold out validation_fraction of the training file
    test: str | None = None  # read by `mtl evaluate` (and checked before training)
    format: str | None = None  # csv | tsv | jsonl | conll; None: .jsonl -> jsonl, token -> conll, .tsv -> tsv, csv
    text_column: str | int | None = None  # CSV/TSV column (header name or 0-based index), JSON field; None: "text"
    label_column: str | int | None = None  # the same for the label; None: "label" (token JSON Lines: "words", "tags")
    header: bool = True  # CSV/TSV: the first line names the columns
    word_column: int = 0  # CoNLL: the word's column (0-based; negative counts from the end)
    tag_column: int = -1  # CoNLL: the tag's column (the last by default)
    labels: tuple[str, ...] | None = None  # None: the sorted labels of the training file
    validation_fraction: float = 0.1  # share of the training file held out when there is no validation file

    def __post_init__(self):
        for name in ("name", "kind", "train", "validation", "test"):
            value, optional = getattr(self, name), name in ("validation", "test")
            if not (isinstance(value, str) and value) and not (optional and value is None):
                raise ValueError(f"'{name}' must be a non-empty string{' or null' if optional else ''}, got {value!r}")
        if self.kind not in HEAD_TYPES:
            raise ValueError(f"'kind' must be one of {tuple(HEAD_TYPES)}, got {self.kind!r}")
        fmt = self.format if self.format is not None else default_format(self.train, self.kind)
        if fmt not in FORMAT_KINDS or self.kind not in FORMAT_KINDS[fmt]:
            valid = [f for f, kinds in FORMAT_KINDS.items() if self.kind in kinds]
            raise ValueError(f"'format' of a {self.kind} task must be one of {valid}, got {fmt!r}")
        object.__setattr__(self, "format", fmt)
        if not isinstance(self.header, bool):
            raise ValueError(f"'header' must be true or false, got {self.header!r}")
        self._check_columns()
        for name in ("word_column", "tag_column"):
            if not _is_int(getattr(self, name)):
                raise ValueError(f"'{name}' must be an integer (a 0-based column), got {getattr(self, name)!r}")
        if self.labels is not None:
            self._check_labels()
        fraction = self.validation_fraction
        if not isinstance(fraction, (int, float)) or isinstance(fraction, bool) or not 0 < fraction < 1:
            raise ValueError(f"'validation_fraction' must be a number in (0, 1), got {fraction!r}")

    def _check_columns(self) -> None:
        """Columns by name or index for CSV/TSV, field names for JSON Lines, word_column/tag_column for CoNLL."""
        for name, default in zip(("text_column", "label_column"), DEFAULT_FIELDS[self.kind]):
            column = getattr(self, name)
            if self.format == "conll":
                if column is not None:
                    raise ValueError(f"'{name}' does not apply to CoNLL files: use 'word_column' and 'tag_column'")
            elif self.format != "jsonl" and not self.header and not _is_int(column):
                raise ValueError(f"'{name}' must be a 0-based column index: the file has no header (\"header\": "
                                 f"false), got {column!r}")
            elif column is None:
                object.__setattr__(self, name, default)
            elif self.format == "jsonl" and not isinstance(column, str):
                raise ValueError(f"'{name}' of a JSON Lines file must be a field name, got {column!r}")
            elif not (isinstance(column, str) and column) and not _is_int(column):
                raise ValueError(f"'{name}' must be a column name or a 0-based index, got {column!r}")

    def _check_labels(self) -> None:
        labels = self.labels
        names = isinstance(labels, (list, tuple)) and all(isinstance(x, str) and x and x == x.strip() for x in labels)
        if not names or len(labels) < 2 or len(set(labels)) != len(labels):
            raise ValueError(f"'labels' must be a list of at least two distinct labels, got {labels!r}")
        not_bio = [label for label in labels if self.kind == "token" and not BIO_TAG.fullmatch(label)]
        if not_bio:
            raise ValueError(f"'labels' of a token task must be BIO tags (O, B-TYPE or I-TYPE), got {not_bio}")
        object.__setattr__(self, "labels", tuple(labels))

    @classmethod
    def from_dict(cls, entry: Mapping) -> FileTask:
        """Build from a config entry; an unknown key is an error listing the valid ones."""
        keys = [f.name for f in fields(cls)]
        unknown = sorted(set(entry) - set(keys))
        if unknown:
            raise ValueError(f"unknown key(s) {unknown}; a file task has keys {keys}")
        missing = [key for key in ("name", "kind", "train") if key not in entry]
        if missing:
            raise ValueError(f"missing key(s) {missing}")
        return cls(**entry)

    def files(self) -> dict[str, str]:
        """{split: path} of the files given."""
        return {split: getattr(self, split) for split in SPLITS if getattr(self, split) is not None}

    def read(self, split: str, labels: Sequence[str] | None = None) -> list[Example]:
        """The examples of one split's file; ``labels``: the allowed labels (None: any)."""
        path = self.files().get(split)
        if path is None:
            raise ValueError(f"task {self.name!r} has no {split} file")
        if self.format == "conll":
            return read_conll(path, self.name, labels, self.tag_column, self.word_column)
        if self.format == "jsonl":
            return read_jsonl(path, self.text_column, self.label_column, self.name, labels, self.kind)
        return read_csv(path, self.text_column, self.label_column, self.name, "\t" if self.format == "tsv" else ",",
                        labels, self.header)


def default_format(path: str, kind: str) -> str:
    """The format a file's extension implies: .jsonl -> jsonl, else conll for token tasks, tsv for .tsv, csv."""
    suffix = Path(path).suffix.lower()
    if suffix == ".jsonl":
        return "jsonl"
    return "conll" if kind == "token" else "tsv" if suffix == ".tsv" else "csv"


@dataclass
class FileTaskData:
    """A file task's label set and examples per split ("train", "validation" and, if there is a test file, "test")."""

    task: FileTask
    labels: tuple[str, ...]
    splits: dict[str, list[Example]] = field(default_factory=dict)

    def spec(self, hidden_dim: int | None = None, dropout: float = 0.1) -> TaskSpec:
        return TaskSpec(self.task.name, self.task.kind, self.labels, hidden_dim, dropout)


def load_file_task(task: FileTask, seed: int = 0, labels: Sequence[str] | None = None) -> FileTaskData:
    """Read every file of ``task``: the label set is ``labels`` (e.g. a trained model's), else the task's own, else the
    sorted labels of the training file; validation and test labels must be in it. Without a validation file the
    training file is split (``hold_out``)."""
    labels = tuple(labels) if labels is not None else task.labels
    inferred = labels is None
    train = task.read("train", labels)
    if inferred:
        labels = tuple(sorted({value for ex in train for value in _label_values(ex.labels[task.name])}))
        if len(labels) < 2:
            raise DataError(f"{task.train}: task {task.name!r} needs at least two labels; the file has only {labels}")
    data = FileTaskData(task, labels, {"train": train})
    for split in ("validation", "test"):
        if split in task.files():
            try:
                data.splits[split] = task.read(split, labels)
            except UnknownLabelError as error:
                if not inferred:
                    raise
                raise UnknownLabelError(f"{error}, the labels of the training file {task.train}; list every label "
                                        f"in the task's \"labels\" to allow others") from None
            _warn_overlap(train, data.splits[split], task.train, task.files()[split])
    if "validation" not in data.splits:
        data.splits["train"], data.splits["validation"] = hold_out(train, task.name, task.validation_fraction, seed,
                                                                   task.train)
    return data


def hold_out(examples: Sequence[Example], task: str, fraction: float, seed: int = 0,
             path: str = "the training file") -> tuple[list[Example], list[Example]]:
    """(train, validation): ``fraction`` of the distinct texts held out, seeded, stratified by label when the labels
    are class names (by its first copy's label); every copy of a text lands on the same side. Both keep file order."""
    first_labels: dict[str, str | tuple[str, ...]] = {}  # text -> the label of its first copy
    for example in examples:
        first_labels.setdefault(example.text, example.labels[task])
    texts, labels = list(first_labels), list(first_labels.values())
    strata = labels if all(isinstance(label, str) for label in labels) else None
    try:
        _, held_out = train_test_split(texts, test_size=fraction, random_state=seed, stratify=strata)
    except ValueError as error:  # too few examples, or a class with a single one
        raise DataError(f"{path}: cannot hold out {fraction:.0%} of its {len(texts)} distinct texts for validation"
                        f"{' stratified by label' if strata else ''} ({error}); give a validation file") from None
    held_out = set(held_out)
    train = [ex for ex in examples if ex.text not in held_out]
    validation = [ex for ex in examples if ex.text in held_out]
    check_no_leakage(train, validation)
    return train, validation


def _label_values(label: str | tuple[str, ...]) -> tuple[str, ...]:
    return (label,) if isinstance(label, str) else label


def _warn_overlap(train: Sequence[Example], other: Sequence[Example], train_path: str, other_path: str) -> None:
    shared = sorted({ex.text for ex in other} & {ex.text for ex in train})
    if shared:
        warnings.warn(f"{len(shared)} text(s) of {other_path} also occur in the training file {train_path} (e.g. "
                      f"{shared[0]!r:.80}): scores on them measure memory, not generalisation.", stacklevel=3)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
