"""Freezing by component, and what is trainable where.

Components of a ``MultiTaskModel``, bottom-up: ``embeddings``, ``layer.0`` ... ``layer.{L-1}`` (transformer
blocks), ``projection`` and ``layer_norm`` (if the encoder has them), ``head.<task>``. Selectors accepted by
``freeze`` / ``unfreeze``: a component name, ``encoder`` (all encoder components), ``backbone`` (embeddings and
blocks), ``bottom:k`` (embeddings and the k lowest blocks), ``top:k`` (the k highest blocks), ``heads``.
Frozen components run in eval mode (``MultiTaskModel.train``): no dropout noise in what
does not learn, which is also what makes their outputs cacheable (``mtl.encoder.prefix_cache``).

Embeddings and blocks come from the backbone family's adapter (``mtl.encoder.architectures``). A backbone of another family
is one component, ``backbone``: ``encoder``, ``backbone``, ``heads`` and the other names work, while ``embeddings``,
``layer.i``, ``bottom:k`` and ``top:k`` are errors naming the supported families.
"""
from __future__ import annotations

from collections.abc import Iterable

import pandas as pd


def select(model, selector: str) -> list[str]:
    """Component names a selector stands for; an unknown selector is an error listing the valid ones."""
    names = list(model.components())
    blocks = [n for n in names if n.startswith("layer.")]
    encoder_parts = [n for n in names if not n.startswith("head.")]
    if selector in names:
        return [selector]
    if selector == "encoder":
        return encoder_parts
    if selector == "backbone":
        return ["embeddings"] + blocks
    layer_wise = selector == "embeddings" or selector.startswith(("layer.", "bottom:", "top:"))
    if layer_wise and model.encoder.blocks is None:
        model.encoder.require_architecture(f"The selector {selector!r}")  # raises: the family is not supported
    if selector == "heads":
        return [n for n in names if n.startswith("head.")]
    kind, _, count = selector.partition(":")
    if kind in ("bottom", "top") and count.isdigit() and int(count) <= len(blocks):
        k = int(count)
        return ["embeddings"] + blocks[:k] if kind == "bottom" else blocks[len(blocks) - k:]
    raise ValueError(f"Unknown component selector {selector!r}; valid: {names + ['encoder', 'backbone', 'heads']} "
                     f"or bottom:k / top:k with k <= {len(blocks)}.")


def set_trainable(model, selectors: str | Iterable[str], trainable: bool) -> None:
    """Set ``requires_grad`` on every parameter of the selected components, then fix train/eval modes."""
    parts = model.components()
    for selector in [selectors] if isinstance(selectors, str) else selectors:
        for name in select(model, selector):
            parts[name].requires_grad_(trainable)
    model.train(model.training)


def freeze(model, *selectors: str) -> None:
    set_trainable(model, selectors, False)


def unfreeze(model, *selectors: str) -> None:
    set_trainable(model, selectors, True)


def parameter_report(model) -> pd.DataFrame:
    """Trainable and total parameters per component, with a total row."""
    rows = [{"component": name, "trainable": sum(p.numel() for p in m.parameters() if p.requires_grad),
             "total": sum(p.numel() for p in m.parameters())} for name, m in model.components().items()]
    frame = pd.DataFrame(rows)
    total = {"component": "total", "trainable": int(frame.trainable.sum()), "total": int(frame.total.sum())}
    return pd.concat([frame, pd.DataFrame([total])], ignore_index=True)
