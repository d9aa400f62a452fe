"""Command line: train a multi-task model from a config, score it on test files, predict on new text.

    python -m mtl train CONFIG.json [--resume]
    python -m mtl evaluate MODEL_DIR CONFIG.json [--split test|validation] [--output SCORES.json]
    python -m mtl predict MODEL_DIR [FILE | -] [--output PREDICTIONS.jsonl] [--tasks TASK ...]

Several CPU processes: ``ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes 2 -m mtl train ...``
(``accelerate launch --cpu --num_processes 2`` starts only one process unless it can use mpirun).

CONFIG is JSON: {"tasks": [built-in task names and file tasks], "model": {build_model arguments},
"train_limit": int | null, "val_limit": int | null, "train": {TrainConfig fields; output_dir required}}. A file task
is an object (``mtl.extras.cli.file_tasks.FileTask``), e.g. {"name": "news", "kind": "sentence", "train": "n.csv"}.
Every file is read and checked before training starts. The best model is saved to <output_dir>/best, a resumable
checkpoint to <output_dir>/last; a new run does not start in an output_dir that holds files (``--resume`` continues
the run they belong to), so nothing there is replaced but by the run that wrote it.
"""
from __future__ import annotations

import argparse
import inspect
import json
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:  # for annotations only: each command imports what it uses when it runs
    from mtl.extras.cli.file_tasks import FileTask
    from mtl.evaluation.metrics import TaskPredictions
    from mtl.training.train import TrainConfig

CONFIG_KEYS = {"tasks", "model", "train_limit", "val_limit", "train"}


@dataclass
class RunConfig:
    """A checked config file: built-in task names and file tasks, model arguments, subset sizes, the TrainConfig."""

    path: Path
    tasks: list[str | FileTask]  # a str names a built-in task
    model: dict
    train: TrainConfig
    train_limit: int | None = None
    val_limit: int | None = None


def load_config(path: Path) -> RunConfig:
    """Read and check the run config; every problem is an error naming the file (and the task)."""
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
    from mtl.extras.cli.file_tasks import FileTask
    from mtl.multitask.tasks import LOADERS, build_model
    from mtl.training.train import TrainConfig

    model = config.get("model", {})
    model_keys = sorted(set(inspect.signature(build_model).parameters) - {"tasks"})
    problems, tasks = [], []
    if not isinstance(config["tasks"], list) or not config["tasks"]:
        problems.append(f"'tasks' must be a non-empty list of task names, got {config['tasks']!r}; each is a "
                        "built-in task's name or a file task (an object)")
    for position, entry in enumerate(config["tasks"] if isinstance(config["tasks"], list) else []):
        if isinstance(entry, str) and entry in LOADERS:
            tasks.append(entry)
        elif isinstance(entry, str):
            problems.append(f"unknown task(s) [{entry!r}]; built-in tasks are {list(LOADERS)}, a file task is an "
                            "object")
        elif isinstance(entry, dict):
            try:
                tasks.append(FileTask.from_dict(entry))
            except (TypeError, ValueError) as err:
                problems.append(f"task {position} ({entry.get('name', 'unnamed')!r}): {err}")
        else:
            problems.append(f"task {position} must be a built-in task name or a file task object, got {entry!r}")
    names = [getattr(task, "name", task) for task in tasks]
    if len(set(names)) != len(names):
        problems.append(f"task names must be unique, got {names}")
    problems += name_clashes(tasks)
    if not isinstance(model, dict) or not set(model) <= set(model_keys):
        problems.append(f"'model' must be an object with keys among {model_keys}, got {model!r}")
    for key in ("train_limit", "val_limit"):
        if config.get(key) is not None and (type(config[key]) is not int or config[key] < 1):
            problems.append(f"'{key}' must be a positive integer or null, got {config[key]!r}")
    try:
        train = TrainConfig.from_dict(config["train"])
    except (TypeError, ValueError) as err:
        problems.append(f"'train': {err}")
    if problems:
        raise SystemExit(f"error: {path}: " + "; ".join(problems))
    return RunConfig(Path(path), tasks, model, train, config.get("train_limit"), config.get("val_limit"))


def name_clashes(tasks: Sequence[str | FileTask]) -> list[str]:
    """A file task may not take a name that the data of a built-in task in the same config label, or those examples
    would train its head too (the built-in ner sentences carry a topic, the sentiment ones a genre). Built-in names
    whose task is not in the config are free."""
    from mtl.multitask.tasks import LOADERS

    built_in = [task for task in tasks if isinstance(task, str)]
    file_names = [task.name for task in tasks if not isinstance(task, str)]
    taken = {label: name for name in built_in if file_names for label in LOADERS[name]("validation")[0].labels}
    taken.update({name: name for name in built_in})
    return [f"file task name {name!r} is taken by built-in task {taken[name]!r} in this config, whose data carry "
            f"{name!r} labels; choose another name" for name in file_names if name in taken]


def load_data(config: RunConfig, splits: Sequence[str], labels: dict[str, Sequence[str]] | None = None):
    """(TaskSpecs in config order, {split: {task: examples}}) for ``splits``: built-in tasks from the prepared data,
    file tasks from their files, all of which are read and checked (a task without a test file has no "test" entry).
    ``labels`` (e.g. a trained model's) fix file tasks' label sets; train and validation are cut to train_limit and
    val_limit. A problem in a file exits with an error naming the file and line."""
    from mtl.data.examples import DataError
    from mtl.extras.cli.file_tasks import load_file_task
    from mtl.multitask.tasks import LOADERS, subsample, task_spec

    head = (config.model.get("head_hidden_dim"), config.model.get("head_dropout", 0.1))  # (hidden_dim, dropout)
    limits = {"train": config.train_limit, "validation": config.val_limit, "test": None}
    specs, data = [], {split: {} for split in splits}
    for task in config.tasks:
        try:
            if isinstance(task, str):
                spec, examples = task_spec(task, *head), {split: LOADERS[task](split) for split in splits}
            else:
                loaded = load_file_task(task, config.train.seed, (labels or {}).get(task.name))
                spec, examples = loaded.spec(*head), loaded.splits
            for split in (split for split in splits if split in examples):  # "test" only if there is a file
                data[split][spec.name] = subsample(examples[split], limits[split], spec.name, config.train.seed)
        except (DataError, ValueError) as err:  # ValueError: a stratified subsample with a class too small
            raise SystemExit(f"error: task {getattr(task, 'name', task)!r}: {err}") from None
        specs.append(spec)
    return specs, data


def check_output_dir(config: RunConfig, resume: bool) -> None:
    """A new run starts in an empty or missing output_dir only, so it never replaces another run's files."""
    output = Path(config.train.output_dir)
    held = sorted(p.name for p in output.iterdir()) if output.is_dir() else []
    if held and not resume:
        raise SystemExit(f"error: {config.path}: output_dir {output} already holds {held}: continue that run with "
                         "--resume, or give a new or empty output_dir")


def format_history(history: pd.DataFrame) -> str:
    """The history table with 4 significant digits per number, so a learning rate of 2.5e-05 stays readable."""
    return history.to_string(index=False, float_format=lambda value: f"{value:.4g}")


def train_command(config_path: Path, resume: bool) -> None:
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    from mtl.multitask.tasks import build_model
    from mtl.training.train import train
    from mtl.utils import quiet_libraries, set_seed

    quiet_libraries()
    config = load_config(config_path)
    check_output_dir(config, resume)
    # the process state train's Accelerator will join, made as its AcceleratorState makes it (a bare PartialState()
    # would make every CPU process under accelerate launch a world of its own); only the main process prints
    processes = PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        specs, data = load_data(config, ("train", "validation"))
    if processes.is_main_process:
        for warning in caught:
            print(f"warning: {warning.message}", file=sys.stderr)
        for spec in specs:
            sizes = ", ".join(f"{len(data[split][spec.name])} {split}" for split in data)
            print(f"{spec.name} ({spec.kind}, {len(spec.labels)} labels: {', '.join(spec.labels)}): {sizes}")
    set_seed(config.train.seed)
    model = build_model(specs, **config.model)
    last = Path(config.train.output_dir) / "last"
    resume_from = last if resume and last.exists() else None
    history = train(model, data["train"], data["validation"], config.train, resume_from=resume_from)
    if processes.is_main_process:
        start = f"resumed from {resume_from}" if resume_from else "a new run"
        print(f"trained on {processes.num_processes} process(es) ({processes.device.type}), {start}; "
              f"saved in {last.parent}")
        print(format_history(history))


def model_folder(path: Path) -> Path:
    """A saved model: the folder itself, or the best/ model of a training output_dir."""
    if not (path / "config.json").is_file() and (path / "best" / "config.json").is_file():
        return path / "best"
    return path


def load_model(path: Path):
    from mtl.multitask.model import MultiTaskModel
    from mtl.utils import quiet_libraries

    quiet_libraries()
    try:
        return MultiTaskModel.load(model_folder(path))
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f"error: {err}") from None


def task_report(preds: TaskPredictions) -> dict:
    """A task's test scores as notebook 05 reports them: its kind's scores (accuracy and macro-F1, or entity F1 and
    token accuracy) and their table per label (``Head.breakdown``: per class, or per entity type)."""
    from mtl.multitask.heads import head_type

    head = head_type(preds.kind)
    return {"kind": preds.kind, "examples": len(preds.true), "main_metric": head.main_metric, **preds.scores(),
            "per_label": head.breakdown(preds.true, preds.pred, preds.labels).to_dict("index")}


def evaluate_command(model_dir: Path, config_path: Path, split: str, output: Path | None) -> None:
    from mtl.extras.notebooks.reports import predict_tests
    from mtl.data.prepare import atomic_path
    from mtl.multitask.heads import head_type
    from mtl.multitask.tasks import task_spec

    config = load_config(config_path)
    model = load_model(model_dir)
    problems = []
    for task in config.tasks:
        expected = task_spec(task) if isinstance(task, str) else task  # a file task's labels may be None: inferred
        have = model.tasks.get(expected.name)
        if have is None:
            problems.append(f"the model has no task {expected.name!r} (its tasks: {list(model.tasks)})")
        elif have.kind != expected.kind or expected.labels not in (None, have.labels):
            problems.append(f"task {expected.name!r} is a {expected.kind} task with labels {expected.labels} in "
                            f"the config, a {have.kind} task with labels {have.labels} in the model")
    if problems:
        raise SystemExit(f"error: {config_path}: " + "; ".join(problems))
    labels = {name: task.labels for name, task in model.tasks.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # overlaps were reported when training
        _, data = load_data(config, (split,), labels)
    unscored = [name for name in (getattr(task, "name", task) for task in config.tasks) if name not in data[split]]
    if len(unscored) == len(config.tasks):
        raise SystemExit(f"error: {config_path}: no task has a {split} file")
    if unscored:
        print(f"note: not scored, no {split} file: {', '.join(unscored)}", file=sys.stderr)
    reports = {task: task_report(preds) for task, preds in predict_tests(model, data[split]).items()}
    for task, report in reports.items():
        scores = ", ".join(f"{metric} {report[metric]:.3f}" for metric in head_type(report["kind"]).metrics)
        print(f"{task}: {report['examples']} {split} examples, {scores}")
        print(pd.DataFrame.from_dict(report["per_label"], orient="index").round(3).to_string(), end="\n\n")
    output = output or model_folder(model_dir) / f"evaluation_{split}.json"
    with atomic_path(output) as tmp:
        tmp.write_text(json.dumps({"model": str(model_folder(model_dir)), "config": str(config_path), "split": split,
                                   "tasks": reports}, indent=2))
    print(f"scores written to {output}")


def predict_command(model_dir: Path, source: str, output: Path | None, tasks: list[str] | None, batch_size: int,
                    fmt: str | None) -> None:
    from mtl.data.examples import DataError
    from mtl.data.prepare import atomic_path
    from mtl.extras.cli.readers import read_texts

    try:
        inputs = read_texts(sys.stdin.buffer if source == "-" else source, None if fmt is None else fmt == "jsonl")
    except DataError as err:
        raise SystemExit(f"error: {err}") from None
    model = load_model(model_dir)
    try:
        names = model.check_tasks(tasks)
    except KeyError as err:
        raise SystemExit(f"error: {err.args[0]}") from None
    results = model.predict(inputs, names, batch_size, show_progress_bar=True)
    lines = [json.dumps({"text": x, **result} if isinstance(x, str) else {"words": list(x), **result},
                        ensure_ascii=False) + "\n" for x, result in zip(inputs, results)]
    if output is None:
        sys.stdout.writelines(lines)
        return
    with atomic_path(output) as tmp:
        tmp.write_text("".join(lines), encoding="utf-8")
    print(f"{len(lines)} predictions written to {output}", file=sys.stderr)


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mtl", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    saved_model = "a saved model, or a training output_dir (its best/)"
    train_parser = commands.add_parser("train", help="train a multi-task model from a JSON config")
    train_parser.add_argument("config", type=Path)
    train_parser.add_argument("--resume", action="store_true", help="continue from <output_dir>/last if present")
    evaluate_parser = commands.add_parser("evaluate", help="score a saved model on the config's test (or "
                                                           "validation) data; print the scores and write them as JSON")
    evaluate_parser.add_argument("model_dir", type=Path, help=saved_model)
    evaluate_parser.add_argument("config", type=Path, help="the config the model was trained with")
    evaluate_parser.add_argument("--split", choices=("test", "validation"), default="test")
    evaluate_parser.add_argument("--output", type=Path, help="JSON file (default: MODEL_DIR/evaluation_SPLIT.json)")
    predict_parser = commands.add_parser("predict", help="predict every task on texts; JSON Lines out")
    predict_parser.add_argument("model_dir", type=Path, help=saved_model)
    predict_parser.add_argument("input", nargs="?", default="-",
                                help="one text per line, or JSON Lines with 'text' or 'words' (.jsonl); - : stdin")
    predict_parser.add_argument("--format", choices=("text", "jsonl"), help="input format (default: by extension)")
    predict_parser.add_argument("--output", type=Path, help="JSON Lines file (default: stdout)")
    predict_parser.add_argument("--tasks", nargs="+", help="tasks to predict (default: all of the model's)")
    predict_parser.add_argument("--batch-size", type=positive_int, default=64)
    args = parser.parse_args(argv)
    if args.command == "train":
        train_command(args.config, args.resume)
    elif args.command == "evaluate":
        evaluate_command(args.model_dir, args.config, args.split, args.output)
    else:
        predict_command(args.model_dir, args.input, args.output, args.tasks, args.batch_size, args.format)


if __name__ == "__main__":
    sys.exit(main())
