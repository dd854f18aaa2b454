"""Noise corruptions (Hendrycks & Dietterich, ImageNet-C), batched.

Every element (channels independent) gets its own draw, exactly as the NumPy
originals; the draws come from per-sample streams (:mod:`robench._rng`). Parameters
are pixel-scale independent, so they behave the same at any image size.
"""

from __future__ import annotations

import functools
import math

import torch

from robench._rng import SampleRNG
from robench.corruptions._base import Family, register_corruption

GAUSSIAN_NOISE = {
    "imagenet": (0.08, 0.12, 0.18, 0.26, 0.38),
    "tinyimagenet": (0.04, 0.08, 0.12, 0.15, 0.18),
    "cifar": (0.04, 0.06, 0.08, 0.09, 0.10),
}
SHOT_NOISE = {
    "imagenet": (60, 25, 12, 5, 3),
    "tinyimagenet": (250, 100, 50, 30, 15),
    "cifar": (500, 250, 100, 75, 50),
}
IMPULSE_NOISE = {
    "imagenet": (0.03, 0.06, 0.09, 0.17, 0.27),
    "tinyimagenet": (0.01, 0.02, 0.05, 0.08, 0.14),
    "cifar": (0.01, 0.02, 0.03, 0.05, 0.07),
}
SPECKLE_NOISE = {
    "imagenet": (0.15, 0.2, 0.35, 0.45, 0.6),
    "tinyimagenet": (0.15, 0.2, 0.25, 0.3, 0.35),
    "cifar": (0.06, 0.1, 0.12, 0.16, 0.2),
}


@register_corruption("gaussian_noise", family=Family.NOISE, params=GAUSSIAN_NOISE)
def gaussian_noise(x: torch.Tensor, sigma: float, rng: SampleRNG) -> torch.Tensor:
    """Additive N(0, σ) per element."""
    return x + rng.normal(x.shape[1:], std=sigma, device=x.device, dtype=x.dtype)


LEVELS = 255
"""Grid of the table-driven Poisson sampler: rates ``j·c/255`` (exact for 8-bit images)."""
_GUIDE = 1024  # guide-table buckets per rate


@functools.lru_cache(maxsize=16)
def _poisson_tables(scale: float) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Per grid rate ``λ_j = j·scale/255``: the CDF row ``F_j(k)``, k < K (float64, last
    entry +inf), and the guide table ``G[j, m] = min{k : F_j(k) > m/M}``, m = 0 … M
    (``G[j, M] = K − 1``); flattened, guide entries as flat CDF positions; and ``K``."""
    lam = torch.arange(LEVELS + 1, dtype=torch.float64) * (scale / LEVELS)
    top = float(lam[-1])
    width = int(top + 12.0 * math.sqrt(top) + 40.0)  # P(X ≥ width) < 1e-25 for every row
    k = torch.arange(width, dtype=torch.float64)
    logp = k * lam[:, None].clamp_min(1e-300).log() - lam[:, None] - torch.lgamma(k + 1)
    cdf = logp.exp().cumsum(1)
    cdf /= cdf[:, -2:-1].clone()  # total mass exactly 1: a uniform in [0, 1) always stops
    cdf[:, -1] = math.inf
    grid = torch.arange(_GUIDE + 1, dtype=torch.float64) / _GUIDE
    guide = torch.searchsorted(cdf, grid.expand(LEVELS + 1, -1).contiguous(), right=True)
    offsets = torch.arange(LEVELS + 1)[:, None] * width
    return cdf.reshape(-1), (guide + offsets).reshape(-1), width


def _small_poisson(rates: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Poisson draws by sequential inversion, for small rates (a few steps per element).

    Element by element: an element stops when ``u`` falls below its CDF or its float64 tail
    is exhausted, so a draw does not depend on the other elements passed along with it.
    """
    out = torch.zeros_like(rates)
    p = torch.exp(-rates)
    cdf = p.clone()
    idx = (u >= cdf).nonzero().squeeze(1)
    k = 0
    while idx.numel():
        k += 1
        p_i = p[idx] * rates[idx] / k
        live = p_i > 0
        idx, p_i = idx[live], p_i[live]
        p[idx] = p_i
        cdf[idx] += p_i
        out[idx] += 1
        idx = idx[u[idx] >= cdf[idx]]
    return out


def _grid_poisson(level: torch.Tensor, u: torch.Tensor, scale: float) -> torch.Tensor:
    """Poisson(``level·scale/255``) for integer ``level`` (long, 0 … 255) by inverting ``u``:
    ``min{k : F(k) > u}``, found by binary search between the guide entries of ``u``'s
    bucket and the next (the answer lies between them). Elementwise, for any shape."""
    cdf, guide, width = _poisson_tables(scale)
    bucket = (u.reshape(-1) * _GUIDE).long().add_(level.reshape(-1), alpha=_GUIDE + 1)
    lo = guide.index_select(0, bucket)
    hi = guide.index_select(0, bucket.add_(1))
    wide = (hi > lo).nonzero().squeeze(1)
    if wide.numel():
        a, b, uw = lo.index_select(0, wide), hi.index_select(0, wide), u.reshape(-1).index_select(0, wide)
        for _ in range(int((b - a).max()).bit_length()):  # invariant: F(b) > u ≥ F(a − 1)
            mid = (a + b) >> 1
            right = uw >= cdf.index_select(0, mid)
            a = torch.where(right, mid + 1, a)
            b = torch.where(right, b, mid)
        lo.index_copy_(0, wide, a)
    return lo.sub_(level.reshape(-1), alpha=width).view(level.shape)


def poisson_unit(x: torch.Tensor, scale: float, rng: SampleRNG) -> torch.Tensor:
    """Exact Poisson(``scale·x``) draws for ``x ≥ 0`` (N×…), one stream per sample.

    The rate splits as ``λ = j·scale/255 + δ`` with ``j = ⌊255·x⌋``; Poisson(λ) is the
    sum of independent Poisson(j·scale/255) and Poisson(δ) draws. The first comes from
    a precomputed CDF row by inversion of one float64 uniform (a guide table and a short
    binary search make it O(1)); the second, only needed off the 8-bit grid, by
    sequential inversion of a second uniform field, drawn for the images that have
    off-grid values. Values within 1e-4 grey levels of a level count as on it (float32
    holds ``k/255`` only to about 1e-5 levels), a rate change below 1e-6·scale. Sample
    ``i``'s draws come from its own stream and the inversion is elementwise, so a draw
    does not depend on the batch. Returns float64 counts on the CPU.
    """
    n = len(x)
    q = x.detach().to("cpu", torch.float32).reshape(n, -1).clamp_min(0.0).mul_(LEVELS)
    level = q.round()
    off = ((q - level).abs_() >= 1e-4) | (level > LEVELS)
    u = torch.empty(q.shape, dtype=torch.float64)
    for row, g in zip(u, rng.generators, strict=True):
        torch.rand(row.shape, generator=g, dtype=torch.float64, out=row)
    images = off.any(dim=1).nonzero().squeeze(1).tolist()
    if not images:
        return _grid_poisson(level.long(), u, scale).double().view(x.shape)
    level = torch.where(off, q.floor(), level).clamp_(max=LEVELS)
    counts = _grid_poisson(level.long(), u, scale).double()
    for i in images:
        row, g = off[i], rng.generators[i]
        u2 = torch.rand(q.shape[1], generator=g, dtype=torch.float64)[row]
        rest = (q[i][row].double() - level[i][row]).clamp_min_(0.0) * (scale / LEVELS)
        counts[i][row] += _small_poisson(rest, u2)
    return counts.view(x.shape)


@register_corruption("shot_noise", family=Family.NOISE, params=SHOT_NOISE)
def shot_noise(x: torch.Tensor, photons: float, rng: SampleRNG) -> torch.Tensor:
    """Poisson(c·x)/c per element (photon-count noise with scale c), drawn by
    :func:`poisson_unit`."""
    return (poisson_unit(x, photons, rng) / photons).to(x.device, x.dtype)


@register_corruption("impulse_noise", family=Family.NOISE, params=IMPULSE_NOISE)
def impulse_noise(x: torch.Tensor, amount: float, rng: SampleRNG) -> torch.Tensor:
    """Salt and pepper as scikit-image ``random_noise(mode='s&p')``: each element is
    replaced with probability ``amount``, by 1 or 0 with equal probability.

    One uniform ``u`` per element decides both (``u < amount`` replaces, ``u < amount/2``
    salts), which has the original's joint distribution at half the draws. Runs image
    by image (cache-sized pieces).
    """
    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    for xi, g, oi in zip(x, rng.generators, out, strict=True):
        u = torch.rand(xi.shape, generator=g).to(x.device)
        torch.where(u < amount, (u < amount / 2).to(x.dtype), xi, out=oi)
    return out


@register_corruption("speckle_noise", family=Family.NOISE, params=SPECKLE_NOISE, test=False)
def speckle_noise(x: torch.Tensor, sigma: float, rng: SampleRNG) -> torch.Tensor:
    """Multiplicative noise x + x·N(0, σ)."""
    return x + x * rng.normal(x.shape[1:], std=sigma, device=x.device, dtype=x.dtype)
