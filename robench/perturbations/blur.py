"""Blur sequences (ImageNet-P motion_blur, zoom_blur, gaussian_blur).

None of them draws random numbers; difficulty is only the evaluation stride.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from robench._rng import SampleRNG
from robench.corruptions._base import quantize_uint8
from robench.corruptions._filters import skimage_gaussian
from robench.corruptions._motion import imagemagick_png8, motion_blur_image
from robench.perturbations._base import PerturbationFamily, register_perturbation
from robench.perturbations._geometry import pil_affine, pil_affine_matrix


@dataclass(frozen=True)
class MotionBlurParams:
    """ImageMagick ``radius``/``sigma``; frame i blurs along ``step·(i − offset)`` degrees."""

    radius: float
    sigma: float
    offset: int
    step: float
    frames: int

    def angle(self, i: int) -> float:
        return (i - self.offset) * self.step


MOTION_BLUR = {
    "imagenet": MotionBlurParams(radius=10, sigma=3, offset=30, step=4, frames=31),  # −120° … 0°
    "cifar": MotionBlurParams(radius=6, sigma=1.8, offset=20, step=9, frames=21),  # −180° … 0°
}


# revision 2: ImageMagick's 8-bit PNG truncates (was rounded)
@register_perturbation("motion_blur", family=PerturbationFamily.BLUR, params=MOTION_BLUR, revision=2)
def motion_blur(x: torch.Tensor, p: MotionBlurParams, rng: SampleRNG) -> Iterator[torch.Tensor]:
    """ImageMagick motion blur of the clean image at a steadily turning angle.

    Every frame is blurred (there is no clean frame) and read back from ImageMagick's
    8-bit PNG, which truncates (:func:`~robench.corruptions._motion.imagemagick_png8`).
    """
    n = x.shape[0]
    for i in range(p.frames):
        angle = torch.full((n,), float(p.angle(i)), dtype=torch.float64)
        yield imagemagick_png8(motion_blur_image(x, p.radius, p.sigma, angle))


@dataclass(frozen=True)
class ZoomBlurParams:
    """Frame i averages the clean image with its zooms by ``1 + step·k``, k = 1 … i."""

    step: float = 0.004
    frames: int = 31


ZOOM_BLUR = {"imagenet": ZoomBlurParams(), "cifar": ZoomBlurParams()}


@register_perturbation("zoom_blur", family=PerturbationFamily.BLUR, params=ZOOM_BLUR, before_crop=True)
def zoom_blur(x: torch.Tensor, p: ZoomBlurParams, rng: SampleRNG) -> Iterator[torch.Tensor]:
    """Running mean of ever stronger zooms (torchvision 0.2 ``affine``, bilinear).

    Frame 0 is the clean image; each zoomed copy is an 8-bit PIL image (truncated)
    before it enters the sum, and the mean is truncated when written.
    """
    h, w = x.shape[-2:]
    total = x.clone()
    yield x
    for i in range(1, p.frames):
        zoomed = pil_affine(x, pil_affine_matrix(w, h, scale=1 + p.step * i))
        total += quantize_uint8(zoomed)
        yield total / (i + 1)


@dataclass(frozen=True)
class GaussianBlurParams:
    """Frame i has σ = ``sigma0 + step·i`` px, kernel truncated at ``truncate``·σ."""

    sigma0: float
    step: float
    truncate: float
    frames: int = 31


GAUSSIAN_BLUR = {
    "imagenet": GaussianBlurParams(sigma0=0.25, step=0.035, truncate=6.0),  # σ 0.25 … 1.30
    "cifar": GaussianBlurParams(sigma0=0.3, step=0.015, truncate=7.0),  # σ 0.30 … 0.75
}


@register_perturbation("gaussian_blur", family=PerturbationFamily.BLUR, params=GAUSSIAN_BLUR, test=False)
def gaussian_blur(x: torch.Tensor, p: GaussianBlurParams, rng: SampleRNG) -> Iterator[torch.Tensor]:
    """scikit-image ``gaussian`` (edge-replicated borders) of growing σ; frame 0 is already blurred."""
    for i in range(p.frames):
        yield skimage_gaussian(x, p.sigma0 + p.step * i, mode="nearest", truncate=p.truncate)
