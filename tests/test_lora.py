"""Tests for mtl.finetuning.lora: what LoRA makes trainable, that training moves only adapters and heads, that the prefix cache
neither caches adapted blocks nor misses the frozen blocks below them, and that adapters survive save and load."""
from __future__ import annotations

import pytest
import torch

from mtl.finetuning.freezing import parameter_report
from mtl.finetuning.lora import add_lora, lora_parameters
from mtl.multitask.model import MultiTaskModel
from mtl.multitask.tasks import build_model, load_datasets
from mtl.training.train import TrainConfig, train
from mtl.utils import set_seed

TASKS = ["topic", "sentiment"]
HIDDEN = 128  # the scratch backbone's width


def fresh_model():
    set_seed(0)
    return build_model(TASKS, backbone="scratch", max_seq_length=32)


def small_data():
    return load_datasets(TASKS, "train", limit=32), load_datasets(TASKS, "validation", limit=16)


def test_only_adapters_and_heads_are_trainable():
    model = fresh_model()
    outputs_before = model.eval()(model.encoder.tokenize(["A quiet day on the markets."]))
    add_lora(model, r=8)
    report = parameter_report(model).set_index("component")
    per_block = 3 * 8 * (HIDDEN + HIDDEN)  # query, key, value: A (r x d_in) and B (d_out x r)
    assert lora_parameters(model) == 4 * per_block
    assert report.loc["embeddings", "trainable"] == 0
    assert all(report.loc[f"layer.{i}", "trainable"] == per_block for i in range(4))
    assert report.loc["head.topic", "trainable"] == report.loc["head.topic", "total"] > 0
    assert report.loc["total", "trainable"] == 4 * per_block + 645 + 387
    trainable = [n for n, p in model.named_parameters() if p.requires_grad and not n.startswith("heads.")]
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    assert all(any(f".{m}.lora_" in n for n in trainable) for m in ("query", "key", "value"))
    outputs_after = model.eval()(model.encoder.tokenize(["A quiet day on the markets."]))
    for task in TASKS:  # B starts at zero: the adapted model starts as the pretrained one
        torch.testing.assert_close(outputs_after[task], outputs_before[task])


def test_training_moves_adapters_and_heads_only():
    model = fresh_model()
    add_lora(model, r=4, alpha=8, dropout=0.0)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    config = TrainConfig(epochs=1, steps_per_epoch=3, batch_size=8, encoder_lr=1e-2, patience=None, progress=False)
    train(model, *small_data(), config)
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert any(".lora_B." in n for n in moved) and any(n.startswith("heads.") for n in moved)
    assert all(".lora_" in n or n.startswith("heads.") for n in moved)


def test_adapters_everywhere_leave_nothing_to_cache():
    model = fresh_model()
    add_lora(model)
    assert model.encoder.frozen_depth() == 0  # every block has trainable adapters: none may be cached


def test_adapters_on_top_blocks_cache_the_frozen_bottom_with_the_same_gradients():
    model = fresh_model()
    add_lora(model, r=4, layers=[2, 3], dropout=0.0)
    assert model.encoder.frozen_depth() == 2
    with torch.no_grad():  # non-zero B, so the adapters matter
        for name, p in model.named_parameters():
            if ".lora_B." in name:
                p.normal_(std=0.05)
    batch = load_datasets(["sentiment"], "train", limit=8)["sentiment"]

    def loss_and_grads():
        model.zero_grad()
        features, labels = model.collate(batch)
        loss = sum(model.task_losses(model(features), labels).values())
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    model.eval()
    plain = loss_and_grads()
    model.encoder.use_prefix_cache()
    loss_and_grads()  # fills
    cached = loss_and_grads()
    assert model.encoder.prefix_cache.depth == 2 and model.encoder.prefix_cache.hits == len(batch)
    torch.testing.assert_close(cached[0], plain[0], atol=1e-5, rtol=0)
    assert any(".lora_A." in n for n in plain[1]) and plain[1].keys() == cached[1].keys()
    for name in plain[1]:
        torch.testing.assert_close(cached[1][name], plain[1][name], atol=1e-5, rtol=1e-4, msg=name)


def test_save_and_load_keep_the_adapters(tmp_path):
    model = fresh_model()
    add_lora(model, r=4)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".lora_B." in name:
                p.normal_(std=0.05)
    model.save(tmp_path / "lora")
    assert (tmp_path / "lora" / "encoder" / "adapter_model.safetensors").is_file()
    loaded = MultiTaskModel.load(tmp_path / "lora")
    assert lora_parameters(loaded) == lora_parameters(model)
    features = model.encoder.tokenize(["Shares rose after the results.", "Terrible service, never again."])
    expected, actual = model.eval()(features), loaded.eval()(features)
    for task in TASKS:
        torch.testing.assert_close(actual[task], expected[task], atol=1e-5, rtol=1e-4)


def test_bad_arguments_are_errors():
    model = fresh_model()
    with pytest.raises(ValueError, match="rank"):
        add_lora(model, r=0)
    with pytest.raises(ValueError, match=r"block indices 0\.\.3"):
        add_lora(model, layers=[4])
