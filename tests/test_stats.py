"""The statistics of the studies, on samples whose answers are known."""
import itertools

import numpy as np
import pytest

from ack_numpy.lab import stats


def test_identical_samples_give_p_one_and_an_interval_around_zero():
    a = [0.991, 0.989, 0.992, 0.990, 0.988]
    assert stats.permutation_p(a, list(a)) == 1.0
    assert stats.permutation_p(a, list(a), max_exact=0, draws=2000) == 1.0  # the random version too
    low, high = stats.bootstrap_ci(a, list(a))
    assert low < 0 < high
    assert stats.compare(a, list(a))["ci_excludes_zero"] is False


def test_well_separated_samples_give_a_small_p_and_an_interval_above_zero():
    a = [0.995, 0.994, 0.996, 0.995, 0.9945, 0.9955]
    b = [0.980, 0.981, 0.979, 0.980, 0.9805, 0.9795]
    # Only the observed split and its mirror image are as extreme: p = 2 / C(12, 6).
    assert stats.permutation_p(a, b) == pytest.approx(2 / 924)
    low, high = stats.bootstrap_ci(a, b)
    assert 0.013 < low < high < 0.016
    result = stats.compare(a, b)
    assert result["ci_excludes_zero"] and result["difference"] == pytest.approx(0.015)


def test_exact_p_matches_a_count_by_hand_over_every_relabelling():
    a, b = [3.0, 1.0, 4.0, 1.5], [5.0, 9.0, 2.0]
    pooled = a + b
    observed = abs(np.mean(a) - np.mean(b))
    hits = total = 0
    for chosen in itertools.permutations(range(7)):  # every labelling, 5,040 orders
        group_a = [pooled[i] for i in chosen[:4]]
        group_b = [pooled[i] for i in chosen[4:]]
        hits += abs(np.mean(group_a) - np.mean(group_b)) >= observed - 1e-12
        total += 1
    assert stats.permutation_p(a, b) == pytest.approx(hits / total)
    assert 0 < hits / total < 1


def test_three_against_three_cannot_go_below_one_in_ten():
    # With 3 seeds per model there are C(6, 3) = 20 splits; the most extreme outcome
    # is still matched by its mirror image, so p >= 2 / 20.
    assert stats.permutation_p([10, 11, 12], [1, 2, 3]) == pytest.approx(0.1)
    assert stats.number_of_splits(3, 3) == 20


def test_random_splits_approach_the_exact_p():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0.3, 1, 8), rng.normal(0, 1, 8)
    exact = stats.permutation_p(a, b)
    approximate = stats.permutation_p(a, b, max_exact=0, draws=20_000, seed=3)
    assert abs(exact - approximate) < 0.015


def test_the_interval_of_a_shift_is_the_shifted_interval():
    rng = np.random.default_rng(2)
    a, b = rng.normal(0, 1, 10), rng.normal(0, 1, 10)
    low, high = stats.bootstrap_ci(a, b, seed=5)
    low2, high2 = stats.bootstrap_ci(a + 0.25, b, seed=5)
    assert low2 == pytest.approx(low + 0.25) and high2 == pytest.approx(high + 0.25)
    assert stats.bootstrap_ci(a, b, seed=5) == (low, high)  # same seed, same numbers


def test_describe_and_bad_sizes():
    d = stats.describe([1.0, 2.0, 4.0])
    assert d == {"n": 3, "mean": pytest.approx(7 / 3), "sd": pytest.approx(np.std([1, 2, 4], ddof=1)),
                 "median": 2.0, "min": 1.0, "max": 4.0}
    with pytest.raises(ValueError, match="at least 2"):
        stats.bootstrap_ci([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="at least 1"):
        stats.permutation_p([], [1.0])


def test_stratified_p_of_one_stratum_is_the_plain_p():
    a, b = [3.0, 1.0, 4.0, 1.5], [5.0, 9.0, 2.0]
    assert stats.stratified_permutation_p([(a, b)]) == pytest.approx(stats.permutation_p(a, b))


def test_stratified_p_of_identical_strata_is_one():
    a = [0.991, 0.989, 0.992]
    assert stats.stratified_permutation_p([(a, list(a)), (a, list(a))]) == 1.0


def test_stratified_p_of_separated_strata_reaches_its_floor():
    # Every stratum separated the same way: only "all as observed" and "all mirrored"
    # are as extreme, out of 20 x 20 x 20 combinations of splits.
    pairs = [([10, 11, 12], [1, 2, 3]), ([5.5, 6, 6.5], [4, 4.5, 5]), ([0.3, 0.4, 0.5], [0.0, 0.1, 0.2])]
    assert stats.stratified_permutation_p(pairs) == pytest.approx(2 / 20**3)


def test_stratified_p_matches_a_count_by_hand():
    pairs = [([1.0, 2.0], [1.5, 3.0]), ([0.2, 0.9, 0.4], [0.1, 0.3])]
    observed = abs(sum(np.mean(a) - np.mean(b) for a, b in pairs))
    totals = []
    for first in itertools.permutations([1.0, 2.0, 1.5, 3.0]):
        for second in itertools.permutations([0.2, 0.9, 0.4, 0.1, 0.3]):
            totals.append(np.mean(first[:2]) - np.mean(first[2:]) + np.mean(second[:3]) - np.mean(second[3:]))
    expected = np.mean(np.abs(totals) >= observed - 1e-12)
    assert stats.stratified_permutation_p(pairs) == pytest.approx(expected)
    assert 0 < expected < 1


def test_stratified_p_with_random_draws_approaches_the_exact_one():
    rng = np.random.default_rng(4)
    pairs = [(rng.normal(0.2, 1, 3), rng.normal(0, 1, 3)) for _ in range(3)]
    exact = stats.stratified_permutation_p(pairs)                  # 20^3 = 8,000 combinations
    drawn = stats.stratified_permutation_p(pairs, max_exact=1000, draws=50_000, seed=1)
    assert drawn != exact and abs(exact - drawn) < 0.01            # the random branch ran, and is close
    assert stats.stratified_permutation_p(pairs, max_exact=1000, draws=50_000, seed=1) == drawn  # seeded
    separated = [([10, 11, 12], [1, 2, 3])] * 3
    # exact floor 2 / 8,000 = 2.5e-4; 50,000 draws see about 12 such totals: p near (1 + 12) / 50,001
    assert 1e-4 < stats.stratified_permutation_p(separated, max_exact=1000, draws=50_000) < 6e-4


def test_stratified_p_needs_a_pair():
    with pytest.raises(ValueError, match="at least one"):
        stats.stratified_permutation_p([])


@pytest.mark.parametrize("df, quantile", [(1, 12.706204736174698), (2, 4.302652729749464), (10, 2.2281388519649385)])
def test_t_quantiles_match_the_printed_tables(df, quantile):
    """Student's t, 97.5th percentile, as every table prints it (df = 1 is Cauchy's: exact)."""
    assert stats.t_quantile(0.975, df) == pytest.approx(quantile, abs=1e-6)
    assert stats.t_cdf(1.0, 1) == pytest.approx(0.75, abs=1e-9)  # atan(1) / pi + 1/2


def test_the_welch_interval_by_hand():
    a, b = [0.990, 0.992, 0.994], [0.985, 0.986, 0.990, 0.987]
    va, vb = np.var(a, ddof=1) / 3, np.var(b, ddof=1) / 4
    df = (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 3)
    half = stats.t_quantile(0.975, df) * np.sqrt(va + vb)
    difference = np.mean(a) - np.mean(b)
    assert stats.welch_ci(a, b) == pytest.approx((difference - half, difference + half))
    assert stats.welch_ci([0.99] * 3, [0.98] * 3) == pytest.approx((0.01, 0.01))  # no spread: a point


@pytest.mark.parametrize("a_only, b_only, p", [
    (0, 5, 2 / 32),                 # all 5 disagreements one way: both tails of binomial(5, 1/2)
    (1, 9, 2 * (1 + 10) / 1024),    # P(X <= 1) for binomial(10, 1/2), doubled
    (4, 4, 1.0),                    # an even split cannot be more even
    (0, 0, 1.0)])                   # no disagreements: nothing to test
def test_mcnemar_counts_only_the_images_the_two_disagree_on(a_only, b_only, p):
    both = 20  # images both get right, and 7 both get wrong: they change nothing
    a = np.array([True] * both + [True] * a_only + [False] * b_only + [False] * 7)
    b = np.array([True] * both + [False] * a_only + [True] * b_only + [False] * 7)
    assert stats.mcnemar_p(a, b) == {"a_only": a_only, "b_only": b_only, "p": pytest.approx(p)}
    assert stats.mcnemar_p(b, a)["p"] == pytest.approx(p)


def test_mcnemar_needs_the_same_images():
    with pytest.raises(ValueError, match="the same images"):
        stats.mcnemar_p(np.ones(5, bool), np.ones(6, bool))


def test_holm_by_hand():
    # sorted 0.01, 0.02, 0.04, 0.3 times 4, 3, 2, 1 -> 0.04, 0.06, 0.08, 0.3; given in another order
    assert stats.holm([0.04, 0.01, 0.3, 0.02]) == pytest.approx([0.08, 0.04, 0.3, 0.06])
    assert stats.holm([0.02, 0.011]) == pytest.approx([0.022, 0.022])  # never smaller than an earlier step
    assert stats.holm([0.5, 0.6]) == [1.0, 1.0] and stats.holm([]) == []
