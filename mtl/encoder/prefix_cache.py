"""Compute the frozen bottom of the backbone once: cached hidden states after its last frozen block.

When the embeddings and the k lowest transformer blocks are frozen (and so in eval mode), their output for a
given input never changes, yet a plain loop recomputes it every epoch. ``PrefixCache`` stores that output per
distinct input (keyed by its token ids), so each step runs only the trainable top: with the whole encoder frozen
only pooling and heads run.

Entries are only ever served for the weights they were computed with. The cache remembers the frozen depth and a
fingerprint (SHA-1) of the frozen weights (embeddings and the k lowest blocks); it re-checks them whenever the
encoder, the depth, or any frozen tensor changes (a parameter replaced, or modified in place: torch counts
in-place writes in ``Tensor._version``), and clears itself if they differ. Changed data simply has other keys.

Because validity is decided by the weights' values, one cache can be shared: hand the same object to several
models with the same pretrained bottom (``train(..., prefix_cache=cache)`` or
``encoder.use_prefix_cache(cache=cache)``), and runs that differ only in seed, heads, tasks or trainable top reuse
each other's hidden states instead of recomputing them. A ``deepcopy`` of an encoder shares its cache likewise.
Entries computed under autocast (``mtl.encoder.precision``: bf16 or fp16 matrix products) are kept apart from float32 ones
the same way: a change of precision clears the cache.

Memory: entries are unpadded, H floats per token: for MiniLM (H = 384) at max_seq_length 64 the full training splits
of topic, sentiment and NER (22,328 distinct sentences, 24.4 tokens on average) take about 0.84 GB in float32 (2.2 GB
if every sentence had 64 tokens). ``dtype=torch.bfloat16`` or ``torch.float16`` halves that, rounding each stored value
(float16's 11 significant bits are finer than bfloat16's 8; both are far below training noise: see
``benchmarks/frozen_cache.py``); ``max_bytes`` bounds it: past the bound, further inputs are computed whenever they
are needed instead of stored, with a warning: results change only by float rounding (a recomputed entry may share
its pass with other rows). ``nbytes`` and ``repr`` report the size.

When entries are computed: ``train`` fills the cache before each epoch's first step with the examples that epoch
will draw and with the validation sets (each example once per frozen depth), in length-sorted batches
(``MultiTaskModel.fill_prefix_cache`` -> ``PrefixCache.fill``), so its steps only look them up; a batch that meets a
missing entry anyway (a model used outside ``train``) computes it in length-sorted chunks of ``CHUNK`` rows. Within
an epoch the frozen weights are checked once (``SentenceEncoder.frozen_bottom_unchanged``), not at every step.

A second, smaller memo serves the step before: ``TokenCache`` keeps the tokenizer's output per distinct input, so
that a training epoch over the same examples pads stored token ids instead of tokenising every batch again (with
the whole encoder frozen and the cache filled, tokenising took a quarter of an epoch under cProfile).
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
    """Hidden states (T_i, H) after ``depth`` blocks, one entry per distinct input; unpadded, so padding-free.

    ``dtype``: how entries are stored (float32: exactly as computed; bfloat16 / float16: half the memory).
    ``max_bytes``: bound on the stored entries (None: no bound); inputs beyond it are computed each time.
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
        precision (autocast or float32) in force now.

        Cheap when nothing changed (compares tensor identities and in-place versions); otherwise hashes the
        frozen weights, about 0.05 s for MiniLM. Within ``SentenceEncoder.frozen_bottom_unchanged`` only the first
        call checks the tensors.
        """
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
        """(B, T, H) hidden states after ``depth`` blocks for a padded batch.

        Misses are computed in length-sorted chunks of ``CHUNK`` rows, each padded only to its own longest row:
        a shuffled batch pads every row to its longest one, which on short-text data costs about twice the work.
        """
        ids, keys, lengths = self._keys(encoder, features, depth)
        entries = self._entries(encoder, features, depth, keys, lengths, CHUNK)
        hidden = pad_sequence([entries[key] for key in keys], batch_first=True)  # zeros after each entry
        hidden = F.pad(hidden, (0, 0, 0, ids.shape[1] - hidden.shape[1])).to(ids.device)  # (B, T, H)
        return hidden.to(self._value_dtype)

    def fill(self, encoder, features, depth: int) -> None:
        """Compute and store the missing entries of a batch in one pass (no output): for batches built for filling,
        already sorted by length, where one pass over all rows wastes little padding and uses the cores better than
        ``CHUNK``-row passes. Does nothing once ``max_bytes`` is reached (nothing more could be stored)."""
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
            sub = {k: v[rows, :width] for k, v in features.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
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
        width = max(len(e.ids) for e in encodings)
        fields = {"input_ids": ("ids", tokenizer.pad_token_id), "attention_mask": ("attention_mask", 0),
                  "token_type_ids": ("type_ids", tokenizer.pad_token_type_id)}  # (Encoding attribute, padding value)
        data = {}
        for name in tokenizer.model_input_names:
            attribute, pad = fields[name]
            rows = [getattr(e, attribute) for e in encodings]
            padding = [[pad] * (width - len(row)) for row in rows]
            rows = [p + r if tokenizer.padding_side == "left" else r + p for r, p in zip(rows, padding)]
            data[name] = torch.tensor(rows)  # (B, T)
        return BatchEncoding(data, encoding=encodings)


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
