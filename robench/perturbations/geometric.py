"""Geometric sequences (ImageNet-P translate, rotate, tilt, scale, shear).

ImageNet-P warps the 256-px resized image and then takes the 224-px centre crop, so
the crop's borders are filled from outside it. Pass ``crop=224`` with the uncropped
image to reproduce that exactly. Without ``crop`` the given image itself is warped,
and whatever the warp brings in from outside it is black (PIL's and OpenCV's fill),
as in CIFAR-10-P, which warps the whole 32-px image.

Affine warps use torchvision 0.2's matrix (the version the generator called with
``resample=``) and PIL sampling; tilt uses OpenCV's ``warpPerspective``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from robench._rng import SampleRNG
from robench.perturbations._base import PerturbationFamily, register_perturbation
from robench.perturbations._geometry import (
    cv_warp_perspective,
    pil_affine,
    pil_affine_matrix,
    shift,
    tilt_matrix,
)


@dataclass(frozen=True)
class CenteredParams:
    """Frame i uses ``factor·(i − offset)`` (pixels or degrees)."""

    offset: int
    factor: float = 1.0
    frames: int = 31

    def value(self, i: int) -> float:
        return self.factor * (i - self.offset)


TRANSLATE = {
    "imagenet": CenteredParams(offset=20, frames=41),  # −20 … +20 px
    "cifar": CenteredParams(offset=7, frames=16),  # −7 … +8 px
}
ROTATE = {"imagenet": CenteredParams(offset=15), "cifar": CenteredParams(offset=15)}  # −15° … +15°
SHEAR = {"imagenet": CenteredParams(offset=15), "cifar": CenteredParams(offset=15)}  # −15° … +15°
TILT = {
    "imagenet": CenteredParams(offset=15),  # φ = θ = −15° … +15°
    "cifar": CenteredParams(offset=15, factor=0.75),  # −11.25° … +11.25°
}


@dataclass(frozen=True)
class ScaleParams:
    """Frame i scales by ``(base + step·i) / 100``."""

    base: float
    step: float
    frames: int = 31

    def value(self, i: int) -> float:
        return (i * self.step + self.base) / 100.0


SCALE = {
    "imagenet": ScaleParams(base=40, step=2.5),  # 0.40 … 1.15
    "cifar": ScaleParams(base=70, step=2),  # 0.70 … 1.30
}

_GEOMETRIC = PerturbationFamily.GEOMETRIC


@register_perturbation("translate", family=_GEOMETRIC, params=TRANSLATE, before_crop=True)
def translate(x: torch.Tensor, p: CenteredParams, rng: SampleRNG) -> Iterator[torch.Tensor]:
    """Horizontal shift by ``i − offset`` whole pixels (nearest neighbour, torchvision's default)."""
    for i in range(p.frames):
        yield shift(x, int(p.value(i)))


@register_perturbation("rotate", family=_GEOMETRIC, params=ROTATE, before_crop=True)
def rotate(x: torch.Tensor, p: CenteredParams, rng: SampleRNG) -> Iterator[torch.Tensor]:
    """Rotation by ``i − 15`` degrees about the centre, bilinear."""
    h, w = x.shape[-2:]
    for i in range(p.frames):
        yield pil_affine(x, pil_affine_matrix(w, h, angle=p.value(i)))


@register_perturbation("scale", family=_GEOMETRIC, params=SCALE, before_crop=True)
def scale(x: torch.Tensor, p: ScaleParams, rng: SampleRNG) -> Iterator[torch.Tensor]:
    """Scaling about the centre, bilinear; shrunk images are framed in black."""
    h, w = x.shape[-2:]
    for i in range(p.frames):
        yield pil_affine(x, pil_affine_matrix(w, h, scale=p.value(i)))


@register_perturbation("shear", family=_GEOMETRIC, params=SHEAR, test=False, before_crop=True)
def shear(x: torch.Tensor, p: CenteredParams, rng: SampleRNG) -> Iterator[torch.Tensor]:
    """Shear by ``i − 15`` degrees (torchvision 0.2's single-angle shear), bilinear."""
    h, w = x.shape[-2:]
    for i in range(p.frames):
        yield pil_affine(x, pil_affine_matrix(w, h, shear=p.value(i)))


@register_perturbation("tilt", family=_GEOMETRIC, params=TILT, before_crop=True)
def tilt(x: torch.Tensor, p: CenteredParams, rng: SampleRNG) -> Iterator[torch.Tensor]:
    """Perspective tilt about both image axes by the same angle (focal length = diagonal)."""
    h, w = x.shape[-2:]
    for i in range(p.frames):
        angle = p.value(i)
        yield cv_warp_perspective(x, tilt_matrix(w, h, angle, angle))
