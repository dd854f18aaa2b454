"""Digital corruptions (ImageNet-C): contrast here; elastic, pixelate and JPEG follow."""

from __future__ import annotations

import torch

from robench._rng import SampleRNG
from robench.corruptions._base import Family, register_corruption

CONTRAST = {  # factor around the per-channel mean
    "imagenet": (0.4, 0.3, 0.2, 0.1, 0.05),
    "tinyimagenet": (0.4, 0.3, 0.2, 0.1, 0.05),
    "cifar": (0.75, 0.5, 0.4, 0.3, 0.15),
}


@register_corruption("contrast", family=Family.DIGITAL, params=CONTRAST)
def contrast(x: torch.Tensor, factor: float, rng: SampleRNG) -> torch.Tensor:
    """``(x − μ)·c + μ`` with μ the mean of each channel of each image."""
    mean = x.mean(dim=(2, 3), keepdim=True)
    return (x - mean) * factor + mean
