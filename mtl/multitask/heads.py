"""Task heads: small modules on top of the shared encoder.

Which encoder output a head reads is its task kind's choice (``mtl.multitask.task_kinds``): a sentence head reads the pooled
sentence embedding (B, D), a token head the token embeddings (B, T, H) taken from the backbone before pooling.
Both are a linear layer, or an MLP with dropout when ``hidden_dim`` is set.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from torch import Tensor, nn

from mtl.multitask.task_kinds import KINDS



@dataclass(frozen=True)
class TaskSpec:
    """One task of the multi-task model."""

    name: str  # key of the head and of the labels in an Example
    kind: str  # a registered task kind (mtl.multitask.task_kinds): "sentence" (one label per text), "token" (one tag per word)
    labels: tuple[str, ...]  # label names; a head outputs one logit per name, in this order
    hidden_dim: int | None = None  # None: linear head; else Linear -> GELU -> Dropout -> Linear
    dropout: float = 0.1  # dropout on the head's input (and hidden layer)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"Task {self.name!r}: unknown kind {self.kind!r}; valid kinds are {tuple(KINDS)}.")
        if len(self.labels) < 2 or len(set(self.labels)) != len(self.labels):
            raise ValueError(f"Task {self.name!r}: needs at least two distinct labels, got {self.labels!r}.")
        object.__setattr__(self, "labels", tuple(self.labels))

    def to_dict(self) -> dict:
        return asdict(self) | {"labels": list(self.labels)}


class ClassificationHead(nn.Module):
    """Dropout -> Linear, or Dropout -> Linear -> GELU -> Dropout -> Linear. Works on (B, D) and (B, T, D)."""

    def __init__(self, in_dim: int, num_labels: int, hidden_dim: int | None = None, dropout: float = 0.1):
        super().__init__()
        if hidden_dim is None:
            self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, num_labels))
        else:
            self.net = nn.Sequential(
                nn.Dropout(dropout), nn.Linear(in_dim, hidden_dim), nn.GELU(), nn.Dropout(dropout),
                nn.Linear(hidden_dim, num_labels),
            )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)  # (..., in_dim) -> (..., num_labels)
