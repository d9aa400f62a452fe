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
"""
from __future__ import annotations

import hashlib
import weakref

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence

CHUNK = 8  # rows per pass when computing missing entries (see ``PrefixCache.fill``)


class PrefixCache:
    """Hidden states (T_i, H) after ``depth`` blocks, one entry per distinct input; unpadded, so padding-free."""

    def __init__(self):
        self.depth: int | None = None
        self.fingerprint: str | None = None  # SHA-1 of the frozen weights the entries were computed with
        self.store: dict[bytes, Tensor] = {}
        self.hits = self.misses = 0
        self._checked: tuple | None = None  # (weakref to encoder, depth, (id, version) per frozen tensor)

    def clear(self) -> None:
        self.store.clear()
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self.store)

    def __deepcopy__(self, memo) -> PrefixCache:
        return self  # shared, not copied: entries are checked against each encoder's weights before use

    def validate(self, encoder, depth: int) -> None:
        """Keep the entries only if they were computed with this encoder's frozen weights at this depth.

        Cheap when nothing changed (compares tensor identities and in-place versions); otherwise hashes the
        frozen weights, about 0.1 s for MiniLM.
        """
        tensors = _frozen_tensors(encoder, depth)
        state = (depth, tuple((id(t), t._version) for t in tensors))
        if self._checked is not None and self._checked[0]() is encoder and self._checked[1:] == state:
            return
        fingerprint = frozen_fingerprint(tensors)
        if (depth, fingerprint) != (self.depth, self.fingerprint):
            self.clear()
            self.depth, self.fingerprint = depth, fingerprint
        self._checked = (weakref.ref(encoder), *state)

    def fill(self, encoder, features, depth: int) -> list[bytes]:
        """Compute and store the missing entries of a padded batch; returns the batch's keys.

        Misses are computed in length-sorted chunks of ``CHUNK`` rows, each padded only to its own longest row:
        a shuffled batch pads every row to its longest one, which on short-text data costs about twice the work.
        """
        self.validate(encoder, depth)
        ids, mask = features["input_ids"], features["attention_mask"]
        lengths = mask.sum(1).tolist()
        keys = [ids[i, :n].cpu().numpy().tobytes() for i, n in enumerate(lengths)]  # right padding: ids[:n]
        missing = sorted({key: i for i, key in enumerate(keys) if key not in self.store}.values(), key=lengths.__getitem__)
        for start in range(0, len(missing), CHUNK):
            rows = missing[start : start + CHUNK]
            width = lengths[rows[-1]]  # the longest row of the chunk
            sub = {k: v[rows, :width] for k, v in features.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
            with torch.no_grad():
                computed = encoder.hidden_after(sub, depth)  # (chunk, width, H)
            for row, i in enumerate(rows):
                self.store[keys[i]] = computed[row, : lengths[i]].clone()
        self.misses += len(missing)
        self.hits += len(keys) - len(missing)
        return keys

    def hidden_states(self, encoder, features, depth: int) -> Tensor:
        """(B, T, H) hidden states after ``depth`` blocks for a padded batch; misses are computed in one pass."""
        keys = self.fill(encoder, features, depth)
        length = features["input_ids"].shape[1]
        hidden = pad_sequence([self.store[key] for key in keys], batch_first=True)  # zeros after each entry
        return F.pad(hidden, (0, 0, 0, length - hidden.shape[1])).to(features["input_ids"].device)  # (B, T, H)


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
