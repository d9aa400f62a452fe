"""Tests for mtl.extras.inference.onnx_encoder: the exported float32 backbone matches torch, int8 stays close, files and errors."""
from __future__ import annotations

import numpy as np
import pytest

from mtl.encoder.encoder import SentenceEncoder
from mtl.extras.inference.onnx_encoder import OnnxSentenceEncoder
from mtl.extras.inference.quantize import quantize

TEXTS = [
    "The cat sat on the mat.",
    "Stock markets fell sharply after the central bank raised interest rates for the third time this year.",
    "What a wonderful surprise, thank you so much!",
    "",
    "The prime minister faces a vote of confidence next week.",
    "Goal!",
]


@pytest.fixture(scope="module")
def minilm() -> SentenceEncoder:
    return SentenceEncoder.build("minilm", pooling="mean", normalize=True, device="cpu")


@pytest.fixture(scope="module")
def onnx_int8(minilm) -> OnnxSentenceEncoder:
    return OnnxSentenceEncoder.export(minilm, int8=True)


@pytest.mark.parametrize("pooling", ["cls", "mean", "max"])
def test_float32_export_matches_torch(pooling):
    encoder = SentenceEncoder.build("minilm", pooling=pooling, normalize=True, device="cpu")
    onnx = OnnxSentenceEncoder.export(encoder, int8=False)
    expected = encoder.encode(TEXTS)
    got = onnx.encode(TEXTS, batch_size=4)  # two batches of different padded lengths (dynamic axes)
    assert got.shape == expected.shape == (len(TEXTS), 384) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_projection_and_layer_norm_run_as_the_encoders_own_modules():
    encoder = SentenceEncoder.build("minilm", pooling="mean", projection_dim=64, layer_norm=True, normalize=False,
                                    device="cpu")
    onnx = OnnxSentenceEncoder.export(encoder, int8=False)
    assert onnx.dim == 64
    np.testing.assert_allclose(onnx.encode(TEXTS), encoder.encode(TEXTS), atol=1e-5)


def test_a_backbone_without_token_type_ids_exports_too():
    encoder = SentenceEncoder.build("mpnet", pooling="mean", device="cpu")
    onnx = OnnxSentenceEncoder.export(encoder, int8=False)
    assert "token_type_ids" not in onnx.input_names
    np.testing.assert_allclose(onnx.encode(TEXTS[:3]), encoder.encode(TEXTS[:3]), atol=1e-5)


def test_int8_is_close_to_float32(minilm, onnx_int8):
    fp32, int8 = minilm.encode(TEXTS), onnx_int8.encode(TEXTS)
    cosine = (fp32 * int8).sum(1)
    assert cosine.mean() > 0.98 and cosine.min() > 0.95, cosine
    assert np.abs(fp32 - int8).max() > 1e-4  # really quantised, not fp32


def test_order_is_restored_whatever_the_batch_size(minilm):
    onnx = OnnxSentenceEncoder.export(minilm, int8=False)  # float32: batching changes nothing but padding
    one_by_one = np.concatenate([onnx.encode([t]) for t in TEXTS])
    for batch_size in (2, 4, 64):
        np.testing.assert_allclose(onnx.encode(TEXTS, batch_size=batch_size), one_by_one, atol=1e-5)


def test_files_are_kept_in_the_folder_asked_for(minilm, tmp_path):
    onnx = OnnxSentenceEncoder.export(minilm, folder=tmp_path / "onnx", threads=1)
    assert {p.name for p in (tmp_path / "onnx").iterdir()} == {"model.onnx", "model.int8.onnx"}
    sizes = {p.name: p.stat().st_size for p in (tmp_path / "onnx").iterdir()}
    assert sizes["model.int8.onnx"] < 0.4 * sizes["model.onnx"]
    assert onnx.session.get_session_options().intra_op_num_threads == 1
    reloaded = OnnxSentenceEncoder(minilm, tmp_path / "onnx" / "model.int8.onnx")
    np.testing.assert_array_equal(reloaded.encode(TEXTS), onnx.encode(TEXTS))


def test_bad_input_is_refused_like_the_torch_encoder(onnx_int8, minilm):
    with pytest.raises(ValueError, match="at least one text"):
        onnx_int8.encode([])
    with pytest.raises(TypeError, match="single string"):
        onnx_int8.encode("one string")
    with pytest.raises(TypeError, match="Item 1 is int"):
        onnx_int8.encode(["fine", 3])
    with pytest.raises(ValueError, match="already quantised by torch"):
        OnnxSentenceEncoder.export(quantize(minilm))
