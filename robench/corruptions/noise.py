"""Noise corruptions (Hendrycks & Dietterich, ImageNet-C), batched.

Every element (channels independent) gets its own draw, exactly as the NumPy
originals; the draws come from per-sample streams (:mod:`robench._rng`). Parameters
are pixel-scale independent, so they behave the same at any image size.
"""

from __future__ import annotations

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


@register_corruption("shot_noise", family=Family.NOISE, params=SHOT_NOISE)
def shot_noise(x: torch.Tensor, photons: float, rng: SampleRNG) -> torch.Tensor:
    """Poisson(c·x)/c per element (photon-count noise with scale c)."""
    return rng.poisson(x * photons) / photons


@register_corruption("impulse_noise", family=Family.NOISE, params=IMPULSE_NOISE)
def impulse_noise(x: torch.Tensor, amount: float, rng: SampleRNG) -> torch.Tensor:
    """Salt and pepper as scikit-image ``random_noise(mode='s&p')``: each element is
    replaced with probability ``amount``, by 1 or 0 with equal probability.

    One uniform ``u`` per element decides both (``u < amount`` replaces, ``u < amount/2``
    salts), which has the original's joint distribution at half the draws.
    """
    u = rng.uniform(x.shape[1:], device=x.device)
    return torch.where(u < amount, (u < amount / 2).to(x.dtype), x)


@register_corruption("speckle_noise", family=Family.NOISE, params=SPECKLE_NOISE, test=False)
def speckle_noise(x: torch.Tensor, sigma: float, rng: SampleRNG) -> torch.Tensor:
    """Multiplicative noise x + x·N(0, σ)."""
    return x + x * rng.normal(x.shape[1:], std=sigma, device=x.device, dtype=x.dtype)
