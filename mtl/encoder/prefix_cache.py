"""Compute the frozen bottom of the backbone once: cached hidden states after its last frozen block.

When the embeddings and the k lowest transformer blocks are frozen (and so in eval mode), their output for a given
input never changes. ``PrefixCache`` stores it per distinct input (keyed by its token ids, unpadded), so each step
runs only the trainable top; with the whole encoder frozen, only pooling and heads run.

Entries are only served for the frozen weights, depth and precision (autocast dtype) they were computed with: the
cache re-checks them whenever the encoder, the depth or a frozen tensor changes (replaced, or written in place:
``Tensor._version``) and clears itself if they differ. Validity is decided by a fingerprint of the weights' values,
so one cache can be shared by models with the same pretrained bottom (``train(..., prefix_cache=cache)``,
``encoder.use_prefix_cache(cache=cache)``, or a ``deepcopy``): runs that differ only in seed, heads, tasks or
trainable top reuse each other's hidden states.

``train`` fills the cache before each epoch with the examples it will draw and the validation sets
(``MultiTaskModel.fill_prefix_cache`` -> ``PrefixCache.fill``). ``TokenCache`` likewise keeps the tokenizer's output
per distinct input, so that epochs over the same examples do not tokenise them again.
"""
from __future__ import annotations

import hashlib
import warnings
import weakref
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence
from transformers import BatchEncoding

from mtl.encoder.precision import autocast_dtype

CHUNK = 8  # rows per pass when computing missing entries (see ``PrefixCache.hidden_states``)
STORAGE_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


class PrefixCache:
    """Hidden states (T_i, H) after ``depth`` blocks, one entry per distinct input.

    ``dtype``: how entries are stored (float32: exactly as computed; bfloat16 / float16: half the memory, rounded).
    ``max_bytes``: bound on the stored entries (None: no bound); inputs past it are computed each time, with a warning.
    """

    def __init__(self, dtype: torch.dtype = torch.float32, max_bytes: int | None = None):
        if dtype not in STORAGE_DTYPES:
            raise ValueError(f"PrefixCache dtype must be one of {STORAGE_DTYPES}, got {dtype!r}.")
        if max_bytes is not None and (isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0):
            raise ValueError(f"max_bytes must be a non-negative integer or None, got {max_bytes!r}.")
        self.dtype, self.max_bytes = dtype, max_bytes
        self.depth: int | None = None
        self.fingerprint: str | None = None  # SHA-1 of the frozen weights the entries were computed with
        self.precision: torch.dtype | None = None  # dtype of the matrix products that computed them (autocast)
        self.store: dict[bytes, Tensor] = {}
        self.nbytes = 0  # bytes held by the entries
        self.hits = self.misses = 0
        self.unstored = 0  # misses computed but not stored because of max_bytes
        self._value_dtype: torch.dtype | None = None  # dtype the blocks produced (what hidden_states returns)
        self._checked: tuple | None = None  # (weakref to encoder, depth, precision, (id, version) per frozen tensor)
        self._trusted: tuple | None = None  # (the encoder's unchanged-bottom token, depth, precision) checked last

    def clear(self) -> None:
        self.store.clear()
        self.nbytes = self.hits = self.misses = self.unstored = 0

    def __len__(self) -> int:
        return len(self.store)

    def __repr__(self) -> str:
        bound = "no bound" if self.max_bytes is None else f"max_bytes {self.max_bytes / 1e6:,.1f} MB"
        return (f"PrefixCache({len(self):,} entries, {self.nbytes / 1e6:,.1f} MB as {str(self.dtype)[6:]} ({bound}); "
                f"depth {self.depth}; {self.hits:,} hits, {self.misses:,} misses, {self.unstored:,} not stored)")

    def __deepcopy__(self, memo) -> PrefixCache:
        return self  # shared, not copied: entries are checked against each encoder's weights before use

    def validate(self, encoder, depth: int) -> None:
        """Keep the entries only if they were computed with this encoder's frozen weights at this depth, in the
        precision (autocast or float32) in force now. Hashes the frozen weights only if a tensor was replaced or
        written since the last check; within ``SentenceEncoder.frozen_bottom_unchanged`` only the first call checks."""
        precision = autocast_dtype(encoder.device)
        block = encoder.unchanged_bottom  # within ``SentenceEncoder.frozen_bottom_unchanged``: checked once per block
        if block is not None and self._trusted == (block, depth, precision) and self._checked[0]() is encoder:
            return
        tensors = _frozen_tensors(encoder, depth)
        state = (depth, precision, tuple((id(t), t._version) for t in tensors))
        self._trusted = (block, depth, precision) if block is not None else None
        if self._checked is not None and self._checked[0]() is encoder and self._checked[1:] == state:
            return
        fingerprint = frozen_fingerprint(tensors)
        if (depth, fingerprint, precision) != (self.depth, self.fingerprint, self.precision):
            self.clear()
            self.depth, self.fingerprint, self.precision = depth, fingerprint, precision
        self._checked = (weakref.ref(encoder), *state)

    def hidden_states(self, encoder, features, depth: int) -> Tensor:
        """(B, T, H) hidden states after ``depth`` blocks for a padded batch; misses are computed in length-sorted
        chunks of ``CHUNK`` rows, each padded only to its own longest row (not to the batch's)."""
        ids, keys, lengths = self._keys(encoder, features, depth)
        entries = self._entries(encoder, features, depth, keys, lengths, CHUNK)
        hidden = pad_sequence([entries[key] for key in keys], batch_first=True)  # zeros after each entry
        hidden = F.pad(hidden, (0, 0, 0, ids.shape[1] - hidden.shape[1])).to(ids.device)  # (B, T, H)
        return hidden.to(self._value_dtype)

    def fill(self, encoder, features, depth: int) -> None:
        """Compute and store the missing entries of a batch built for filling (already sorted by length) in one pass.
        Does nothing once ``max_bytes`` is reached (nothing more could be stored)."""
        if self.max_bytes is not None and self.unstored:
            return
        _, keys, lengths = self._keys(encoder, features, depth)
        self._entries(encoder, features, depth, keys, lengths, len(keys))

    def _keys(self, encoder, features, depth: int) -> tuple[Tensor, list[bytes], list[int]]:
        """Check the entries against the encoder (``validate``); the batch's token ids, one key per row, lengths."""
        self.validate(encoder, depth)
        ids = features["input_ids"]
        lengths = features["attention_mask"].sum(1).tolist()
        rows = ids.cpu().numpy()
        return ids, [rows[i, :n].tobytes() for i, n in enumerate(lengths)], lengths  # right padding

    def _entries(self, encoder, features, depth: int, keys: list[bytes], lengths: list[int],
                 chunk: int) -> dict[bytes, Tensor]:
        """{key: entry} for every row: stored ones looked up, the others computed in length-sorted passes of ``chunk``
        rows, each padded to its own longest row, and stored (``_add``)."""
        entries = {key: self.store[key] for key in keys if key in self.store}
        missing = sorted({key: i for i, key in enumerate(keys) if key not in entries}.values(), key=lengths.__getitem__)
        for start in range(0, len(missing), chunk):
            rows = missing[start : start + chunk]
            width = lengths[rows[-1]]  # the longest row of the chunk
            sub = {k: features[k][rows, :width] for k in ("input_ids", "attention_mask", "token_type_ids")
                   if k in features}
            with torch.no_grad():
                computed = encoder.hidden_after(sub, depth)  # (chunk, width, H)
            self._value_dtype = computed.dtype
            for row, i in enumerate(rows):
                entries[keys[i]] = self._add(keys[i], computed[row, : lengths[i]].to(self.dtype, copy=True))
        self.misses += len(missing)
        self.hits += len(keys) - len(missing)
        return entries

    def _add(self, key: bytes, entry: Tensor) -> Tensor:
        """Store ``entry`` (T_i, H) unless that would pass ``max_bytes`` (then warn once per filling); return it."""
        size = entry.nelement() * entry.element_size()
        if self.max_bytes is not None and self.nbytes + size > self.max_bytes:
            if not self.unstored:
                warnings.warn(f"PrefixCache reached max_bytes ({self.max_bytes / 1e6:,.1f} MB) with {len(self):,} "
                              f"entries: further inputs are computed each time they are needed. Raise max_bytes, or "
                              f"store entries in bfloat16 (PrefixCache(dtype=torch.bfloat16)) at half the size.",
                              RuntimeWarning, stacklevel=4)
            self.unstored += 1
            return entry
        self.store[key] = entry
        self.nbytes += size
        return entry


class TokenCache:
    """The tokenizer's output (a ``tokenizers.Encoding``) per distinct input, text or word list, and maximum length.

    ``tokenize`` returns what ``tokenizer(inputs, padding=True, truncation=True, max_length=..., return_tensors="pt")``
    returns (equal tensors; ``word_ids(i)`` without the padding positions), tokenising only inputs it has not seen.
    """

    def __init__(self):
        self.store: dict[tuple, object] = {}

    def __len__(self) -> int:
        return len(self.store)

    def __deepcopy__(self, memo) -> TokenCache:
        return TokenCache()  # a copy may get another tokenizer or maximum length: it starts empty

    def tokenize(self, tokenizer, inputs: Sequence[str] | Sequence[Sequence[str]], max_length: int) -> BatchEncoding:
        split_into_words = not isinstance(inputs[0], str)
        keys = [(max_length, tuple(x) if split_into_words else x) for x in inputs]
        missing = list({key: i for i, key in enumerate(keys) if key not in self.store}.values())
        if missing:
            batch = [list(inputs[i]) if split_into_words else inputs[i] for i in missing]
            encoded = tokenizer(batch, is_split_into_words=split_into_words, truncation=True, max_length=max_length)
            for i, encoding in zip(missing, encoded.encodings):
                self.store[keys[i]] = encoding
        encodings = [self.store[key] for key in keys]
        attributes = {"input_ids": "ids", "attention_mask": "attention_mask", "token_type_ids": "type_ids"}
        rows = [{name: getattr(e, attributes[name]) for name in tokenizer.model_input_names} for e in encodings]
        return BatchEncoding(dict(tokenizer.pad(rows, return_tensors="pt")), encoding=encodings)  # (B, T) each


def _frozen_tensors(encoder, depth: int) -> list[Tensor]:
    """Parameters and buffers of the embeddings and the ``depth`` lowest blocks: all the cached output depends on."""
    modules = [encoder.embeddings, *encoder.blocks[:depth]]
    return [t for m in modules for t in (*m.parameters(), *m.buffers())]


def frozen_fingerprint(tensors: list[Tensor]) -> str:
    """SHA-1 of the tensors' dtypes, shapes and bytes: equal exactly when the frozen weights are equal."""
    digest = hashlib.sha1(usedforsecurity=False)
    for t in tensors:
        t = t.detach().contiguous().cpu()
        digest.update(str((t.dtype, tuple(t.shape))).encode())
        digest.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
    return digest.hexdigest()
