"""Task heads: a small module per task on the shared encoder that owns its kind of task, as Hugging Face's
``BertForTokenClassification`` owns its labels and loss: the encoder output it reads, valid labels and targets, the
loss, decoding, and scores (class-level, so that a baseline's predictions are scored without a module).

- ``SentenceHead``: one class name per text, read from the pooled embedding (B, D); accuracy and macro-F1.
- ``TokenHead``: one BIO tag per word, read from the backbone's token embeddings (B, T, H) on each word's first word
  piece (later pieces are ignored, as in BERT's NER recipe, Devlin et al. 2019); entity F1 (seqeval, micro).

``head_type(kind)`` looks a kind up in ``HEAD_TYPES``; a new kind is a ``Head`` subclass added there.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from seqeval.metrics import classification_report as seqeval_report
from seqeval.metrics.sequence_labeling import get_entities
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support
from sklearn.utils.class_weight import compute_class_weight
from torch import Tensor, nn

IGNORE = -100  # target that cross-entropy skips: padding, special tokens, non-first word pieces, no label


@dataclass(frozen=True)
class TaskSpec:
    """One task of the multi-task model."""

    name: str  # key of the head and of the labels in an Example
    kind: str  # a key of HEAD_TYPES: "sentence" (one label per text), "token" (one tag per word)
    labels: tuple[str, ...]  # label names; a head outputs one logit per name, in this order
    hidden_dim: int | None = None  # None: linear head; else Linear -> GELU -> Dropout -> Linear
    dropout: float = 0.1  # dropout on the head's input (and hidden layer)

    def __post_init__(self):
        if self.kind not in HEAD_TYPES:
            raise ValueError(f"Task {self.name!r}: unknown kind {self.kind!r}; valid kinds are {tuple(HEAD_TYPES)}.")
        if len(self.labels) < 2 or len(set(self.labels)) != len(self.labels):
            raise ValueError(f"Task {self.name!r}: needs at least two distinct labels, got {self.labels!r}.")
        object.__setattr__(self, "labels", tuple(self.labels))

    def to_dict(self) -> dict:
        return asdict(self) | {"labels": list(self.labels)}


class HeadOutput(NamedTuple):
    logits: Tensor  # (B, C) or (B, T, C)
    loss: Tensor | None = None  # () cross-entropy summed over the labelled positions (with targets only)
    weight: Tensor | None = None  # () their total weight: the loop divides the summed loss of the whole batch by it


def first_pieces(word_ids: Sequence[int | None]) -> dict[int, int]:
    """{position: word} of each word's first word piece (where token heads are trained and read)."""
    first, previous = {}, None
    for position, word in enumerate(word_ids):
        if word is not None and word != previous:
            first[position] = word
        previous = word
    return first


def f1_from_counts(correct: np.ndarray, predicted: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Elementwise F1 = 2 correct / (predicted + true), 0 where nothing is predicted or true."""
    denominator = predicted + true
    return np.divide(2 * correct, denominator, out=np.zeros_like(denominator), where=denominator > 0)


class Head(nn.Module):
    """What every head shares: ``net`` (Dropout -> Linear, or an MLP Dropout -> Linear -> GELU -> Dropout -> Linear
    if ``hidden_dim`` is set) on the encoder output ``encoder_output``, and cross-entropy over labelled positions. A
    subclass sets the class attributes and defines ``input_dim``, ``label_problem``, ``targets``,
    ``gold_and_predicted``, ``readable``, ``scores``, ``example_statistics``, ``score_statistics``, ``breakdown``
    and ``confusion_inputs``."""

    kind: str  # the name of the kind in HEAD_TYPES and TaskSpec.kind
    main_metric: str  # selects epochs (``mtl.training.train``); what comparisons compare by default
    metrics: tuple[str, ...]  # the scores ``score_statistics`` computes from ``example_statistics``
    encoder_output: str  # key of the ``SentenceEncoder`` output the head reads
    by_words: bool  # examples labelled for this kind are tokenised by words (their labels refer to words)

    def __init__(self, task: TaskSpec, encoder):
        super().__init__()
        self.task = task
        in_dim, dropout, num_labels = self.input_dim(encoder), task.dropout, len(task.labels)
        if task.hidden_dim is None:
            self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, num_labels))
        else:
            self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, task.hidden_dim), nn.GELU(),
                                     nn.Dropout(dropout), nn.Linear(task.hidden_dim, num_labels))

    def forward(self, features: dict[str, Tensor], targets: Tensor | None = None,
                class_weights: Tensor | None = None) -> HeadOutput:
        """Logits on the encoder output this head reads; with ``targets`` (from ``targets``) also the summed loss
        and weight of the labelled positions, each weighted by its class's weight (C,) if given."""
        logits = self.net(features[self.encoder_output])  # (B, D) -> (B, C) or (B, T, H) -> (B, T, C)
        return HeadOutput(logits) if targets is None else HeadOutput(logits, *self.loss(logits, targets, class_weights))

    def loss(self, logits: Tensor, targets: Tensor, class_weights: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(summed cross-entropy, ``label_weight``) of logits (..., C) against targets (...), ``IGNORE`` skipped."""
        total = self.label_weight(targets, class_weights)
        loss = F.cross_entropy(logits.flatten(0, -2), targets.flatten(), ignore_index=IGNORE, weight=class_weights,
                               reduction="sum")
        return loss, total.to(loss.device)

    @staticmethod
    def label_weight(targets: Tensor, class_weights: Tensor | None = None) -> Tensor:
        """() weight of the labelled positions of ``targets``: their number, or their classes' weights summed."""
        labelled = targets[targets != IGNORE]  # (N,)
        return class_weights[labelled].sum() if class_weights is not None else torch.tensor(float(len(labelled)))

    def checked(self, label):
        """``label`` if this task accepts it (``label_problem``), else a ValueError naming the task."""
        problem = self.label_problem(label)
        if problem:
            raise ValueError(f"Task {self.task.name!r}: {problem}.")
        return label

    @classmethod
    def check_metric(cls, metric: str | None) -> str:
        """``metric`` (default ``main_metric``) if the kind scores it."""
        metric = metric or cls.main_metric
        if metric not in cls.metrics:
            raise ValueError(f"A {cls.kind} task's score is one of {cls.metrics}, got {metric!r}.")
        return metric

    @staticmethod
    def balanced_class_weights(seen: Sequence, labels: Sequence[str]) -> Tensor | None:
        """(C,) loss weights for ``TrainConfig(class_weighting="balanced")``; None: the kind weighs no classes."""
        return None


class SentenceHead(Head):
    """One class name per text, from the pooled embedding (B, D); scored by macro-F1 and accuracy."""

    kind, main_metric, metrics = "sentence", "macro_f1", ("macro_f1", "accuracy")
    encoder_output, by_words = "sentence_embedding", False

    @staticmethod
    def input_dim(encoder) -> int:
        return encoder.dim

    def label_problem(self, label) -> str | None:
        """Why ``label`` is not one of the task's class names; None if it is."""
        if not isinstance(label, str):
            return f"its label must be one class name, got {label!r}"
        return None if label in self.task.labels else f"label {label!r} is not in the label set {self.task.labels}"

    def targets(self, labels: Sequence[str | None], features) -> Tensor:
        """(B,) class ids of a batch's labels, ``IGNORE`` where an example has none (None)."""
        return torch.tensor([IGNORE if y is None else self.task.labels.index(self.checked(y)) for y in labels])

    def gold_and_predicted(self, label: str, probs: Tensor, word_ids) -> tuple[str, str, np.ndarray]:
        """(true, predicted class, probabilities (C,)) of one example from its probabilities (C,)."""
        return label, self.task.labels[int(probs.argmax())], probs.numpy()

    def readable(self, probs: Tensor, word_ids, text: str, spans) -> dict:
        """{"label", "probs": {class: probability}} of one input from its probabilities (C,)."""
        labels = self.task.labels
        return {"label": labels[int(probs.argmax())],
                "probs": {lab: round(float(x), 4) for lab, x in zip(labels, probs)}}

    @staticmethod
    def scores(true: Sequence[str], pred: Sequence[str], labels: Sequence[str] | None = None) -> dict[str, float]:
        """Accuracy and macro-F1 (over ``labels`` if given, so a never-predicted class counts as F1 0)."""
        return {"accuracy": float(accuracy_score(true, pred)),
                "macro_f1": float(f1_score(true, pred, labels=list(labels) if labels else None, average="macro",
                                           zero_division=0))}

    @staticmethod
    def example_statistics(true: Sequence[str], pred: Sequence[str], labels: Sequence[str]) -> np.ndarray:
        """(n, 3C) per example and class: correct, predicted, true (additive counts, what the bootstrap resamples)."""
        names = np.asarray(labels)
        is_true = np.asarray(true)[:, None] == names  # (n, C) one-hot
        is_pred = np.asarray(pred)[:, None] == names
        return np.concatenate([is_true & is_pred, is_pred, is_true], axis=1).astype(np.float64)

    @classmethod
    def score_statistics(cls, stats: np.ndarray, metric: str | None = None) -> np.ndarray:
        """``metric`` (default macro-F1) from ``example_statistics`` summed over examples (..., 3C) -> (...)."""
        metric = cls.check_metric(metric)
        k = stats.shape[-1] // 3
        correct, predicted, true = stats[..., :k], stats[..., k:2 * k], stats[..., 2 * k:]
        if metric == "accuracy":
            return correct.sum(-1) / true.sum(-1)  # every example is true for exactly one class
        return f1_from_counts(correct, predicted, true).mean(-1)

    @staticmethod
    def breakdown(true: Sequence[str], pred: Sequence[str], labels: Sequence[str]) -> pd.DataFrame:
        """Precision, recall, F1 and support per class, in label order (a class never predicted has precision 0):
        macro-F1's parts."""
        precision, recall, f1, support = precision_recall_fscore_support(true, pred, labels=list(labels), average=None,
                                                                         zero_division=0)
        return pd.DataFrame({"precision": precision, "recall": recall, "f1": f1, "support": support},
                            index=list(labels))

    @staticmethod
    def confusion_inputs(true: Sequence[str], pred: Sequence[str], labels: Sequence[str]) -> tuple[list, list, list]:
        """(true, predicted, label order) of the units a confusion matrix counts: the examples' classes."""
        return list(true), list(pred), list(labels)

    @staticmethod
    def balanced_class_weights(seen: Sequence[str], labels: Sequence[str]) -> Tensor:
        """n / (C n_c) (scikit-learn's "balanced"), so each class weighs as much in the loss as in macro-F1; a class
        with no training example gets weight 1 (it never is a target)."""
        present = np.unique(seen)
        balanced = dict(zip(present, compute_class_weight("balanced", classes=present, y=np.asarray(seen))))
        return torch.tensor([balanced.get(label, 1.0) for label in labels], dtype=torch.float32)


class TokenHead(Head):
    """One BIO tag per word, from the token embedding (B, T, H) of its first piece; scored by entity F1."""

    kind, main_metric, metrics = "token", "entity_f1", ("entity_f1",)
    encoder_output, by_words = "token_embeddings", True

    @staticmethod
    def input_dim(encoder) -> int:
        return encoder.hidden_size

    def label_problem(self, label) -> str | None:
        """Why ``label`` is not one tag of the task's label set per word; None if it is."""
        if isinstance(label, str) or not all(isinstance(tag, str) for tag in label):
            return f"its label must be one tag per word, got {label!r}"
        unknown = sorted(set(label) - set(self.task.labels))
        return f"label {unknown[0]!r} is not in the label set {self.task.labels}" if unknown else None

    def targets(self, labels: Sequence[Sequence[str] | None], features) -> Tensor:
        """(B, T) tag ids on each word's first piece; ``IGNORE`` on later pieces, special tokens, padding and the
        rows of examples without tags (None)."""
        aligned = torch.full(features["input_ids"].shape, IGNORE, dtype=torch.long)
        for row, tags in enumerate(labels):
            if tags is not None:
                ids = [self.task.labels.index(tag) for tag in self.checked(tags)]
                for position, word in first_pieces(features.word_ids(row)).items():
                    aligned[row, position] = ids[word]
        return aligned

    def tags(self, probs: Tensor, word_ids, words: int) -> tuple[list[str], list[float]]:
        """Each word's tag and its probability, read on its first piece from probabilities (T, C); a word past the
        length limit (no piece) is "O" with probability 1."""
        tags, confidence = ["O"] * words, [1.0] * words
        for position, word in first_pieces(word_ids).items():
            tags[word], confidence[word] = self.task.labels[int(probs[position].argmax())], float(probs[position].max())
        return tags, confidence

    def gold_and_predicted(self, label: Sequence[str], probs: Tensor, word_ids) -> tuple[list, list, None]:
        """(true tags, predicted tags, None) of one whole sentence from its probabilities (T, C)."""
        return list(label), self.tags(probs, word_ids, len(label))[0], None

    def readable(self, probs: Tensor, word_ids, text: str, spans) -> dict:
        """{"entities": [...]}: entity spans (character offsets into ``text``; ``spans[w]`` are word w's) grouped by
        seqeval's rules as entity F1 counts them; ``score``: the mean probability of the entity's word tags."""
        tags, confidence = self.tags(probs, word_ids, len(spans))
        return {"entities": [{"text": text[spans[first][0]:spans[last][1]], "type": kind, "start": spans[first][0],
                              "end": spans[last][1], "score": round(float(np.mean(confidence[first:last + 1])), 4)}
                             for kind, first, last in get_entities(tags)]}

    @classmethod
    def scores(cls, true: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], labels: Sequence[str]) -> dict:
        """Entity F1 and token accuracy."""
        flat_true, flat_pred = [t for seq in true for t in seq], [t for seq in pred for t in seq]
        return {"entity_f1": float(cls.score_statistics(cls.example_statistics(true, pred, labels).sum(0))),
                "token_accuracy": float(accuracy_score(flat_true, flat_pred))}

    @staticmethod
    def example_statistics(true: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], labels) -> np.ndarray:
        """(n, 3) per sentence: correct, predicted and true entities (additive counts, what the bootstrap resamples)."""
        rows = []
        for gold, guess in zip(true, pred):
            gold, guess = set(get_entities(list(gold))), set(get_entities(list(guess)))
            rows.append((len(gold & guess), len(guess), len(gold)))
        return np.asarray(rows, dtype=np.float64).reshape(-1, 3)

    @classmethod
    def score_statistics(cls, stats: np.ndarray, metric: str | None = None) -> np.ndarray:
        """Entity micro-F1 (0 when nothing is predicted) from ``example_statistics`` summed over sentences (..., 3)."""
        cls.check_metric(metric)
        return f1_from_counts(stats[..., 0], stats[..., 1], stats[..., 2])

    @staticmethod
    def breakdown(true: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], labels) -> pd.DataFrame:
        """Precision, recall, F1 and support per entity type, then the micro average (seqeval's default mode: an
        entity counts only if its type and both boundaries match)."""
        report = seqeval_report([list(t) for t in true], [list(p) for p in pred], output_dict=True, zero_division=0)
        rows = {name: values for name, values in report.items() if name not in ("macro avg", "weighted avg")}
        frame = pd.DataFrame(rows).T.rename(columns={"f1-score": "f1"})
        frame["support"] = frame["support"].astype(int)
        return frame[["precision", "recall", "f1", "support"]]

    @staticmethod
    def confusion_inputs(true, pred, labels: Sequence[str]) -> tuple[list, list, list]:
        """(true, predicted, label order) per word, B-/I- merged into the entity type ("B-PER" -> "PER")."""
        def entity(tag: str) -> str:
            return tag[2:] if tag[:2] in ("B-", "I-") else tag

        return ([entity(t) for seq in true for t in seq], [entity(t) for seq in pred for t in seq],
                list(dict.fromkeys(entity(tag) for tag in labels)))


HEAD_TYPES: dict[str, type[Head]] = {"sentence": SentenceHead, "token": TokenHead}


def head_type(kind: str) -> type[Head]:
    """The head class of a task kind."""
    try:
        return HEAD_TYPES[kind]
    except KeyError:
        raise ValueError(f"Unknown task kind {kind!r}; valid kinds are {tuple(HEAD_TYPES)}.") from None
