"""The command line: config-file errors of ``python -m mtl train CONFIG.json``, and a run on two CPU processes.

A kill and ``--resume`` through the command line is in test_reliability.py.

On a machine without a GPU, ``accelerate launch --num_processes 2 --cpu`` starts ONE process (accelerate's simple
launcher; several CPU processes need mpirun there), and ``--multi_gpu`` alone starts two processes that each believe
they are the only one. Two cooperating CPU processes need ``--multi_gpu`` (torchrun) plus ``ACCELERATE_USE_CPU=true``,
which is what the test below runs, and it checks that the run really had two processes.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from mtl.extras.cli.main import main
from mtl.training.checkpoint import load_state
from mtl.multitask.model import MultiTaskModel
from mtl.multitask.tasks import task_spec

ROOT = Path(__file__).resolve().parents[1]
TINY = json.loads((ROOT / "configs" / "tiny.json").read_text())


def write_config(tmp_path: Path, config: dict | None = None, raw: bytes | None = None) -> Path:
    path = tmp_path / "run.json"
    if raw is not None:
        path.write_bytes(raw)
    else:
        config = config or json.loads(json.dumps(TINY))
        config["train"]["output_dir"] = str(tmp_path / "run")
        path.write_text(json.dumps(config))
    return path


def changed(section: str | None, **values) -> dict:
    """The tiny config with some values changed (at the top level, or in the "train" or "model" section)."""
    config = json.loads(json.dumps(TINY))
    (config[section] if section else config).update(values)
    return config


@pytest.mark.parametrize("config, raw, message", [
    (None, b'{"tasks": ["topic"], "train": {"output_dir": "r", "epochs": 1}', r"run\.json is not valid UTF-8 JSON"),
    (None, '{"tasks": ["topic"], "note": "caf\u00e9"}'.encode("cp1252"), r"run\.json is not valid UTF-8 JSON"),
    (changed(None, trian={}), None, r"run\.json: needs 'tasks' and 'train\.output_dir'.*unknown \['trian'\]"),
    (changed("train", epoch=2), None, r"error: .*run\.json: 'train': Unknown TrainConfig field\(s\) \['epoch'\]"),
    (changed("train", epochs="2"), None, r"error: .*run\.json: 'train': TrainConfig\.epochs must be int, got str '2'"),
    (changed("train", checkpoint_every=2.5), None, r"'train': TrainConfig\.checkpoint_every must be int \| None"),
    (changed(None, tasks=["topic", "sentimnet"]), None, r"run\.json: unknown task\(s\) \['sentimnet'\]; built-in"),
    (None, b'["tasks"]', r"run\.json: expected a JSON object"),
    (changed(None, tasks="topic"), None, r"run\.json: 'tasks' must be a non-empty list of task names, got 'topic'"),
    (changed("model", backbon="scratch"), None, r"run\.json: 'model' must be an object with keys among \['backbone'"),
    (changed(None, train_limit="64"), None, r"run\.json: 'train_limit' must be a positive integer or null, got '64'"),
    (changed(None, val_limit=0), None, r"run\.json: 'val_limit' must be a positive integer or null, got 0"),
], ids=["truncated JSON", "not UTF-8", "unknown key", "unknown train field", "wrong type", "float for int",
        "unknown task", "not an object", "tasks not a list", "unknown model key", "limit as string", "zero limit"])
def test_a_bad_config_file_is_an_error_naming_the_file_and_the_problem(tmp_path, config, raw, message):
    path = write_config(tmp_path, config, raw)
    with pytest.raises(SystemExit, match=message):
        main(["train", str(path)])
    assert not (tmp_path / "run").exists()  # nothing was trained


def test_a_missing_config_file_is_an_error_naming_it(tmp_path):
    with pytest.raises(SystemExit, match=r"config file .*nope\.json does not exist"):
        main(["train", str(tmp_path / "nope.json")])


def test_a_config_without_output_dir_is_an_error(tmp_path):
    config = changed(None)
    del config["train"]["output_dir"]
    path = tmp_path / "run.json"
    path.write_text(json.dumps(config))
    with pytest.raises(SystemExit, match=r"run\.json: needs 'tasks' and 'train\.output_dir'"):
        main(["train", str(path)])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_one_and_two_processes_train_on_the_same_schedule_to_the_same_weights(tmp_path):
    """The same config on 1 and on 2 CPU processes: the same learning rate at every epoch, the same losses, and
    final head weights equal within 1e-5 (float rounding of the split sums). Dropout is off (frozen encoder in
    eval mode, head_dropout 0) so both runs draw nothing at random per process; class weights, a token task and
    learned loss weights make the loss normalisation matter: each shard must be divided by the whole batch's
    weight (per-shard means would differ), and the scheduler must step once per optimiser step."""
    config = changed("train", epochs=2, steps_per_epoch=3, warmup_ratio=0.0, patience=None, freeze=["encoder"],
                     class_weighting="balanced", loss_weighting="uncertainty", head_lr=0.05)
    config["model"]["head_dropout"] = 0.0
    runs = {}
    for processes in (1, 2):
        run_config = json.loads(json.dumps(config))
        run_config["train"]["output_dir"] = str(tmp_path / f"run{processes}")
        path = tmp_path / f"run{processes}.json"
        path.write_text(json.dumps(run_config))
        launcher = ([str(Path(sys.executable).with_name("accelerate")), "launch", "--multi_gpu", "--num_processes",
                     "2", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                     "--main_process_port", str(free_port())] if processes == 2 else [sys.executable])
        env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
               "TOKENIZERS_PARALLELISM": "false"}
        result = subprocess.run([*launcher, "-m", "mtl", "train", str(path)], env=env, capture_output=True,
                                text=True, timeout=900)
        assert result.returncode == 0, result.stderr[-3000:]
        assert f"trained on {processes} process(es) (cpu), a new run;" in result.stdout  # really cooperating
        assert result.stdout.count("val/main") == 1  # only the main process prints the history
        runs[processes] = tmp_path / f"run{processes}"
    one, two = (pd.read_csv(runs[n] / "history.csv") for n in (1, 2))
    assert one["lr/encoder"].iloc[0] > 0 and two["lr/encoder"].tolist() == pytest.approx(one["lr/encoder"], rel=1e-9)
    losses = [column for column in one if column.startswith("train_loss/")]
    assert len(losses) == 3 and two[losses].to_numpy() == pytest.approx(one[losses].to_numpy(), abs=1e-5, nan_ok=True)
    heads = {n: load_file(str(runs[n] / "best" / "heads.safetensors")) for n in (1, 2)}
    for name, tensor in heads[1].items():
        torch.testing.assert_close(heads[2][name], tensor, rtol=0, atol=1e-5)
    model = MultiTaskModel.load(runs[2] / "best")
    [prediction] = model.predict(["Arsenal beat Chelsea in London."])
    assert set(prediction) == set(TINY["tasks"]) and prediction["topic"]["label"] in task_spec("topic").labels
    assert load_state(runs[2] / "last")[1]["loop"]["epoch"] == 3  # a finished checkpoint
