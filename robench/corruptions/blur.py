"""Blur corruptions (ImageNet-C), batched, with the originals' border handling.

Kernel sizes are in pixels, as in the originals: off the parameter set's native size
a blur covers the same number of pixels, i.e. a different fraction of the image.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from robench._rng import SampleRNG
from robench.corruptions._base import Family, quantize_uint8, register_corruption
from robench.corruptions._filters import filter2d, separable_filter, skimage_gaussian
from robench.corruptions._motion import imagemagick_png8, motion_blur_image
from robench.corruptions._zoom import clipped_zoom

DEFOCUS_BLUR = {  # (disk radius, alias σ)
    "imagenet": ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)),
    "tinyimagenet": ((0.5, 0.6), (1, 0.1), (1.5, 0.1), (2.5, 0.01), (3, 0.1)),
    "cifar": ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),
}
GLASS_BLUR = {  # (σ, max_delta, iterations)
    "imagenet": ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)),
    "tinyimagenet": ((0.1, 1, 1), (0.5, 1, 1), (0.6, 1, 2), (0.7, 2, 1), (0.9, 2, 2)),
    "cifar": ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)),
}
MOTION_BLUR = {  # ImageMagick (radius, sigma); angle ~ U(-45, 45)
    "imagenet": ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15)),
    "tinyimagenet": ((10, 1), (10, 1.5), (10, 2), (10, 2.5), (12, 3)),
    "cifar": ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)),
}


def _arange(stop: float, step: float) -> tuple[float, ...]:
    """``np.arange(1, stop, step)`` exactly, float end effects included (1.11 is in
    ``arange(1, 1.11, 0.01)``)."""
    return tuple(np.arange(1, stop, step).tolist())


ZOOM_BLUR = {  # zoom factors, 1.0 included
    "imagenet": (_arange(1.11, 0.01), _arange(1.16, 0.01), _arange(1.21, 0.02), _arange(1.26, 0.02),
                 _arange(1.31, 0.03)),
    "tinyimagenet": tuple(_arange(e, 0.01) for e in (1.06, 1.11, 1.16, 1.21, 1.26)),
    "cifar": tuple(_arange(e, 0.01) for e in (1.06, 1.11, 1.16, 1.21, 1.26)),
}
GAUSSIAN_BLUR = {  # σ
    "imagenet": (1, 2, 3, 4, 6),
    "tinyimagenet": (0.5, 0.75, 1, 1.25, 1.5),
    "cifar": (0.4, 0.6, 0.7, 0.8, 1),
}


def opencv_gaussian_kernel1d(ksize: int, sigma: float) -> torch.Tensor:
    """``cv2.getGaussianKernel(ksize, sigma)`` for sigma > 0 (float32 arithmetic)."""
    t = torch.arange(ksize, dtype=torch.float32) - (ksize - 1) / 2
    k = torch.exp(-(t**2) / (2.0 * sigma**2))
    return k / k.sum()


@functools.lru_cache(maxsize=64)
def disk_kernel(radius: float, alias_blur: float) -> torch.Tensor:
    """The aliased disk of ImageNet-C's defocus blur.

    A 17×17 grid (``2r+1`` when r > 8) holding the normalised indicator of
    ``x² + y² ≤ r²``, then smoothed by a 3×3 (5×5 when r > 8) OpenCV Gaussian of σ =
    ``alias_blur`` with reflect-101 borders, and not renormalised.
    """
    if radius <= 8:
        half, ksize = 8, 3
    else:
        half, ksize = int(radius), 5
    grid = torch.arange(-half, half + 1, dtype=torch.float32)
    yy, xx = torch.meshgrid(grid, grid, indexing="ij")
    disk = (xx**2 + yy**2 <= radius**2).to(torch.float32)
    disk /= disk.sum()
    k1 = opencv_gaussian_kernel1d(ksize, alias_blur)
    return separable_filter(disk[None, None], k1, "reflect101")[0, 0]


@register_corruption("defocus_blur", family=Family.BLUR, params=DEFOCUS_BLUR)
def defocus_blur(x: torch.Tensor, p: tuple[float, float], rng: SampleRNG) -> torch.Tensor:
    """Per-channel correlation with :func:`disk_kernel` (OpenCV ``filter2D``, reflect-101)."""
    radius, alias = p
    return filter2d(x, disk_kernel(radius, alias), "reflect101")


@register_corruption("gaussian_blur", family=Family.BLUR, params=GAUSSIAN_BLUR, test=False)
def gaussian_blur(x: torch.Tensor, sigma: float, rng: SampleRNG) -> torch.Tensor:
    """Gaussian blur of σ pixels, borders replicated, truncated at 4σ."""
    if math.isclose(sigma, 0.0):
        return x.clone()
    return skimage_gaussian(x, sigma)


def glass_shuffle(x: torch.Tensor, max_delta: int, offsets: torch.Tensor) -> torch.Tensor:
    """Hendrycks' local pixel shuffle, exactly, for every image of a batch.

    The original visits ``h = H−d … d+1`` (outer, descending) and ``w = W−d … d+1``
    (inner, descending) and, for drawn ``(dx, dy) ∈ [−d, d)²``, copies
    ``x[h+dy, w+dx]`` into ``x[h, w]`` (its tuple "swap" of NumPy views is a copy), one
    pixel after the other, so a read may see an earlier write. Here every visited pixel
    points to the pixel it copies; a pointer to an already visited pixel (larger
    row-major index, inside the visited window) means "that pixel's new value", any
    other pointer means "that pixel's old value". Resolving the chains by pointer
    doubling gives the sequential result in ``O(log chain)`` batched gathers.

    Args:
        x: ``N×C×H×W`` images.
        max_delta: ``d``.
        offsets: ``(N, iterations, H−2d, W−2d, 2)`` long ``(dx, dy)`` in visiting order
            (first row/column = bottom/right of the window).
    """
    n, c, h, w = x.shape
    d = max_delta
    nh, nw = h - 2 * d, w - 2 * d
    if nh <= 0 or nw <= 0:
        return x
    dev = x.device
    hw = h * w
    hs = torch.arange(h - d, d, -1, device=dev)
    ws = torch.arange(w - d, d, -1, device=dev)
    q = (hs[:, None] * w + ws[None, :]).reshape(-1)
    base = torch.arange(hw, 2 * hw, device=dev).expand(n, -1)  # "old value of myself"
    offsets = offsets.to(dev)
    for it in range(offsets.shape[1]):
        dx, dy = offsets[:, it, ..., 0], offsets[:, it, ..., 1]
        hp = hs[None, :, None] + dy
        wp = ws[None, None, :] + dx
        tgt = (hp * w + wp).reshape(n, -1)
        inside = ((hp > d) & (hp <= h - d) & (wp > d) & (wp <= w - d)).reshape(n, -1)
        follow = inside & (tgt > q[None, :])
        # entries < hw point to a pixel's new value (chain goes on), ≥ hw to hw + old pixel
        ptr = base.clone()
        ptr[:, q] = torch.where(follow, tgt, tgt + hw)
        open_ = ptr < hw
        while bool(open_.any()):
            ptr = torch.where(open_, ptr.gather(1, ptr.clamp(max=hw - 1)), ptr)
            open_ = ptr < hw
        src = (ptr - hw)[:, None, :].expand(n, c, hw)
        x = x.reshape(n, c, hw).gather(2, src).reshape(n, c, h, w)
    return x


@register_corruption("glass_blur", family=Family.BLUR, params=GLASS_BLUR)
def glass_blur(x: torch.Tensor, p: tuple[float, int, int], rng: SampleRNG) -> torch.Tensor:
    """Gaussian blur, 8-bit truncation, local pixel shuffle (:func:`glass_shuffle`), blur.

    The shuffle window is the image's own ``[d+1, H−d] × [d+1, W−d]``, which at the
    parameter set's native size is the original's hard-coded 224/64/32 bound; σ and
    ``d`` are in pixels at any size. Every pixel of the window draws ``(dx, dy)`` from
    ``[−d, d)`` (the original's asymmetric ``randint``).
    """
    sigma, d, iterations = p
    y = quantize_uint8(skimage_gaussian(x, sigma))
    nh, nw = x.shape[2] - 2 * d, x.shape[3] - 2 * d
    if nh > 0 and nw > 0:
        offsets = rng.integers(-d, d, (iterations, nh, nw, 2))
        y = glass_shuffle(y, d, offsets)
    return skimage_gaussian(y, sigma)


# revision 2: ImageMagick's 8-bit PNG result (truncating), not the unquantised blur
@register_corruption("motion_blur", family=Family.BLUR, params=MOTION_BLUR, revision=2, in_range=True)
def motion_blur(x: torch.Tensor, p: tuple[float, float], rng: SampleRNG) -> torch.Tensor:
    """ImageMagick motion blur (:func:`~robench.corruptions._motion.motion_blur_image`)
    at an angle drawn from U(−45°, 45°), read back from ImageMagick's 8-bit PNG as the
    original did (:func:`~robench.corruptions._motion.imagemagick_png8`); radius and σ
    are in pixels at any size."""
    radius, sigma = p
    angle = rng.uniform((), low=-45.0, high=45.0, dtype=torch.float64)
    return imagemagick_png8(motion_blur_image(x.clamp(0.0, 1.0), radius, sigma, angle))


@register_corruption("zoom_blur", family=Family.BLUR, params=ZOOM_BLUR)
def zoom_blur(x: torch.Tensor, factors: tuple[float, ...], rng: SampleRNG) -> torch.Tensor:
    """Mean of the image and its :func:`~robench.corruptions._zoom.clipped_zoom` at every
    factor (1.0 included, so the unzoomed image weighs twice). The factors are relative,
    so the blur scales with the image."""
    out = x.clone()
    for z in factors:
        out += clipped_zoom(x, z)
    return out / (len(factors) + 1)
