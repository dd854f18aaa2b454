"""ImageNet-C-style corruptions as batched tensor functions, registered by name."""

from __future__ import annotations

import torch

from robench._rng import SampleRNG
from robench.corruptions import blur, digital, noise, weather  # noqa: F401  (register)
from robench.corruptions._base import (
    CORRUPTIONS,
    PARAM_SETS,
    SEVERITIES,
    Corruption,
    Family,
    quantize_uint8,
    register_corruption,
)
from robench.corruptions._jpeg import jpeg_roundtrip
from robench.corruptions._motion import motion_blur_image

__all__ = [
    "CORRUPTIONS",
    "PARAM_SETS",
    "SEVERITIES",
    "Corruption",
    "Family",
    "corrupt",
    "jpeg_roundtrip",
    "motion_blur_image",
    "quantize_uint8",
    "register_corruption",
]


def corrupt(
    x: torch.Tensor,
    name: str,
    severity: int,
    *,
    seed: int = 0,
    param_set: str = "imagenet",
    indices: list[int] | None = None,
) -> torch.Tensor:
    """Corrupt a batch of images.

    Args:
        x: ``N×C×H×W`` float images in ``[0, 1]`` (C = 1 or 3), on any device.
        name: Corruption name, e.g. ``"fog"``.
        severity: 1 … 5.
        seed: Seed of the per-sample random streams.
        param_set: ``"imagenet"`` (224 px), ``"tinyimagenet"`` (64 px) or ``"cifar"`` (32 px).
        indices: Dataset indices of the samples (default ``0 … N-1``); sample ``i``'s
            draws depend only on ``(seed, param_set, name, severity, indices[i])``.

    Returns:
        A tensor like ``x`` with values in ``[0, 1]`` (not quantised to 8 bits).

    Raises:
        UnknownNameError: unknown corruption name.
        InputError: severity outside 1 … 5, unknown parameter set, bad tensor.
    """
    corruption = CORRUPTIONS.get(name)
    idx = list(range(x.shape[0])) if indices is None else indices
    rng = SampleRNG(idx, seed=seed, key=f"{param_set}/{name}/{severity}")
    return corruption(x, severity, rng=rng, param_set=param_set)
