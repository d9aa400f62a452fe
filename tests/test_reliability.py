"""Reliability: determinism, interrupted training, safe checkpoints, and bad input.

Each test feeds one kind of bad or unlucky input and checks what the user gets: either a clear error that names
the file, field, task, label, step or batch, or a run that ends exactly as an undisturbed one would. The table of
docs/reliability.md lists these tests. Everything runs on the from-scratch backbone with tiny
limits and one torch thread (several engineers share 2 cores: more threads would only fight over them).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file

import mtl.training.checkpoint
from mtl.training.checkpoint import atomic_directory, load_state
from mtl.data.examples import TASK_LABELS, Example
from mtl.multitask.heads import TaskSpec
from mtl.training.losses import LossWeighting
from mtl.multitask.model import MultiTaskModel
from mtl.multitask.tasks import build_model, load_datasets, task_spec
from mtl.training.train import TrainConfig, train
from mtl.utils import quiet_libraries, set_seed

quiet_libraries()

ROOT = Path(__file__).resolve().parents[1]
TASKS = ["topic", "ner"]  # a sentence task and a token task; the NER sentences also carry a topic label
SUBPROCESS_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data() -> tuple[dict, dict]:
    return load_datasets(TASKS, "train", 24), load_datasets(TASKS, "validation", 8)


def new_model(seed: int = 0, tasks=TASKS) -> MultiTaskModel:
    set_seed(seed)  # the heads' initial weights
    return build_model(tasks, backbone="scratch", max_seq_length=32)


def tiny(**changes) -> TrainConfig:
    return TrainConfig(**{"epochs": 1, "steps_per_epoch": 4, "batch_size": 8, "eval_batch_size": 32,
                          "progress": False, **changes})


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, data) -> Path:
    """A finished 2-epoch run: best/ and last/ (a resumable checkpoint at the end), to copy and then damage."""
    out = tmp_path_factory.mktemp("run")
    train(new_model(), *data, tiny(epochs=2, patience=None, output_dir=str(out)))
    return out


def copy_of(run_dir: Path, tmp_path: Path, *folders: str) -> Path:
    """A copy of the run's best/ and/or last/ folders, safe to damage."""
    for folder in folders:
        shutil.copytree(run_dir / folder, tmp_path / "run" / folder)
    return tmp_path / "run"


def all_finite(folder: Path) -> bool:
    tensors = {k: v for f in folder.rglob("*.safetensors") for k, v in load_file(f).items()}
    return all(torch.isfinite(v).all() for v in tensors.values() if v.is_floating_point())


def without_timings(history: pd.DataFrame) -> pd.DataFrame:
    return history.drop(columns="seconds")


# --- determinism -------------------------------------------------------------------------------------------

def test_same_seed_and_config_give_bit_identical_weights_and_metrics(data):
    runs = []
    for seed, disturbance in ((0, 1), (0, 2), (1, 1)):
        model = new_model(seed)
        random.seed(disturbance), np.random.seed(disturbance), torch.manual_seed(disturbance)  # train() must seed
        history = train(model, *data, tiny(epochs=2, patience=None, seed=seed))
        runs.append((without_timings(history), model.state_dict()))
    (history_a, weights_a), (history_b, weights_b), (history_c, weights_c) = runs
    pd.testing.assert_frame_equal(history_a, history_b, check_exact=True)
    assert weights_a.keys() == weights_b.keys()
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)
    # the comparison can fail: another seed gives other weights
    assert not all(torch.equal(weights_a[k], weights_c[k]) for k in weights_a)


# --- interruption ------------------------------------------------------------------------------------------

def cli_config(tmp_path: Path, name: str, **train_changes) -> Path:
    """configs/tiny.json (scratch backbone, max_seq_length 32, tiny limits) writing to tmp_path/name."""
    config = json.loads((ROOT / "configs" / "tiny.json").read_text())
    config["train"].update(output_dir=str(tmp_path / name), **train_changes)
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(config))
    return path


def start_cli(config: Path, *flags: str) -> subprocess.Popen:
    """``python -m mtl train CONFIG [flags]`` in the background, its output in CONFIG.log (a pipe could fill up)."""
    log = open(config.with_suffix(".log"), "a")
    process = subprocess.Popen([sys.executable, "-m", "mtl", "train", str(config), *flags], env=SUBPROCESS_ENV,
                               stdout=log, stderr=subprocess.STDOUT, text=True)
    process.log = Path(log.name)
    log.close()  # the child holds its own copy
    return process


def finish(process: subprocess.Popen, timeout: float = 600) -> None:
    process.wait(timeout=timeout)
    assert process.returncode == 0, f"{process.args} failed:\n{process.log.read_text()[-3000:]}"


@pytest.fixture
def processes():
    """Processes a test starts; any still running when it ends (e.g. after a failed assert) are killed."""
    started: list[subprocess.Popen] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def read_loop_state(last: Path) -> dict | None:
    """The loop state of a checkpoint, or None while there is none (or it is being swapped)."""
    try:
        return json.loads((last / "state.json").read_text())["loop"]
    except FileNotFoundError:
        return None


def assert_same_files(a: Path, b: Path) -> None:
    """Same tensors in every safetensors file, same JSON (timings aside) and same history."""
    files = sorted(f.relative_to(a) for f in a.rglob("*.safetensors"))
    assert files == sorted(f.relative_to(b) for f in b.rglob("*.safetensors")) and files
    for name in files:
        ta, tb = load_file(a / name), load_file(b / name)
        assert ta.keys() == tb.keys(), name
        for key in ta:
            assert torch.equal(ta[key], tb[key]), f"{name}: {key} differs"
    for name in ("config.json", "state.json"):
        if (a / name).exists():
            ja, jb = (json.loads((folder / name).read_text()) for folder in (a, b))
            if name == "state.json":
                for state in (ja, jb):
                    for timed in (state["loop"], *state["loop"]["history"]):
                        del timed["seconds"]
            assert ja == jb, f"{name} differs"


def test_a_run_killed_mid_epoch_and_resumed_ends_like_an_uninterrupted_one(tmp_path, processes):
    steps = 8
    changes = dict(epochs=2, steps_per_epoch=steps, checkpoint_every=2, patience=None)
    killed_config = cli_config(tmp_path, "killed", **changes)
    processes.append(reference := start_cli(cli_config(tmp_path, "reference", **changes)))  # runs alongside
    processes.append(victim := start_cli(killed_config))
    last = tmp_path / "killed" / "last"
    deadline = time.monotonic() + 600
    while (state := read_loop_state(last)) is None or (state["epoch"], state["step"]) < (1, 2):
        assert victim.poll() is None, f"the run ended before it was killed:\n{victim.log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, "no mid-epoch checkpoint within 10 minutes"
        time.sleep(0.02)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL
    at_kill = read_loop_state(last)  # the checkpoint the resumed run starts from
    assert at_kill["epoch"] == 1 and 0 < at_kill["step"] < steps, at_kill  # mid-epoch
    assert not (tmp_path / "killed" / "history.csv").exists()

    processes.append(resumed := start_cli(killed_config, "--resume"))
    finish(resumed)
    assert f"resumed from {last}" in resumed.log.read_text()
    finish(reference)
    for folder in ("best", "last"):
        assert_same_files(tmp_path / "reference" / folder, tmp_path / "killed" / folder)
    histories = [pd.read_csv(tmp_path / name / "history.csv") for name in ("reference", "killed")]
    pd.testing.assert_frame_equal(*map(without_timings, histories), check_exact=True)
    assert len(histories[0]) == 2
    assert sorted(p.name for p in (tmp_path / "killed").iterdir()) == ["best", "history.csv", "last"]  # no leftovers


def digests(folder: Path) -> dict[str, str]:
    return {str(f.relative_to(folder)): hashlib.sha256(f.read_bytes()).hexdigest() for f in folder.rglob("*")
            if f.is_file()}


def test_a_checkpoint_write_that_fails_midway_keeps_the_previous_checkpoint(tmp_path, data, monkeypatch):
    real_save_file, calls, before = mtl.training.checkpoint.save_file, [], {}
    last = tmp_path / "last"

    def disk_full_on_third_write(tensors, filename):
        calls.append(filename)
        if len(calls) < 3:
            return real_save_file(tensors, filename)
        before.update(digests(last))  # the good checkpoint
        real_save_file(tensors, filename)
        with open(filename, "r+b") as half:
            half.truncate(os.path.getsize(filename) // 2)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(mtl.training.checkpoint, "save_file", disk_full_on_third_write)
    with pytest.raises(OSError, match="No space left"):
        train(new_model(), *data, tiny(checkpoint_every=1, output_dir=str(tmp_path)))
    assert len(calls) == 3 and before
    assert digests(last) == before  # byte for byte
    assert load_state(last)[1]["loop"]["step"] == 2
    MultiTaskModel.load(last, tasks=[task_spec(t) for t in TASKS])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]  # the half-written temporary folder is gone


def write_text(text: str):
    return lambda folder: (folder / "x.txt").write_text(text)


def test_a_kill_while_swapping_checkpoint_folders_loses_nothing(tmp_path, monkeypatch):
    target, old = tmp_path / "last", tmp_path / ".last.old"
    atomic_directory(target, write_text("1"))
    # killed while deleting the replaced copy, and (another time) while writing: the leftovers must not block the
    # next write, and are removed by it
    for leftover in (old, tmp_path / ".last.k1ll3d"):
        leftover.mkdir()
        (leftover / "x.txt").write_text("0")
    atomic_directory(target, write_text("2"))
    assert (target / "x.txt").read_text() == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]
    # killed between the two renames: the previous copy is aside and the target is gone
    real_replace, renames = os.replace, []

    def killed_after_first_rename(src, dst):
        renames.append(dst)
        if len(renames) == 2:
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(mtl.training.checkpoint.os, "replace", killed_after_first_rename)
    with pytest.raises(KeyboardInterrupt):
        atomic_directory(target, write_text("3"))
    monkeypatch.setattr(mtl.training.checkpoint.os, "replace", real_replace)
    assert not target.exists() and (old / "x.txt").read_text() == "2"
    with pytest.raises(RuntimeError):  # the next write fails too: the previous copy is back in place
        atomic_directory(target, lambda folder: (_ for _ in ()).throw(RuntimeError("write failed")))
    assert (target / "x.txt").read_text() == "2"
    atomic_directory(target, write_text("4"))
    assert (target / "x.txt").read_text() == "4"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]


# --- safe loading ------------------------------------------------------------------------------------------

PICKLE_MODULES = r"(c?pickle|_pickle|dill|cloudpickle|joblib|shelve|marshal)"
UNSAFE_CALL = re.compile(rf"\btorch\.(load|save)\s*\(|\b{PICKLE_MODULES}\.\w|^\s*(import|from)\s+{PICKLE_MODULES}\b"
                         r"|allow_pickle\s*=\s*True|weights_only\s*=\s*False")


def test_the_package_never_calls_pickle_based_loaders():
    files = sorted((ROOT / "mtl").rglob("*.py"))
    assert len(files) > 30  # every subpackage, not only mtl/*.py
    hits = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}" for path in files
            for number, line in enumerate(path.read_text().splitlines(), 1) if UNSAFE_CALL.search(line)]
    assert hits == []
    for unsafe in ("state = torch.load(path)", "import pickle", "from joblib import load", "x = pickle.loads(b)",
                   "np.load(f, allow_pickle=True)", "torch.load(f, weights_only=False)"):
        assert UNSAFE_CALL.search(unsafe), unsafe  # the pattern can fail


def test_loading_a_model_and_resuming_a_run_never_unpickle(run_dir, tmp_path, data, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("pickle-based loading was called")

    for module, name in ((torch, "load"), (pickle, "load"), (pickle, "loads"), (pickle, "Unpickler")):
        monkeypatch.setattr(module, name, refuse)
    run = copy_of(run_dir, tmp_path, "best", "last")
    MultiTaskModel.load(run / "best").predict(["Shares fell in London."])
    model = new_model(seed=7)
    train(model, *data, tiny(epochs=2, patience=None, output_dir=str(run)), resume_from=run / "last")
    expected = MultiTaskModel.load(run / "best").state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in model.state_dict().items())


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


DAMAGE = {  # name: (what to do to a saved model folder, exception, message that names the file)
    "truncated heads": (lambda d: truncate(d / "heads.safetensors"), ValueError, r"heads\.safetensors is corrupted"),
    "empty heads": (lambda d: (d / "heads.safetensors").write_bytes(b""), ValueError, r"heads\.safetensors is corr"),
    "garbage config": (lambda d: (d / "config.json").write_text("{tasks: ["), ValueError,
                       r"config\.json is not a valid model config"),
    "config without tasks": (lambda d: (d / "config.json").write_text("{}"), ValueError,
                             r"config\.json is not a valid model config"),
    "newer format": (lambda d: (d / "config.json").write_text(
        (d / "config.json").read_text().replace('"format_version": 1', '"format_version": 99')), ValueError,
        r"config\.json has format_version 99"),
    "missing heads": (lambda d: (d / "heads.safetensors").unlink(), FileNotFoundError, r"heads\.safetensors is miss"),
    "missing config": (lambda d: (d / "config.json").unlink(), FileNotFoundError, r"config\.json is missing"),
    "missing encoder": (lambda d: shutil.rmtree(d / "encoder"), FileNotFoundError, r"encoder is not a saved encoder"),
    "truncated encoder weights": (lambda d: truncate(d / "encoder" / "model.safetensors"), ValueError,
                                  r"encoder/model\.safetensors is corrupted"),
    "missing encoder weights": (lambda d: (d / "encoder" / "model.safetensors").unlink(), OSError,
                                r"no file named model\.safetensors.*encoder"),
    "garbage encoder modules.json": (lambda d: (d / "encoder" / "modules.json").write_text("[{"), ValueError,
                                     r"encoder/modules\.json is not valid JSON"),
    "missing tokenizer": (lambda d: (d / "encoder" / "tokenizer.json").unlink(), ValueError,
                          r"encoder: the tokenizer has no vocabulary"),
    "heads of another model": (lambda d: save_file({"topic.net.1.weight": torch.zeros(5, 16)},
                                                   d / "heads.safetensors"), ValueError,
                               r"heads\.safetensors does not match .*config\.json"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_model_folder_is_an_error_naming_the_file(run_dir, tmp_path, damage):
    mutate, error, message = DAMAGE[damage]
    run = copy_of(run_dir, tmp_path, "best")
    MultiTaskModel.load(run / "best")  # loads before the damage
    mutate(run / "best")
    with pytest.raises(error, match=message):
        MultiTaskModel.load(run / "best")


@pytest.mark.parametrize("tasks, why", [
    ([task_spec("topic")], "a task fewer"),
    ([task_spec("topic"), task_spec("sentiment")], "another task"),
    ([TaskSpec("topic", "sentence", TASK_LABELS["topic"][::-1]), task_spec("ner")], "labels in another order"),
    ([TaskSpec("topic", "sentence", TASK_LABELS["topic"] + ("science",)), task_spec("ner")], "an extra label"),
])
def test_a_checkpoint_with_other_tasks_or_label_sets_is_refused(run_dir, tasks, why):
    MultiTaskModel.load(run_dir / "best", tasks=[task_spec(t) for t in TASKS])
    with pytest.raises(ValueError, match=r"best holds tasks .* but .* were expected"):
        MultiTaskModel.load(run_dir / "best", tasks=tasks)


RESUME_DAMAGE = {
    "truncated state tensors": (lambda d: truncate(d / "state.safetensors"), ValueError,
                                r"state\.safetensors is corrupted"),
    "garbage state.json": (lambda d: (d / "state.json").write_text('{"loop": {"epoch": '), ValueError,
                           r"state\.json is not valid JSON"),
    "missing state.json": (lambda d: (d / "state.json").unlink(), FileNotFoundError, r"state\.json is missing"),
    "missing state tensors": (lambda d: (d / "state.safetensors").unlink(), FileNotFoundError,
                              r"state\.safetensors is missing"),
    "truncated heads": (lambda d: truncate(d / "heads.safetensors"), ValueError, r"heads\.safetensors is corrupted"),
}


@pytest.mark.parametrize("damage", list(RESUME_DAMAGE))
def test_resuming_from_a_damaged_checkpoint_is_an_error_naming_the_file(run_dir, tmp_path, data, damage):
    mutate, error, message = RESUME_DAMAGE[damage]
    run = copy_of(run_dir, tmp_path, "last")
    mutate(run / "last")
    with pytest.raises(error, match=message):
        train(new_model(), *data, tiny(epochs=2, output_dir=str(run)), resume_from=run / "last")


def test_resuming_with_other_tasks_labels_or_data_is_refused(run_dir, tmp_path, data):
    run = copy_of(run_dir, tmp_path, "last")
    config = tiny(epochs=2, output_dir=str(run))
    train_sets, val_sets = data
    with pytest.raises(ValueError, match=r"last holds tasks .* were expected"):
        train(new_model(tasks=["topic"]), {"topic": train_sets["topic"]}, {"topic": val_sets["topic"]}, config,
              resume_from=run / "last")
    other_labels = [TaskSpec("topic", "sentence", TASK_LABELS["topic"][::-1]), task_spec("ner")]
    with pytest.raises(ValueError, match=r"last holds tasks .* were expected"):
        train(new_model(tasks=other_labels), *data, config, resume_from=run / "last")
    smaller = {name: examples[:16] for name, examples in train_sets.items()}
    with pytest.raises(ValueError, match=r"last.* 24 training examples in 'topic', but there are 16"):
        train(new_model(), smaller, val_sets, config, resume_from=run / "last")


# --- bad input ---------------------------------------------------------------------------------------------

def test_an_unknown_task_name_is_an_error_listing_the_known_ones(data):
    model = new_model()
    features, _ = model.collate(data[0]["topic"][:2])
    known = r"this model has tasks \['topic', 'ner'\]"
    with pytest.raises(KeyError, match=known):
        model.predict(["Shares fell."], tasks=["sentiment"])
    with pytest.raises(KeyError, match=known):
        model(features, tasks=["topic", "Topic"])
    with pytest.raises(KeyError, match=r"Loss weights name unknown task\(s\) \['sentimnet'\]"):
        train(model, *data, tiny(task_weights={"sentimnet": 2.0}))
    with pytest.raises(KeyError, match=r"Unknown built-in task 'sentimnet'; built-in tasks are"):
        build_model(["topic", "sentimnet"], backbone="scratch")
    with pytest.raises(KeyError, match=r"Unknown built-in task 'nerr'"):
        load_datasets(["nerr"], "train")
    assert set(LossWeighting(["topic"], weights={"topic": 2.0}).weights) == {"topic"}  # a known name is fine


def test_a_label_outside_the_label_set_is_an_error_naming_it(data):
    model = new_model()
    with pytest.raises(ValueError, match=r"Task 'topic': label 'sport' is not in the label set \('business'"):
        model.collate([Example("Arsenal won.", {"topic": "sport"})])
    with pytest.raises(ValueError, match=r"Task 'ner': label 'B-GPE' is not in the label set"):
        model.collate([Example("Paris wins", {"ner": ("B-GPE", "O")}, ("Paris", "wins"))])
    # in training data it fails before the first step, naming the dataset and the example
    train_sets, val_sets = data
    bad = Example("Arsenal won .", {"topic": "sport"})
    with pytest.raises(ValueError, match=r"training set 'topic', example 24 \('Arsenal won \.'\): task 'topic' .*label 'sport'"):
        train(model, {**train_sets, "topic": train_sets["topic"] + [bad]}, val_sets, tiny())
    with pytest.raises(ValueError, match=r"validation set 'ner', example 0 .*label 'B-GPE'"):
        train(model, train_sets, {**val_sets, "ner": [Example("Paris", {"ner": ("B-GPE",)}, ("Paris",))]}, tiny())
    with pytest.raises(ValueError, match=r"task 'ner' is a token task: its label must be one tag per word"):
        train(model, {**train_sets, "ner": [Example("Paris", {"ner": "B-LOC"})]}, val_sets, tiny())


def test_tags_that_do_not_match_the_words_are_an_error():
    with pytest.raises(ValueError, match="task 'ner' has 3 tags for 4 words"):
        Example("Obama visited Paris today", {"ner": ("B-PER", "O", "B-LOC")}, ("Obama", "visited", "Paris", "today"))
    with pytest.raises(ValueError, match="text must be the words joined by spaces"):
        Example("Obama visited Paris", {"ner": ("B-PER", "O")}, ("Obama", "visited"))


def test_examples_without_a_label_for_any_task_of_the_model_are_an_error(data):
    train_sets, val_sets = data
    unlabelled = [Example("Shares fell.", {"sentiment": "negative"})] * 8  # a task the model does not have
    with pytest.raises(ValueError, match=r"training set 'extra', example 0 .* no label for any of the model's tasks"):
        train(new_model(), {**train_sets, "extra": unlabelled}, val_sets, tiny())


def nan_from_step(model: MultiTaskModel, first_bad_step: int, monkeypatch) -> None:
    """Make the topic head output NaN from the given training step on (counting training forwards only)."""
    head, real_forward, steps = model.heads["topic"], model.heads["topic"].net.forward, []

    def forward(x):
        out = real_forward(x)
        if head.training:
            steps.append(1)
            if len(steps) >= first_bad_step:
                return out * float("nan")
        return out

    monkeypatch.setattr(head.net, "forward", forward)


def test_a_nan_loss_stops_training_naming_the_step_and_batch_and_keeps_the_last_good_checkpoint(
        tmp_path, data, monkeypatch):
    model = new_model()
    train_sets, val_sets = data
    topic_only = {"topic": train_sets["topic"]}  # every step reaches the topic head
    nan_from_step(model, 3, monkeypatch)
    with pytest.raises(FloatingPointError, match=r"Loss is nan .*at epoch 1, step 3 \(dataset 'topic', batch starting"):
        train(model, topic_only, val_sets, tiny(checkpoint_every=1, output_dir=str(tmp_path)))
    assert load_state(tmp_path / "last")[1]["loop"]["step"] == 2
    assert all_finite(tmp_path / "last")
    MultiTaskModel.load(tmp_path / "last")


def test_nan_gradients_behind_a_finite_loss_stop_training_before_the_weights_are_spoiled(tmp_path, data):
    model = new_model()
    train_sets, val_sets = data
    calls = []

    def nan_on_third_backward(grad):
        calls.append(1)
        return grad * float("nan") if len(calls) == 3 else grad

    model.heads["topic"].net[1].weight.register_hook(nan_on_third_backward)
    with pytest.raises(FloatingPointError, match=r"Loss is [\d.]+ \(gradient norm nan\) at epoch 1, step 3 \("):
        train(model, {"topic": train_sets["topic"]}, val_sets, tiny(checkpoint_every=1, output_dir=str(tmp_path)))
    assert load_state(tmp_path / "last")[1]["loop"]["step"] == 2
    assert all_finite(tmp_path / "last")


def test_an_absurd_learning_rate_stops_training_with_a_named_step(tmp_path, data):
    with pytest.raises(FloatingPointError, match=r"at epoch 1, step \d+ \(dataset '(topic|ner)', batch starting"):
        train(new_model(), *data, tiny(encoder_lr=1e20, head_lr=1e20, warmup_ratio=0.0, checkpoint_every=1,
                                       output_dir=str(tmp_path)))
    assert load_state(tmp_path / "last")[1]["loop"]["step"] >= 1  # a checkpoint was written before it went wrong
    assert all_finite(tmp_path / "last")


def test_an_empty_dataset_or_split_is_an_error(data):
    model = new_model()
    train_sets, val_sets = data
    with pytest.raises(ValueError, match=r"training set 'topic' has no examples"):
        train(model, {**train_sets, "topic": []}, val_sets, tiny())
    with pytest.raises(ValueError, match=r"needs examples, got sizes .*'ner': 0"):
        train(model, train_sets, {**val_sets, "ner": []}, tiny())
    with pytest.raises(ValueError, match=r"needs examples"):
        train(model, train_sets, {}, tiny())
    with pytest.raises(ValueError, match=r"Expected at least one text"):
        model.predict([])
    with pytest.raises(ValueError, match=r"empty batch"):
        model.collate([])
    with pytest.raises(ValueError, match=r"unknown split 'dev'; valid splits: train, validation, test"):
        load_datasets(["topic"], "dev")


@pytest.mark.parametrize("values, error, message", [
    ({"epoch": 2}, ValueError, r"Unknown TrainConfig field\(s\) \['epoch'\]; valid fields are"),
    ({"epochs": "2"}, TypeError, r"TrainConfig\.epochs must be int, got str '2'"),
    ({"epochs": 2.0}, TypeError, r"TrainConfig\.epochs must be int, got float 2\.0"),
    ({"batch_size": True}, TypeError, r"TrainConfig\.batch_size must be int, got bool True"),
    ({"encoder_lr": "5e-5"}, TypeError, r"TrainConfig\.encoder_lr must be float, got str"),
    ({"freeze": "embeddings"}, TypeError, r"TrainConfig\.freeze must be list\[str\], got str"),
    ({"patience": "never"}, TypeError, r"TrainConfig\.patience must be int \| None"),
    ({"epochs": 0}, ValueError, r"must be positive"),
], ids=["unknown field", "string for int", "float for int", "bool for int", "string for float", "string for list",
        "string for int or None", "zero epochs"])
def test_a_train_config_with_an_unknown_field_or_a_wrong_type_is_an_error_naming_it(values, error, message):
    with pytest.raises(error, match=message):
        TrainConfig.from_dict(values)


def test_a_train_config_of_the_right_types_is_accepted():
    config = TrainConfig.from_dict({"epochs": 2, "encoder_lr": 1, "patience": None, "freeze": ["embeddings"]})
    assert (config.epochs, config.encoder_lr, config.patience, config.freeze) == (2, 1, None, ["embeddings"])
    assert math.isclose(TrainConfig.from_dict({}).head_lr, TrainConfig().head_lr)
