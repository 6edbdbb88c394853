"""Is a difference between two sets of seeds more than seed noise? Two plain answers.

a: (n_a,) and b: (n_b,) are final test accuracies, one per seed, of two models trained
with the same recipe. The effect size is the difference of the means, mean(a) - mean(b).

    bootstrap_ci(a, b)      95% percentile bootstrap interval of mean(a) - mean(b): redraw
                            each sample with replacement many times, take the difference
                            of the means each time, keep the middle 95% of those values.
    permutation_p(a, b)     two-sided permutation test: if the model made no difference, the
                            labels "a" and "b" could be shuffled freely. p is the share of
                            all ways to split the pooled values into groups of n_a and n_b
                            whose |mean difference| is at least the observed one. Every
                            split is enumerated when there are few enough; otherwise a fixed
                            number of random splits is drawn and p = (1 + hits) / (1 + draws).

    stratified_permutation_p(pairs)
                            the same question asked of several comparisons at once (one per
                            parameter budget, say): is the sum of their mean differences
                            farther from 0 than relabelling would put it, when labels are
                            shuffled only inside each comparison, never across them?

    welch_ci(a, b)          95% Welch t interval of mean(a) - mean(b): the t distribution with
                            Welch-Satterthwaite degrees of freedom, no equal-variance
                            assumption. Valid at small n when the seeds' accuracies are
                            roughly normal; the percentile bootstrap is not (with 3 seeds
                            per model it has only 10 distinct resamples of each mean and
                            its intervals are too narrow). Reports use Welch wherever n < 10.
    mcnemar_p(a, b)         exact two-sided McNemar test of two classifiers on the same
                            images: only the images one gets right and the other wrong count;
                            under "equally good" each such image goes either way with
                            probability 1/2 (a binomial test on the discordant images).
    holm(ps)                Holm's step-down adjustment of several p values asked together
                            (the ablation's five comparisons, say): an adjusted p below 0.05
                            keeps the chance of any false "holds" among them below 5%.

All take an explicit seed, so a report regenerated from the same runs prints the same
numbers. NumPy only.
"""
from __future__ import annotations

import itertools
import math

import numpy as np

# Differences closer than this count as equal, so that a split with the same groups in
# another order is not lost to rounding.
_TIE = 1e-12


def mean_difference(a, b) -> float:
    """mean(a) - mean(b)."""
    return float(np.mean(a) - np.mean(b))


def bootstrap_ci(a, b, confidence: float = 0.95, resamples: int = 20_000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of mean(a) - mean(b). a: (n_a,), b: (n_b,)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"a bootstrap needs at least 2 values per sample, got {len(a)} and {len(b)}")
    rng = np.random.default_rng(seed)
    # Row r of each index array is one bootstrap sample: (resamples, n) indices drawn with replacement.
    mean_a = a[rng.integers(0, len(a), size=(resamples, len(a)))].mean(axis=1)
    mean_b = b[rng.integers(0, len(b), size=(resamples, len(b)))].mean(axis=1)
    tail = (1.0 - confidence) / 2
    low, high = np.quantile(mean_a - mean_b, [tail, 1.0 - tail])
    return float(low), float(high)


def number_of_splits(n_a: int, n_b: int) -> int:
    """How many ways there are to choose which n_a of the n_a + n_b values form group a."""
    return math.comb(n_a + n_b, n_a)


def permutation_p(a, b, max_exact: int = 200_000, draws: int = 100_000, seed: int = 0) -> float:
    """Two-sided permutation p-value of mean(a) - mean(b). a: (n_a,), b: (n_b,).

    Exact (every split) when there are at most `max_exact` splits, else `draws` random ones."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) < 1 or len(b) < 1:
        raise ValueError(f"a permutation test needs at least 1 value per sample, got {len(a)} and {len(b)}")
    pooled = np.concatenate([a, b])
    observed = abs(mean_difference(a, b))
    n_a, total = len(a), pooled.sum()
    if number_of_splits(len(a), len(b)) <= max_exact:
        groups = np.array(list(itertools.combinations(range(len(pooled)), n_a)))  # (splits, n_a)
        hits = _count_extreme(pooled[groups].sum(axis=1), n_a, len(b), total, observed)
        return hits / len(groups)
    rng = np.random.default_rng(seed)
    sums = np.array([pooled[rng.permutation(len(pooled))[:n_a]].sum() for _ in range(draws)])
    return (1 + _count_extreme(sums, n_a, len(b), total, observed)) / (1 + draws)


def _count_extreme(sums_a: np.ndarray, n_a: int, n_b: int, total: float, observed: float) -> int:
    """How many splits (given by the sum of group a) differ in mean by at least `observed`."""
    differences = sums_a / n_a - (total - sums_a) / n_b
    return int((np.abs(differences) >= observed - _TIE).sum())


def split_differences(a, b) -> np.ndarray:
    """mean(group a) - mean(group b) for every split of the pooled values (splits,)."""
    pooled = np.concatenate([np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)])
    groups = np.array(list(itertools.combinations(range(len(pooled)), len(a))))  # (splits, n_a)
    sums_a = pooled[groups].sum(axis=1)
    return sums_a / len(a) - (pooled.sum() - sums_a) / len(b)


def stratified_permutation_p(pairs, max_exact: int = 5_000_000, draws: int = 100_000, seed: int = 0) -> float:
    """Two-sided p of sum_k (mean(a_k) - mean(b_k)) over strata k, labels shuffled within each.

    pairs: [(a_1, b_1), (a_2, b_2), ...], each a and b a list of values (one per seed).
    Under "the model makes no difference anywhere", each stratum's split is free and
    independent of the others, so the null distribution of the total is that of a sum of
    independent draws, one split per stratum. It is built exactly, every combination of
    splits, when there are at most `max_exact` of them; otherwise `draws` random
    combinations are drawn and p = (1 + hits) / (1 + draws), as in `permutation_p`."""
    if not pairs:
        raise ValueError("stratified_permutation_p needs at least one (a, b) pair")
    observed = abs(sum(mean_difference(a, b) for a, b in pairs))
    combinations = math.prod(number_of_splits(len(a), len(b)) for a, b in pairs)
    if combinations <= max_exact:
        totals = np.zeros(1)
        for a, b in pairs:  # every total so far, plus every difference of this stratum
            totals = np.add.outer(totals, split_differences(a, b)).ravel()
        return int((np.abs(totals) >= observed - _TIE).sum()) / len(totals)
    rng = np.random.default_rng(seed)
    totals = np.zeros(draws)
    for a, b in pairs:  # one random split of this stratum per draw
        pooled = np.concatenate([np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)])
        order = rng.permuted(np.tile(np.arange(len(pooled)), (draws, 1)), axis=1)  # (draws, n) shuffles
        sums_a = pooled[order[:, : len(a)]].sum(axis=1)
        totals += sums_a / len(a) - (pooled.sum() - sums_a) / len(b)
    return (1 + int((np.abs(totals) >= observed - _TIE).sum())) / (1 + draws)


def describe(values) -> dict:
    """n, mean, sample standard deviation (n - 1), median, min and max of a list of numbers."""
    v = np.asarray(values, dtype=np.float64)
    return {"n": int(len(v)), "mean": float(v.mean()), "sd": float(v.std(ddof=1)) if len(v) > 1 else None,
            "median": float(np.median(v)), "min": float(v.min()), "max": float(v.max())}


def compare(a, b, seed: int = 0) -> dict:
    """Everything a verdict needs about mean(a) - mean(b): effect, 95% intervals (percentile
    bootstrap "ci95", Welch t "welch_ci95"), p (exact two-sided permutation), sizes."""
    low, high = bootstrap_ci(a, b, seed=seed)
    return {"difference": mean_difference(a, b), "ci95": [low, high], "welch_ci95": list(welch_ci(a, b)),
            "p": permutation_p(a, b, seed=seed),
            "n": [len(a), len(b)], "splits": number_of_splits(len(a), len(b)),
            "ci_excludes_zero": bool(low > 0 or high < 0)}


# ----------------------------------------------------------------------------- Welch t, McNemar
def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with df > 0 degrees of freedom, by Simpson's rule on the
    density over [0, |t|] (2,000 panels: about 1e-10 here, far below what a report prints)."""
    if df <= 0:
        raise ValueError(f"t_cdf needs df > 0, got {df}")
    scale = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi)
    x = np.linspace(0.0, abs(t), 2001)
    density = scale * (1 + x * x / df) ** (-(df + 1) / 2)
    h = x[1] - x[0]
    area = h / 3 * (density[0] + density[-1] + 4 * density[1:-1:2].sum() + 2 * density[2:-1:2].sum())
    return 0.5 + math.copysign(area, t)


def t_quantile(probability: float, df: float) -> float:
    """The t value with P(T <= t) = probability (bisection on t_cdf)."""
    if not 0 < probability < 1:
        raise ValueError(f"t_quantile needs 0 < probability < 1, got {probability}")
    low, high = -1000.0, 1000.0
    for _ in range(100):
        middle = (low + high) / 2
        low, high = (middle, high) if t_cdf(middle, df) < probability else (low, middle)
    return (low + high) / 2


def welch_ci(a, b, confidence: float = 0.95) -> tuple[float, float]:
    """Welch's t interval of mean(a) - mean(b). a: (n_a,), b: (n_b,), each n >= 2."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"a Welch interval needs at least 2 values per sample, got {len(a)} and {len(b)}")
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    difference = mean_difference(a, b)
    if va + vb == 0:
        return difference, difference
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = t_quantile(1 - (1 - confidence) / 2, df) * math.sqrt(va + vb)
    return difference - half, difference + half


def mcnemar_p(correct_a, correct_b) -> dict:
    """Exact two-sided McNemar test. correct_a, correct_b: (n,) bools, the same images.
    Returns {"a_only", "b_only", "p"}: p = P(a binomial(a_only + b_only, 1/2) count is at
    least as far from half as the one seen), both tails."""
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"mcnemar_p needs two (n,) arrays over the same images, got {a.shape} and {b.shape}")
    a_only, b_only = int((a & ~b).sum()), int((b & ~a).sum())
    n, k = a_only + b_only, min(a_only, b_only)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n if n else 1.0
    return {"a_only": a_only, "b_only": b_only, "p": min(1.0, 2 * tail)}


def holm(ps: list[float]) -> list[float]:
    """Holm-adjusted p values, in the order given: the i-th smallest of m is multiplied by
    m - i (i = 0, 1, ...), capped at 1, and made non-decreasing along that order."""
    order = sorted(range(len(ps)), key=lambda i: ps[i])
    adjusted, running = [0.0] * len(ps), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(ps) - rank) * ps[i]))
        adjusted[i] = running
    return adjusted
