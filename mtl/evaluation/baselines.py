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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.dummy import DummyClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score

from mtl.data.examples import Example
from mtl.encoder.encoder import SentenceEncoder

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


# Which tasks each baseline predicts, by default: a text classifier for every sentence task, VADER for sentiment, the
# per-word lookup for the token task (and the majority class there too: "O" for every word).
BASELINE_TASKS: dict[str, tuple[str, ...]] = {
    "majority class": ("topic", "sentiment", "ner"), "TF-IDF + LR": ("topic", "sentiment"),
    "frozen MiniLM + LR": ("topic", "sentiment"), "VADER lexicon": ("sentiment",),
    "most frequent tag per word": ("ner",)}


@dataclass
class BaselineFits:
    """Every baseline's test predictions and what validation chose for it."""

    predictions: dict[str, dict[str, list]]  # {method: {task: one label per test text, or one per word}}
    choices: dict[tuple[str, str], dict]  # {(method, task): C, class_weight, validation macro-F1} (fitted ones)


def fit_baselines(train_sets: Mapping[str, Sequence[Example]], val_sets: Mapping[str, Sequence[Example]],
                  test_sets: Mapping[str, Sequence[Example]], methods: Mapping[str, Sequence[str]] | None = None,
                  encoder: SentenceEncoder | None = None, suffix: str = "") -> BaselineFits:
    """The baselines of ``methods`` ({method: tasks}, default ``BASELINE_TASKS``) on the tasks of ``test_sets`` they
    apply to, fitted on ``train_sets`` and tuned on ``val_sets`` (logistic regressions: ``LOGREG_GRID``).
    "frozen MiniLM + LR" needs the pretrained ``encoder`` (serve its frozen layers from a cache around this call).
    ``suffix`` is appended to the names of the tuned logistic regressions, e.g. " (full train split)", so fits on
    two training sets can sit in one table."""
    methods = BASELINE_TASKS if methods is None else methods
    unknown = set(methods) - set(BASELINE_TASKS)
    if unknown:
        raise KeyError(f"Unknown baseline(s) {sorted(unknown)}; the baselines are {list(BASELINE_TASKS)}.")
    if "frozen MiniLM + LR" in methods and encoder is None:
        raise ValueError("'frozen MiniLM + LR' needs the pretrained encoder: pass encoder=.")
    texts = lambda examples: [ex.text for ex in examples]  # noqa: E731
    labels = lambda examples, task: [ex.labels[task] for ex in examples]  # noqa: E731
    words = lambda examples: [ex.words for ex in examples]  # noqa: E731
    fitters = {"TF-IDF + LR": tfidf_logreg,
               "frozen MiniLM + LR": lambda *args: embedding_logreg(encoder, *args)}
    fits = BaselineFits({}, {})
    for method, tasks in methods.items():
        for task in (t for t in tasks if t in test_sets):
            test = test_sets[task]
            by_words = not isinstance(train_sets[task][0].labels[task], str)  # a tag per word (token task): list or tuple
            if method == "majority class" and by_words:
                tag = Counter(t for tags in labels(train_sets[task], task) for t in tags).most_common(1)[0][0]
                predicted = [[tag] * len(ex.words) for ex in test]
            elif method == "majority class":
                predicted = majority(labels(train_sets[task], task), len(test))
            elif method == "VADER lexicon":
                predicted = vader_lexicon(texts(test))
            elif method == "most frequent tag per word":
                predicted = most_frequent_tag(words(train_sets[task]), labels(train_sets[task], task), words(test))
            else:
                fit = fitters[method](texts(train_sets[task]), labels(train_sets[task], task), texts(test),
                                      (texts(val_sets[task]), labels(val_sets[task], task)))
                predicted = fit.predictions
                fits.choices[method + suffix, task] = {**fit.params, "validation macro-F1": fit.validation_macro_f1}
            name = method + suffix if method in fitters else method
            fits.predictions.setdefault(name, {})[task] = predicted
    return fits
