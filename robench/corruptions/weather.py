"""Weather corruptions (ImageNet-C): snow, frost, fog, brightness and spatter, batched."""

from __future__ import annotations

import functools
from importlib import resources

import numpy as np
import torch
from PIL import Image

from robench._rng import SampleRNG
from robench.corruptions._base import (
    Family,
    colour,
    luma,
    per_sample_integers,
    quantize_uint8,
    register_corruption,
)
from robench.corruptions._cv import box3_sum, canny, distance_transform_l2_5, equalize_hist, resize_linear_u8
from robench.corruptions._filters import filter2d, skimage_gaussian
from robench.corruptions._motion import imagemagick_png8, motion_blur_image
from robench.corruptions._plasma import plasma_fractal
from robench.corruptions._zoom import clipped_zoom

SNOW = {  # (loc, scale, zoom, threshold, motion radius, motion sigma, blend)
    "imagenet": (
        (0.1, 0.3, 3, 0.5, 10, 4, 0.8),
        (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
        (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
        (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
        (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55),
    ),
    "tinyimagenet": (
        (0.1, 0.2, 1, 0.6, 8, 3, 0.8),
        (0.1, 0.2, 1, 0.5, 10, 4, 0.8),
        (0.15, 0.3, 1.75, 0.55, 10, 4, 0.7),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.65),
        (0.3, 0.3, 1.25, 0.65, 14, 12, 0.6),
    ),
    "cifar": (
        (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
        (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
        (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
        (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
    ),
}
_FROST_WEIGHTS = {  # (image weight, frost weight)
    "imagenet": ((1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)),
    "tinyimagenet": ((1, 0.3), (0.9, 0.4), (0.8, 0.45), (0.75, 0.5), (0.7, 0.55)),
    "cifar": ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)),
}
FROST_TEXTURE_SCALE = {"imagenet": 1.0, "tinyimagenet": 0.3, "cifar": 0.2}
"""OpenCV bilinear pre-scaling of the textures per parameter set (1.0 = raw texture)."""
FROST_TEXTURES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg", "frost6.jpg")
FROST_CHOICES = 5
"""``randint(5)``: the original never picks frost6 (kept for completeness only)."""
FROST = {  # (image weight, frost weight on 0–255 texture values, texture pre-scale)
    ps: tuple((a, b, FROST_TEXTURE_SCALE[ps]) for a, b in table) for ps, table in _FROST_WEIGHTS.items()
}

_FOG_STRENGTH = {  # (strength, wibble decay)
    "imagenet": ((1.5, 2), (2.0, 2), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4)),
    "tinyimagenet": ((0.4, 3), (0.7, 3), (1.0, 2.5), (1.5, 2), (2.0, 1.75)),
    "cifar": ((0.2, 3), (0.5, 3), (0.75, 2.5), (1.0, 2), (1.5, 1.75)),
}
FOG_MAPSIZE = {"imagenet": 256, "tinyimagenet": 64, "cifar": 32}
FOG = {  # (strength, wibble decay, plasma map size)
    ps: tuple((s, d, FOG_MAPSIZE[ps]) for s, d in table) for ps, table in _FOG_STRENGTH.items()
}

BRIGHTNESS = {  # added to HSV value
    "imagenet": (0.1, 0.2, 0.3, 0.4, 0.5),
    "tinyimagenet": (0.1, 0.2, 0.3, 0.4, 0.5),
    "cifar": (0.05, 0.1, 0.15, 0.2, 0.3),
}
SPATTER = {  # (loc, scale, σ, threshold, intensity (water) or σ2 (mud), mode 0 = water, 1 = mud)
    "imagenet": (
        (0.65, 0.3, 4, 0.69, 0.6, 0),
        (0.65, 0.3, 3, 0.68, 0.6, 0),
        (0.65, 0.3, 2, 0.68, 0.5, 0),
        (0.65, 0.3, 1, 0.65, 1.5, 1),
        (0.67, 0.4, 1, 0.65, 1.5, 1),
    ),
    "tinyimagenet": (
        (0.62, 0.1, 0.7, 0.7, 0.6, 0),
        (0.65, 0.1, 0.8, 0.7, 0.6, 0),
        (0.65, 0.3, 1, 0.69, 0.6, 0),
        (0.65, 0.1, 0.7, 0.68, 0.6, 1),
        (0.65, 0.1, 0.5, 0.67, 0.6, 1),
    ),
    "cifar": (
        (0.62, 0.1, 0.7, 0.7, 0.5, 0),
        (0.65, 0.1, 0.8, 0.7, 0.5, 0),
        (0.65, 0.3, 1, 0.69, 0.5, 0),
        (0.65, 0.1, 0.7, 0.69, 0.6, 1),
        (0.65, 0.1, 0.5, 0.68, 0.6, 1),
    ),
}
WATER_RGB = (175 / 255, 238 / 255, 238 / 255)  # pale turquoise
MUD_RGB = (63 / 255, 42 / 255, 20 / 255)


# ---------------------------------------------------------------- snow


@register_corruption("snow", family=Family.WEATHER, params=SNOW, revision=2)  # 2: ImageMagick's PNG truncates
@colour
def snow(x: torch.Tensor, p: tuple, rng: SampleRNG) -> torch.Tensor:
    """Snow flakes: a thresholded, zoomed N(loc, scale) layer, motion-blurred, added twice.

    Steps as Hendrycks': layer ~ N(loc, scale) per pixel → :func:`clipped_zoom` → values
    below the threshold set to 0 → 8-bit truncation (the PNG handed to ImageMagick) →
    motion blur at U(−135°, −45°) → ImageMagick's 8-bit PNG (truncating,
    :func:`~robench.corruptions._motion.imagemagick_png8`); the image is
    brightened toward ``max(x, 1.5·grey + 0.5)`` with weight ``1 − blend`` and the layer
    is added together with its 180° rotation. Zoom and blur act in pixels, so off the
    native size the flakes keep their pixel size.
    """
    loc, scale, zoom, thr, radius, sigma, blend = p
    h, w = x.shape[-2:]
    layer = rng.normal((1, h, w), mean=loc, std=scale, device=x.device, dtype=torch.float64)
    layer = clipped_zoom(layer, zoom)
    layer = torch.where(layer < thr, torch.zeros_like(layer), layer)
    layer = quantize_uint8(layer.clamp(0.0, 1.0))
    angle = rng.uniform((), low=-135.0, high=-45.0, dtype=torch.float64)
    layer = imagemagick_png8(motion_blur_image(layer, radius, sigma, angle)).to(x.dtype)
    grey = luma(x)
    out = blend * x + (1 - blend) * torch.maximum(x, grey * 1.5 + 0.5)
    return out + layer + layer.flip(-1, -2)


# ---------------------------------------------------------------- frost


@functools.lru_cache(maxsize=len(FROST_TEXTURES))
def _raw_texture(name: str) -> torch.Tensor:
    """A frost texture as H×W×3 uint8 RGB (alpha dropped, as ``cv2.imread`` does)."""
    with resources.files("robench.corruptions").joinpath("textures", name).open("rb") as fh:
        img = Image.open(fh)
        img.load()
    return torch.from_numpy(np.array(img.convert("RGB")))


@functools.lru_cache(maxsize=64)
def frost_texture(index: int, scale: float, min_h: int = 1, min_w: int = 1) -> torch.Tensor:
    """Texture ``index`` (0-based) pre-scaled as the parameter set does, as 3×H×W uint8.

    If it is then smaller than ``min_h × min_w`` it is enlarged (bilinear) by the smallest
    factor that covers that size; the original never needed this (it would fail).
    """
    tex = _raw_texture(FROST_TEXTURES[index])
    if scale != 1.0:
        tex = resize_linear_u8(tex, scale, scale)
    th, tw = tex.shape[:2]
    if th < min_h or tw < min_w:
        f = max(min_h / th, min_w / tw)
        size = (max(min_w, round(tw * f)), max(min_h, round(th * f)))
        tex = resize_linear_u8(tex, 0.0, 0.0, dsize=size)
    return tex.permute(2, 0, 1).contiguous()


@register_corruption("frost", family=Family.WEATHER, params=FROST)
@colour
def frost(x: torch.Tensor, p: tuple[float, float, float], rng: SampleRNG) -> torch.Tensor:
    """``a·x + b·texture`` with a random crop of a random frost texture (frost1–5).

    Draws per sample: texture ``randint(5)`` (frost6 is never used, as in the original),
    crop row ``randint(0, H_t − H)``, crop column ``randint(0, W_t − W)``. Textures are
    pre-scaled by 0.2 (cifar) / 0.3 (tinyimagenet) with OpenCV-style bilinear resizing
    and used raw for imagenet; a texture smaller than the image is enlarged to cover it.
    Mixing is on the 0–255 scale as the original (``b`` multiplies 8-bit texture values).
    """
    a, b, texture_scale = p
    n, _, h, w = x.shape
    choice = per_sample_integers(rng, [FROST_CHOICES] * n)
    texs = [frost_texture(i, texture_scale, h, w) for i in choice]
    tops = per_sample_integers(rng, [t.shape[1] - h for t in texs])
    lefts = per_sample_integers(rng, [t.shape[2] - w for t in texs])
    crops = torch.stack([t[:, r : r + h, c : c + w] for t, r, c in zip(texs, tops, lefts)])
    return a * x + (b / 255.0) * crops.to(x.device, x.dtype)


# ---------------------------------------------------------------- fog


@register_corruption("fog", family=Family.WEATHER, params=FOG, revision=2)  # 2: one noise draw per map
def fog(x: torch.Tensor, p: tuple[float, float, int], rng: SampleRNG) -> torch.Tensor:
    """``(x + s·plasma) · m / (m + s)``, ``m`` the image's maximum over all channels.

    One plasma map per image (:func:`~robench.corruptions._plasma.plasma_fractal`), of the
    parameter set's size (256 / 64 / 32) and cropped to the image's top-left ``H×W``, as
    the original; images larger than the map use the next power of two covering them
    (the fog's spatial frequency is then unchanged in pixels).
    """
    strength, decay, mapsize = p
    h, w = x.shape[-2:]
    size = mapsize
    while size < max(h, w):
        size *= 2
    plasma = plasma_fractal(rng, size, decay, device=x.device)[:, None, :h, :w].to(x.dtype)
    peak = x.amax(dim=(1, 2, 3), keepdim=True)
    scale = peak / (peak + strength)
    return torch.mul(x, scale).addcmul_(plasma, strength * scale)  # (x + s·plasma)·scale, one new tensor


# ---------------------------------------------------------------- brightness


@register_corruption("brightness", family=Family.WEATHER, params=BRIGHTNESS)
def brightness(x: torch.Tensor, delta: float, rng: SampleRNG) -> torch.Tensor:
    """HSV value ``V ← clip(V + delta)`` with hue and saturation kept.

    Equal to scikit-image's rgb2hsv → hsv2rgb round trip: RGB is linear in V at fixed
    H and S, so each pixel scales by V'/V; black pixels (V = 0, S = 0) become grey V'.
    A 1-channel image is its own V.
    """
    v = x.amax(dim=1, keepdim=True)
    v_new = (v + delta).clamp(0.0, 1.0)
    scale = torch.where(v > 0, v_new / v.clamp_min(1e-12), torch.zeros_like(v))
    return torch.where(v > 0, x * scale, v_new.expand_as(x))


# ---------------------------------------------------------------- spatter

_SPATTER_KERNEL = torch.tensor([[-2.0, -1.0, 0.0], [-1.0, 1.0, 1.0], [0.0, 1.0, 2.0]])


def _water_distance_cv2(l8: torch.Tensor) -> torch.Tensor:
    """The original's OpenCV chain from the 8-bit layer to the blurred, embossed edge distance."""
    import cv2

    kernel = _SPATTER_KERNEL.numpy()
    out = []
    for img in l8.to(torch.uint8).numpy():
        edges = cv2.Canny(img, 50, 150)
        dist = cv2.distanceTransform(255 - edges, cv2.DIST_L2, 5)
        _, dist = cv2.threshold(dist, 20, 20, cv2.THRESH_TRUNC)
        dist = cv2.equalizeHist(cv2.blur(dist, (3, 3)).astype(np.uint8))
        dist = cv2.filter2D(dist, cv2.CV_8U, kernel)
        out.append(torch.from_numpy(cv2.blur(dist, (3, 3))))
    return torch.stack(out).to(torch.float64)


def _water_mask(liquid: torch.Tensor, intensity: float) -> torch.Tensor:
    """Hendrycks' water-drop mask from the thresholded liquid layer (N×H×W, float64).

    On the CPU the OpenCV chain runs through ``cv2`` itself, image by image; elsewhere
    through the batched torch re-implementations of :mod:`~robench.corruptions._cv`.
    A layer without any drop gives a zero mask here; the original's ``m /= max(m)``
    turns it into NaN and so the image black (:func:`water_blackout`).
    """
    # astype(uint8): truncation, and values of 256 and more wrap around as NumPy does on x86
    l8 = torch.remainder(torch.floor(liquid * 255.0).clamp_min(0), 256)
    if l8.device.type == "cpu":
        dist = _water_distance_cv2(l8)
    else:
        dist = _water_distance_torch(l8)
    m = l8 * dist
    peak = m.reshape(m.shape[0], -1).amax(dim=1).view(-1, 1, 1)
    return torch.where(peak > 0, m / peak.clamp_min(1e-12), torch.zeros_like(m)) * intensity


def water_blackout(out: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Hendrycks' result for water spatter whose mask has no positive value: all black.

    The original divides the mask by its maximum (``m /= np.max(m)``) even when that is
    0, so every pixel becomes NaN, stays NaN through ``clip`` and ``cvtColor``, and
    ``np.uint8`` turns it into 0 (x86). This happens in ImageNet-C/CIFAR-10-C/Tiny-C
    spatter and in every ImageNet-P / CIFAR-10-P spatter frame; at CIFAR-10-P's
    parameters the liquid often runs out of the image before the last frame, and the
    released CIFAR-10-P was written by that code. ``out`` (N×C×H×W) becomes 0 for the
    images whose :func:`_water_mask` (N×…) is all zero.
    """
    empty = mask.reshape(mask.shape[0], -1).amax(dim=1) <= 0
    if not bool(empty.any()):
        return out
    return torch.where(empty.view(-1, 1, 1, 1).to(out.device), torch.zeros_like(out), out)


def _water_distance_torch(l8: torch.Tensor) -> torch.Tensor:
    """:func:`_water_distance_cv2` in batched torch (float64 8-bit values, N×H×W)."""
    edges = canny(l8, 50, 150)
    dist = distance_transform_l2_5(edges, 20.0).clamp_max(20.0)  # THRESH_TRUNC at 20
    dist = torch.floor((box3_sum(dist) * (1.0 / 9.0)).to(torch.float32).to(torch.float64))
    dist = equalize_hist(dist)
    dist = filter2d(dist[:, None], _SPATTER_KERNEL.to(torch.float64), "reflect101")[:, 0]
    dist = dist.round().clamp(0, 255)  # CV_8U saturation
    return torch.round(box3_sum(dist) / 9.0)  # 8-bit blur rounds


# revision 2: water without drops gives a black image, as the original's 0/0
@register_corruption("spatter", family=Family.WEATHER, params=SPATTER, test=False, revision=2)
@colour
def spatter(x: torch.Tensor, p: tuple, rng: SampleRNG) -> torch.Tensor:
    """Water drops (modes 0) or mud (mode 1) from a smoothed, thresholded N(loc, scale) layer.

    Water: the layer's 8-bit Canny edges → chamfer distance (capped at 20) → 3×3 blur →
    histogram equalisation → an embossing 3×3 filter → 3×3 blur, times the layer,
    normalised to ``intensity``, adds pale turquoise. Mud: a σ2-blurred mask of the
    layer, zero below 0.8, blends towards mud brown. σ are in pixels at any size. Water
    without any drop makes the image black, as the original's division of 0 by 0 did
    (:func:`water_blackout`).
    """
    loc, scale, sigma, thr, extra, mode = p
    h, w = x.shape[-2:]
    liquid = rng.normal((1, h, w), mean=loc, std=scale, device=x.device, dtype=torch.float64)
    liquid = skimage_gaussian(liquid, sigma)[:, 0]
    liquid = torch.where(liquid < thr, torch.zeros_like(liquid), liquid)
    if mode == 0:
        m = _water_mask(liquid, extra)[:, None].to(x.dtype)
        rgb = torch.tensor(WATER_RGB, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return water_blackout(x + m * rgb, m)
    m = skimage_gaussian((liquid > thr).to(torch.float64)[:, None], extra)
    m = torch.where(m < 0.8, torch.zeros_like(m), m).to(x.dtype)
    rgb = torch.tensor(MUD_RGB, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return x * (1 - m) + m * rgb
