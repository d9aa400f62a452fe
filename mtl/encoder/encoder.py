"""The sentence encoder: transformer backbone -> pooling -> [projection] -> [LayerNorm] -> [L2 normalisation].

Each stage is a sentence-transformers module (``Transformer``, ``Pooling``, ``Dense``, ``LayerNorm``,
``Normalize``), so a saved encoder is an ordinary sentence-transformers folder that ``SentenceTransformer(path)``
loads. ``SentenceEncoder`` adds what this project needs around it: input checks with clear errors, word-level
tokenisation for token tasks, a choice of precision, and the backbone run block by block for the cache of a
frozen bottom (``mtl.encoder.prefix_cache``).

Reference: Reimers & Gurevych, "Sentence-BERT", EMNLP 2019.
"""
from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from sentence_transformers import SentenceTransformer
from sentence_transformers.models import Dense, LayerNorm, Normalize, Pooling, Transformer
from torch import nn
from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear
from transformers import BatchEncoding

from mtl.data.examples import check_texts
from mtl.encoder.architectures import Architecture, architecture_of, require_architecture
from mtl.encoder.backbones import backbone_path
from mtl.encoder.precision import autocast, resolve_precision
from mtl.encoder.prefix_cache import PrefixCache, TokenCache
from mtl.utils import resolve_device

POOLING_MODES = ("cls", "mean", "max")


class SentenceEncoder(nn.Module):
    """A sentence-transformers model (``model``) with checked inputs; ``forward`` gives token and sentence
    embeddings."""

    def __init__(self, model: SentenceTransformer):
        super().__init__()
        self.model = model
        if getattr(self.transformer.auto_model, "pooler", None) is not None:
            self.transformer.auto_model.pooler = None  # BERT's [CLS] pooler: sentence-transformers never reads it
        self.prefix_cache: PrefixCache | None = None  # set by ``use_prefix_cache`` (training with frozen layers)
        self.token_cache: TokenCache | None = None  # likewise: tokenised inputs, for epochs over the same examples
        self.unchanged_bottom: object | None = None  # a token while ``frozen_bottom_unchanged`` is in force
        self._unchanged_depth: int | None = None  # ``cached_depth`` found within that block

    @classmethod
    def build(
        cls,
        backbone: str = "minilm",
        pooling: str = "mean",
        projection_dim: int | None = None,
        layer_norm: bool = False,
        normalize: bool = True,
        max_seq_length: int | None = None,
        device: str | torch.device | None = None,
    ) -> SentenceEncoder:
        """Compose the encoder. ``backbone`` is ``minilm``, ``mpnet``, ``scratch``, a folder or a hub id."""
        if pooling not in POOLING_MODES:
            raise ValueError(f"Unknown pooling mode {pooling!r}; valid modes are {POOLING_MODES}.")
        if projection_dim is not None and (not isinstance(projection_dim, int) or projection_dim < 1):
            raise ValueError(f"projection_dim must be a positive integer or None, got {projection_dim!r}.")
        path = backbone_path(backbone)
        transformer = Transformer(path, max_seq_length=max_seq_length or _default_max_seq_length(path))
        dim = transformer.get_embedding_dimension()
        modules: list[nn.Module] = [transformer, Pooling(dim, pooling_mode=pooling)]
        if projection_dim is not None:
            modules.append(Dense(dim, projection_dim, activation_function=None))
            dim = projection_dim
        if layer_norm:
            modules.append(LayerNorm(dim))
        if normalize:
            modules.append(Normalize())
        return cls(SentenceTransformer(modules=modules, device=str(resolve_device(device))))

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device | None = None) -> SentenceEncoder:
        """Load a folder written by ``save`` (or any sentence-transformers folder); a damaged file is an error naming
        it, and so is a missing tokenizer file (transformers would quietly build a tokenizer without a vocabulary)."""
        if not (Path(path) / "modules.json").is_file():
            raise FileNotFoundError(f"{path} is not a saved encoder: it has no modules.json.")
        check_saved_files(Path(path))
        encoder = cls(SentenceTransformer(str(path), device=str(resolve_device(device))))
        if len(encoder.tokenizer) <= len(encoder.tokenizer.all_special_tokens):
            raise ValueError(f"{path}: the tokenizer has no vocabulary beyond its special tokens; its tokenizer.json "
                             "(or vocab file) is missing.")
        return encoder

    def save(self, path: str | Path) -> None:
        """Write a sentence-transformers folder (weights as safetensors), leaving train/eval modes as they were."""
        if self.is_int8:
            raise NotImplementedError("An int8 encoder cannot be saved: its weights are packed for fbgemm, not a "
                                      "sentence-transformers folder. Save the float32 encoder and quantise it after "
                                      "loading (mtl.extras.inference.quantize).")
        modes = [module.training for module in self.modules()]
        self.model.save(str(path))  # sentence-transformers switches modules to eval mode while saving
        for module, mode in zip(self.modules(), modes):
            module.training = mode

    @property
    def is_int8(self) -> bool:
        """Whether the linear layers are torch's dynamic int8 ones (``mtl.extras.inference.quantize``): such a copy
        computes in int8 and float32 only, and cannot be saved."""
        return any(isinstance(module, DynamicInt8Linear) for module in self.modules())

    @property
    def transformer(self) -> Transformer:
        return self.model[0]

    @property
    def tokenizer(self):
        return self.transformer.tokenizer

    @property
    def pooling(self) -> str:
        return self.model[1].pooling_mode

    @property
    def hidden_size(self) -> int:
        """Width of the token embeddings (what a token-level head reads)."""
        return self.transformer.get_embedding_dimension()

    @property
    def dim(self) -> int:
        """Width of the sentence embedding (after any projection)."""
        return self.model.get_embedding_dimension()

    @property
    def max_seq_length(self) -> int:
        return self.transformer.max_seq_length

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def tokenize(self, inputs: Sequence[str] | Sequence[Sequence[str]]) -> BatchEncoding:
        """Pad and truncate a batch. Items are texts, or lists of words (for token tasks: see ``word_ids``)."""
        if self.token_cache is not None:
            return self.token_cache.tokenize(self.tokenizer, inputs, self.max_seq_length).to(self.device)
        split_into_words = not isinstance(inputs[0], str)
        batch = self.tokenizer([list(x) for x in inputs] if split_into_words else list(inputs),
                               is_split_into_words=split_into_words, padding=True, truncation=True,
                               max_length=self.max_seq_length, return_tensors="pt")
        return batch.to(self.device)

    def token_counts(self, inputs: Sequence[str] | Sequence[Sequence[str]]) -> list[int]:
        """Tokens per item after truncation, as ``tokenize`` would give them (special tokens included): the length
        every length-sorted pass batches by (``mtl.utils.length_sorted_batches``), since texts of one length in
        characters differ in tokens."""
        split_into_words = len(inputs) > 0 and not isinstance(inputs[0], str)
        ids = self.tokenizer([list(x) for x in inputs] if split_into_words else list(inputs),
                             is_split_into_words=split_into_words, truncation=True,
                             max_length=self.max_seq_length)["input_ids"]
        return [len(row) for row in ids]

    def forward(self, features: BatchEncoding | dict) -> dict[str, torch.Tensor]:
        """``token_embeddings`` (B, T, H) from the backbone and ``sentence_embedding`` (B, D) after pooling etc."""
        inputs = {k: features[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in features}
        depth = self.cached_depth() if self.prefix_cache is not None else 0
        if depth == 0:
            return self.model(inputs)
        hidden = self.prefix_cache.hidden_states(self, inputs, depth)  # (B, T, H) after the frozen blocks
        features = dict(inputs, token_embeddings=self._run_blocks(hidden, inputs["attention_mask"], depth, None))
        for module in list(self.model)[1:]:  # Pooling, [Dense], [LayerNorm], [Normalize]
            features = module(features)
        return features

    def check_precision(self, precision: str) -> None:
        """Fail, naming the valid choices, on a precision this encoder cannot run in (int8 copies run in fp32 only)."""
        resolve_precision(precision, self.device)
        if precision != "fp32" and self.is_int8:
            raise ValueError(f"A quantised encoder computes in int8 and float32; precision must be 'fp32', got "
                             f"{precision!r}.")

    @torch.inference_mode()
    def encode(
        self,
        texts: Sequence[str],
        batch_size: int = 64,
        show_progress_bar: bool | None = None,
        convert_to_tensor: bool = False,
        precision: str = "fp32",
    ) -> np.ndarray | torch.Tensor:
        """Embed texts, shape (n, D), float32, in input order (sentence-transformers' ``encode``, which batches them
        sorted by length). A progress bar from 21 batches on unless ``show_progress_bar`` says otherwise.
        ``precision``: "fp32", "bf16", "fp16" (CUDA) or "auto" (bf16 where the hardware runs it natively, see
        ``mtl.encoder.precision``)."""
        check_texts(texts)
        self.check_precision(precision)
        if show_progress_bar is None:
            show_progress_bar = -(-len(texts) // batch_size) > 20
        was_training = self.training
        with autocast(precision, self.device):
            embeddings = self.model.encode(list(texts), batch_size=batch_size, show_progress_bar=show_progress_bar,
                                           convert_to_tensor=True)  # (n, D), in the autocast dtype
        self.train(was_training)
        embeddings = embeddings.float()
        return embeddings if convert_to_tensor else embeddings.cpu().numpy()

    # ---- the backbone block by block (mtl.encoder.architectures), for caching a frozen bottom ------------------
    def use_prefix_cache(self, enabled: bool = True, cache: PrefixCache | None = None) -> None:
        """Cache the output of the frozen bottom blocks (``mtl.encoder.prefix_cache``; no effect if none is frozen)
        and the tokenised inputs. Pass ``cache`` to share one across models with the same frozen bottom (e.g. seeds)."""
        self.prefix_cache = (PrefixCache() if cache is None else cache) if enabled else None  # an empty cache is falsy
        self.token_cache = TokenCache() if enabled else None

    @property
    def architecture(self) -> Architecture | None:
        """The adapter of the backbone's family (``mtl.encoder.architectures``); None if it is not a supported one."""
        return architecture_of(self.transformer.auto_model)

    def require_architecture(self, feature: str) -> Architecture:
        """The backbone's adapter; an error naming ``feature`` and the supported families if it has none."""
        return require_architecture(self.transformer.auto_model, feature)

    @property
    def embeddings(self) -> nn.Module:
        """What the blocks read besides hidden states (token and position embeddings; MPNet: its position bias)."""
        return self.require_architecture("The embeddings component").embeddings(self.transformer.auto_model)

    @property
    def blocks(self) -> nn.ModuleList | None:
        """The transformer blocks, bottom-up; None for a backbone of an unsupported family (nothing layer-wise)."""
        architecture = self.architecture
        return None if architecture is None else architecture.blocks(self.transformer.auto_model)

    def frozen_depth(self) -> int:
        """How many bottom blocks are frozen, counting only if the embeddings are frozen too (0: nothing to cache;
        also for an unsupported family, whose blocks are unknown)."""
        blocks = self.blocks
        if blocks is None or any(p.requires_grad for p in self.embeddings.parameters()):
            return 0
        depth = 0
        while depth < len(blocks) and not any(p.requires_grad for p in blocks[depth].parameters()):
            depth += 1
        return depth

    @contextlib.contextmanager
    def frozen_bottom_unchanged(self):
        """Promise that within the block nothing is frozen or unfrozen and no frozen tensor changes, as within a
        training epoch (the optimiser skips tensors without gradients): ``cached_depth`` and the prefix cache's check
        of the frozen tensors (``PrefixCache.validate``) then run at the block's first forward pass only."""
        self.unchanged_bottom, self._unchanged_depth = object(), None
        try:
            yield
        finally:
            self.unchanged_bottom, self._unchanged_depth = None, None

    def cached_depth(self) -> int:
        """The depth the prefix cache serves: ``frozen_depth``. A backbone of an unsupported family is never cached:
        partly frozen, that is an error (which blocks are frozen is unknown); wholly frozen, a warning."""
        if self.unchanged_bottom is not None and self._unchanged_depth is not None:
            return self._unchanged_depth
        if self.architecture is not None:
            depth = self.frozen_depth()
        else:
            depth, frozen = 0, [not p.requires_grad for p in self.transformer.auto_model.parameters()]
            if any(frozen) and not all(frozen):
                feature = "The prefix cache of a partly frozen backbone (train with cache_frozen=False)"
                self.require_architecture(feature)  # raises
            if all(frozen):
                warnings.warn(f"The prefix cache does not know the blocks of model_type "
                              f"{self.transformer.auto_model.config.model_type!r} (mtl.encoder.architectures): the "
                              "frozen backbone runs in full at every step. Train with cache_frozen=False to silence "
                              "this.", stacklevel=2)
        if self.unchanged_bottom is not None:
            self._unchanged_depth = depth
        return depth

    def hidden_after(self, inputs: dict, depth: int) -> torch.Tensor:
        """(B, T, H) hidden states after the embeddings and the ``depth`` lowest blocks, as the backbone has them."""
        hidden = self.require_architecture("The prefix cache").embed(self.transformer.auto_model, inputs)
        return self._run_blocks(hidden, inputs["attention_mask"], 0, depth)

    def _run_blocks(self, hidden: torch.Tensor, attention_mask: torch.Tensor, start: int, stop: int | None):
        backbone, architecture = self.transformer.auto_model, self.require_architecture("The prefix cache")
        blocks = architecture.blocks(backbone)[start:stop]
        if len(blocks) == 0:  # the whole backbone cached: no attention mask to build
            return hidden
        return architecture.run_blocks(backbone, blocks, hidden, attention_mask)


def check_saved_files(folder: Path) -> None:
    """Parse every JSON file and read every safetensors header under ``folder``: a truncated or garbled file is an
    error naming it (the libraries' own errors often do not name the file)."""
    for file in sorted(folder.rglob("*.json")):
        try:
            json.loads(file.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"{file} is not valid JSON: {err}") from err
    for file in sorted(folder.rglob("*.safetensors")):
        try:
            with safe_open(str(file), framework="pt"):
                pass
        except Exception as err:  # safetensors has its own error types for truncated / corrupt files
            raise ValueError(f"{file} is corrupted or not a safetensors file: {err}") from err


def _default_max_seq_length(path: str) -> int:
    """The model's own limit: sentence-transformers' config if present, else the tokenizer's, capped at 512."""
    for name, key in (("sentence_bert_config.json", "max_seq_length"), ("tokenizer_config.json", "model_max_length")):
        file = Path(path) / name  # sentence-transformers < 6 write the first, 6.x only the second
        if file.is_file() and key in (values := json.loads(file.read_text())):
            return min(values[key], 512)
    return 512
