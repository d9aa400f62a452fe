"""Tests for mtl.encoder.encoder: parity with sentence-transformers, save/load, shapes, pooling, padding and input checks."""
from __future__ import annotations

import socket

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer

import mtl.encoder.backbones
from mtl.encoder.backbones import SCRATCH_CONFIG, backbone_path, scratch_path
from mtl.encoder.encoder import POOLING_MODES, SentenceEncoder
from mtl.utils import quiet_libraries, set_seed

quiet_libraries()

LONG_TEXT = " ".join(["The committee postponed the vote on the new budget until further notice."] * 40)  # > 256 tokens
TEXTS = [
    "The cat sat on the mat.",
    "A feline was resting on a rug.",
    "",
    "Stock markets fell sharply after the central bank raised interest rates.",
    LONG_TEXT,
]


@pytest.fixture(scope="module")
def minilm() -> SentenceEncoder:
    return SentenceEncoder.build("minilm", pooling="mean", normalize=True)


@pytest.fixture(scope="module")
def raw_encoders() -> dict[str, SentenceEncoder]:
    """MiniLM without normalisation, one encoder per pooling mode."""
    return {mode: SentenceEncoder.build("minilm", pooling=mode, normalize=False) for mode in POOLING_MODES}


def test_long_text_is_longer_than_the_model_limit(minilm):
    assert len(minilm.tokenizer(LONG_TEXT)["input_ids"]) > minilm.max_seq_length == 256


def test_parity_with_sentence_transformers(minilm):
    reference = SentenceTransformer(backbone_path("minilm"), device="cpu").encode(TEXTS)
    ours = minilm.encode(TEXTS)
    assert ours.shape == reference.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(ours, reference, atol=1e-5)


def test_saved_folder_loads_in_sentence_transformers_and_round_trips(tmp_path):
    set_seed(0)
    encoder = SentenceEncoder.build("minilm", pooling="mean", projection_dim=64, layer_norm=True, normalize=True)
    with torch.no_grad():  # an untrained LayerNorm is the identity: give it weights a lost save would reveal
        layer_norm = encoder.model[3].norm
        layer_norm.weight.copy_(torch.rand(64) + 0.5)
        layer_norm.bias.copy_(torch.randn(64) * 0.1)
    expected = encoder.encode(TEXTS)
    assert expected.shape == (len(TEXTS), 64)
    encoder.save(tmp_path / "encoder")

    plain = SentenceTransformer(str(tmp_path / "encoder"), device="cpu")
    assert [type(m).__name__ for m in plain] == ["Transformer", "Pooling", "Dense", "LayerNorm", "Normalize"]
    np.testing.assert_allclose(plain.encode(TEXTS), expected, atol=1e-5)

    loaded = SentenceEncoder.load(tmp_path / "encoder")
    assert (loaded.dim, loaded.pooling, loaded.max_seq_length) == (64, "mean", 256)
    np.testing.assert_allclose(loaded.encode(TEXTS), expected, atol=1e-5)


def test_shape_and_norm(minilm, raw_encoders):
    unit = minilm.encode(TEXTS)
    raw = raw_encoders["mean"].encode(TEXTS)
    assert unit.shape == raw.shape == (len(TEXTS), 384) and unit.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0, atol=1e-2)
    np.testing.assert_allclose(raw / np.linalg.norm(raw, axis=1, keepdims=True), unit, atol=1e-5)
    tensor = minilm.encode(TEXTS[:2], convert_to_tensor=True)
    assert isinstance(tensor, torch.Tensor) and tensor.shape == (2, 384)


def test_projection_dim_changes_the_dimension():
    encoder = SentenceEncoder.build("minilm", projection_dim=32)
    assert encoder.dim == 32 and encoder.hidden_size == 384
    out = encoder(encoder.tokenize(TEXTS[:2]))
    assert out["token_embeddings"].shape[::2] == (2, 384)
    assert out["sentence_embedding"].shape == (2, 32)
    assert encoder.encode(TEXTS).shape == (len(TEXTS), 32)


def test_each_pooling_mode_gives_a_different_embedding(raw_encoders):
    embeddings = {mode: enc.encode(TEXTS[:4]) for mode, enc in raw_encoders.items()}
    assert {enc.pooling for enc in raw_encoders.values()} == set(POOLING_MODES)
    for i, a in enumerate(POOLING_MODES):
        for b in POOLING_MODES[i + 1 :]:
            assert not np.allclose(embeddings[a], embeddings[b], atol=1e-3), (a, b)


@pytest.mark.parametrize("mode", POOLING_MODES)
def test_padding_is_masked(raw_encoders, mode):
    """A short sentence must embed the same alone as next to a long one (whose batch pads it with ~250 tokens)."""
    encoder = raw_encoders[mode]
    alone = encoder.encode([TEXTS[0]])
    batch = encoder.tokenize([TEXTS[0], LONG_TEXT])
    assert batch["attention_mask"][0].sum() < 15 and batch["attention_mask"].shape[1] == 256  # really padded
    padded = encoder.encode([TEXTS[0], LONG_TEXT])[:1]
    np.testing.assert_allclose(padded, alone, atol=1e-5)


def test_input_errors(minilm):
    with pytest.raises(ValueError, match="at least one text"):
        minilm.encode([])
    with pytest.raises(TypeError, match=r"Item 2 is int"):
        minilm.encode(["fine", "also fine", 3])
    with pytest.raises(TypeError, match="single string"):
        minilm.encode("a single string")
    with pytest.raises(ValueError, match=r"Item 1 is not valid Unicode: a lone surrogate '\\ud800' at character 3 "
                                         r"\('an ' before it\)"):  # the tokenizer's TypeError names neither
        minilm.encode(["fine", "an \ud800 emoji half"])
    with pytest.raises(TypeError, match=r"Item 0 is tuple, not str"):  # word lists are for predict and tokenize
        minilm.encode([("a", "b")])


def test_empty_and_overlong_texts_encode(minilm):
    out = minilm.encode(["", LONG_TEXT])
    assert out.shape == (2, 384) and np.isfinite(out).all()
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_build_errors():
    with pytest.raises(ValueError, match=r"Unknown pooling mode 'avg'.*'cls', 'mean', 'max'"):
        SentenceEncoder.build("minilm", pooling="avg")
    for bad in (0, -3):
        with pytest.raises(ValueError, match=rf"projection_dim must be a positive integer.*got {bad}"):
            SentenceEncoder.build("minilm", projection_dim=bad)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        SentenceEncoder.build("/no/such/model")
    with pytest.raises(FileNotFoundError, match="no modules.json"):
        SentenceEncoder.load("/no/such/model")


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access attempted in an offline test")

    monkeypatch.setattr(socket.socket, "connect", refuse)


def test_scratch_builds_offline_and_deterministically(tmp_path, monkeypatch, no_network):
    weights = []
    for run in ("a", "b"):  # two independent builds, each in its own empty models folder
        monkeypatch.setattr(mtl.encoder.backbones, "MODELS_DIR", tmp_path / run)
        folder = scratch_path()
        assert folder.parent == tmp_path / run
        encoder = SentenceEncoder.build(str(folder), pooling="mean")
        weights.append({k: v.clone() for k, v in encoder.state_dict().items()})
    assert weights[0].keys() == weights[1].keys()
    for name in weights[0]:
        assert torch.equal(weights[0][name], weights[1][name]), name
    assert encoder.hidden_size == encoder.dim == SCRATCH_CONFIG["hidden_size"] == 128
    out = encoder.encode(TEXTS)
    assert out.shape == (len(TEXTS), 128) and np.isfinite(out).all()


def test_scratch_backbone_name(no_network):
    encoder = SentenceEncoder.build("scratch", pooling="cls")
    assert encoder.dim == 128 and len(encoder.transformer.auto_model.encoder.layer) == 4



def test_scratch_backbone_built_concurrently_by_two_processes(tmp_path, monkeypatch):
    """Two ranks of `accelerate launch` build the scratch model at once on a fresh clone: the loser of the rename
    race must use the winner's folder instead of failing with 'Directory not empty'."""
    import shutil
    from pathlib import Path

    import mtl.encoder.backbones as backbones

    monkeypatch.setattr(backbones, "MODELS_DIR", tmp_path)
    real_rename = Path.rename

    def rename_after_the_other_rank(self, target):
        shutil.copytree(self, target)  # the other rank finished first
        return real_rename(self, target)  # so this rename fails: the target exists and is not empty

    monkeypatch.setattr(Path, "rename", rename_after_the_other_rank)
    path = backbones.scratch_path(seed=0)
    assert (path / "config.json").is_file()
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # the loser's temporary folder is gone
