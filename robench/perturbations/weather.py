"""Weather and photometric sequences (ImageNet-P snow, brightness, spatter)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from robench._rng import SampleRNG
from robench.corruptions._filters import skimage_gaussian
from robench.corruptions._motion import imagemagick_png8, motion_blur_image
from robench.corruptions._zoom import clipped_zoom
from robench.corruptions.weather import _water_mask, water_blackout
from robench.corruptions.weather import brightness as hsv_brightness
from robench.perturbations._base import (
    PerturbationFamily,
    register_perturbation,
    rgb_to_gray,
)


@dataclass(frozen=True)
class SnowParams:
    """One layer ``N(loc, scale)``, zoomed by ``zoom``, zero below ``threshold``; frame i
    motion-blurs it (ImageMagick ``radius``/``sigma``) along ``angle0 + step·i`` degrees."""

    zoom: float
    radius: float
    sigma: float
    loc: float = 0.05
    scale: float = 0.3
    threshold: float = 0.5
    angle0: float = -150
    step: float = 4
    blend: float = 0.85
    frames: int = 31


SNOW = {
    "imagenet": SnowParams(zoom=3, radius=14, sigma=4),  # −150° … −30°
    "cifar": SnowParams(zoom=2, radius=10, sigma=2),
}


@register_perturbation("snow", family=PerturbationFamily.WEATHER, params=SNOW, revision=2)  # 2: PNG truncates
def snow(x: torch.Tensor, p: SnowParams, rng: SampleRNG) -> Iterator[torch.Tensor]:
    """Falling snow: one random snow layer per sample, smeared along a turning direction.

    The layer is stored as an 8-bit grey image (truncated), as the original's PNG, and
    each blurred copy is read back from ImageMagick's 8-bit PNG, which truncates
    (:func:`~robench.corruptions._motion.imagemagick_png8`). The image is
    brightened once: ``blend·x + (1 − blend)·max(x, 1.5·grey + 0.5)``; each frame adds
    the layer and its 180° rotation. Off the native square sizes the zoom acts on
    each axis separately.
    """
    n, _, h, w = x.shape
    layer = rng.normal((1, h, w), mean=p.loc, std=p.scale, dtype=torch.float64)
    layer = clipped_zoom(layer, p.zoom)
    layer = torch.where(layer < p.threshold, torch.zeros_like(layer), layer)
    layer8 = (torch.floor(layer.clamp(0.0, 1.0) * 255.0) / 255.0).to(x.device, x.dtype)
    base = p.blend * x + (1 - p.blend) * torch.maximum(x, rgb_to_gray(x) * 1.5 + 0.5)
    for i in range(p.frames):
        angle = torch.full((n,), float(p.angle0 + p.step * i), dtype=torch.float64)
        flakes = imagemagick_png8(motion_blur_image(layer8, p.radius, p.sigma, angle))
        yield base + flakes + flakes.flip(-2, -1)


@dataclass(frozen=True)
class BrightnessParams:
    """Frame i adds ``(i − offset)·percent / 100`` to the HSV value."""

    percent: float
    offset: int = 15
    frames: int = 31

    def delta(self, i: int) -> float:
        return (i - self.offset) * self.percent / 100.0


BRIGHTNESS = {
    "imagenet": BrightnessParams(percent=2),  # −0.30 … +0.30
    "cifar": BrightnessParams(percent=1.5),  # −0.225 … +0.225
}


@register_perturbation("brightness", family=PerturbationFamily.WEATHER, params=BRIGHTNESS)
def brightness(x: torch.Tensor, p: BrightnessParams, rng: SampleRNG) -> Iterator[torch.Tensor]:
    """HSV value shifted from darker to brighter (scikit-image ``rgb2hsv``/``hsv2rgb``)."""
    for i in range(p.frames):
        yield hsv_brightness(x, p.delta(i), rng)


@dataclass(frozen=True)
class SpatterParams:
    """Liquid layer ``N(loc, scale)`` smoothed by σ, zero below ``threshold``; after each
    frame every column of the layer is convolved with ``kernel`` (the liquid runs down)."""

    loc: float
    scale: float
    sigma: float
    threshold: float
    kernel: tuple[float, ...]
    intensity: float = 0.6
    frames: int = 31


SPATTER = {
    "imagenet": SpatterParams(0.65, 0.27, 3.7, 0.69, kernel=(0.05, 0.1, 0.15, 0.7)),
    "cifar": SpatterParams(0.6, 0.265, 1.75, 0.7, kernel=(0.2, 0.8)),
}
WATER_COLOUR = (175 / 255.0, 238 / 255.0, 238 / 255.0)  # pale turquoise, R G B


def convolve_columns(layer: torch.Tensor, kernel: tuple[float, ...]) -> torch.Tensor:
    """NumPy ``convolve(column, kernel, mode='same')`` along the rows of ``…×H×W``.

    Output row r is ``Σ_j kernel[j]·layer[r + (len−1)//2 − j]`` with zeros outside.
    """
    h = layer.shape[-2]
    centre = (len(kernel) - 1) // 2
    out = torch.zeros_like(layer)
    for j, weight in enumerate(kernel):
        s = centre - j  # output row r reads input row r + s
        lo, hi = max(0, -s), min(h, h - s)
        if lo < hi:
            out[..., lo:hi, :] += weight * layer[..., lo + s : hi + s, :]
    return out


# revision 2: frames without drops are black, as the original's 0/0
@register_perturbation("spatter", family=PerturbationFamily.WEATHER, params=SPATTER, test=False, revision=2)
def spatter(x: torch.Tensor, p: SpatterParams, rng: SampleRNG) -> Iterator[torch.Tensor]:
    """Water drops running down the image: ImageNet-C's water spatter of a moving layer.

    Frame i uses the layer after i column convolutions. One-channel images get the
    water colour's grey value. A frame whose layer holds no drop any more is black, as
    in the original (:func:`~robench.corruptions.weather.water_blackout`; CIFAR-10-P
    was generated that way).
    """
    _, c, h, w = x.shape
    layer = rng.normal((h, w), mean=p.loc, std=p.scale, dtype=torch.float64)
    layer = skimage_gaussian(layer[:, None], p.sigma)[:, 0]
    layer = torch.where(layer < p.threshold, torch.zeros_like(layer), layer)
    colour = torch.tensor(WATER_COLOUR, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    if c == 1:
        colour = rgb_to_gray(colour)
    for _ in range(p.frames):
        mask = _water_mask(layer, p.intensity).to(x.dtype)[:, None]
        yield water_blackout(x + mask * colour, mask)
        layer = convolve_columns(layer, p.kernel)
