"""Judging sentence embeddings against people: Spearman correlation with the Lee corpus's human ratings.

Lee, Pincombe & Welsh (2005): 50 news documents, every pair rated for similarity by several people
(1,225 pairs). A good encoder *ranks* pairs as people do; the raw cosine values need not mean anything.

Whether one encoder ranks better than another is a question about documents, not pairs: the 1,225 pairs share
50 documents, so they are not independent samples. ``spearman_score`` is Spearman's rho as a score of resampled
documents: documents drawn with replacement, each method scored on the pairs among the same drawn documents (Efron &
Tibshirani 1993). ``spearman_family``: the analysis plan's family "pooling and backbone" (each encoder against one
reference, with the bootstrap's standard error, Holm-corrected, an equivalence test and a verdict each).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from scipy.stats import norm, spearmanr
from sentence_transformers.models import Pooling

from mtl.encoder.encoder import SentenceEncoder
from mtl.evaluation.compare import Score, family, resampling_weights
from mtl.utils import length_sorted_batches


def cosine_matrix(embeddings: np.ndarray) -> np.ndarray:
    """(n, d) -> (n, n) cosine similarities."""
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True).clip(1e-12)
    return unit @ unit.T


def upper_pairs(matrix: np.ndarray) -> np.ndarray:
    """The n(n-1)/2 values above the diagonal: one per unordered pair."""
    return matrix[np.triu_indices_from(matrix, k=1)]


def spearman_with_humans(embeddings: np.ndarray, human: np.ndarray) -> float:
    """Spearman's rho between embedding cosines and human similarity over all document pairs."""
    return float(spearmanr(upper_pairs(cosine_matrix(embeddings)), upper_pairs(human)).statistic)


def unrelated_cosine(embeddings: np.ndarray, human: np.ndarray, quantile: float = 0.25) -> float:
    """Mean cosine of the pairs people rated least similar (bottom ``quantile``): 0 for an isotropic space."""
    cos, ratings = upper_pairs(cosine_matrix(embeddings)), upper_pairs(human)
    return float(cos[ratings <= np.quantile(ratings, quantile)].mean())


def resampled_spearman(similarities: np.ndarray, human: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Spearman's rho with ``human`` (n, n) of each of k methods on each resample: (k, n, n), (m, n) -> (k, m).

    A resample scores the pairs among its drawn documents, each document with each other one (never with itself):
    pair (i, j) appears counts[i] * counts[j] times. That is the rho scipy.stats.spearmanr gives on the expanded
    list of pairs (ties get average ranks, rho is the Pearson correlation of the ranks), computed from pair weights
    without expanding; ``counts`` of ones gives the plain rho over all pairs.
    """
    first, second = np.triu_indices(len(human), k=1)
    weights = (counts[:, first] * counts[:, second]).astype(np.float64)  # (m, P): copies of each pair
    total = weights.sum(1)

    def centred_ranks(values: np.ndarray) -> np.ndarray:  # (P,) -> (m, P), weighted mean 0 in each resample
        ranks = _weighted_ranks(values, weights)
        return ranks - (weights * ranks).sum(1, keepdims=True) / total[:, None]

    y = centred_ranks(human[first, second])
    wy = weights * y
    rhos = []
    for similarity in similarities:
        x = centred_ranks(similarity[first, second])
        with np.errstate(invalid="ignore", divide="ignore"):  # a constant resample gives NaN, reported by callers
            rhos.append((wy * x).sum(1) / np.sqrt((weights * x * x).sum(1) * (wy * y).sum(1)))
    return np.stack(rhos)


def _weighted_ranks(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Average ranks of (P,) ``values`` when value p occurs weights[r, p] times: (m, P), one row per resample."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])  # first sorted position of each tie group
    group_weight = np.add.reduceat(weights[:, order], starts, axis=1)  # (m, G) copies per distinct value
    group_rank = np.cumsum(group_weight, axis=1) - (group_weight - 1) / 2  # mean of the ranks the copies take
    ranks = np.empty(weights.shape)
    ranks[:, order] = group_rank[:, np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(values)]))]
    return ranks


def spearman_score(similarities: np.ndarray, human: np.ndarray, name: str = "similarities") -> Score:
    """Spearman's rho with ``human`` (n, n) as a ``Score`` of resampled documents (``resampled_spearman``).

    ``similarities``: an (n, n) similarity matrix, or an (S, n, n) stack, one per seed; ``name`` is what errors
    call it. A resample in which the rho is undefined (constant similarities or ratings) is an error.
    """
    human = np.asarray(human, dtype=np.float64)
    if human.ndim != 2 or human.shape[0] != human.shape[1] or not np.allclose(human, human.T):
        raise ValueError(f"human ratings must be a symmetric (n, n) matrix, got shape {human.shape}"
                         + (" (not symmetric)" if human.ndim == 2 and human.shape[0] == human.shape[1] else ""))
    if len(human) < 3:
        raise ValueError(f"Need at least 3 documents, got {len(human)}.")
    matrices = np.asarray(similarities, dtype=np.float64)
    stack = matrices[None] if matrices.ndim == 2 else matrices  # (S, n, n)
    if stack.ndim != 3 or stack.shape[1:] != human.shape or len(stack) == 0:
        raise ValueError(f"Similarities {name!r} have shape {matrices.shape}; expected {human.shape} "
                         f"or (seeds, {human.shape[0]}, {human.shape[1]}) as the human ratings.")
    if not np.all(np.isfinite(stack)) or not np.allclose(stack, stack.transpose(0, 2, 1)):
        raise ValueError(f"Similarities {name!r} must be finite and symmetric (one value per unordered pair).")

    def score(weights: np.ndarray) -> np.ndarray:
        rho = resampled_spearman(stack, human, weights)  # (S, m)
        if np.isnan(rho).any():
            raise ValueError(f"Spearman's rho of {name!r} is undefined (constant similarities or ratings on "
                             f"{'all pairs' if (weights == 1).all() else 'a resample'}): nothing to rank.")
        return rho
    return score


SPEARMAN_MARGIN = 0.02  # Spearman's rho with human similarity: the equivalence margin of docs/analysis_plan.md


def spearman_family(similarities: Mapping[str, np.ndarray], human: np.ndarray, reference: str,
                    margin: float = SPEARMAN_MARGIN, n_resamples: int = 2000, seed: int = 0,
                    alpha: float = 0.05) -> pd.DataFrame:
    """Every method of ``similarities`` minus ``reference`` on Spearman's rho with ``human``, as one family of
    comparisons (``mtl.evaluation.compare.family``: Holm-adjusted p-values, equivalence against ``margin``, verdict).

    The methods are deterministic encoders, (n, n) similarity matrices: the only variance is the test sample's, the
    documents. Each difference gets the standard error of its bootstrap over documents (all comparisons on the same
    resamples, ``spearman_score``) and a normal interval, as ``compare_seeds`` gives one seed. Without seeds to
    count, an undecided verdict reads "not separated on n documents". One row per method, indexed by its name.
    """
    if reference not in similarities:
        raise KeyError(f"Reference {reference!r} is not among the methods {list(similarities)}.")
    if n_resamples < 2:
        raise ValueError(f"Need at least 2 resamples for a standard error, got {n_resamples}.")
    names = [name for name in similarities if name != reference]
    if not names:
        raise ValueError("A family needs at least one method besides the reference.")
    for name in [reference, *names]:
        if np.ndim(similarities[name]) != 2:
            raise ValueError(f"{name!r}: expected one (n, n) similarity matrix (a deterministic encoder), got shape "
                             f"{np.shape(similarities[name])}.")
    scores = {name: spearman_score(similarities[name], human, name) for name in [reference, *names]}
    n = len(human)
    ones = np.ones((1, n))
    observed = {name: float(score(ones)[0, 0]) for name, score in scores.items()}
    resampled = {name: [] for name in scores}
    for weights in resampling_weights(n, n_resamples, seed):
        for name, score in scores.items():
            resampled[name].append(score(weights)[0])  # (m,)
    rho = {name: np.concatenate(chunks) for name, chunks in resampled.items()}
    z = norm.ppf(1 - alpha / 2)
    results = {}
    for name in names:
        difference = observed[name] - observed[reference]
        se = float(np.std(rho[name] - rho[reference], ddof=1))
        p = 2 * norm.sf(abs(difference) / se) if se > 0 else float(difference == 0)
        results[name] = {"a": observed[name], "b": observed[reference], "difference": difference,
                         "ci_low": difference - z * se, "ci_high": difference + z * se, "p_value": float(p),
                         "seeds": 1, "se": se, "df": np.inf}
    table = family(results, margin, alpha).drop(columns="seeds")
    table["verdict"] = table.verdict.str.replace("with 1 seed", f"on {n} documents", regex=False)
    return table.rename(columns={"a": "rho", "b": "rho_reference"}).rename_axis(f"method vs {reference}")


@torch.inference_mode()
def embed_with_poolings(
    encoder: SentenceEncoder, texts: Sequence[str], poolings: Sequence[str], batch_size: int = 16
) -> dict[str, np.ndarray]:
    """Run the backbone once and pool its token embeddings several ways: {pooling: (n, H)} (no normalisation).

    Batches are sorted by length (less padding), as in ``SentenceEncoder.encode``; rows come back in input order.
    """
    was_training = encoder.training
    encoder.eval()
    poolers = {mode: Pooling(encoder.hidden_size, pooling_mode=mode) for mode in poolings}
    out: dict[str, list[torch.Tensor]] = {mode: [] for mode in poolings}
    batches = length_sorted_batches([len(t) for t in texts], batch_size)
    for idx in batches:
        features = encoder.tokenize([texts[i] for i in idx])
        tokens = encoder.transformer(dict(features))["token_embeddings"]  # (b, T, H)
        for mode, pooler in poolers.items():
            pooled = pooler({"token_embeddings": tokens, "attention_mask": features["attention_mask"]})
            out[mode].append(pooled["sentence_embedding"])  # (b, H)
    encoder.train(was_training)
    inverse = torch.from_numpy(np.argsort(np.concatenate(batches)))  # back to input order
    return {mode: torch.cat(chunks)[inverse].cpu().numpy() for mode, chunks in out.items()}


@torch.inference_mode()
def apply_after_pooling(encoder: SentenceEncoder, pooled: np.ndarray) -> np.ndarray:
    """Run the encoder's layers after pooling (projection, LayerNorm, L2 normalisation) on pooled embeddings.

    (n, H) from ``embed_with_poolings`` -> (n, D), as ``encoder.encode`` would give: compare many heads on one
    backbone pass.
    """
    was_training = encoder.training
    encoder.eval()
    features = {"sentence_embedding": torch.as_tensor(pooled, dtype=torch.float32, device=encoder.device)}
    for module in list(encoder.model)[2:]:  # [0] Transformer, [1] Pooling, then the optional layers
        features = module(features)
    encoder.train(was_training)
    return features["sentence_embedding"].cpu().numpy()
