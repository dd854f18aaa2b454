"""ImageNet-P / CIFAR-10-P perturbation sequences as batched, streaming tensor functions.

Each registered :class:`Perturbation` turns a batch into T frames (31; translate 41
for ImageNet, 16 for CIFAR; CIFAR motion blur 21), generated one frame at a time so a
224-px sequence never needs to be held whole. :func:`perturb` stacks the frames for
small inputs.
"""

from __future__ import annotations

import torch

from robench._rng import SampleRNG
from robench.perturbations import blur, geometric, noise, weather  # noqa: F401  (register)
from robench.perturbations._base import (
    DIFFICULTIES,
    PARAM_SETS,
    PERTURBATIONS,
    Perturbation,
    PerturbationFamily,
    center_crop,
    register_perturbation,
)

TEST_PERTURBATIONS = (
    "gaussian_noise",
    "shot_noise",
    "motion_blur",
    "zoom_blur",
    "snow",
    "brightness",
    "translate",
    "rotate",
    "tilt",
    "scale",
)
"""The 10 ImageNet-P test perturbations in the paper's order (mFR / mT5D average over these)."""
VALIDATION_PERTURBATIONS = ("speckle_noise", "gaussian_blur", "spatter", "shear")

__all__ = [
    "DIFFICULTIES",
    "PARAM_SETS",
    "PERTURBATIONS",
    "TEST_PERTURBATIONS",
    "VALIDATION_PERTURBATIONS",
    "Perturbation",
    "PerturbationFamily",
    "center_crop",
    "perturb",
    "perturbation_rng",
    "register_perturbation",
]


def perturbation_rng(
    indices: list[int], *, name: str, difficulty: int = 1, seed: int = 0, param_set: str = "imagenet"
) -> SampleRNG:
    """The per-sample streams of one (perturbation, difficulty, parameter set, seed)."""
    return SampleRNG(indices, seed=seed, key=f"{param_set}/p/{name}/{difficulty}")


def perturb(
    x: torch.Tensor,
    name: str,
    *,
    difficulty: int = 1,
    seed: int = 0,
    param_set: str = "imagenet",
    indices: list[int] | None = None,
    crop: int | None = None,
) -> torch.Tensor:
    """The whole perturbation sequence of a (small) batch.

    Args:
        x: ``N×C×H×W`` float images in ``[0, 1]`` (C = 1 or 3), on any device.
        name: Perturbation name, e.g. ``"translate"``.
        difficulty: 1 … 3 (noise level of noise perturbations; otherwise the
            evaluation stride, which does not change the frames).
        seed: Seed of the per-sample random streams.
        param_set: ``"imagenet"`` or ``"cifar"``.
        indices: Dataset indices of the samples (default ``0 … N-1``); sample ``i``'s
            sequence depends only on ``(seed, param_set, name, difficulty, indices[i])``.
        crop: Centre-crop size when ``x`` is the uncropped resized image (ImageNet-P:
            256-px resize, ``crop=224``); ``None`` perturbs ``x`` as given.

    Returns:
        ``N×T×C×h×w`` frames on 8-bit levels in ``[0, 1]``. Use
        :meth:`Perturbation.frames` to stream large inputs instead.

    Raises:
        UnknownNameError: unknown perturbation name.
        InputError: difficulty outside 1 … 3, unknown parameter set, bad tensor.
    """
    perturbation = PERTURBATIONS.get(name)
    idx = list(range(x.shape[0])) if indices is None else list(indices)
    rng = perturbation_rng(idx, name=name, difficulty=difficulty, seed=seed, param_set=param_set)
    frames = perturbation.frames(x, difficulty=difficulty, rng=rng, param_set=param_set, crop=crop)
    return torch.stack(list(frames), dim=1)
