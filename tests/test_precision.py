"""Tests for mtl.encoder.precision: which precision "auto" picks, bad values, and bfloat16 against float32 in encode,
predict and training.

Tolerances, measured on all-MiniLM-L6-v2 (AVX2 CPU, where oneDNN emulates bfloat16; native bf16 rounds alike):
cosine of bf16 to fp32 embeddings >= 0.99993 over 300 sentiment test sentences (mean 0.99998), probabilities of
``predict`` within 0.001, the same labels; on the tiny test model, training losses of two steps within 0.02 % and
weight updates at cosine 0.999 to float32's. The tests ask for cosine >= 0.999 (embeddings), probabilities within
0.01, losses within 0.2 % and update cosine >= 0.99, and check that bf16 did run (the results are not identical).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import mtl.encoder.precision
from mtl.encoder.encoder import SentenceEncoder
from mtl.encoder.precision import PRECISIONS, autocast, native_bf16, resolve_precision
from mtl.extras.inference.quantize import quantize
from mtl.multitask.tasks import build_model, load_datasets
from mtl.training.train import TrainConfig, train
from mtl.utils import set_seed

TEXTS = ["The match ended in a draw after extra time.", "Shares fell sharply on Monday.",
         "I loved every minute of this film!", "The new phone has a bigger screen and a faster chip.", ""]


@pytest.fixture(scope="module")
def minilm() -> SentenceEncoder:
    return SentenceEncoder.build("minilm", max_seq_length=64, device="cpu")


@pytest.mark.parametrize("capabilities, native", [({"avx2": True, "avx512_f": True, "avx512_vnni": True}, False),
                                                  ({"avx512_bf16": True}, True), ({"amx_bf16": True}, True)])
def test_native_bf16_on_cpu_needs_amx_or_avx512_bf16(monkeypatch, capabilities, native):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: capabilities)
    assert native_bf16("cpu") is native


@pytest.mark.parametrize("native, expected", [(False, "fp32"), (True, "bf16")])
def test_auto_picks_bf16_only_where_it_is_native(monkeypatch, native, expected):
    monkeypatch.setattr(mtl.encoder.precision, "native_bf16", lambda device: native)
    assert resolve_precision("auto", "cpu") == expected
    assert resolve_precision("fp32", "cpu") == "fp32" and resolve_precision("bf16", "cpu") == "bf16"
    with autocast("auto", "cpu"):
        assert torch.is_autocast_enabled("cpu") is native


def test_bad_precisions_are_rejected_naming_the_valid_ones(minilm, tiny_model):
    for call in (lambda: resolve_precision("half", "cpu"), lambda: minilm.encode(TEXTS, precision="float16"),
                 lambda: tiny_model.predict(TEXTS, precision="int8"), lambda: TrainConfig(precision="bfloat16")):
        with pytest.raises(ValueError, match=r"valid precisions are \('fp32', 'bf16', 'fp16', 'auto'\)"):
            call()
    assert PRECISIONS == ("fp32", "bf16", "fp16", "auto")
    with pytest.raises(ValueError, match="'fp16' needs a CUDA device"):
        minilm.encode(TEXTS, precision="fp16")
    with pytest.raises(ValueError, match="quantised encoder .* must be 'fp32'"):
        quantize(tiny_model).predict(TEXTS, precision="bf16")


def test_bf16_encode_is_close_to_fp32(minilm):
    texts = [ex.text for ex in load_datasets(["sentiment"], "test", limit=40)["sentiment"]] + TEXTS
    fp32 = minilm.encode(texts)
    bf16 = minilm.encode(texts, precision="bf16")
    assert bf16.dtype == np.float32 and bf16.shape == fp32.shape
    cosine = (fp32 * bf16).sum(1) / np.linalg.norm(fp32, axis=1) / np.linalg.norm(bf16, axis=1)
    assert cosine.min() >= 0.999
    assert not np.array_equal(fp32, bf16)  # bf16 really ran
    assert not torch.is_autocast_enabled("cpu")  # and ended with the call


def test_bf16_predict_is_close_to_fp32(tiny_model):
    texts = [ex.text for ex in load_datasets(["topic"], "test", limit=20)["topic"]]
    fp32, bf16 = tiny_model.predict(texts), tiny_model.predict(texts, precision="bf16")
    differences = [abs(a[task]["probs"][label] - b[task]["probs"][label]) for a, b in zip(fp32, bf16)
                   for task in ("topic", "sentiment") for label in a[task]["probs"]]
    assert max(differences) <= 0.01 and max(differences) > 0
    assert [p["topic"]["label"] for p in fp32] == [p["topic"]["label"] for p in bf16]
    assert all(isinstance(p["ner"]["entities"], list) for p in bf16)


@pytest.mark.parametrize("frozen", [[], ["bottom:2"]])  # plain and cached loop
def test_bf16_training_is_close_to_fp32(frozen):
    data = load_datasets(["topic", "ner"], "train", limit=16)
    val = load_datasets(["topic", "ner"], "validation", limit=8)
    runs = []
    for precision in ("fp32", "bf16", "fp32"):  # and back: Accelerate's process-wide state follows each run
        set_seed(0)
        model = build_model(["topic", "ner"], backbone="scratch", max_seq_length=32)
        before = torch.cat([p.detach().flatten() for p in model.parameters()])
        config = TrainConfig(epochs=1, steps_per_epoch=2, batch_size=8, encoder_lr=1e-3, freeze=frozen,
                             precision=precision, progress=False)
        history = train(model, data, val, config).drop(columns="seconds")
        runs.append((torch.cat([p.detach().flatten() for p in model.parameters()]) - before, history))
    (fp32_update, fp32_history), (bf16_update, bf16_history), (again_update, again_history) = runs
    assert torch.equal(fp32_update, again_update) and fp32_history.equals(again_history)
    for column in ("train_loss/topic", "train_loss/ner"):
        assert bf16_history[column].iloc[0] == pytest.approx(fp32_history[column].iloc[0], rel=2e-3)
    assert not torch.equal(bf16_update, fp32_update)  # bf16 really ran
    cosine = bf16_update @ fp32_update / bf16_update.norm() / fp32_update.norm()
    assert cosine >= 0.99  # AdamW's first steps move each weight by about +-lr: a tiny gradient may flip its sign


def test_fp16_training_on_cpu_is_a_clear_error(tiny_model):
    data = load_datasets(["topic"], "train", limit=8)
    with pytest.raises(ValueError, match="'fp16' needs a CUDA device"):
        train(tiny_model, data, data, TrainConfig(epochs=1, steps_per_epoch=1, precision="fp16", progress=False))
