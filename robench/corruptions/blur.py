"""Blur corruptions (ImageNet-C), batched, with the originals' border handling.

Kernel sizes are in pixels, as in the originals: off the parameter set's native size
a blur covers the same number of pixels, i.e. a different fraction of the image.
"""

from __future__ import annotations

import functools
import math

import torch

from robench._rng import SampleRNG
from robench.corruptions._base import Family, register_corruption
from robench.corruptions._filters import filter2d, gaussian_kernel1d, separable_filter

DEFOCUS_BLUR = {  # (disk radius, alias σ)
    "imagenet": ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)),
    "tinyimagenet": ((0.5, 0.6), (1, 0.1), (1.5, 0.1), (2.5, 0.01), (3, 0.1)),
    "cifar": ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),
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


def skimage_gaussian(x: torch.Tensor, sigma: float, *, mode: str = "nearest", truncate: float = 4.0) -> torch.Tensor:
    """scikit-image ``gaussian`` on each channel (SciPy ``gaussian_filter`` semantics)."""
    radius = int(truncate * float(sigma) + 0.5)
    k = gaussian_kernel1d(float(sigma), radius)
    dtype = x.dtype
    return separable_filter(x.to(torch.float64), k, mode).to(dtype)


@register_corruption("gaussian_blur", family=Family.BLUR, params=GAUSSIAN_BLUR, test=False)
def gaussian_blur(x: torch.Tensor, sigma: float, rng: SampleRNG) -> torch.Tensor:
    """Gaussian blur of σ pixels, borders replicated, truncated at 4σ."""
    if math.isclose(sigma, 0.0):
        return x.clone()
    return skimage_gaussian(x, sigma)
