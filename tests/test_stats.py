"""The statistics library: worked values of STATISTICS.md, determinism and coverage of the intervals."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binom, binomtest

from robench.errors import InputError
from robench.stats import Bootstrap, bca_interval, bootstrap_p, cohen_kappa, holm, mcnemar, paired_t, wilson
from robench.stats.bootstrap import percentile_interval, tail_rank
from robench.stats.paired import discordance
from robench.stats.sample import RatioSample


@pytest.mark.parametrize(("k", "n", "lo", "hi"), [(153, 2000, 6.56, 8.90), (11925, 50000, 23.48, 24.23)])
def test_wilson_matches_the_worked_values(k, n, lo, hi):
    # STATISTICS.md §1 prints 6.57 for the first lower bound; the formula (and scipy) give 6.5646.
    got = wilson(k, n)
    assert 100 * got[0] == pytest.approx(lo, abs=0.005) and 100 * got[1] == pytest.approx(hi, abs=0.005)
    ref = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert (got[0], got[1]) == pytest.approx((ref.low, ref.high), abs=1e-12)


def test_wilson_is_exact_at_the_edges_and_vectorised():
    lo, hi = wilson(np.array([0, 7500]), np.array([7500, 7500]))
    assert lo[0] == 0.0 and 100 * hi[0] == pytest.approx(0.051, abs=0.0005)
    assert hi[1] == 1.0 and lo[1] < 1.0
    with pytest.raises(InputError):
        wilson(5, 3)


def test_wilson_coverage_is_near_nominal():
    # Exact coverage (no simulation): sum the binomial probabilities of the k whose interval holds p.
    for n in (200, 2000):
        for p in (0.05, 0.1, 0.3, 0.5):
            k = np.arange(n + 1)
            lo, hi = wilson(k, n)
            coverage = binom.pmf(k, n, p)[(lo <= p) & (p <= hi)].sum()
            assert 0.93 <= coverage <= 0.97, (n, p, coverage)


@pytest.mark.parametrize(("b", "c", "exact", "mid"), [(30, 15, 0.0357, 0.0259), (12, 3, 0.0352, 0.0213)])
def test_mcnemar_matches_the_worked_values(b, c, exact, mid):
    t = mcnemar(b, c)
    assert t.p_exact == pytest.approx(exact, abs=5e-5) and t.p_mid == pytest.approx(mid, abs=5e-5)
    assert mcnemar(c, b) == mcnemar(b, c).__class__(c, b, t.p_exact, t.p_mid)  # symmetric


def test_mcnemar_without_a_difference_gives_one():
    assert mcnemar(0, 0).p_mid == 1.0 and mcnemar(0, 0).p_exact == 1.0
    assert mcnemar(7, 7).p_mid == pytest.approx(1.0)  # Fagerland's mid-p: 2·P(X ≤ m) − P(X = m) = 1 at b = c


def test_holm_adjusts_like_the_definition():
    p = [0.01, 0.04, 0.03, 0.005, float("nan")]
    adj = holm(p)
    # sorted 0.005, 0.01, 0.03, 0.04 → 4·0.005, max(…, 3·0.01), max(…, 2·0.03), max(…, 0.04)
    assert adj[:4] == pytest.approx([0.03, 0.06, 0.06, 0.02]) and np.isnan(adj[4])
    assert np.all(adj[:4] >= np.array(p[:4]))


def test_kappa_matches_the_worked_value_and_its_limits():
    assert cohen_kappa(1809, 38, 43, 110) == pytest.approx(0.709, abs=5e-4)
    assert cohen_kappa(90, 0, 0, 10) == 1.0
    assert discordance([True, True, False, False], [True, False, True, False]) == (1, 1, 1, 1)


def test_paired_t_interval_uses_student_quantiles():
    a, b = [30.0, 31.0, 29.5], [29.0, 30.5, 28.0]
    s = paired_t(a, b)
    d = np.array(b) - np.array(a)
    half = 4.303 * d.std(ddof=1) / np.sqrt(3)
    assert s.seeds == 3 and s.mean == pytest.approx(d.mean())
    assert (s.lo, s.hi) == pytest.approx((d.mean() - half, d.mean() + half), abs=1e-3)
    assert 0.0 < s.p < 1.0
    assert paired_t([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]).p == 1.0


def test_replicate_weights_depend_only_on_seed_and_replicate():
    boot = Bootstrap(replicates=40, seed=3)
    whole = boot.weights(100, 0, 40)
    assert np.array_equal(whole[10:20], boot.weights(100, 10, 20))  # a chunk is the same rows
    assert np.all(whole.sum(axis=1) == 100)  # multinomial: n draws per replicate
    assert not np.array_equal(whole, Bootstrap(40, seed=4).weights(100, 0, 40))
    z = (np.random.default_rng(0).random((100, 3)) < 0.3).astype(float)
    assert np.array_equal(boot.sums(z), whole @ z)


def test_bootstrap_rejects_bad_settings():
    for bad in ({"replicates": 0}, {"seed": -1}, {"confidence": 1.0}):
        with pytest.raises(InputError):
            Bootstrap(**bad)


def test_identical_models_give_a_zero_delta_and_p_one():
    star = np.zeros(500)
    iv = percentile_interval(star)
    assert (iv.lo, iv.hi) == (0.0, 0.0) and bootstrap_p(star) == 1.0
    assert bootstrap_p(np.full(999, 0.5)) == pytest.approx(1 / 1000)


def test_ratio_sample_summed_cells_equal_the_sum_of_their_cells():
    rng = np.random.default_rng(1)
    s = RatioSample(np.arange(50), Bootstrap(30))
    for level in (1, 2, 3):
        s.add(("c", level), np.arange(50), rng.random(50) < 0.3)
    assert s.add_sum(("c", "all"), [("c", 1), ("c", 2), ("c", 3)])
    parts = s.replicates([("c", 1), ("c", 2), ("c", 3)]).sum(axis=1)
    assert np.allclose(s.replicates([("c", "all")])[:, 0], parts)
    s.add(("d", 1), np.arange(10), np.ones(10))
    assert not s.add_sum(("mixed", 0), [("c", 1), ("d", 1)])  # different images: no common denominator


def _coverage(method: str, sims: int = 150) -> float:
    """Share of simulated datasets whose interval holds the true value of a correlated 4-cell mean error."""
    rates = np.array([0.1, 0.2, 0.3, 0.4])
    truth = rates.mean()
    rng = np.random.default_rng(12)
    thresholds = np.quantile(0.5 * rng.random(200_000) + 0.5 * rng.random(200_000), 1 - rates)
    hits = 0
    for sim in range(sims):
        n = 300
        shared = rng.random(n)[:, None]  # a per-image difficulty shared by the four cells
        wrong = (0.5 * shared + 0.5 * rng.random((n, 4))) > thresholds
        sample = RatioSample(np.arange(n), Bootstrap(400, seed=sim))
        keys = []
        for k in range(4):
            sample.add(k, np.arange(n), wrong[:, k])
            keys.append(k)
        star = sample.replicates(keys).mean(axis=1)
        point = float(sample.point(keys).mean())
        iv = (bca_interval(star, point, sample.jackknife(keys).mean(axis=1)) if method == "bca"
              else percentile_interval(star))
        hits += iv.lo <= truth <= iv.hi
    return hits / sims


@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_bootstrap_coverage_is_near_nominal(method):
    # 150 simulated datasets: Monte-Carlo SE of the coverage ≈ 0.018, so ±0.06 is > 3 SE.
    assert 0.89 <= _coverage(method) <= 1.0


@pytest.mark.parametrize("replicates", [2000, 999, 300])
def test_delta_interval_excludes_zero_exactly_when_p_is_below_alpha(replicates):
    rng = np.random.default_rng(5)
    for shift in np.linspace(0.0, 3.0, 41):
        star = np.round(rng.normal(shift, 1.0, replicates), 1)  # rounding makes ties at 0
        iv = percentile_interval(star)
        assert (bootstrap_p(star) < 0.05) == (iv.lo > 0 or iv.hi < 0), (replicates, shift)
    assert tail_rank(2000) == 49  # the 50th of 2,000 sorted replicates: the 2.5 % point
