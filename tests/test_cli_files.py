"""The command line on a user's own files, end to end: train (one and two processes), evaluate and predict on a
four-column CoNLL file, a header-less TSV file and a JSON Lines file mixed with a built-in task; every problem in the
files is an error naming the file and line before anything is trained; the history prints readably."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from mtl.extras.cli.main import format_history, main
from test_cli import free_port

TOPICS = {"business": ["Shares fell in London", "The bank raised rates", "Profits jumped at the firm"],
          "sport": ["Arsenal beat Chelsea", "The striker scored twice", "Federer wins in Paris"],
          "tech": ["A new phone from Apple", "Google buys a start-up", "The chip runs cooler"]}
SENTENCES = [  # CoNLL-2003 layout: token POS chunk NER
    [("Tony", "NNP", "B-NP", "B-PER"), ("Blair", "NNP", "I-NP", "I-PER"), ("visited", "VBD", "B-VP", "O"),
     ("Paris", "NNP", "B-NP", "B-LOC")],
    [("Shares", "NNS", "B-NP", "O"), ("in", "IN", "B-PP", "O"), ("Nokia", "NNP", "B-NP", "B-ORG"),
     ("fell", "VBD", "B-VP", "O")],
    [("The", "DT", "B-NP", "O"), ("U.S.", "NNP", "I-NP", "B-LOC"), ("won", "VBD", "B-VP", "O"),
     ("3-0", "CD", "B-NP", "O")],
]


def write_user_files(folder: Path) -> dict:
    """A header-less TSV (label, text), a JSON Lines file (no validation file: held out), a four-column CoNLL file
    with -DOCSTART- and tabs; returns a config mixing them with the built-in topic task."""
    news = [f"{label}\t{text} {i}" for i in range(8) for label, texts in TOPICS.items() for text in texts]
    (folder / "news_train.tsv").write_text("\n".join(news[:60]) + "\n")
    (folder / "news_test.tsv").write_text("\n".join(news[60:]) + "\n")
    reviews = [{"review": f"{'Loved it' if i % 2 else 'Dull, far too long'} #{i}", "stars": 5 if i % 2 else 1}
               for i in range(40)]
    (folder / "reviews.jsonl").write_text("".join(json.dumps(r) + "\n" for r in reviews))
    for name, copies in (("ner_train.conll", 8), ("ner_dev.conll", 1), ("ner_test.conll", 2)):
        blocks = ["\n".join(("\t" if n % 2 else " ").join(token) for n, token in enumerate(sentence))
                  for _ in range(copies) for sentence in SENTENCES]
        (folder / name).write_text("-DOCSTART- -X- -X- O\n\n" + "\n\n".join(blocks) + "\n")
    return {
        "tasks": ["topic",
                  {"name": "news", "kind": "sentence", "train": str(folder / "news_train.tsv"),
                   "test": str(folder / "news_test.tsv"), "header": False, "text_column": 1, "label_column": 0},
                  {"name": "reviews", "kind": "sentence", "train": str(folder / "reviews.jsonl"),
                   "text_column": "review", "label_column": "stars"},
                  {"name": "entities", "kind": "token", "train": str(folder / "ner_train.conll"),
                   "validation": str(folder / "ner_dev.conll"), "test": str(folder / "ner_test.conll")}],
        "model": {"backbone": "scratch", "max_seq_length": 32},
        "train_limit": 48, "val_limit": 24,
        "train": {"epochs": 2, "steps_per_epoch": 4, "batch_size": 8, "warmup_ratio": 0.0, "patience": None,
                  "output_dir": str(folder / "run"), "progress": False},
    }


def save(config: dict, folder: Path) -> Path:
    path = folder / "config.json"
    path.write_text(json.dumps(config))
    return path


def test_the_history_prints_every_column_readably():
    history = pd.DataFrame({"epoch": [1, 2], "train_loss/topic": [1.6094, 0.98765], "lr/encoder": [2.5e-05, 0.0],
                            "val/main": [0.123456, 0.5], "seconds": [12.3456, 1234.5]})
    lines = format_history(history).splitlines()
    assert lines[0].split() == list(history.columns)
    assert lines[1].split() == ["1", "1.609", "2.5e-05", "0.1235", "12.35"]  # 4 decimals would print 0.0
    assert lines[2].split() == ["2", "0.9877", "0", "0.5", "1234"]


def test_train_evaluate_and_predict_on_a_users_files(tmp_path, capsys, monkeypatch):
    config_path = save(write_user_files(tmp_path), tmp_path)
    main(["train", str(config_path)])
    printed = capsys.readouterr()
    assert "news (sentence, 3 labels: business, sport, tech): 48 train, 6 validation" in printed.out  # 10 % held out
    assert "reviews (sentence, 2 labels: 1, 5): 36 train, 4 validation" in printed.out  # of 40, before train_limit 48
    assert "entities (token, 5 labels: B-LOC, B-ORG, B-PER, I-PER, O): 24 train, 3 validation" in printed.out
    assert f"trained on 1 process(es) (cpu), a new run; saved in {tmp_path / 'run'}" in printed.out
    assert "warning: 3 text(s) of " in printed.err and "ner_dev.conll also occur in the training file" in printed.err
    assert " 2.5e-05 " in printed.out  # the learning rate after epoch 1 of 2, not rounded to 0.0
    saved = json.loads((tmp_path / "run" / "best" / "config.json").read_text())
    assert {t["name"]: t["labels"] for t in saved["tasks"]}["entities"] == ["B-LOC", "B-ORG", "B-PER", "I-PER", "O"]

    main(["evaluate", str(tmp_path / "run"), str(config_path)])  # an output_dir means its best/ model
    printed = capsys.readouterr()
    assert "note: not scored, no test file: reviews" in printed.err
    scores = json.loads((tmp_path / "run" / "best" / "evaluation_test.json").read_text())["tasks"]
    assert list(scores) == ["topic", "news", "entities"]
    assert list(scores["news"]["per_label"]) == ["business", "sport", "tech"] and scores["news"]["examples"] == 12
    assert set(scores["entities"]["per_label"]) == {"LOC", "ORG", "PER", "micro avg"}
    assert scores["entities"]["per_label"]["micro avg"]["f1"] == pytest.approx(scores["entities"]["entity_f1"])
    assert scores["news"]["main_metric"] == "macro_f1" and scores["entities"]["main_metric"] == "entity_f1"
    assert f"news: 12 test examples, macro_f1 {scores['news']['macro_f1']:.3f}, accuracy" in printed.out

    test_texts = tmp_path / "news_test.txt"
    gold = [line.split("\t") for line in (tmp_path / "news_test.tsv").read_text().splitlines()]
    test_texts.write_text("".join(text + "\n" for _, text in gold))
    main(["predict", str(tmp_path / "run" / "best"), str(test_texts), "--batch-size", "5"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["text"] for row in rows] == [text for _, text in gold]
    accuracy = sum(row["news"]["label"] == label for row, (label, _) in zip(rows, gold)) / len(gold)
    assert accuracy == pytest.approx(scores["news"]["accuracy"])  # predict agrees with evaluate
    for row in rows:
        assert set(row) == {"text", "topic", "news", "reviews", "entities"}
        assert sum(row["reviews"]["probs"].values()) == pytest.approx(1, abs=1e-3)
        assert all(row["text"][e["start"]:e["end"]] == e["text"] for e in row["entities"]["entities"])

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"The U.S. won 3-0.\n")))
    main(["predict", str(tmp_path / "run"), "-", "--tasks", "entities", "--output", str(tmp_path / "out.jsonl")])
    [row] = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert set(row) == {"text", "entities"} and row["text"] == "The U.S. won 3-0."
    words = tmp_path / "words.jsonl"
    words.write_text(json.dumps({"words": ["The", "U.S.", "won", "3-0"]}) + "\n")
    main(["predict", str(tmp_path / "run"), str(words)])
    [row] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["words"] == ["The", "U.S.", "won", "3-0"]
    assert all("The U.S. won 3-0"[e["start"]:e["end"]] == e["text"] for e in row["entities"]["entities"])


def append(path: Path, text: str) -> str:
    path.write_text(path.read_text() + text)
    return str(path)


@pytest.mark.parametrize("edit, message", [
    (lambda f, tasks: tasks[1].update(test=append(f / "news_test.tsv", "politics\tThe vote\n")),
     r"error: task 'news': .*news_test\.tsv:13: unknown label 'politics'; expected one of \['business', 'sport', "
     r"'tech'\], the labels of the training file"),
    (lambda f, tasks: append(f / "news_train.tsv", "sport\tA\tB\n"),
     r"error: task 'news': .*news_train\.tsv:61: 3 fields where line 1 has 2"),
    (lambda f, tasks: tasks[2].update(label_column="rating"),
     r"error: task 'reviews': .*reviews\.jsonl:1: no field 'rating'; the object has \['review', 'stars'\]"),
    (lambda f, tasks: append(f / "ner_train.conll", "\nParis NNP B-NP\n"),
     r"error: task 'entities': .*ner_train\.conll:\d+: 3 columns where line 3 has 4"),
    (lambda f, tasks: tasks[3].update(test=str(f / "missing.conll")),
     r"error: task 'entities': .*missing\.conll: cannot read the file: No such file or directory"),
    (lambda f, tasks: append(f / "reviews.jsonl", '{"review": " ", "stars": 5}\n'),
     r"error: task 'reviews': .*reviews\.jsonl:41: empty text in field 'review'"),
    (lambda f, tasks: (f / "news_test.tsv").write_bytes("sport\tCaf\u00e9\n".encode("cp1252")),
     r"error: task 'news': .*news_test\.tsv:1: not UTF-8 \(byte 0xe9 at offset 9\)"),
    (lambda f, tasks: tasks[1].update(kind="document"),
     r"error: .*config\.json: task 1 \('news'\): 'kind' must be one of \('sentence', 'token'\)"),
    (lambda f, tasks: tasks[1].update(name="topic"),
     r"config\.json: task names must be unique, got \['topic', 'topic', 'reviews', 'entities'\]; file task name "
     r"'topic' is taken by built-in task 'topic' in this config"),
    (lambda f, tasks: tasks.__setitem__(0, "ner") or tasks[1].update(name="topic"),
     r"config\.json: file task name 'topic' is taken by built-in task 'ner' in this config, whose data carry 'topic' "
     r"labels; choose another name"),
    (lambda f, tasks: tasks[3].update(columns=4),
     r"config\.json: task 3 \('entities'\): unknown key\(s\) \['columns'\]"),
], ids=["unseen test label", "field count", "missing field", "CoNLL columns", "missing file", "empty text",
        "not UTF-8", "bad kind", "name clash", "label clash", "unknown key"])
def test_a_problem_in_a_file_or_file_task_stops_before_training(tmp_path, edit, message):
    config = write_user_files(tmp_path)
    edit(tmp_path, config["tasks"])
    with pytest.raises(SystemExit, match=message):
        main(["train", str(save(config, tmp_path))])
    assert not (tmp_path / "run").exists()  # found before any training step: nothing written


def test_a_file_task_may_take_the_name_of_a_built_in_task_the_config_does_not_use(tmp_path, capsys):
    config = write_user_files(tmp_path)
    config["tasks"] = ["sentiment", dict(config["tasks"][3], name="ner")]  # sentiment's data label sentiment, genre
    config["train"]["epochs"] = 1
    main(["train", str(save(config, tmp_path))])
    assert "ner (token, 5 labels: B-LOC, B-ORG, B-PER, I-PER, O): 24 train, 3 validation" in capsys.readouterr().out
    saved = json.loads((tmp_path / "run" / "best" / "config.json").read_text())
    assert [(t["name"], t["labels"][0]) for t in saved["tasks"]] == [("sentiment", "negative"), ("ner", "B-LOC")]


def test_a_new_run_does_not_replace_the_files_of_another(tmp_path, capsys):
    config = write_user_files(tmp_path)
    config["tasks"] = config["tasks"][1:2]
    config["train"]["epochs"] = 1
    config_path = save(config, tmp_path)
    main(["train", str(config_path)])
    run = tmp_path / "run"
    before = {path: path.read_bytes() for path in run.rglob("*") if path.is_file()}
    with pytest.raises(SystemExit, match=r"output_dir .*run already holds \['best', 'history\.csv', 'last'\]: "
                                         r"continue that run with --resume"):
        main(["train", str(config_path)])
    assert {path: path.read_bytes() for path in run.rglob("*") if path.is_file()} == before
    capsys.readouterr()
    main(["train", str(config_path), "--resume"])  # the finished run, continued: nothing left to do
    assert f"trained on 1 process(es) (cpu), resumed from {run / 'last'};" in capsys.readouterr().out


def test_accelerate_launch_on_two_cpu_processes_trains_on_a_users_files(tmp_path, capsys):
    config = write_user_files(tmp_path)
    config["tasks"] = config["tasks"][1:]  # the file tasks only
    config_path = save(config, tmp_path)
    accelerate = Path(sys.executable).with_name("accelerate")
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run(
        [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
         "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()),
         "-m", "mtl", "train", str(config_path)],
        env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "trained on 2 process(es) (cpu), a new run;" in result.stdout
    assert result.stdout.count("news (sentence, 3 labels") == 1  # only the main process reports
    main(["evaluate", str(tmp_path / "run"), str(config_path), "--output", str(tmp_path / "scores.json")])
    assert set(json.loads((tmp_path / "scores.json").read_text())["tasks"]) == {"news", "entities"}
    capsys.readouterr()
    main(["predict", str(tmp_path / "run"), str(tmp_path / "news_test.tsv"), "--format", "text"])
    assert len(capsys.readouterr().out.splitlines()) == 12


def test_the_model_settings_of_a_config_reach_every_head(tmp_path):
    """head_hidden_dim and head_dropout apply to built-in and file tasks alike (they are the TaskSpecs' settings)."""
    from mtl.extras.cli.main import load_config, load_data

    config = write_user_files(tmp_path)
    config["model"].update(head_hidden_dim=16, head_dropout=0.0)
    with pytest.warns(UserWarning, match="also occur in the training file"):  # ner_dev and ner_test hold copies
        specs, _ = load_data(load_config(save(config, tmp_path)), ("train",))
    assert [(spec.hidden_dim, spec.dropout) for spec in specs] == [(16, 0.0)] * 4
