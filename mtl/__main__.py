"""Command line: ``python -m mtl train CONFIG.json`` (or ``accelerate launch -m mtl train CONFIG.json``).

CONFIG is JSON: {"tasks": [...built-in task names...], "model": {build_model arguments},
"train_limit": int | null, "val_limit": int | null, "train": {TrainConfig fields; output_dir required}}.
The best model is saved to <output_dir>/best, a resumable checkpoint to <output_dir>/last.
"""
from __future__ import annotations

import argparse
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
    unknown = set(config) - CONFIG_KEYS
    if unknown or "tasks" not in config or not config.get("train", {}).get("output_dir"):
        raise SystemExit(f"error: {path}: needs 'tasks' and 'train.output_dir'; allowed keys are "
                         f"{sorted(CONFIG_KEYS)}" + (f", unknown {sorted(unknown)}" if unknown else ""))
    return config


def train_command(config_path: Path, resume: bool) -> None:
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
    history = train(model, train_sets, val_sets, train_config, resume_from=last if resume and last.exists() else None)
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
