"""Command line: ``python -m mtl train CONFIG.json`` (or ``accelerate launch -m mtl train CONFIG.json``).

Several CPU processes: ``ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes 2 -m mtl train ...``
(``accelerate launch --cpu --num_processes 2`` starts only one process unless it can use mpirun).

CONFIG is JSON: {"tasks": [...built-in task names...], "model": {build_model arguments},
"train_limit": int | null, "val_limit": int | null, "train": {TrainConfig fields; output_dir required}}.
The best model is saved to <output_dir>/best, a resumable checkpoint to <output_dir>/last.
"""
from __future__ import annotations

import argparse
import inspect
import json
import sys
from pathlib import Path

CONFIG_KEYS = {"tasks", "model", "train_limit", "val_limit", "train"}


def load_config(path: Path) -> dict:
    """Read and check the run config; problems are errors naming the file."""
    try:
        config = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SystemExit(f"error: config file {path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise SystemExit(f"error: {path} is not valid UTF-8 JSON: {err}") from None
    if not isinstance(config, dict) or not isinstance(config.get("train", {}), dict):
        raise SystemExit(f"error: {path}: expected a JSON object whose 'train' is an object (see configs/tiny.json)")
    unknown = set(config) - CONFIG_KEYS
    if unknown or "tasks" not in config or not config.get("train", {}).get("output_dir"):
        raise SystemExit(f"error: {path}: needs 'tasks' and 'train.output_dir'; allowed keys are "
                         f"{sorted(CONFIG_KEYS)}" + (f", unknown {sorted(unknown)}" if unknown else ""))
    from mtl.tasks import LOADERS, build_model
    from mtl.train import TrainConfig

    tasks, model = config["tasks"], config.get("model", {})
    model_keys = sorted(set(inspect.signature(build_model).parameters) - {"tasks"})
    problems = []
    if not isinstance(tasks, list) or not tasks or not all(isinstance(t, str) for t in tasks):
        problems.append(f"'tasks' must be a non-empty list of task names, got {tasks!r}")
    elif set(tasks) - set(LOADERS):
        problems.append(f"unknown task(s) {sorted(set(tasks) - set(LOADERS))}; built-in tasks are {list(LOADERS)}")
    if not isinstance(model, dict) or not set(model) <= set(model_keys):
        problems.append(f"'model' must be an object with keys among {model_keys}, got {model!r}")
    for key in ("train_limit", "val_limit"):
        if config.get(key) is not None and (type(config[key]) is not int or config[key] < 1):
            problems.append(f"'{key}' must be a positive integer or null, got {config[key]!r}")
    try:
        TrainConfig.from_dict(config["train"])
    except (TypeError, ValueError) as err:
        problems.append(f"'train': {err}")
    if problems:
        raise SystemExit(f"error: {path}: " + "; ".join(problems))
    return config


def train_command(config_path: Path, resume: bool) -> None:
    from accelerate import PartialState

    from mtl.tasks import build_model, load_datasets
    from mtl.train import TrainConfig, train
    from mtl.utils import quiet_libraries, set_seed

    quiet_libraries()
    config = load_config(config_path)
    train_config = TrainConfig.from_dict(config["train"])
    set_seed(train_config.seed)
    model = build_model(config["tasks"], **config.get("model", {}))
    train_sets = load_datasets(config["tasks"], "train", config.get("train_limit"), train_config.seed)
    val_sets = load_datasets(config["tasks"], "validation", config.get("val_limit"), train_config.seed)
    last = Path(train_config.output_dir) / "last"
    resume_from = last if resume and last.exists() else None
    history = train(model, train_sets, val_sets, train_config, resume_from=resume_from)
    processes = PartialState()  # as train's Accelerator set it up; under accelerate launch only the main one prints
    if processes.is_main_process:
        start = f"resumed from {resume_from}" if resume_from else "from scratch"
        print(f"trained on {processes.num_processes} process(es) ({processes.device.type}), {start}; "
              f"saved in {last.parent}")
        print(history.round(4).to_string(index=False))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mtl", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    train_parser = commands.add_parser("train", help="train a multi-task model from a JSON config")
    train_parser.add_argument("config", type=Path)
    train_parser.add_argument("--resume", action="store_true", help="continue from <output_dir>/last if present")
    args = parser.parse_args(argv)
    if args.command == "train":
        train_command(args.config, args.resume)


if __name__ == "__main__":
    sys.exit(main())
