"""The built-in tasks and their data: names -> TaskSpec and -> examples per split.

- ``topic``:     Task A, BBC News headline -> one of 5 topics (sentence).
- ``sentiment``: Task B, VADER ground-truth sentence -> negative / neutral / positive (sentence).
- ``genre``:     the same VADER sentences -> tweets / movie / amazon / nyt (a second label on one corpus).
- ``ner``:       BBC lead sentences -> silver BIO tags from spaCy (token); these sentences also carry the topic.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

from sklearn.model_selection import train_test_split

from mtl.data.examples import TASK_LABELS, Example, load_ner, load_sentiment, load_topic
from mtl.encoder.encoder import SentenceEncoder
from mtl.multitask.heads import TaskSpec
from mtl.multitask.model import MultiTaskModel

LOADERS: dict[str, Callable[[str], list[Example]]] = {
    "topic": load_topic, "sentiment": load_sentiment, "genre": load_sentiment, "ner": load_ner,
}
BUILT_IN_KINDS = {"topic": "sentence", "sentiment": "sentence", "genre": "sentence", "ner": "token"}


def task_spec(name: str, hidden_dim: int | None = None, dropout: float = 0.1) -> TaskSpec:
    """The TaskSpec of a built-in task (its kind, ``.kind``, is read from here and nowhere else)."""
    if name not in LOADERS:
        raise KeyError(f"Unknown built-in task {name!r}; built-in tasks are {list(LOADERS)}.")
    return TaskSpec(name, BUILT_IN_KINDS[name], TASK_LABELS[name], hidden_dim, dropout)


def stratified_positions(examples: Sequence[Example], task: str, n: int | None, seed: int = 0) -> list[int]:
    """Positions of at most ``n`` examples (all if ``n`` is None or too big), in the sampler's order, stratified by
    the task's label when it is a class name (sentence tasks, built-in or from files) so class shares are kept."""
    positions = list(range(len(examples)))
    if n is None or n >= len(examples):
        return positions
    labels = [ex.labels[task] for ex in examples]
    strata = labels if all(isinstance(label, str) for label in labels) else None
    kept, _ = train_test_split(positions, train_size=n, random_state=seed, stratify=strata)
    return kept


def subsample(examples: Sequence[Example], n: int | None, task: str, seed: int = 0) -> list[Example]:
    """At most ``n`` examples, label-stratified (``stratified_positions``)."""
    return [examples[i] for i in stratified_positions(examples, task, n, seed)]


def load_datasets(tasks: Sequence[str], split: str, limit: int | None = None, seed: int = 0) -> dict[str, list[Example]]:
    """{task: examples} for built-in tasks, each at most ``limit`` long (stratified subsample)."""
    for name in tasks:
        task_spec(name)  # validates the name
    return {name: subsample(LOADERS[name](split), limit, name, seed) for name in tasks}


def build_model(tasks: Sequence[str | TaskSpec], backbone: str = "minilm", pooling: str = "mean",
                projection_dim: int | None = None, layer_norm: bool = False, normalize: bool = False,
                max_seq_length: int | None = 64, head_hidden_dim: int | None = None, head_dropout: float = 0.1,
                device: str | None = None) -> MultiTaskModel:
    """A MultiTaskModel for built-in task names (or TaskSpecs). Heads read the pooled vector before L2
    normalisation by default: norm 1 suits cosine search, but would cap a linear head's logits at its weight norm."""
    encoder = SentenceEncoder.build(backbone, pooling, projection_dim, layer_norm, normalize, max_seq_length, device)
    specs = [t if isinstance(t, TaskSpec) else task_spec(t, head_hidden_dim, head_dropout) for t in tasks]
    return MultiTaskModel(encoder, specs)
