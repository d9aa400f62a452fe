"""Tests for mtl.evaluation.similarity: cosines, Spearman against human ratings, Spearman's rho over resampled documents
and compared as a family against a reference, anisotropy and multi-pooling embedding."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.metrics.pairwise import cosine_similarity

from mtl.encoder.encoder import POOLING_MODES, SentenceEncoder
from mtl.evaluation.compare import holm, resampling_weights
from mtl.evaluation.similarity import (apply_after_pooling, cosine_matrix, embed_with_poolings, resampled_spearman,
                                       spearman_family, spearman_score, spearman_with_humans,
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


def symmetric(rng: np.random.Generator, n: int, decimals: int | None = None) -> np.ndarray:
    """A random symmetric (n, n) matrix, rounded to ``decimals`` (ties) if given."""
    upper = np.triu(rng.normal(size=(n, n)), k=1)
    matrix = upper + upper.T + np.eye(n)
    return matrix if decimals is None else matrix.round(decimals)


def test_resampled_spearman_is_scipy_spearman_on_the_pairs_among_the_drawn_documents():
    rng = np.random.default_rng(5)
    n = 12
    human, similarity = symmetric(rng, n, decimals=1), symmetric(rng, n, decimals=1)  # many ties in both
    draws = rng.integers(0, n, size=(6, n))
    assert any(len(set(row)) < n for row in draws)  # documents drawn twice: pairs with copies, never with itself
    counts = np.stack([np.bincount(row, minlength=n) for row in draws])
    first, second = np.triu_indices(n, k=1)  # pairs of drawn positions
    expected = []
    for row in draws:
        i, j = row[first], row[second]
        keep = i != j
        expected.append(spearmanr(similarity[i[keep], j[keep]], human[i[keep], j[keep]]).statistic)
    rhos = resampled_spearman(np.stack([similarity, human]), human, counts)  # (2 methods, 6 resamples)
    np.testing.assert_allclose(rhos[0], expected, atol=1e-12)
    np.testing.assert_allclose(rhos[1], 1.0, atol=1e-12)
    everyone = resampled_spearman(similarity[None], human, np.ones((1, n), dtype=int))[0, 0]
    assert everyone == pytest.approx(spearmanr(upper_pairs(similarity), upper_pairs(human)).statistic, abs=1e-12)


def test_spearman_score_rejects_bad_input():
    rng = np.random.default_rng(10)
    human, a = symmetric(rng, 10), symmetric(rng, 10)
    with pytest.raises(ValueError, match=r"'b' have shape \(9, 9\); expected \(10, 10\)"):
        spearman_score(a[:9, :9], human, "b")
    with pytest.raises(ValueError, match="'a' must be finite and symmetric"):
        spearman_score(a + np.triu(np.ones((10, 10)), 1), human, "a")
    nan = a.copy()
    nan[0, 1] = nan[1, 0] = np.nan
    with pytest.raises(ValueError, match="'b' must be finite"):
        spearman_score(nan, human, "b")
    with pytest.raises(ValueError, match="human ratings must be a symmetric.*not symmetric"):
        spearman_score(a, human + np.triu(np.ones((10, 10)), 1))
    with pytest.raises(ValueError, match=r"human ratings must be a symmetric \(n, n\) matrix, got shape \(10,\)"):
        spearman_score(a, human[0])
    with pytest.raises(ValueError, match="'b' is undefined .*constant similarities"):
        spearman_score(np.ones((10, 10)), human, "b")(np.ones((1, 10)))
    with pytest.raises(ValueError, match="at least 3 documents"):
        spearman_score(a[:2, :2], human[:2, :2])


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


def test_spearman_family_compares_each_method_with_the_reference_on_shared_document_resamples():
    rng = np.random.default_rng(11)
    n = 30
    human = symmetric(rng, n)
    reference = human + 0.5 * symmetric(rng, n)
    methods = {"noise": symmetric(rng, n), "reference": reference, "copy": reference.copy(),
               "nudged": reference + 0.02 * symmetric(rng, n), "other noisy copy": human + 0.5 * symmetric(rng, n)}
    table = spearman_family(methods, human, "reference", n_resamples=400, seed=3)
    assert list(table.index) == ["noise", "copy", "nudged", "other noisy copy"]  # the reference is not a row
    rho = {name: spearmanr(upper_pairs(m), upper_pairs(human)).statistic for name, m in methods.items()}
    np.testing.assert_allclose(table.rho, [rho[name] for name in table.index], atol=1e-12)
    np.testing.assert_allclose(table.difference, table.rho - rho["reference"], atol=1e-12)
    # standard error: the spread of the differences over the same document resamples, normal interval around them
    counts = np.concatenate(list(resampling_weights(n, 400, 3)))
    resampled = resampled_spearman(np.stack([methods[name] for name in ["reference", *table.index]]), human, counts)
    se = (resampled[1:] - resampled[0]).std(1, ddof=1)
    np.testing.assert_allclose(table.ci_high - table.difference, 1.959964 * se, rtol=1e-5)
    np.testing.assert_allclose(table.difference - table.ci_low, 1.959964 * se, rtol=1e-5)
    np.testing.assert_allclose(table.p_holm, holm(table.p_value.to_numpy()))
    assert table.verdict["noise"] == "worse" and table.p_holm["noise"] < 0.05
    assert table.verdict["copy"] == table.verdict["nudged"] == "as good as"  # within the 0.02 margin
    assert table.difference["copy"] == 0 and table.p_value["copy"] == 1
    assert table.verdict["other noisy copy"] == f"not separated on {n} documents"
    assert table.p_equivalence["other noisy copy"] >= 0.05 and table.p_holm["other noisy copy"] >= 0.05


def test_spearman_family_rejects_what_it_cannot_compare():
    rng = np.random.default_rng(12)
    human, a = symmetric(rng, 10), symmetric(rng, 10)
    with pytest.raises(KeyError, match="Reference 'missing'"):
        spearman_family({"a": a}, human, "missing")
    with pytest.raises(ValueError, match="besides the reference"):
        spearman_family({"a": a}, human, "a")
    with pytest.raises(ValueError, match="deterministic encoder"):
        spearman_family({"a": a, "seeds": np.stack([a, a])}, human, "a")
    with pytest.raises(ValueError, match="2 resamples"):
        spearman_family({"a": a, "b": a}, human, "a", n_resamples=1)
