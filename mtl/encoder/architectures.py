"""Where each supported encoder family keeps its parts, and how to run its blocks from cached hidden states.

The layer-wise features (the selectors ``embeddings``, ``layer.i``, ``bottom:k``, ``top:k`` of
``mtl.finetuning.freezing``; discriminative learning rates; the prefix cache of a partly frozen backbone; LoRA's
default target modules) need a backbone's embeddings, its blocks, and how a block is called. transformers has no
common interface for these, so one small adapter per family names them, as transformers 5.x defines them:

| model_type | ``embeddings`` component | blocks | a block, on hidden states h (B, T, H) | LoRA targets |
|---|---|---|---|---|
| bert (MiniLM) | ``embeddings`` | ``encoder.layer`` | ``block(h, attention_mask=m)`` -> h | query, key, value |
| roberta | ``embeddings`` (which also make the position ids) | ``encoder.layer`` | as BERT | query, key, value |
| distilbert | ``embeddings`` (no token types) | ``transformer.layer`` | as BERT | q_lin, k_lin, v_lin |
| mpnet | ``embeddings``, ``encoder.relative_attention_bias`` | ``encoder.layer`` | ``block(h, m, bias)[0]`` | q, k, v |

``m`` is what each of these models builds from the (B, T) padding mask (``create_bidirectional_mask``). Positions
need no separate cache: BERT and DistilBERT add positions 0..T-1, RoBERTa and MPNet count them from the input ids
(padding excluded), so an unpadded row embeds as the same row of any right-padded batch. MPNet's relative position
bias (B, heads, T, T) is recomputed for each run of blocks from a table that belongs to the ``embeddings`` component.

A backbone of another family works for everything that treats it as one piece (freezing or training the whole
encoder, LoRA with explicit ``target_modules``); a layer-wise feature is an error naming the supported families
(``require_architecture``), never a silent fallback.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn
from transformers import PreTrainedModel
from transformers.masking_utils import create_bidirectional_mask


@dataclass(frozen=True)
class Architecture:
    """Names and calls of one family's parts; the defaults are BERT's."""

    family: str
    model_type: str
    blocks_path: str = "encoder.layer"
    lora_targets: tuple[str, ...] = ("query", "key", "value")  # the self-attention Linear layers (module names)
    token_types: bool = True  # whether the embeddings take token type ids

    def embeddings(self, backbone: PreTrainedModel) -> nn.Module:
        """The ``embeddings`` component: every module the blocks depend on besides the hidden states."""
        return backbone.embeddings

    def blocks(self, backbone: PreTrainedModel) -> nn.ModuleList:
        """The transformer blocks, bottom-up."""
        return backbone.get_submodule(self.blocks_path)

    def embed(self, backbone: PreTrainedModel, inputs: dict) -> Tensor:
        """(B, T, H) input of the lowest block."""
        token_types = {"token_type_ids": inputs.get("token_type_ids")} if self.token_types else {}
        return backbone.embeddings(input_ids=inputs["input_ids"], **token_types)

    def run_blocks(self, backbone: PreTrainedModel, blocks: nn.ModuleList, hidden: Tensor,
                   attention_mask: Tensor) -> Tensor:
        """(B, T, H) hidden states after ``blocks``, from ``hidden`` (B, T, H) and the (B, T) padding mask."""
        mask = create_bidirectional_mask(config=backbone.config, inputs_embeds=hidden, attention_mask=attention_mask)
        for block in blocks:
            hidden = block(hidden, attention_mask=mask)
        return hidden


class MPNet(Architecture):
    """A relative position bias, computed by the encoder from a table shared by all blocks, enters every block;
    blocks return tuples."""

    def embeddings(self, backbone: PreTrainedModel) -> nn.Module:
        return nn.ModuleList([backbone.embeddings, backbone.encoder.relative_attention_bias])

    def run_blocks(self, backbone: PreTrainedModel, blocks: nn.ModuleList, hidden: Tensor,
                   attention_mask: Tensor) -> Tensor:
        mask = create_bidirectional_mask(config=backbone.config, inputs_embeds=hidden, attention_mask=attention_mask)
        bias = backbone.encoder.compute_position_bias(hidden)  # (B, heads, T, T), as MPNetEncoder.forward computes it
        for block in blocks:
            hidden = block(hidden, mask, bias)[0]
        return hidden


ARCHITECTURES: dict[str, Architecture] = {a.model_type: a for a in (
    Architecture("BERT", "bert"),
    Architecture("RoBERTa", "roberta"),  # its embeddings derive position ids from the input ids (pad-aware)
    Architecture("DistilBERT", "distilbert", "transformer.layer", ("q_lin", "k_lin", "v_lin"), token_types=False),
    MPNet("MPNet", "mpnet", lora_targets=("q", "k", "v"), token_types=False),
)}


def architecture_of(backbone: PreTrainedModel) -> Architecture | None:
    """The adapter of the backbone's family, None if it is not a supported one."""
    return ARCHITECTURES.get(backbone.config.model_type)


def require_architecture(backbone: PreTrainedModel, feature: str) -> Architecture:
    """The adapter of the backbone's family; an error naming ``feature`` and the supported families if there is none."""
    architecture = architecture_of(backbone)
    if architecture is None:
        supported = ", ".join(f"{a.model_type} ({a.family})" for a in ARCHITECTURES.values())
        raise ValueError(
            f"{feature} needs to know the backbone's embeddings and blocks, but its model_type "
            f"{backbone.config.model_type!r} is not a supported architecture: {supported} (mtl.encoder.architectures). "
            "Whole-encoder freezing ('encoder', 'backbone', 'heads', 'head.<task>') and training without layer-wise "
            "features work for any backbone.")
    return architecture
