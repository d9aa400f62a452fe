"""Whether method A is better than method B: the one place where methods are compared.

``compare_seeds`` counts both sources of noise: which test examples happened to be drawn, and which training seeds
happened to be run.

A claim such as "A beats B by 0.02 macro-F1" is about the methods, so its interval must hold the variance of
training (seeds) as well as that of the test set (Dror et al., "The Hitchhiker's Guide to Testing Statistical
Significance in NLP", ACL 2018; Bouthillier et al., "Accounting for Variance in Machine Learning Benchmarks",
MLSys 2021; Reimers & Gurevych, "Reporting Score Distributions Makes a Difference", EMNLP 2017). Resampling the
test examples alone, seeds held fixed (the ``se_test`` part below), leaves training randomness out: in the simulated
studies of ``tests/test_compare.py``, with between-seed SDs typical here, its 95 % intervals hold the true
difference in fewer than 90 % of them.

``compare_seeds`` keeps the pairing (A and B share each seed and every test example) and splits the variance of the
mean-over-seeds difference d = mean_s d_s, d_s = score_a(s) - score_b(s) on the one test set, in two:

    se^2 = s_d^2 / S + c_test

- s_d^2, the sample variance of d_s over the S seeds: training randomness, plus the test-sampling noise that
  differs from seed to seed (which examples each seed's models happen to get right);
- c_test, the mean example-bootstrap covariance of d_s and d_t over pairs of distinct seeds s != t: the
  test-sampling error that all seeds share because they are scored on the same examples, which averaging over
  seeds cannot remove (clipped at 0). Adding the whole bootstrap variance of d instead would count the
  seed-to-seed part twice.

The interval is d +- t(df) se with Welch-Satterthwaite df (S - 1 for the seed term, infinite for the bootstrap
term). The simulations of ``tests/test_compare.py`` check that its 95 % intervals cover the true difference
92-98 % of the time with 5 seeds; when the method was chosen, a two-level bootstrap (seeds, then examples) and a
t-interval over seeds alone covered less in the same simulations, and adding the whole bootstrap variance gave wider
intervals. With one seed no seed variance can be measured: the interval is then the test-examples one, and
``method`` says so.

``family`` puts the comparisons of one question side by side with Holm-adjusted p-values and a verdict each
(``docs/analysis_plan.md``). Also: ``tost``, equivalence by two one-sided tests (Schuirmann, J. Pharmacokinet.
Biopharm. 15, 1987);
``detectable``, the smallest difference a study of this size detects with given power; ``holm``, Holm's
step-down adjustment for several comparisons (Holm, Scand. J. Statist. 6, 1979).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats


CountScore = Callable[[np.ndarray], np.ndarray]  # summed counts (..., k) -> scores (...)


def _counts(stats_a: ArrayLike, stats_b: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    a, b = (np.asarray(s) for s in (stats_a, stats_b))
    a, b = (s if np.issubdtype(s.dtype, np.floating) else s.astype(np.float64) for s in (a, b))
    if a.ndim < 3 or b.ndim != a.ndim:
        raise ValueError(f"stats_a and stats_b must be (S seeds, n examples, k counts) arrays, got shapes "
                         f"{a.shape} and {b.shape}.")
    if a.shape[-3] == 0 or a.shape[-2] == 0:
        raise ValueError(f"Need at least one seed and one test example, got S={a.shape[-3]}, n={a.shape[-2]}.")
    if b.shape[:-3] != a.shape[:-3] or b.shape[-2:] != a.shape[-2:] or b.shape[-3] not in (1, a.shape[-3]):
        raise ValueError(f"stats_b must cover stats_a's examples and counts with the same seeds, or one seed "
                         f"(a deterministic baseline): stats_a {a.shape}, stats_b {b.shape}.")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("stats_a and stats_b must not contain NaN or infinite counts.")
    return a, b


def _scores(score: CountScore, summed: np.ndarray) -> np.ndarray:
    values = np.asarray(score(summed), dtype=np.float64)
    if values.shape != summed.shape[:-1]:
        raise ValueError(f"score must map counts (..., k) to scores (...): {summed.shape} gave {values.shape}.")
    if not np.isfinite(values).all():
        raise ValueError("score returned NaN or infinite values (e.g. accuracy over zero examples).")
    return values


Score = Callable[[np.ndarray], np.ndarray]
"""A method's score on resampled test examples: (m, n) weights, how often each of the n examples is drawn in each of
m resamples, -> (S, m) scores, one row per seed. Weights of ones score the test set as it is."""

RESAMPLE_CHUNK = 250  # resamples scored at once: bounds the (chunk, n) weights and what a score builds from them


def resampling_weights(examples: int, n_resamples: int = 2000, seed: int = 0) -> Iterator[np.ndarray]:
    """The bootstrap's resamples as weights: chunks (m, n) of how often each of the n examples is drawn when n are
    drawn with replacement, ``n_resamples`` rows in all, from one generator seeded with ``seed``: every comparison
    with the same seed and number of examples sees the same resamples."""
    if examples < 1 or n_resamples < 1:
        raise ValueError(f"Need at least 1 example and 1 resample, got {examples} and {n_resamples}.")
    rng = np.random.default_rng(seed)
    for start in range(0, n_resamples, RESAMPLE_CHUNK):
        m = min(RESAMPLE_CHUNK, n_resamples - start)
        draws = rng.integers(0, examples, size=(m, examples)) + examples * np.arange(m)[:, None]
        yield np.bincount(draws.ravel(), minlength=m * examples).reshape(m, examples).astype(np.float64)


def _resample(per_example: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Summed counts of every example resample: weights (m, n) @ counts (..., S, n, k) -> (m, ..., S, k)."""
    moved = np.moveaxis(per_example, -2, 0)  # (n, ..., S, k)
    summed = counts.astype(per_example.dtype) @ moved.reshape(len(moved), -1)  # (m, ... * S * k)
    return summed.reshape(counts.shape[:1] + moved.shape[1:])


def compare_seeds(stats_a: ArrayLike, stats_b: ArrayLike, score: CountScore, n_resamples: int = 1000, seed: int = 0,
            alpha: float = 0.05) -> dict:
    """Paired comparison of methods A and B, A minus B, over seeds and test examples (module docstring).

    ``stats_a``: (S, n, k) additive counts per seed and test example (``mtl.evaluation.metrics.example_statistics`` of
    each seed's predictions); ``stats_b`` the same with the same seeds, or (1, n, k) for a deterministic B. Leading
    axes (..., S, n, k) are independent studies, compared at once. ``score`` maps summed counts (..., k) to scores
    (...), e.g. ``lambda s: head_type("sentence").score_statistics(s, "macro_f1")``.

    Returns mean scores ``a`` and ``b``, their ``difference``, the 1 - alpha interval ``ci_low``..``ci_high``,
    the two-sided ``p_value`` of "no difference", ``se`` and ``df`` (for ``tost`` and ``detectable``), ``se_test``
    (the examples-only bootstrap's standard error, seeds held fixed: how much of ``se`` more test examples could
    remove), ``seeds``, ``examples`` and ``method``; floats, or arrays over the leading axes.
    """
    if not 0 < alpha < 1 or n_resamples < 2:
        raise ValueError(f"Need 0 < alpha < 1 and n_resamples >= 2, got alpha={alpha}, n_resamples={n_resamples}.")
    a, b = _counts(stats_a, stats_b)
    S, n = a.shape[-3], a.shape[-2]
    score_a, score_b = _scores(score, a.sum(-2)), _scores(score, b.sum(-2))  # (..., S), (..., S or 1)
    per_seed = score_a - score_b  # (..., S): d_s on this test set
    difference = per_seed.mean(-1)
    resampled = np.concatenate([_scores(score, _resample(a, weights)) - _scores(score, _resample(b, weights))
                                for weights in resampling_weights(n, n_resamples, seed)])  # (m, ..., S)
    test_var = resampled.mean(-1).var(0, ddof=1)  # (...,) example-bootstrap variance of d
    if S == 1:
        se2, df, method = test_var, np.full_like(test_var, np.inf), "test examples only (1 seed)"
    else:
        own = resampled.var(0, ddof=1).mean(-1)  # mean bootstrap variance of one seed's d_s
        shared = np.maximum((S * test_var - own) / (S - 1), 0.0)  # mean covariance of d_s, d_t, s != t
        seed_term = per_seed.var(-1, ddof=1) / S
        se2 = seed_term + shared
        with np.errstate(divide="ignore", invalid="ignore"):
            df = np.where(seed_term > 0, se2 ** 2 * (S - 1) / seed_term ** 2, np.inf)  # Welch-Satterthwaite
        method = f"seeds and test examples (t, Welch-Satterthwaite df, {S} seeds)"
    se = np.sqrt(se2)
    half = stats.t.ppf(1 - alpha / 2, df) * se
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(se > 0, np.abs(difference) / se, np.where(difference == 0, 0.0, np.inf))
    value = float if np.ndim(difference) == 0 else np.asarray
    return {"a": value(score_a.mean(-1)), "b": value(score_b.mean(-1)), "difference": value(difference),
            "ci_low": value(difference - half), "ci_high": value(difference + half),
            "p_value": value(2 * stats.t.sf(t, df)), "seeds": S, "examples": n, "se": value(se), "df": value(df),
            "se_test": value(np.sqrt(test_var)), "method": method}


def tost(result: dict, margin: float) -> float | np.ndarray:
    """p-value of "the true |difference| is below ``margin``" (equivalence): the larger of the one-sided p-values
    of difference > -margin and difference < +margin, with ``result``'s se and df. Below alpha: equivalent."""
    if not margin > 0:
        raise ValueError(f"The equivalence margin must be positive, got {margin}.")
    d, se, df = (np.asarray(result[key], dtype=np.float64) for key in ("difference", "se", "df"))
    with np.errstate(divide="ignore", invalid="ignore"):
        lower = stats.t.sf((d + margin) / se, df)  # H0: difference <= -margin
        upper = stats.t.cdf((d - margin) / se, df)  # H0: difference >= +margin
    p = np.maximum(lower, upper)
    return float(p) if p.ndim == 0 else p


def detectable(result: dict, alpha: float = 0.05, power: float = 0.8) -> float | np.ndarray:
    """Smallest true difference that a two-sided test at ``alpha`` detects with probability ``power`` in a study
    with ``result``'s se and df: (t_{1-alpha/2} + t_{power}) se."""
    se, df = np.asarray(result["se"], dtype=np.float64), np.asarray(result["df"], dtype=np.float64)
    size = (stats.t.ppf(1 - alpha / 2, df) + stats.t.ppf(power, df)) * se
    return float(size) if size.ndim == 0 else size


def holm(p_values: Sequence[float], m: int | None = None) -> np.ndarray:
    """Holm's step-down adjusted p-values, in the given order: the i-th smallest p times (m - i + 1), made
    non-decreasing along that ranking and capped at 1. Reject where adjusted p < alpha: family-wise error <= alpha.
    ``m``: the family's size when only some of its comparisons are at hand (the missing ones count as p = 1)."""
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1 or np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError(f"Expected a 1-D sequence of p-values in [0, 1], got {p_values!r}.")
    m = len(p) if m is None else m
    if m < len(p):
        raise ValueError(f"A family of {m} comparisons cannot hold {len(p)} p-values.")
    order = np.argsort(p, kind="stable")
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(np.maximum.accumulate((m - np.arange(len(p))) * p[order]), 1.0)
    return adjusted


def verdict(p_holm: float, p_equivalence: float, difference: float, seeds: int, alpha: float = 0.05) -> str:
    """What may be said of one comparison: "better" / "worse" (Holm-adjusted p below ``alpha``), "as good as"
    (equivalent within the margin by ``tost``, Holm-adjusted), else "not separated with N seeds"."""
    if p_holm < alpha:
        return "better" if difference > 0 else "worse"
    if p_equivalence < alpha:
        return "as good as"
    return f"not separated with {seeds} seed{'s' * (seeds != 1)}"


def family(results: Mapping[str, dict], margin: float | Mapping[str, float], alpha: float = 0.05,
           m: int | None = None) -> pd.DataFrame:
    """One row per comparison of a family (``compare_seeds`` results by name): the difference and its interval, the
    raw and Holm-adjusted p-values, the seeds, the smallest difference the study could detect (80 % power at the
    Bonferroni level alpha / m, which Holm never asks more than), the Holm-adjusted equivalence p-value against
    ``margin`` and the verdict. ``margin``: one for every comparison, or one per comparison by name (a family that
    spans tasks with different margins, Holm-adjusted as one family). ``m``: the family's size in the plan, if only
    some comparisons are recorded yet."""
    if not results:
        raise ValueError("A family needs at least one comparison.")
    missing = [name for name, r in results.items() if not {"se", "df"} <= set(r)]
    if missing:
        raise KeyError(f"{missing} lack se and df: a family is built from compare_seeds results.")
    m = len(results) if m is None else m
    rows = pd.DataFrame({name: {key: r[key] for key in ("a", "b", "difference", "ci_low", "ci_high", "p_value",
                                                          "seeds")} for name, r in results.items()}).T
    rows = rows.astype({"seeds": int}).astype({c: float for c in rows if c != "seeds"})
    rows["p_holm"] = holm(rows.p_value.to_numpy(), m)
    rows["detectable"] = [detectable(r, alpha / m) for r in results.values()]
    margins = margin if isinstance(margin, Mapping) else dict.fromkeys(results, margin)
    if set(margins) != set(results):
        raise KeyError(f"One margin per comparison: {sorted(set(results) ^ set(margins))} lack a margin or a result.")
    rows["p_equivalence"] = holm([tost(r, margins[name]) for name, r in results.items()], m)
    rows["verdict"] = [verdict(*values, alpha) for values in
                       zip(rows.p_holm, rows.p_equivalence, rows.difference, rows.seeds)]
    return rows


def shared_seeds(predictions: Mapping[tuple[str, int], object], a: str, b: str) -> list[int]:
    """The seeds, in order, for which ``predictions`` (keyed by (run, seed)) hold both run ``a`` and run ``b``."""
    return sorted({s for run, s in predictions if run == a} & {s for run, s in predictions if run == b})


