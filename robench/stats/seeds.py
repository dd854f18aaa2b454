"""Variation across training seeds (STATISTICS.md §6): group mean ± sd and the paired-by-seed t interval."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import t as student_t

from robench.errors import InputError
from robench.stats.binomial import z_value


@dataclass(frozen=True)
class SeedSummary:
    """Mean, sample sd (S − 1) and the t interval of the mean over S seeds (NaN bounds for S < 2)."""

    seeds: int
    mean: float
    sd: float
    lo: float
    hi: float
    p: float  # two-sided t test of mean = 0 (meaningful for paired differences)


def seed_summary(values: Sequence[float], confidence: float = 0.95) -> SeedSummary:
    """``mean ± t_{1−α/2, S−1}·sd/√S`` over the seeds' values (NaNs are not seeds)."""
    z_value(confidence)
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=np.float64)
    s = v.size
    if s == 0:
        raise InputError("A seed summary needs at least one finite value.")
    mean = float(v.mean())
    if s < 2:
        return SeedSummary(1, mean, math.nan, math.nan, math.nan, math.nan)
    sd = float(v.std(ddof=1))
    q = float(student_t.ppf(0.5 + confidence / 2.0, s - 1))
    half = q * sd / math.sqrt(s)
    if sd == 0.0:
        p = 1.0 if mean == 0.0 else 0.0
    else:
        p = float(2.0 * student_t.sf(abs(mean) / (sd / math.sqrt(s)), s - 1))
    return SeedSummary(s, mean, sd, mean - half, mean + half, p)


def paired_t(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> SeedSummary:
    """Paired-by-seed differences ``d_s = b_s − a_s``: their mean, sd, t interval and t-test p-value."""
    if len(a) != len(b):
        raise InputError(f"Paired seeds need as many values on each side, got {len(a)} and {len(b)}.")
    return seed_summary([y - x for x, y in zip(a, b)], confidence)
