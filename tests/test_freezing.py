"""Tests for mtl.finetuning.freezing and the training-config side of transfer learning (mtl.training.train): components and selectors,
freeze/unfreeze, the parameter report, eval mode of frozen parts, discriminative learning rates and gradual
unfreezing."""
from __future__ import annotations

import pytest
import torch

from mtl.multitask.model import is_frozen
from mtl.finetuning.freezing import freeze, parameter_report, select, unfreeze
import mtl.training.train
from mtl.evaluation.predictions import evaluate
from mtl.multitask.tasks import build_model, load_datasets
from mtl.finetuning.rates import layer_learning_rates, parameter_groups
from mtl.training.losses import LossWeighting, MultiTaskObjective
from mtl.training.train import TrainConfig, train
from mtl.utils import set_seed

BLOCKS = [f"layer.{i}" for i in range(4)]  # the scratch backbone has 4 blocks
HEADS = ["head.topic", "head.sentiment", "head.ner"]


def data(limit: int = 32):
    tasks = ["topic", "sentiment"]
    return load_datasets(tasks, "train", limit=limit), load_datasets(tasks, "validation", limit=16)


def snapshot(model) -> dict[str, list[torch.Tensor]]:
    return {name: [p.detach().clone() for p in module.parameters()] for name, module in model.components().items()}


def changed(before, after) -> set[str]:
    """Components whose weights differ between two snapshots (or a snapshot and a model)."""
    after = after if isinstance(after, dict) else snapshot(after)
    return {name for name in before if any(not torch.equal(a, b) for a, b in zip(before[name], after[name]))}


# ---- components, selectors, freeze / unfreeze ------------------------------------------------------------------
def test_components_are_listed_bottom_up(tiny_model):
    assert list(tiny_model.components()) == ["embeddings", *BLOCKS, *HEADS]
    with_extras = build_model(["topic"], backbone="scratch", projection_dim=16, layer_norm=True, max_seq_length=16)
    assert list(with_extras.components())[-3:] == ["projection", "layer_norm", "head.topic"]


@pytest.mark.parametrize("selector, expected", [
    ("encoder", ["embeddings", *BLOCKS]),
    ("backbone", ["embeddings", *BLOCKS]),
    ("heads", HEADS),
    ("bottom:2", ["embeddings", "layer.0", "layer.1"]),
    ("bottom:0", ["embeddings"]),
    ("top:1", ["layer.3"]),
    ("top:4", BLOCKS),
    ("head.ner", ["head.ner"]),
    ("layer.2", ["layer.2"]),
])
def test_selectors(tiny_model, selector, expected):
    assert select(tiny_model, selector) == expected


@pytest.mark.parametrize("selector", ["top:5", "bottom:-1", "layers", "head.genre", "top:x"])
def test_unknown_selector_is_an_error_listing_valid_ones(tiny_model, selector):
    with pytest.raises(ValueError, match="valid:.*'encoder'"):
        select(tiny_model, selector)


def test_freeze_and_unfreeze_set_requires_grad_per_component(tiny_model):
    freeze(tiny_model, "encoder")
    frozen = {name for name, module in tiny_model.components().items() if is_frozen(module)}
    assert frozen == {"embeddings", *BLOCKS}
    unfreeze(tiny_model, "top:2")
    frozen = {name for name, module in tiny_model.components().items() if is_frozen(module)}
    assert frozen == {"embeddings", "layer.0", "layer.1"}
    assert tiny_model.encoder.frozen_depth() == 2
    freeze(tiny_model, "head.topic", "head.sentiment")
    assert is_frozen(tiny_model.heads["topic"]) and not is_frozen(tiny_model.heads["ner"])


def test_parameter_report_counts_trainable_and_total_per_component(tiny_model):
    freeze(tiny_model, "bottom:3", "head.ner")
    report = parameter_report(tiny_model).set_index("component")
    for name, module in tiny_model.components().items():
        assert report.loc[name, "total"] == sum(p.numel() for p in module.parameters())
    assert report.loc["embeddings", "trainable"] == 0 and report.loc["layer.2", "trainable"] == 0
    assert report.loc["layer.3", "trainable"] == report.loc["layer.3", "total"] > 0
    assert report.loc["head.ner", "trainable"] == 0 and report.loc["head.topic", "trainable"] == 387 + 258
    assert report.loc["total", "total"] == sum(p.numel() for p in tiny_model.parameters())
    assert report.loc["total", "trainable"] == sum(p.numel() for p in tiny_model.parameters() if p.requires_grad)


def test_frozen_components_run_in_eval_mode_so_their_output_is_deterministic(tiny_model):
    freeze(tiny_model, "encoder")
    tiny_model.train()
    assert not any(module.training for name, module in tiny_model.components().items() if not name.startswith("head."))
    assert all(tiny_model.heads[t].training for t in tiny_model.heads)
    features = tiny_model.encoder.tokenize(["The markets fell sharply today.", "A short one."])
    first, second = (tiny_model.encoder(features)["sentence_embedding"] for _ in range(2))
    assert torch.equal(first, second)  # no dropout noise in what does not learn
    unfreeze(tiny_model, "top:1")
    assert tiny_model.encoder.blocks[3].training and not tiny_model.encoder.blocks[2].training
    first, second = (tiny_model.encoder(features)["sentence_embedding"] for _ in range(2))
    assert not torch.equal(first, second)  # the trainable block has dropout again
    tiny_model.eval()
    assert not tiny_model.encoder.blocks[3].training  # eval mode is eval everywhere


def test_frozen_depth_counts_frozen_blocks_above_frozen_embeddings(tiny_model):
    freeze(tiny_model, "top:2")
    assert tiny_model.encoder.frozen_depth() == 0  # the bottom learns: nothing below a frozen block is fixed
    freeze(tiny_model, "bottom:1")
    assert tiny_model.encoder.frozen_depth() == 1  # layer.1 still learns
    freeze(tiny_model, "layer.1")
    assert tiny_model.encoder.frozen_depth() == 4
    unfreeze(tiny_model, "embeddings")
    assert tiny_model.encoder.frozen_depth() == 0


# ---- discriminative learning rates --------------------------------------------------------------------------
def test_layer_learning_rates_decay_from_the_top_block_down_to_the_embeddings(tiny_model):
    rates = layer_learning_rates(tiny_model, 1e-3, 0.5)
    assert rates == pytest.approx({"layer.3": 1e-3, "layer.2": 5e-4, "layer.1": 2.5e-4, "layer.0": 1.25e-4,
                                   "embeddings": 6.25e-5})
    assert set(layer_learning_rates(tiny_model, 1e-3)) == {"embeddings", *BLOCKS}
    assert set(layer_learning_rates(tiny_model, 1e-3).values()) == {1e-3}


def test_parameter_groups_cover_every_parameter_once_with_its_rate(tiny_model):
    config = TrainConfig(encoder_lr=1e-3, head_lr=1e-2, layer_lr_decay=0.5)
    objective = MultiTaskObjective(tiny_model, LossWeighting(list(tiny_model.tasks), "uncertainty"))
    groups = parameter_groups(objective, config)
    grouped = [id(p) for g in groups for p in g["params"]]
    assert sorted(grouped) == sorted(id(p) for p in objective.parameters())  # each exactly once, frozen ones too
    rate_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    for name, module in tiny_model.components().items():
        expected = 1e-2 if name.startswith("head.") else layer_learning_rates(tiny_model, 1e-3, 0.5)[name]
        assert [rate_of[id(p)] for p in module.parameters()] == pytest.approx([expected] * len(list(module.parameters())))
    assert {rate_of[id(p)] for p in objective.weighting.parameters()} == {1e-2}
    assert groups[0]["lr"] == 1e-3 and groups[-1]["name"] == "heads"  # history's lr/encoder reads group 0
    assert all(g["weight_decay"] == 0.0 for g in groups for p in g["params"] if p.ndim < 2)
    plain = parameter_groups(objective, TrainConfig(encoder_lr=1e-3, head_lr=1e-2))
    assert {(g["name"], g["lr"]) for g in plain} == {("encoder", 1e-3), ("heads", 1e-2)}


def test_one_adamw_step_moves_each_block_by_its_own_rate(tiny_model):
    """Adam's first step changes every weight with a gradient by about lr (m / sqrt(v) = sign of the gradient)."""
    train_sets, val_sets = data()
    config = TrainConfig(epochs=1, steps_per_epoch=1, batch_size=16, encoder_lr=1e-3, layer_lr_decay=0.5,
                         warmup_ratio=0.0, weight_decay=0.0, max_grad_norm=1e9, patience=None, progress=False)
    before = snapshot(tiny_model)
    train(tiny_model, train_sets, val_sets, config)
    after = snapshot(tiny_model)
    rates = layer_learning_rates(tiny_model, 1e-3, 0.5)
    for name in BLOCKS:
        step = max(float((b - a).abs().max()) for a, b in zip(before[name], after[name]))
        assert step == pytest.approx(rates[name], rel=0.02), name


# ---- gradual unfreezing ---------------------------------------------------------------------------------------
def test_unfreeze_schedule_from_json_and_its_errors():
    config = TrainConfig.from_dict({"epochs": 3, "unfreeze_schedule": {"3": ["encoder"], "2": ["top:1"]},
                                    "layer_lr_decay": 0.8})
    assert config.unfreeze_schedule == {2: ["top:1"], 3: ["encoder"]}
    with pytest.raises(ValueError, match="epochs 1..3"):
        TrainConfig(epochs=3, unfreeze_schedule={4: ["encoder"]})
    with pytest.raises(ValueError, match="epochs 1..3"):
        TrainConfig.from_dict({"epochs": 3, "unfreeze_schedule": {"two": ["encoder"]}})
    with pytest.raises(TypeError, match="list of selectors"):
        TrainConfig(epochs=3, unfreeze_schedule={2: "encoder"})
    with pytest.raises(TypeError, match="unfreeze_schedule must be"):
        TrainConfig.from_dict({"unfreeze_schedule": [["encoder"]]})
    with pytest.raises(ValueError, match="layer_lr_decay"):
        TrainConfig(layer_lr_decay=0.0)


def test_a_misspelt_selector_fails_before_training(tiny_model):
    train_sets, val_sets = data()
    before = snapshot(tiny_model)
    config = TrainConfig(epochs=2, freeze=["encoder"], unfreeze_schedule={2: ["top:9"]}, progress=False)
    with pytest.raises(ValueError, match="top:9"):
        train(tiny_model, train_sets, val_sets, config)
    assert not changed(before, tiny_model)


def train_gradually(model, train_sets, val_sets, monkeypatch, cache_frozen: bool, steps_per_epoch: int):
    """Train 3 epochs (heads, then + top block, then everything); snapshots and trainable sets at each epoch end."""
    snapshots, trainable = [snapshot(model)], []

    def spy(model, *args, **kwargs):  # train() evaluates once at the end of every epoch
        snapshots.append(snapshot(model))
        trainable.append({name for name, module in model.components().items() if not is_frozen(module)})
        return evaluate(model, *args, **kwargs)

    monkeypatch.setattr(mtl.training.train, "evaluate", spy)
    config = TrainConfig(epochs=3, steps_per_epoch=steps_per_epoch, batch_size=8, encoder_lr=1e-3, freeze=["encoder"],
                         unfreeze_schedule={2: ["top:1"], 3: ["encoder"]}, layer_lr_decay=0.8, patience=None,
                         cache_frozen=cache_frozen, progress=False)
    train(model, train_sets, val_sets, config)
    return model, snapshots, trainable


def gradual_run(monkeypatch, cache_frozen: bool):
    set_seed(0)
    model = build_model(["topic", "sentiment"], backbone="scratch", max_seq_length=32)
    return train_gradually(model, *data(), monkeypatch, cache_frozen, steps_per_epoch=3)


def test_gradual_unfreezing_trains_heads_then_the_top_block_then_everything(monkeypatch):
    _, snapshots, trainable = gradual_run(monkeypatch, cache_frozen=False)
    heads = {"head.topic", "head.sentiment"}
    assert trainable == [heads, heads | {"layer.3"}, heads | {"embeddings", *BLOCKS}]
    moved = [changed(snapshots[i], snapshots[i + 1]) - heads for i in range(3)]
    assert moved == [set(), {"layer.3"}, {"embeddings", *BLOCKS}]


def test_gradual_unfreezing_with_the_prefix_cache_trains_the_same_weights(monkeypatch):
    cached, _, _ = gradual_run(monkeypatch, cache_frozen=True)
    plain, _, _ = gradual_run(monkeypatch, cache_frozen=False)
    for (name, a), b in zip(cached.state_dict().items(), plain.state_dict().values()):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4, msg=name)
