"""LoRA adapters on the encoder's attention projections, through PEFT.

LoRA (Hu et al., ICLR 2022) keeps a pretrained weight W frozen and learns a low-rank update: a projection
computes ``W x + (alpha / r) * B A x`` with A (r x d) and B (d x r), B starting at zero so training starts from the
pretrained model. On MiniLM's query/key/value with r=8 that is 18k trainable parameters per block against 1.8M.
The projections' module names depend on the family (query/key/value in BERT and RoBERTa, q_lin/k_lin/v_lin in
DistilBERT, q/k/v in MPNet): ``mtl.encoder.architectures`` names them.

``add_lora`` uses sentence-transformers' own PEFT integration (``SentenceTransformer.add_adapter``), which injects
the adapters in place: the backbone stays e.g. a ``BertModel`` (``SentenceEncoder.blocks``, ``mtl.finetuning.freezing`` and the
prefix cache work unchanged), every backbone weight is frozen except the adapters, the heads stay trainable, and
``MultiTaskModel.save`` writes the adapter (``adapter_model.safetensors``, ``adapter_config.json``) which
``MultiTaskModel.load`` reapplies to the base model it names.

With adapters in every block no block is frozen, so ``frozen_depth`` is 0 and nothing is cached; adapters in
the top blocks only (``layers``) leave a frozen bottom that the prefix cache does reuse.
"""
from __future__ import annotations

from collections.abc import Sequence

from peft import LoraConfig

from mtl.multitask.model import MultiTaskModel

def add_lora(model: MultiTaskModel, r: int = 8, alpha: int = 16, dropout: float = 0.1,
             target_modules: Sequence[str] | None = None, layers: Sequence[int] | None = None) -> None:
    """Freeze the backbone and add trainable rank-``r`` adapters to ``target_modules`` (default: the family's
    query/key/value projections) of the blocks (all blocks, or the indices in ``layers``); heads, projection and
    LayerNorm keep their ``requires_grad``. A backbone of an unsupported family needs explicit ``target_modules``
    and all blocks."""
    if r < 1:
        raise ValueError(f"LoRA rank r must be a positive integer, got {r!r}.")
    if target_modules is None:
        target_modules = model.encoder.require_architecture("LoRA's default target_modules").lora_targets
    if layers is not None:
        model.encoder.require_architecture("LoRA on chosen layers")
        depth = len(model.encoder.blocks)
        if not all(0 <= i < depth for i in layers):
            raise ValueError(f"LoRA layers must be block indices 0..{depth - 1}, got {list(layers)}.")
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(target_modules),
                        layers_to_transform=None if layers is None else list(layers), bias="none")
    model.encoder.model.add_adapter(config)  # in place; freezes every non-adapter weight of the backbone
    model.train(model.training)  # frozen components (e.g. the embeddings) to eval mode


def lora_parameters(model: MultiTaskModel) -> int:
    """Number of LoRA adapter parameters in the model (0 without adapters)."""
    return sum(p.numel() for name, p in model.named_parameters() if ".lora_" in name)
