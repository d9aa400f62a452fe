"""Where each supported encoder family keeps its parts, and how to run its blocks from cached hidden states.

The layer-wise features of Task 3 (the selectors ``embeddings``, ``layer.i``, ``bottom:k``, ``top:k`` of
``mtl.finetuning.freezing``, so gradual unfreezing by layers; discriminative learning rates; the prefix cache of a partly
frozen backbone; LoRA's default target modules) need a backbone's embeddings, its list of blocks, and how a block
is called. transformers has no common interface for these, so one small adapter per family names them, as the
transformers 5.x sources (``models/<family>/modeling_<family>.py``) define them:

| model_type | ``embeddings`` component | blocks | a block, on hidden states h (B, T, H) | LoRA targets |
|---|---|---|---|---|
| bert (MiniLM) | ``embeddings`` | ``encoder.layer`` | ``block(h, attention_mask=m)`` -> h | query, key, value |
| roberta | ``embeddings`` (which also make the position ids) | ``encoder.layer`` | as BERT | query, key, value |
| distilbert | ``embeddings`` (no token types) | ``transformer.layer`` | as BERT | q_lin, k_lin, v_lin |
| mpnet | ``embeddings``, ``encoder.relative_attention_bias`` | ``encoder.layer`` | ``block(h, m, bias)[0]`` | q, k, v |

``m`` is what each of these models builds from the (B, T) padding mask in 5.x: ``create_bidirectional_mask`` for
the model's attention implementation (DistilBERT included: its 4.x boolean-mask convention is gone). Position
information never has to be cached separately: BERT and DistilBERT add absolute positions 0..T-1, RoBERTa and MPNet
count positions from the input ids (padding excluded) inside their embeddings, so the embeddings' output of an
unpadded row is that of the same row in any right-padded batch. MPNet's relative position bias (B, heads, T, T) is
a function of T and a table shared by all blocks, held by its encoder: it is recomputed for each run of blocks, and
the table belongs to the ``embeddings`` component (frozen, cached and trained with it, like position embeddings).

A backbone of another family works for everything that treats it as one piece (freezing or training the whole
encoder, plain training, LoRA with explicit ``target_modules``); asking it for a layer-wise feature is an error
naming the supported families (``require_architecture``), never a silent fallback.
"""
from __future__ import annotations

from torch import Tensor, nn
from transformers import PreTrainedModel
from transformers.masking_utils import create_bidirectional_mask


class Architecture:
    """Names and calls of one family's parts. The defaults are BERT's; the other families override what differs."""

    family = "BERT"
    model_type = "bert"
    blocks_path = "encoder.layer"
    lora_targets = ("query", "key", "value")  # the self-attention Linear layers (module names)

    def embeddings(self, backbone: PreTrainedModel) -> nn.Module:
        """The ``embeddings`` component: every module the blocks depend on besides the hidden states."""
        return backbone.embeddings

    def blocks(self, backbone: PreTrainedModel) -> nn.ModuleList:
        """The transformer blocks, bottom-up."""
        return backbone.get_submodule(self.blocks_path)

    def embed(self, backbone: PreTrainedModel, inputs: dict) -> Tensor:
        """(B, T, H) input of the lowest block."""
        return backbone.embeddings(input_ids=inputs["input_ids"], token_type_ids=inputs.get("token_type_ids"))

    def run_blocks(self, backbone: PreTrainedModel, blocks: nn.ModuleList, hidden: Tensor,
                   attention_mask: Tensor) -> Tensor:
        """(B, T, H) hidden states after ``blocks``, from ``hidden`` (B, T, H) and the (B, T) padding mask."""
        mask = create_bidirectional_mask(config=backbone.config, inputs_embeds=hidden, attention_mask=attention_mask)
        for block in blocks:
            hidden = block(hidden, attention_mask=mask)
        return hidden


class Roberta(Architecture):
    """BERT's modules under the same names; the embeddings derive position ids from the input ids (pad-aware)."""

    family = "RoBERTa"
    model_type = "roberta"


class DistilBert(Architecture):
    """Blocks under ``transformer.layer``, embeddings without token types, attention as ``q_lin`` / ``k_lin`` / ..."""

    family = "DistilBERT"
    model_type = "distilbert"
    blocks_path = "transformer.layer"
    lora_targets = ("q_lin", "k_lin", "v_lin")

    def embed(self, backbone: PreTrainedModel, inputs: dict) -> Tensor:
        return backbone.embeddings(inputs["input_ids"])


class MPNet(Architecture):
    """A relative position bias, computed by the encoder from a table shared by all blocks, enters every block;
    blocks return tuples."""

    family = "MPNet"
    model_type = "mpnet"
    lora_targets = ("q", "k", "v")

    def embeddings(self, backbone: PreTrainedModel) -> nn.Module:
        return nn.ModuleList([backbone.embeddings, backbone.encoder.relative_attention_bias])

    def embed(self, backbone: PreTrainedModel, inputs: dict) -> Tensor:
        return backbone.embeddings(input_ids=inputs["input_ids"])

    def run_blocks(self, backbone: PreTrainedModel, blocks: nn.ModuleList, hidden: Tensor,
                   attention_mask: Tensor) -> Tensor:
        mask = create_bidirectional_mask(config=backbone.config, inputs_embeds=hidden, attention_mask=attention_mask)
        bias = backbone.encoder.compute_position_bias(hidden)  # (B, heads, T, T), as MPNetEncoder.forward computes it
        for block in blocks:
            hidden = block(hidden, mask, bias)[0]
        return hidden


ARCHITECTURES: dict[str, Architecture] = {a.model_type: a for a in (Architecture(), Roberta(), DistilBert(), MPNet())}


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
