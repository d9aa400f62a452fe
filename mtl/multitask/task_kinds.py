"""Task kinds: everything that differs between a sentence task and a token task, in one object per kind.

A kind says which encoder output its head reads, how a batch's labels become a target tensor, what a valid label
is, how a head's output becomes gold/predicted labels and readable predictions, how they are scored and which score
selects epochs and is compared (``main_metric``); the rest of the package asks the kind instead of testing its name
(as a Hugging Face ``...ForTokenClassification`` head owns its labels and loss). A new kind is one ``TaskKind``
subclass passed to ``register``.

- ``SentenceKind``: one class name per text; the head reads the pooled embedding (B, D); accuracy and macro-F1.
- ``TokenKind``: one BIO tag per word; the head reads the backbone's token embeddings (B, T, H) on each word's first
  word piece (later pieces are ignored, as in BERT's NER recipe, Devlin et al. 2019); entity-level F1 (seqeval's
  entities, micro-averaged).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from seqeval.metrics import classification_report as seqeval_report
from seqeval.metrics.sequence_labeling import get_entities
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support
from sklearn.utils.class_weight import compute_class_weight
from torch import Tensor

IGNORE = -100  # label index that cross-entropy skips: padding, special tokens, non-first word pieces, no label


def first_pieces(word_ids: Sequence[int | None]) -> dict[int, int]:
    """{position: word} of each word's first word piece (where token heads are trained and read)."""
    first, previous = {}, None
    for position, word in enumerate(word_ids):
        if word is not None and word != previous:
            first[position] = word
        previous = word
    return first


def entity_type(tag: str) -> str:
    """BIO tag -> entity type ("B-PER" -> "PER"); "O" stays "O"."""
    return tag[2:] if tag[:2] in ("B-", "I-") else tag


def classification_scores(true: Sequence[str], pred: Sequence[str],
                          labels: Sequence[str] | None = None) -> dict[str, float]:
    """Accuracy and macro-F1 (over ``labels`` if given, so a never-predicted class counts as F1 0)."""
    return {"accuracy": float(accuracy_score(true, pred)),
            "macro_f1": float(f1_score(true, pred, labels=list(labels) if labels else None, average="macro",
                                       zero_division=0))}


def f1_from_counts(correct: np.ndarray, predicted: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Elementwise F1 = 2 correct / (predicted + true), 0 where nothing is predicted or true."""
    denominator = predicted + true
    return np.divide(2 * correct, denominator, out=np.zeros_like(denominator), where=denominator > 0)


class TaskKind:
    """The behaviour of one kind of task; subclasses fill in every method."""

    name: str
    main_metric: str  # selects epochs (``mtl.training.train``) and is what comparisons compare by default
    metrics: tuple[str, ...]  # the scores ``score_statistics`` can compute from ``example_statistics``
    encoder_output: str  # key of the ``SentenceEncoder`` output the head reads
    by_words: bool  # examples with a label of this kind are tokenised by words (their labels refer to words)

    def head_input_dim(self, encoder) -> int:
        """Width of ``encoder_output``."""
        raise NotImplementedError

    def label_problem(self, label, labels: Sequence[str]) -> str | None:
        """Why ``label`` is not a valid label of a task with label set ``labels``; None if it is."""
        raise NotImplementedError

    def targets(self, label_ids: Sequence[Sequence[int] | int | None], features) -> Tensor:
        """The batch's target tensor from each example's label ids (None: no label), ``IGNORE`` where not scored."""
        raise NotImplementedError

    def label_ids(self, label, labels: Sequence[str]) -> int | list[int]:
        """A valid label as indices into ``labels``."""
        raise NotImplementedError

    def gold_and_predicted(self, label, probs: Tensor, word_ids, labels: Sequence[str]) -> tuple:
        """(true, pred, probability vector or None) of one example: its label and its row of probabilities."""
        raise NotImplementedError

    def readable(self, probs: Tensor, word_ids, text: str, spans, labels: Sequence[str]) -> dict:
        """What ``MultiTaskModel.predict`` returns for one input, from its row of probabilities."""
        raise NotImplementedError

    def scores(self, true: Sequence, pred: Sequence, labels: Sequence[str]) -> dict[str, float]:
        raise NotImplementedError

    def example_statistics(self, true: Sequence, pred: Sequence, labels: Sequence[str]) -> np.ndarray:
        """(n, k) additive counts per example from which every score in ``metrics`` follows (for the bootstrap)."""
        raise NotImplementedError

    def score_statistics(self, stats: np.ndarray, metric: str | None = None) -> np.ndarray:
        """``metric`` (default ``main_metric``) from ``example_statistics`` summed over examples (..., k)."""
        raise NotImplementedError

    def breakdown(self, true: Sequence, pred: Sequence, labels: Sequence[str]) -> pd.DataFrame:
        """Precision, recall, F1 and support per label (class, entity type, ...): the table behind the main score."""
        raise NotImplementedError

    def confusion_inputs(self, true: Sequence, pred: Sequence, labels: Sequence[str]) -> tuple[list, list, list]:
        """(true, predicted, label order) of the units a confusion matrix counts."""
        raise NotImplementedError

    def loss_sum(self, logits: Tensor, target: Tensor, weight: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(summed loss, summed weight) over the labelled positions of a batch: cross-entropy on logits (..., C)
        against ``targets`` (...), ``IGNORE`` skipped, each position weighted by its class's ``weight`` (K,) if given.
        A kind with another loss overrides this."""
        target = target.flatten()  # (N,) over rows or tokens
        labelled = target[target != IGNORE]
        total = weight[labelled].sum() if weight is not None else torch.tensor(float(len(labelled)))
        loss = F.cross_entropy(logits.flatten(0, -2), target, ignore_index=IGNORE, weight=weight, reduction="sum")
        return loss, total.to(loss.device)

    def class_weights(self, seen: Sequence, labels: Sequence[str]) -> Tensor | None:
        """(K,) loss weights of the classes for ``TrainConfig(class_weighting="balanced")``; None: not weighted."""
        return None

    def check_metric(self, metric: str | None) -> str:
        metric = metric or self.main_metric
        if metric not in self.metrics:
            raise ValueError(f"A {self.name} task's score is one of {self.metrics}, got {metric!r}.")
        return metric


class SentenceKind(TaskKind):
    name, main_metric, metrics = "sentence", "macro_f1", ("macro_f1", "accuracy")
    encoder_output, by_words = "sentence_embedding", False

    def head_input_dim(self, encoder) -> int:
        return encoder.dim

    def label_problem(self, label, labels):
        if not isinstance(label, str):
            return f"its label must be one class name, got {label!r}"
        return None if label in labels else f"label {label!r} is not in the label set {tuple(labels)}"

    def label_ids(self, label, labels):
        return list(labels).index(label)

    def targets(self, label_ids, features):
        return torch.tensor([IGNORE if i is None else i for i in label_ids])  # (B,)

    def gold_and_predicted(self, label, probs, word_ids, labels):
        return label, labels[int(probs.argmax())], probs.numpy()

    def readable(self, probs, word_ids, text, spans, labels):
        return {"label": labels[int(probs.argmax())], "probs": {lab: round(float(x), 4) for lab, x in zip(labels, probs)}}

    def scores(self, true, pred, labels):
        return classification_scores(true, pred, labels)

    def example_statistics(self, true, pred, labels):
        names = np.asarray(labels)
        is_true = np.asarray(true)[:, None] == names  # (n, C) one-hot
        is_pred = np.asarray(pred)[:, None] == names
        return np.concatenate([is_true & is_pred, is_pred, is_true], axis=1).astype(np.float64)  # per class TP, pred, true

    def score_statistics(self, stats, metric=None):
        metric = self.check_metric(metric)
        k = stats.shape[-1] // 3
        correct, predicted, true = stats[..., :k], stats[..., k:2 * k], stats[..., 2 * k:]
        if metric == "accuracy":
            return correct.sum(-1) / true.sum(-1)  # every example is true for exactly one class
        return f1_from_counts(correct, predicted, true).mean(-1)

    def breakdown(self, true, pred, labels):
        """Per class, in label order (a class never predicted has precision 0): macro-F1's parts."""
        precision, recall, f1, support = precision_recall_fscore_support(true, pred, labels=list(labels), average=None,
                                                                         zero_division=0)
        return pd.DataFrame({"precision": precision, "recall": recall, "f1": f1, "support": support}, index=list(labels))

    def confusion_inputs(self, true, pred, labels):
        return list(true), list(pred), list(labels)

    def class_weights(self, seen, labels):
        """n / (K n_c) (scikit-learn's "balanced"), so each class weighs as much in the loss as in macro-F1; a class
        with no training example gets weight 1 (it never is a target)."""
        present = np.unique(seen)
        balanced = dict(zip(present, compute_class_weight("balanced", classes=present, y=np.asarray(seen))))
        return torch.tensor([balanced.get(label, 1.0) for label in labels], dtype=torch.float32)


class TokenKind(TaskKind):
    name, main_metric, metrics = "token", "entity_f1", ("entity_f1",)
    encoder_output, by_words = "token_embeddings", True

    def head_input_dim(self, encoder) -> int:
        return encoder.hidden_size

    def label_problem(self, label, labels):
        if isinstance(label, str) or not all(isinstance(tag, str) for tag in label):
            return f"its label must be one tag per word, got {label!r}"
        unknown = sorted(set(label) - set(labels))
        return f"label {unknown[0]!r} is not in the label set {tuple(labels)}" if unknown else None

    def label_ids(self, label, labels):
        return [list(labels).index(tag) for tag in label]

    def targets(self, label_ids, features):
        """(B, T) tag ids on each word's first piece; ``IGNORE`` on later pieces, special tokens and padding."""
        aligned = torch.full(features["input_ids"].shape, IGNORE, dtype=torch.long)
        for row, tags in enumerate(label_ids):
            if tags is not None:
                for position, word in first_pieces(features.word_ids(row)).items():
                    aligned[row, position] = tags[word]
        return aligned

    def gold_and_predicted(self, label, probs, word_ids, labels):
        """Whole sentences: a word past max_seq_length (no piece in the batch) is predicted "O"."""
        tags = ["O"] * len(label)
        for position, word in first_pieces(word_ids).items():
            tags[word] = labels[int(probs[position].argmax())]
        return list(label), tags, None

    def readable(self, probs, word_ids, text, spans, labels):
        """Entity spans (character offsets into ``text``; ``spans[w]`` are word w's) from the tag read on each
        word's first piece, grouped by seqeval's rules as entity F1 counts them; ``score``: the mean probability of
        the entity's word tags. A word cut off by truncation counts as O."""
        tags, confidence = ["O"] * len(spans), [1.0] * len(spans)
        for position, word in first_pieces(word_ids).items():
            p = probs[position]
            tags[word], confidence[word] = labels[int(p.argmax())], float(p.max())
        return {"entities": [{"text": text[spans[first][0]:spans[last][1]], "type": kind, "start": spans[first][0],
                              "end": spans[last][1], "score": round(float(np.mean(confidence[first:last + 1])), 4)}
                             for kind, first, last in get_entities(tags)]}

    def scores(self, true, pred, labels):
        stats = self.example_statistics(true, pred, labels).sum(0)
        flat_true, flat_pred = [t for seq in true for t in seq], [t for seq in pred for t in seq]
        return {"entity_f1": float(self.score_statistics(stats)),
                "token_accuracy": float(accuracy_score(flat_true, flat_pred))}

    def example_statistics(self, true, pred, labels):
        rows = []
        for gold, guess in zip(true, pred):
            gold, guess = set(get_entities(list(gold))), set(get_entities(list(guess)))
            rows.append((len(gold & guess), len(guess), len(gold)))  # correct, predicted, true entities
        return np.asarray(rows, dtype=np.float64).reshape(-1, 3)

    def breakdown(self, true, pred, labels):
        """Per entity type, then the micro average (seqeval's default mode: an entity counts only if its type and
        both boundaries match)."""
        report = seqeval_report([list(t) for t in true], [list(p) for p in pred], output_dict=True, zero_division=0)
        rows = {name: values for name, values in report.items() if name not in ("macro avg", "weighted avg")}
        frame = pd.DataFrame(rows).T.rename(columns={"f1-score": "f1"})
        frame["support"] = frame["support"].astype(int)
        return frame[["precision", "recall", "f1", "support"]]

    def confusion_inputs(self, true, pred, labels):
        """Per word, B-/I- merged into the entity type."""
        return ([entity_type(t) for seq in true for t in seq], [entity_type(t) for seq in pred for t in seq],
                list(dict.fromkeys(entity_type(tag) for tag in labels)))

    def score_statistics(self, stats, metric=None):
        self.check_metric(metric)
        return f1_from_counts(stats[..., 0], stats[..., 1], stats[..., 2])  # micro-F1; 0 when nothing predicted


KINDS: dict[str, TaskKind] = {}


def register(kind: TaskKind) -> TaskKind:
    """Make ``kind`` available to ``TaskSpec(kind=kind.name)`` and everything that reads task kinds."""
    KINDS[kind.name] = kind
    return kind


def task_kind(name: str) -> TaskKind:
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"Unknown task kind {name!r}; valid kinds are {tuple(KINDS)}.") from None


register(SentenceKind())
register(TokenKind())
