"""Paired comparisons of two models on the same images (STATISTICS.md §2.3, §3, §4, §5).

Conventions: ``delta = B − A`` (robench reports GCP − GAP); for McNemar and κ, ``b`` counts the images
A gets right and B wrong, ``c`` those A gets wrong and B right.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import binom

from robench.errors import InputError
from robench.stats.bootstrap import Interval, percentile_interval


def bootstrap_p(delta_star: np.ndarray) -> float:
    """Two-sided p-value of ``delta = 0`` from paired-bootstrap replicates of the delta.

    ``p = min(1, (1 + 2·min(#{Δ* ≤ 0}, #{Δ* ≥ 0})) / (B + 1))`` — STATISTICS.md §2.3 with the usual
    add-one correction (Davison & Hinkley 1997, §4.4), so a p-value is never reported as exactly 0.
    Identical models (every Δ* = 0) give p = 1.
    """
    star = np.asarray(delta_star, dtype=np.float64)
    star = star[np.isfinite(star)]
    if star.size == 0:
        return float("nan")
    tail = min(int(np.sum(star <= 0)), int(np.sum(star >= 0)))
    return float(min(1.0, (1 + 2 * tail) / (star.size + 1)))


def delta_interval(delta_star: np.ndarray, confidence: float = 0.95) -> Interval:
    """Percentile interval of paired-bootstrap delta replicates (shared image weights for both models)."""
    return percentile_interval(delta_star, confidence)


@dataclass(frozen=True)
class McNemar:
    """McNemar's test of one cell: discordant counts and two-sided p-values."""

    b: int
    c: int
    p_exact: float
    p_mid: float


def mcnemar(b: int, c: int) -> McNemar:
    """Exact conditional McNemar test and its mid-p (Fagerland, Lydersen & Laake 2013).

    With N = b + c discordant images and m = min(b, c), X ~ Binomial(N, ½):
    exact ``p = min(1, 2·P(X ≤ m))``, mid-p ``= 2·P(X ≤ m) − P(X = m)`` (capped at 1). For ``b = c``
    the mid-p is exactly 1 by symmetry, as it is when there is no discordant image at all.
    """
    if b < 0 or c < 0:
        raise InputError(f"McNemar counts must be non-negative, got b={b}, c={c}.")
    n, m = int(b) + int(c), min(int(b), int(c))
    if n == 0:
        return McNemar(int(b), int(c), 1.0, 1.0)
    cdf = float(binom.cdf(m, n, 0.5))
    pmf = float(binom.pmf(m, n, 0.5))
    return McNemar(int(b), int(c), min(1.0, 2.0 * cdf), min(1.0, 2.0 * cdf - pmf))


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (Holm 1979): ``p̃₍ᵢ₎ = max_{j≤i} min(1, (m − j + 1)·p₍ⱼ₎)``.

    NaN p-values are left out of the family and stay NaN.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    valid = np.flatnonzero(np.isfinite(p))
    m = valid.size
    if m == 0:
        return out
    order = valid[np.argsort(p[valid], kind="stable")]
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out


def discordance(correct_a: np.ndarray, correct_b: np.ndarray) -> tuple[int, int, int, int]:
    """The 2×2 table ``(a, b, c, d)``: both right, A right & B wrong, A wrong & B right, both wrong."""
    ra = np.asarray(correct_a, dtype=bool)
    rb = np.asarray(correct_b, dtype=bool)
    if ra.shape != rb.shape:
        raise InputError(f"Paired outcomes need the same images, got {ra.shape} and {rb.shape}.")
    return (int(np.sum(ra & rb)), int(np.sum(ra & ~rb)), int(np.sum(~ra & rb)), int(np.sum(~ra & ~rb)))


def cohen_kappa(a: int, b: int, c: int, d: int) -> float:
    """Error consistency κ of two classifiers from their 2×2 table (Geirhos et al. 2020; STATISTICS.md §5).

    κ = (c_obs − c_exp)/(1 − c_exp); 1 when the two are right and wrong on exactly the same images.
    """
    n = a + b + c + d
    if n == 0:
        return float("nan")
    observed = (a + d) / n
    p1, p2 = (a + b) / n, (a + c) / n
    expected = p1 * p2 + (1 - p1) * (1 - p2)
    if observed == 1.0:
        return 1.0
    return (observed - expected) / (1.0 - expected)
