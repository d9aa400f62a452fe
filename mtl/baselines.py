"""Baselines every claim is measured against, run on the same splits as the model.

- majority class;
- TF-IDF (word 1-2 grams) + logistic regression;
- frozen sentence embeddings + logistic regression (what the encoder knows before any fine-tuning);
- the VADER lexicon (Hutto & Gilbert 2014) for sentiment: compound >= 0.05 positive, <= -0.05 negative, else
  neutral (VADER's documented thresholds);
- for token tagging, each word's most frequent training tag (a memorising baseline in the spirit of CoNLL-2003's,
  Tjong Kim Sang & De Meulder 2003).
"""
from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np
from sklearn.dummy import DummyClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

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


def tfidf_logreg(train_texts: Sequence[str], train_labels: Sequence[str], test_texts: Sequence[str],
                 seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Predictions and class probabilities (columns in sorted label order) of TF-IDF + logistic regression."""
    model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True),
                          LogisticRegression(C=10.0, tol=LOGREG_TOL, max_iter=LOGREG_MAX_ITER,
                                             random_state=seed))
    model.fit(list(train_texts), list(train_labels))
    return list(model.predict(list(test_texts))), model.predict_proba(list(test_texts))


def embedding_logreg(encoder: SentenceEncoder, train_texts: Sequence[str], train_labels: Sequence[str],
                     test_texts: Sequence[str], seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Logistic regression on frozen sentence embeddings (a linear probe of the pretrained encoder)."""
    train_x = encoder.encode(list(train_texts), show_progress_bar=False)
    test_x = encoder.encode(list(test_texts), show_progress_bar=False)
    model = LogisticRegression(C=1.0, tol=LOGREG_TOL, max_iter=LOGREG_MAX_ITER, random_state=seed)
    model.fit(train_x, list(train_labels))
    return list(model.predict(test_x)), model.predict_proba(test_x)


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
