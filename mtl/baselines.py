"""Baselines every claim is measured against, run on the same splits as the model.

- majority class;
- TF-IDF (word 1-2 grams) + logistic regression;
- frozen sentence embeddings + logistic regression (what the encoder knows before any fine-tuning);
  both with C and class weighting chosen on the validation split, as the networks' learning rates were;
- the VADER lexicon (Hutto & Gilbert 2014) for sentiment: compound >= 0.05 positive, <= -0.05 negative, else
  neutral (VADER's documented thresholds);
- for token tagging, each word's most frequent training tag (a memorising baseline in the spirit of CoNLL-2003's,
  Tjong Kim Sang & De Meulder 2003).
"""
from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.dummy import DummyClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score

from mtl.encoder import SentenceEncoder

# Logistic regression is fitted to convergence, not to sklearn's default tol=1e-4: on the sentiment TF-IDF features
# lbfgs then stops after ~100 of the ~300 iterations it needs, 41 of 4,724 test predictions differ from the optimum,
# and which ones depends on the CPU's floating-point kernels (two machines printed different scores in notebook 05).
# The regularised optimum is unique, so at tol=1e-6 the predictions are those of the data, not of the machine (1e-8
# changes none of them).
LOGREG_TOL = 1e-6
LOGREG_MAX_ITER = 5000


def majority(train_labels: Sequence[str], n_test: int) -> list[str]:
    """The most frequent training label, for every test example."""
    model = DummyClassifier(strategy="most_frequent").fit(np.zeros((len(train_labels), 1)), train_labels)
    return list(model.predict(np.zeros((n_test, 1))))


# The network's recipe was chosen among four variants on the validation split (two learning-rate pairs x class
# weighting on or off); each logistic regression gets the same effort: four variants, C x class weighting, chosen
# by validation macro-F1.
LOGREG_GRID = {"C": (1.0, 10.0), "class_weight": (None, "balanced")}


@dataclass
class LogRegFit:
    """Test predictions of a logistic-regression baseline and the hyper-parameters it used."""

    predictions: list[str]
    probabilities: np.ndarray  # (n_test, K), columns in sorted label order
    params: dict  # C and class_weight
    validation_macro_f1: float | None  # of the chosen params; None when they were given, not chosen


def fit_logreg(train_x, train_labels: Sequence[str], test_x, validation: tuple | None = None, seed: int = 0,
               C: float = 1.0) -> LogRegFit:
    """Logistic regression on feature matrices. With ``validation`` = (features, labels): every ``LOGREG_GRID``
    combination is fitted on the training data and the one with the best validation macro-F1 kept (ties: the
    smaller C, then no class weighting); without it, ``C`` and no class weighting. Along each class weighting the
    fits run from the smallest C up, each starting from the previous optimum (``warm_start``): the regularised
    optimum is unique, so this changes how fast lbfgs gets there, not where."""
    labels, train_labels = sorted(set(train_labels)), list(train_labels)
    grid = {"C": (C,), "class_weight": (None,)} if validation is None else LOGREG_GRID
    best = None
    for class_weight in grid["class_weight"]:
        model = LogisticRegression(tol=LOGREG_TOL, max_iter=LOGREG_MAX_ITER, random_state=seed, warm_start=True,
                                   class_weight=class_weight)
        for value in sorted(grid["C"]):
            model.set_params(C=value).fit(train_x, train_labels)
            score = None if validation is None else float(f1_score(
                list(validation[1]), model.predict(validation[0]), labels=labels, average="macro", zero_division=0))
            if best is None or score > best.validation_macro_f1:
                best = LogRegFit(list(model.predict(test_x)), model.predict_proba(test_x),
                                 {"C": value, "class_weight": class_weight}, score)
    return best


def tfidf_logreg(train_texts: Sequence[str], train_labels: Sequence[str], test_texts: Sequence[str],
                 validation: tuple[Sequence[str], Sequence[str]] | None = None, seed: int = 0) -> LogRegFit:
    """TF-IDF (word 1-2 grams, fitted on the training texts) + logistic regression; ``validation`` = (texts,
    labels) chooses C and class_weight (``fit_logreg``), else C = 10."""
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True).fit(list(train_texts))
    features = lambda texts: vectorizer.transform(list(texts))  # noqa: E731
    held_out = None if validation is None else (features(validation[0]), validation[1])
    return fit_logreg(features(train_texts), train_labels, features(test_texts), held_out, seed, C=10.0)


def embedding_logreg(encoder: SentenceEncoder, train_texts: Sequence[str], train_labels: Sequence[str],
                     test_texts: Sequence[str], validation: tuple[Sequence[str], Sequence[str]] | None = None,
                     seed: int = 0) -> LogRegFit:
    """Logistic regression on frozen sentence embeddings (a linear probe of the pretrained encoder); ``validation``
    chooses C and class_weight, else C = 1."""
    features = lambda texts: encoder.encode(list(texts), show_progress_bar=False)  # noqa: E731
    held_out = None if validation is None else (features(validation[0]), validation[1])
    return fit_logreg(features(train_texts), train_labels, features(test_texts), held_out, seed, C=1.0)


def vader_lexicon(texts: Sequence[str]) -> list[str]:
    """negative / neutral / positive from VADER's compound score."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    compounds = [analyzer.polarity_scores(text)["compound"] for text in texts]
    return ["positive" if c >= 0.05 else "negative" if c <= -0.05 else "neutral" for c in compounds]


def most_frequent_tag(train_words: Sequence[Sequence[str]], train_tags: Sequence[Sequence[str]],
                      test_words: Sequence[Sequence[str]], default: str = "O") -> list[list[str]]:
    """Each test word's most frequent tag in training (ties: the tag seen first); ``default`` for unseen words."""
    counts: defaultdict[str, Counter] = defaultdict(Counter)
    for words, tags in zip(train_words, train_tags, strict=True):
        for word, tag in zip(words, tags, strict=True):
            counts[word][tag] += 1
    best = {word: tags.most_common(1)[0][0] for word, tags in counts.items()}
    return [[best.get(word, default) for word in words] for words in test_words]
