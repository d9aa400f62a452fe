"""mtl.extras.cli.file_tasks: config entries that name files, their label sets, and the held-out validation split."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from mtl.data.examples import DataError, Example
from mtl.extras.cli.file_tasks import FileTask, hold_out, load_file_task
from mtl.extras.cli.readers import UnknownLabelError


def write(tmp_path: Path, name: str, content: str) -> str:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    return str(path)


def test_format_and_columns_default_by_extension_and_kind():
    assert FileTask("news", "sentence", "n.csv").format == "csv"
    assert FileTask("news", "sentence", "n.TSV", header=False, text_column=1, label_column=0).format == "tsv"
    task = FileTask("ner", "token", "train.jsonl")
    assert (task.format, task.text_column, task.label_column) == ("jsonl", "words", "tags")
    assert FileTask("ner", "token", "eng.train").format == "conll"
    assert FileTask("news", "sentence", "n.txt", format="tsv", text_column="t").text_column == "t"


@pytest.mark.parametrize("entry, message", [
    ({"name": "x", "kind": "document", "train": "a.csv"}, r"'kind' must be one of \('sentence', 'token'\)"),
    ({"name": "x", "kind": "sentence", "train": "a.conll", "format": "conll"},
     r"'format' of a sentence task must be one of \['csv', 'tsv', 'jsonl'\], got 'conll'"),
    ({"name": "x", "kind": "token", "train": "a.csv", "format": "csv"}, r"must be one of \['jsonl', 'conll'\]"),
    ({"name": "x", "kind": "sentence", "train": "a.tsv", "header": False},
     r"'text_column' must be a 0-based column index: the file has no header"),
    ({"name": "x", "kind": "sentence", "train": "a.tsv", "header": False, "text_column": "text", "label_column": 0},
     r"'text_column' must be a 0-based column index: the file has no header \(\"header\": false\)"),
    ({"name": "x", "kind": "sentence", "train": "a.jsonl", "text_column": 0}, r"JSON Lines file must be a field name"),
    ({"name": "x", "kind": "token", "train": "a.conll", "text_column": 0}, r"'text_column' does not apply to CoNLL"),
    ({"name": "x", "kind": "sentence", "train": "a.csv", "labels": ["only"]},
     r"'labels' must be a list of at least two"),
    ({"name": "x", "kind": "token", "train": "a.conll", "labels": ["O", "PER"]}, r"must be BIO tags .*\['PER'\]"),
    ({"name": "x", "kind": "sentence", "train": "a.csv", "validation_fraction": 1}, r"'validation_fraction' must be a "
                                                                                   r"number in \(0, 1\), got 1"),
    ({"name": "x", "kind": "sentence", "train": "a.csv", "header": "no"}, r"'header' must be true or false"),
    ({"name": "x", "kind": "sentence", "train": "a.csv", "test": 3}, r"'test' must be a non-empty string or null"),
    ({"name": "x", "kind": "sentence", "train": ""}, r"'train' must be a non-empty string, got ''"),
    ({"name": "x", "kind": "sentence", "train": "a.csv", "text": "t"}, r"unknown key\(s\) \['text'\]; a file task has"),
    ({"name": "x", "train": "a.csv"}, r"missing key\(s\) \['kind'\]"),
], ids=lambda v: "" if isinstance(v, dict) else v[:40])
def test_a_bad_file_task_is_an_error_naming_the_key(entry, message):
    with pytest.raises(ValueError, match=message):
        FileTask.from_dict(entry)


def test_labels_are_inferred_sorted_from_the_training_file_and_bind_the_other_files(tmp_path):
    rows = [f"{label}\t{label} news {i}\n" for i in range(10) for label in ("tech", "sport", "business")]
    train, dev = write(tmp_path, "train.tsv", "".join(rows)), write(tmp_path, "dev.tsv", "sport\tArsenal won\n")
    test = write(tmp_path, "test.tsv", "sport\tChelsea lost\ntech\tA chip\n")
    columns = dict(header=False, text_column=1, label_column=0)
    data = load_file_task(FileTask("news", "sentence", train, dev, test, **columns))
    assert data.labels == ("business", "sport", "tech")
    assert data.spec(hidden_dim=16).labels == data.labels and data.spec().kind == "sentence"
    assert [len(data.splits[split]) for split in ("train", "validation", "test")] == [30, 1, 2]
    held_out = load_file_task(FileTask("news", "sentence", train, test=test, validation_fraction=0.2, **columns))
    assert [len(held_out.splits[split]) for split in ("train", "validation")] == [24, 6]  # no validation file

    unseen = write(tmp_path, "unseen.tsv", "sport\tChelsea lost\npolitics\tThe vote\n")
    with pytest.raises(UnknownLabelError, match=r"unseen\.tsv:2: unknown label 'politics'; expected one of \['business'"
                                                r", 'sport', 'tech'\], the labels of the training file .*train\.tsv; "
                                                r"list every label in the task's \"labels\""):
        load_file_task(FileTask("news", "sentence", train, dev, unseen, **columns))
    labels = ["tech", "sport", "politics", "business"]
    given = FileTask("news", "sentence", train, dev, unseen, labels=labels, **columns)
    assert load_file_task(given).labels == ("tech", "sport", "politics", "business")  # given labels, in their order


def test_a_training_file_with_one_label_is_an_error(tmp_path):
    train = write(tmp_path, "train.csv", "text,label\na,x\nb,x\n")
    with pytest.raises(DataError, match=r"train\.csv: task 'one' needs at least two labels; the file has only "
                                        r"\('x',\)"):
        load_file_task(FileTask("one", "sentence", train))


def test_token_task_labels_come_from_the_training_tags(tmp_path):
    train = write(tmp_path, "train.conll", "EU NNP B-ORG\nrejects VBZ O\n\nPeter NNP B-PER\n")
    dev = write(tmp_path, "dev.conll", "Paris NNP O\n")
    test = write(tmp_path, "test.conll", "Peter B-PER\nBlackburn I-PER\n")  # 2 columns: each file has its own layout
    with pytest.raises(UnknownLabelError, match=r"test\.conll:2: unknown label 'I-PER'"):
        load_file_task(FileTask("ner", "token", train, dev, test))
    assert load_file_task(FileTask("ner", "token", train, dev)).labels == ("B-ORG", "B-PER", "O")


def sentences(n_per_label: dict[str, int], copies: int = 1) -> list[Example]:
    return [Example(f"{label} text {i}", {"t": label}) for label, n in n_per_label.items() for i in range(n)
            for _ in range(copies)]


def test_hold_out_is_stratified_seeded_and_keeps_copies_together():
    examples = sentences({"a": 40, "b": 20, "c": 10}, copies=2)  # every text twice
    train, validation = hold_out(examples, "t", 0.2, seed=0)
    assert len(train) + len(validation) == len(examples)
    assert not {ex.text for ex in train} & {ex.text for ex in validation}  # no text on both sides
    assert Counter(ex.labels["t"] for ex in validation) == {"a": 16, "b": 8, "c": 4}  # 20 % of each class, twice
    assert hold_out(examples, "t", 0.2, seed=0) == (train, validation)
    assert hold_out(examples, "t", 0.2, seed=1)[1] != validation
    assert [ex for ex in examples if ex in validation] == validation  # file order kept


def test_hold_out_names_the_file_when_a_class_is_too_small():
    with pytest.raises(DataError, match=r"news\.csv: cannot hold out 10% of its 21 distinct texts for validation "
                                        r"stratified by label \(.*\); give a validation file"):
        hold_out(sentences({"a": 20, "b": 1}), "t", 0.1, path="news.csv")


def test_a_validation_text_that_is_also_a_training_text_is_warned_about(tmp_path):
    train = write(tmp_path, "train.csv", "text,label\nShares fell,business\nArsenal won,sport\n")
    validation = write(tmp_path, "dev.csv", "text,label\nArsenal won,sport\n")
    with pytest.warns(UserWarning, match=r"1 text\(s\) of .*dev\.csv also occur in the training file .*train\.csv "
                                         r"\(e\.g\. 'Arsenal won'\)"):
        load_file_task(FileTask("news", "sentence", train, validation))
