"""Tests for mtl.extras.inference.quantize: the int8 encoder's shapes, closeness to float32, what it leaves alone, and what it refuses."""
from __future__ import annotations

import copy
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from mtl.encoder.encoder import SentenceEncoder
from mtl.extras.inference.quantize import SMOOTHING_ALPHA, Int8Linear, SmoothedLinear, quantize, smooth_linears

CALIBRATION = [  # for the SmoothQuant path; not the sentences compared below
    "The government announced new measures to curb inflation.",
    "I loved this movie, the acting was superb!",
    "Terrible service, we waited an hour and the food was cold.",
    "The striker scored twice in the second half.",
    "The new laptop has a faster processor and a brighter screen.",
    "lol that was the best day ever :)",
    "Shares in the company fell by 5% after the profit warning.",
    "The band's latest album tops the charts.",
]
TEXTS = [
    "The cat sat on the mat.",
    "Stock markets fell sharply after the central bank raised interest rates.",
    "What a wonderful surprise, thank you so much!",
    "The prime minister faces a vote of confidence next week.",
    "",
]


@pytest.fixture(scope="module")
def encoders() -> tuple[SentenceEncoder, SentenceEncoder]:
    fp32 = SentenceEncoder.build("minilm", pooling="mean", normalize=True, device="cpu")
    return fp32, quantize(fp32)


def test_shapes_dtype_and_norm(encoders):
    fp32, int8 = encoders
    out = int8.encode(TEXTS)
    assert out.shape == (len(TEXTS), 384) and out.dtype == np.float32 and np.isfinite(out).all()
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    tokens = int8(int8.tokenize(TEXTS[:2]))["token_embeddings"]
    assert tokens.shape[0] == 2 and tokens.shape[2] == int8.hidden_size == 384
    assert (int8.dim, int8.pooling, int8.max_seq_length) == (fp32.dim, fp32.pooling, fp32.max_seq_length)


def test_close_to_float32(encoders):
    fp32, int8 = encoders
    cosine = (fp32.encode(TEXTS) * int8.encode(TEXTS)).sum(1)
    assert cosine.mean() > 0.98 and cosine.min() > 0.95, cosine  # measured: mean 0.988, min 0.974


def test_every_linear_layer_is_int8_and_the_original_is_untouched(encoders):
    fp32, int8 = encoders
    n_linear = sum(isinstance(m, nn.Linear) for m in fp32.modules())
    assert n_linear == 36  # 6 blocks x (query, key, value, attention output, intermediate, output)
    assert sum(isinstance(m, Int8Linear) for m in int8.modules()) == n_linear
    assert not any(type(m) is nn.Linear for m in int8.modules())
    assert int8.is_int8 and not fp32.is_int8
    assert all(p.requires_grad for p in fp32.parameters()) and not any(p.requires_grad for p in int8.parameters())
    np.testing.assert_allclose(fp32.encode(TEXTS[:2]), SentenceEncoder.build("minilm").encode(TEXTS[:2]), atol=1e-6)


def test_smoothing_leaves_the_float_function_unchanged(encoders):
    fp32, _ = encoders
    smoothed = copy.deepcopy(fp32)
    smooth_linears(smoothed, CALIBRATION, alpha=SMOOTHING_ALPHA)
    assert sum(isinstance(m, SmoothedLinear) for m in smoothed.modules()) == 36
    np.testing.assert_allclose(smoothed.encode(TEXTS), fp32.encode(TEXTS), atol=1e-4)  # x/s @ (W*s)^T == x @ W^T


def test_smoothquant_path(encoders):
    fp32, _ = encoders
    int8 = quantize(fp32, CALIBRATION)
    assert sum(isinstance(m, SmoothedLinear) for m in int8.modules()) == 36
    assert sum(isinstance(m, Int8Linear) for m in int8.modules()) == 36
    assert (fp32.encode(TEXTS) * int8.encode(TEXTS)).sum(1).min() > 0.9  # 8 calibration texts are too few to help


def test_saving_is_refused_with_a_way_out(encoders, tmp_path):
    _, int8 = encoders
    with pytest.raises(NotImplementedError, match=r"Save the float32 encoder and quantise it after loading"):
        int8.save(tmp_path / "int8")
    assert not (tmp_path / "int8").exists()


def test_bad_arguments(encoders):
    fp32, int8 = encoders
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
        quantize(fp32, CALIBRATION, alpha=1.5)
    with pytest.raises(ValueError, match="at least one text"):
        quantize(fp32, [])
    with pytest.raises(TypeError, match="single string"):
        quantize(fp32, "one calibration string")
    with pytest.raises(ValueError, match="already quantised"):
        quantize(int8)


def test_multitask_model_predicts_with_an_int8_encoder(tiny_model, tmp_path):
    texts = ["Shares fell in London.", "Chelsea won the cup final.", "The new phone is great"]
    tiny_model.train()
    quantized = quantize(tiny_model)
    assert quantized.encoder.is_int8 and not tiny_model.encoder.is_int8
    assert tiny_model.training and not quantized.training  # the original keeps its mode
    assert quantized.heads is not tiny_model.heads
    for name in tiny_model.heads:  # heads copied, float32
        for a, b in zip(tiny_model.heads[name].parameters(), quantized.heads[name].parameters()):
            assert torch.equal(a, b) and b.dtype == torch.float32
    expected, got = tiny_model.predict(texts), quantized.predict(texts)
    for e, g in zip(expected, got):
        assert set(g) == {"topic", "sentiment", "ner"}
        for task in ("topic", "sentiment"):
            assert g[task]["probs"] == pytest.approx(e[task]["probs"], abs=0.05)
    with pytest.raises(NotImplementedError, match="int8 encoder cannot be saved"):
        quantized.save(tmp_path / "model")
    assert not (tmp_path / "model").exists()


def test_the_core_does_not_import_the_int8_extra():
    code = ("import sys, mtl.encoder.encoder, mtl.multitask.model; "
            "print(sorted(m for m in sys.modules if m.startswith('mtl.extras')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
