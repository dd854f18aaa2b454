"""Wilson score interval of a binomial proportion (Wilson, JASA 22:209, 1927; STATISTICS.md §1)."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

from robench.errors import InputError


def z_value(confidence: float) -> float:
    """Φ⁻¹(1 − α/2) of a two-sided ``confidence`` level (1.95996 for 0.95)."""
    if not 0.0 < confidence < 1.0:
        raise InputError(f"Confidence level must lie strictly between 0 and 1, got {confidence}.")
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def wilson(k: np.ndarray | int, n: np.ndarray | int, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson interval ``(lo, hi)`` of the proportion ``k / n`` (fractions; arrays broadcast).

    ``n == 0`` gives NaN bounds: no images, no interval.
    """
    k = np.asarray(k, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    if np.any(k < 0) or np.any(k > n):
        raise InputError("Wilson interval needs 0 ≤ k ≤ n.")
    z = z_value(confidence)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        denom = 1.0 + z * z / n
        centre = (p + z * z / (2.0 * n)) / denom
        half = z / denom * np.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n))
        lo = np.clip(centre - half, 0.0, 1.0)
        hi = np.clip(centre + half, 0.0, 1.0)
    # At k = 0 (k = n) the exact bound is 0 (1); keep it exact instead of a rounding residue.
    lo = np.where(k == 0, 0.0, lo)
    hi = np.where(k == n, 1.0, hi)
    return lo, hi
