"""Noise sequences (ImageNet-P gaussian_noise, shot_noise, speckle_noise).

Frame 0 is the clean image; frames 1 … T−1 are independent noisy copies of it, each
with fresh draws from the sample's stream. Difficulties 1–3 are separate datasets in
ImageNet-P (``<p>``, ``<p>_2``, ``<p>_3``) with stronger noise; evaluation always
compares each frame with frame 0.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from robench._rng import SampleRNG
from robench.perturbations._base import PerturbationFamily, register_perturbation


@dataclass(frozen=True)
class NoiseParams:
    """``level``: σ (Gaussian, speckle) or photon count c (shot)."""

    level: float
    frames: int = 31


def _levels(*levels: float) -> tuple[NoiseParams, ...]:
    return tuple(NoiseParams(level) for level in levels)


GAUSSIAN_NOISE = {"imagenet": _levels(0.03, 0.05, 0.08), "cifar": _levels(0.02, 0.04, 0.06)}
SHOT_NOISE = {"imagenet": _levels(300, 120, 60), "cifar": _levels(700, 400, 200)}
SPECKLE_NOISE = {"imagenet": _levels(0.05, 0.10, 0.15), "cifar": _levels(0.05, 0.07, 0.10)}


@register_perturbation("gaussian_noise", family=PerturbationFamily.NOISE, params=GAUSSIAN_NOISE)
def gaussian_noise(x: torch.Tensor, p: NoiseParams, rng: SampleRNG) -> Iterator[torch.Tensor]:
    """``x + σ·N(0, 1)`` per element (the original used torch's ``randn_like``)."""
    yield x
    for _ in range(1, p.frames):
        yield x + rng.normal(x.shape[1:], std=p.level, device=x.device, dtype=x.dtype)


@register_perturbation("shot_noise", family=PerturbationFamily.NOISE, params=SHOT_NOISE)
def shot_noise(x: torch.Tensor, p: NoiseParams, rng: SampleRNG) -> Iterator[torch.Tensor]:
    """``Poisson(c·x) / c`` per element."""
    yield x
    for _ in range(1, p.frames):
        yield rng.poisson(x * p.level) / p.level


@register_perturbation("speckle_noise", family=PerturbationFamily.NOISE, params=SPECKLE_NOISE, test=False)
def speckle_noise(x: torch.Tensor, p: NoiseParams, rng: SampleRNG) -> Iterator[torch.Tensor]:
    """``x + x·N(0, σ)`` per element."""
    yield x
    for _ in range(1, p.frames):
        yield x + x * rng.normal(x.shape[1:], std=p.level, device=x.device, dtype=x.dtype)
