"""Image-level (cluster) bootstrap of per-cell rates and of aggregates over cells (STATISTICS.md §2.2).

Every cell statistic robench reports is a ratio of per-image sums — errors over images, flips over frame
pairs, top-5 distances over pairs — so a replicate is a weight vector over the *source images*:
``rate_b = Σ_i w_bi x_i / Σ_i w_bi m_i``. The weights of replicate ``b`` are the counts of a multinomial
resample of the n image positions (n draws with replacement), drawn from a generator seeded with
``(seed, b)`` alone, so a replicate never depends on the chunking, on the other replicates or on the order
in which models are processed. The same weights serve every cell and every model of a suite, which
makes differences between models paired by construction.

Determinism: the per-image columns are integers (bits, flip counts, distance sums, pair counts) and the
weights are counts, so each replicate sum ``counts @ columns`` is an exact integer in float64 whatever
order BLAS adds it in — the same store gives byte-identical intervals on any machine with this NumPy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from robench.errors import InputError
from robench.stats.binomial import z_value

_CHUNK_ELEMENTS = 1 << 22  # weights held at once (32 MiB of float64), whatever n and B are


@dataclass(frozen=True)
class Bootstrap:
    """How intervals are resampled.

    Attributes:
        replicates: Number of bootstrap replicates B (STATISTICS.md §2.2: 2,000 for interval endpoints).
        seed: Recorded integer seed; replicate b draws from a generator seeded with ``(seed, b)``.
        confidence: Two-sided confidence level of every interval.
    """

    replicates: int = 2000
    seed: int = 0
    confidence: float = 0.95

    def __post_init__(self) -> None:
        if isinstance(self.replicates, bool) or not isinstance(self.replicates, int) or self.replicates < 1:
            raise InputError(f"Bootstrap replicates must be a positive integer, got {self.replicates!r}.")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise InputError(f"Bootstrap seed must be a non-negative integer, got {self.seed!r}.")
        z_value(self.confidence)  # validates the level

    def weights(self, n: int, start: int, stop: int) -> np.ndarray:
        """Resample counts of replicates ``start … stop − 1``: a ``(stop − start) × n`` float64 matrix.

        Row b holds how often each of the n images was drawn in replicate b (rows sum to n).
        """
        out = np.empty((stop - start, n), dtype=np.float64)
        for row, b in enumerate(range(start, stop)):
            rng = np.random.default_rng((self.seed, b))
            out[row] = np.bincount(rng.integers(0, n, size=n), minlength=n)
        return out

    def sums(self, columns: np.ndarray) -> np.ndarray:
        """Replicate sums ``Σ_i w_bi z_ik`` of an ``n × k`` per-image matrix: a ``B × k`` array.

        Works through the replicates in chunks so that memory stays bounded for any n and B.
        """
        columns = np.asarray(columns, dtype=np.float64)
        n, k = columns.shape
        out = np.empty((self.replicates, k), dtype=np.float64)
        if n == 0:
            out.fill(0.0)
            return out
        step = max(1, _CHUNK_ELEMENTS // n)
        for start in range(0, self.replicates, step):
            stop = min(self.replicates, start + step)
            out[start:stop] = self.weights(n, start, stop) @ columns
        return out

    def describe(self) -> str:
        return f"{100 * self.confidence:g} % intervals, image bootstrap B = {self.replicates}, seed = {self.seed}"


@dataclass(frozen=True)
class Interval:
    """Bounds of one interval and how they were obtained."""

    lo: float
    hi: float
    method: str


def _quantiles(star: np.ndarray, probs: np.ndarray) -> np.ndarray:
    finite = star[np.isfinite(star)]
    if finite.size == 0:
        return np.full(len(probs), np.nan)
    return np.quantile(finite, probs)


def tail_rank(replicates: int, confidence: float = 0.95) -> int:
    """0-based rank of the lower percentile endpoint among ``replicates`` sorted values.

    The ``(B + 1)·α/2``-th order statistic (Davison & Hinkley 1997, §5.2), rounded so that ``0`` lies
    outside a delta's interval exactly when :func:`robench.stats.paired.bootstrap_p` is below α.
    """
    alpha = 1.0 - confidence
    return max(0, math.ceil((alpha * (replicates + 1) - 1) / 2) - 1)


def percentile_interval(star: np.ndarray, confidence: float = 0.95) -> Interval:
    """Percentile interval ``[θ*_(k), θ*_(B+1−k)]``, k = (B + 1)·α/2, of replicates ``star`` (order
    statistics, no interpolation; non-finite replicates ignored)."""
    finite = np.sort(np.asarray(star, dtype=np.float64)[np.isfinite(star)])
    if finite.size == 0:
        return Interval(np.nan, np.nan, "percentile")
    k = min(tail_rank(finite.size, confidence), (finite.size - 1) // 2)
    return Interval(float(finite[k]), float(finite[finite.size - 1 - k]), "percentile")


def acceleration(jackknife: np.ndarray) -> float:
    """BCa acceleration from leave-one-image-out values θ₍ᵢ₎ (Efron & Tibshirani 1993, eq. 14.15)."""
    jack = np.asarray(jackknife, dtype=np.float64)
    jack = jack[np.isfinite(jack)]
    d = jack.mean() - jack if jack.size else jack
    den = 6.0 * float(np.sum(d * d)) ** 1.5
    return float(np.sum(d**3)) / den if den > 0 else 0.0


def bca_interval(star: np.ndarray, estimate: float, jackknife: np.ndarray, confidence: float = 0.95) -> Interval:
    """Bias-corrected and accelerated interval (Efron, JASA 82:171, 1987; STATISTICS.md §2.2).

    Falls back to the percentile interval when the bias correction is undefined (every replicate on one
    side of the estimate, e.g. a degenerate statistic) — method then says ``percentile``.
    """
    from statistics import NormalDist

    star = np.asarray(star, dtype=np.float64)
    finite = star[np.isfinite(star)]
    if finite.size == 0 or not np.isfinite(estimate):
        return Interval(np.nan, np.nan, "bca")
    below = float(np.mean(finite < estimate))
    if not 0.0 < below < 1.0:
        return percentile_interval(finite, confidence)
    nd = NormalDist()
    z0 = nd.inv_cdf(below)
    a = acceleration(jackknife)
    z = z_value(confidence)
    probs = []
    for zq in (-z, z):
        shifted = z0 + zq
        probs.append(nd.cdf(z0 + shifted / (1.0 - a * shifted)))
    lo, hi = _quantiles(finite, np.array(probs))
    return Interval(float(lo), float(hi), "bca")
