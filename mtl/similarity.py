"""Judging sentence embeddings against people: Spearman correlation with the Lee corpus's human ratings.

Lee, Pincombe & Welsh (2005): 50 news documents, every pair rated for similarity by several people
(1,225 pairs). A good encoder *ranks* pairs as people do; the raw cosine values need not mean anything.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy.stats import spearmanr
from sentence_transformers.models import Pooling

from mtl.encoder import SentenceEncoder


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
    order = np.argsort([-len(t) for t in texts], kind="stable")
    for start in range(0, len(texts), batch_size):
        features = encoder.tokenize([texts[i] for i in order[start : start + batch_size]])
        tokens = encoder.transformer(dict(features))["token_embeddings"]  # (b, T, H)
        for mode, pooler in poolers.items():
            pooled = pooler({"token_embeddings": tokens, "attention_mask": features["attention_mask"]})
            out[mode].append(pooled["sentence_embedding"])  # (b, H)
    encoder.train(was_training)
    inverse = torch.from_numpy(np.argsort(order))  # back to input order
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
