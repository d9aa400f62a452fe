"""Discriminative learning rates (Howard & Ruder 2018): lower encoder blocks hold more general features, so they
learn more slowly than higher ones; and the AdamW parameter groups that carry these rates."""
from __future__ import annotations

from torch import nn


def layer_learning_rates(model, encoder_lr: float, decay: float = 1.0) -> dict[str, float]:
    """Learning rate per encoder component: the top block gets ``encoder_lr``, each block below ``decay`` times the
    one above, the embeddings ``decay`` times the lowest block; the projection and LayerNorm after the blocks get
    ``encoder_lr``."""
    if decay != 1.0:
        model.encoder.require_architecture(f"layer_lr_decay={decay}")  # a backbone of unknown blocks: an error
    names = [name for name in model.components() if not name.startswith("head.")]
    depth = sum(name.startswith("layer.") for name in names)
    position = {name: int(name.split(".")[1]) for name in names if name.startswith("layer.")}
    position["embeddings"] = -1
    return {name: encoder_lr * decay ** (depth - 1 - position[name]) if name in position else encoder_lr
            for name in names}


def parameter_groups(objective: nn.Module, config) -> list[dict]:
    """AdamW groups of every parameter of ``objective`` (its ``model`` is the MultiTaskModel; the rest, e.g. loss
    weights, counts as heads), frozen ones too: AdamW skips them while they have no gradient. Encoder and heads
    learn at ``config.encoder_lr`` and ``config.head_lr``, the encoder split per component when
    ``config.layer_lr_decay`` is not 1; no weight decay on biases, norms, log-variances. Encoder groups come first,
    top-down, so group 0 always runs at ``encoder_lr``. ``config``: a ``TrainConfig``."""
    rates = layer_learning_rates(objective.model, config.encoder_lr, config.layer_lr_decay)
    component_of = {id(p): name for name, module in objective.model.components().items() if name in rates
                    for p in module.parameters()}
    groups: dict[tuple[str, bool], list[nn.Parameter]] = {}
    for name, param in objective.named_parameters():
        part = "heads"
        if name.startswith("model.encoder."):
            part = component_of.get(id(param), "encoder") if config.layer_lr_decay != 1.0 else "encoder"
        groups.setdefault((part, param.ndim >= 2), []).append(param)
    lr = {**rates, "encoder": config.encoder_lr, "heads": config.head_lr}
    order = sorted(groups, key=lambda key: (key[0] == "heads", -lr[key[0]]))  # stable: ties keep model order
    return [{"params": groups[part, decay], "lr": lr[part], "weight_decay": config.weight_decay if decay else 0.0,
             "name": part} for part, decay in order]
