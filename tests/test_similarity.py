"""Tests for mtl.similarity: cosines, Spearman against human ratings, anisotropy and multi-pooling embedding."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics.pairwise import cosine_similarity

from mtl.encoder import POOLING_MODES, SentenceEncoder
from mtl.similarity import (apply_after_pooling, cosine_matrix, embed_with_poolings, spearman_with_humans,
                            unrelated_cosine, upper_pairs)
from mtl.utils import quiet_libraries, set_seed

quiet_libraries()

TEXTS = [
    "The cat sat on the mat.",
    "A feline was resting on a rug.",
    "",
    "Stock markets fell sharply after the central bank raised interest rates.",
    "The striker scored twice in the second half.",
    " ".join(["The committee postponed the vote on the new budget."] * 40),  # longer than the 256-token limit
]


def test_cosine_matrix_matches_sklearn():
    x = np.random.default_rng(0).normal(size=(7, 5))
    np.testing.assert_allclose(cosine_matrix(x), cosine_similarity(x), atol=1e-12)


def test_upper_pairs_takes_each_unordered_pair_once():
    m = np.arange(16).reshape(4, 4)
    assert upper_pairs(m).tolist() == [1, 2, 3, 6, 7, 11]


def test_spearman_is_one_when_embeddings_reproduce_the_human_ranking():
    x = np.random.default_rng(1).normal(size=(12, 6))
    human = np.exp(3 * cosine_matrix(x))  # any increasing function of the cosine keeps the ranking
    assert spearman_with_humans(x, human) == pytest.approx(1.0)
    shuffled = np.random.default_rng(2).permutation(12)
    assert spearman_with_humans(x[shuffled], human) < 0.5  # and the score can be low


def test_spearman_is_invariant_to_scaling_each_embedding():
    """Cosine ignores vector length, so L2 normalisation (one scale per row) cannot change the ranking."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(15, 8))
    human = cosine_matrix(rng.normal(size=(15, 8)))
    human = human + human.T
    scales = rng.uniform(0.01, 100.0, size=(15, 1))
    rho = spearman_with_humans(x, human)
    assert abs(rho) < 0.99
    assert spearman_with_humans(x * scales, human) == pytest.approx(rho, abs=1e-12)
    assert spearman_with_humans(x / np.linalg.norm(x, axis=1, keepdims=True), human) == pytest.approx(rho, abs=1e-12)


def test_unrelated_cosine_toy_case():
    # cosines of the pairs (0,1) (0,2) (0,3) (1,2) (1,3) (2,3): 0, 1, -1, 0, 0, -1
    x = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [-1.0, 0.0]])
    human = np.zeros((4, 4))
    human[np.triu_indices(4, k=1)] = [0.5, 0.9, 0.1, 0.6, 0.2, 0.7]
    human = human + human.T
    # bottom quarter of the ratings (<= 0.225): pairs (0,3) and (1,3), cosines -1 and 0
    assert unrelated_cosine(x, human) == pytest.approx(-0.5)
    # bottom half (<= 0.55): adds pair (0,1), cosine 0
    assert unrelated_cosine(x, human, quantile=0.5) == pytest.approx(-1 / 3)


@pytest.fixture(scope="module")
def pooled():
    encoder = SentenceEncoder.build("minilm", pooling="mean", normalize=False)
    return encoder, embed_with_poolings(encoder, TEXTS, POOLING_MODES, batch_size=4)


def test_embed_with_poolings_mean_matches_encode(pooled):
    encoder, out = pooled
    assert set(out) == set(POOLING_MODES) and out["mean"].shape == (len(TEXTS), 384)
    unit = out["mean"] / np.linalg.norm(out["mean"], axis=1, keepdims=True)
    reference = SentenceEncoder.build("minilm", pooling="mean", normalize=True).encode(TEXTS)
    np.testing.assert_allclose(unit, reference, atol=1e-5)
    np.testing.assert_allclose(out["mean"], encoder.encode(TEXTS), atol=1e-5)  # and unnormalised too


@pytest.mark.parametrize("mode", ["cls", "max"])
def test_embed_with_poolings_other_modes_match_encode(pooled, mode):
    _, out = pooled
    reference = SentenceEncoder.build("minilm", pooling=mode, normalize=False).encode(TEXTS)
    np.testing.assert_allclose(out[mode], reference, atol=1e-5)


def test_embed_with_poolings_keeps_input_order_and_training_mode(pooled):
    encoder, out = pooled
    encoder.train()
    reversed_out = embed_with_poolings(encoder, TEXTS[::-1], ["max"], batch_size=4)
    assert encoder.training
    np.testing.assert_allclose(reversed_out["max"][::-1], out["max"], atol=1e-5)


def test_apply_after_pooling_matches_encode(pooled):
    _, out = pooled
    set_seed(0)
    encoder = SentenceEncoder.build("minilm", pooling="mean", projection_dim=16, layer_norm=True, normalize=True)
    result = apply_after_pooling(encoder, out["mean"])
    assert result.shape == (len(TEXTS), 16)
    np.testing.assert_allclose(result, encoder.encode(TEXTS), atol=1e-5)
    plain = SentenceEncoder.build("minilm", pooling="mean", normalize=False)  # nothing after pooling: identity
    np.testing.assert_allclose(apply_after_pooling(plain, out["mean"]), out["mean"], atol=1e-6)
