"""The corruption registry and the template every corruption follows.

A corruption is a pure batched function ``fn(x, p, rng) -> x'`` on ``N×C×H×W`` float
tensors in ``[0, 1]`` where ``p`` is the severity's parameter (from a table indexed by
parameter set) and ``rng`` holds one random stream per sample. The template
(:meth:`Corruption.__call__`) checks the input, picks the parameter and clips the
result, so the functions only implement the algorithm.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from robench._registry import Registry
from robench._rng import SampleRNG
from robench.errors import InputError

PARAM_SETS = ("imagenet", "tinyimagenet", "cifar")
"""Parameter sets of REFERENCE.md: ImageNet-C (224 px), Tiny-ImageNet-C (64 px), CIFAR-10-C (32 px)."""

SEVERITIES = (1, 2, 3, 4, 5)


class Family(str, enum.Enum):
    """The four corruption families of ImageNet-C."""

    NOISE = "noise"
    BLUR = "blur"
    WEATHER = "weather"
    DIGITAL = "digital"


CorruptionFn = Callable[[torch.Tensor, Any, SampleRNG], torch.Tensor]


@dataclass(frozen=True)
class Corruption:
    """One registered corruption.

    Attributes:
        name: Hendrycks' name (also the ImageNet-C folder name).
        family: noise / blur / weather / digital.
        fn: The batched implementation, ``fn(x, param, rng)``.
        params: Per parameter set, the five severities' parameters.
        test: True for the 15 test corruptions, False for the 4 validation ones.
        revision: Bumped whenever the images produced for a given seed change (even to a
            new realisation of the same distribution), so stored cells are recomputed.
        in_range: ``fn`` already returns values in ``[0, 1]``, so the final clamp is skipped.
    """

    name: str
    family: Family
    fn: CorruptionFn
    params: Mapping[str, Sequence[Any]]
    test: bool = True
    revision: int = 1
    in_range: bool = False

    def param(self, severity: int, param_set: str) -> Any:
        check_severity(severity)
        try:
            table = self.params[param_set]
        except KeyError:
            raise InputError(
                f"Unknown parameter set {param_set!r} for {self.name}; use one of {', '.join(self.params)}."
            ) from None
        return table[severity - 1]

    def __call__(
        self, x: torch.Tensor, severity: int, *, rng: SampleRNG, param_set: str = "imagenet"
    ) -> torch.Tensor:
        check_image_batch(x)
        if len(rng) != x.shape[0]:
            raise ValueError(f"{len(rng)} random streams for a batch of {x.shape[0]} images")
        out = self.fn(x, self.param(severity, param_set), rng)
        return out if self.in_range else out.clamp_(0.0, 1.0)


CORRUPTIONS: Registry[Corruption] = Registry("corruption")


def register_corruption(
    name: str, *, family: Family, params: Mapping[str, Sequence[Any]], test: bool = True, revision: int = 1,
    in_range: bool = False,
) -> Callable[[CorruptionFn], CorruptionFn]:
    """Decorator registering ``fn`` as corruption ``name`` with its parameter tables."""
    missing = [s for s in PARAM_SETS if s not in params or len(params[s]) != len(SEVERITIES)]
    if missing:
        raise ValueError(f"{name}: parameter tables need five severities for {missing}")

    def deco(fn: CorruptionFn) -> CorruptionFn:
        CORRUPTIONS.add(name, Corruption(name, family, fn, dict(params), test, revision, in_range))
        return fn

    return deco


def check_severity(severity: int) -> None:
    if severity not in SEVERITIES:
        raise InputError(f"Severity {severity!r} is out of range; use an integer from 1 to 5.")


def check_image_batch(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] not in (1, 3):
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise InputError(f"Expected an N×C×H×W image tensor with C = 1 or 3, got {shape}.")
    if not x.is_floating_point():
        raise InputError(f"Expected float images in [0, 1], got dtype {x.dtype}; divide uint8 images by 255.")


def quantize_uint8(x: torch.Tensor) -> torch.Tensor:
    """Round-trip through 8 bits by truncation, as ``np.uint8`` did in the official generators.

    A slack of 1e-4 grey levels keeps pixels the corruption left unchanged from losing
    one level to float round-off (``k/255·255 = k − ε``).
    """
    return torch.floor(x * 255.0 + 1e-4).clamp_(0, 255) / 255.0


LUMA = (0.299, 0.587, 0.114)
"""ITU-R 601 luma weights (OpenCV ``RGB2GRAY``, PIL ``L``); they sum to 1."""


def luma(x: torch.Tensor) -> torch.Tensor:
    """Grey value ``0.299 R + 0.587 G + 0.114 B`` of N×3×H×W images, as N×1×H×W."""
    w = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True)


def colour(fn: CorruptionFn) -> CorruptionFn:
    """Adapt an RGB-only corruption to 1-channel images.

    A grey image is treated as the RGB image R = G = B, corrupted, and converted back
    with :data:`LUMA`. For the corruptions that mix in a colour linearly (frost,
    spatter, snow) this equals corrupting the grey image with the colour's luma.
    """

    @functools.wraps(fn)
    def wrapper(x: torch.Tensor, p: Any, rng: SampleRNG) -> torch.Tensor:
        if x.shape[1] == 3:
            return fn(x, p, rng)
        return luma(fn(x.expand(-1, 3, -1, -1), p, rng))

    return wrapper


def per_sample_integers(rng: SampleRNG, highs: Sequence[int]) -> list[int]:
    """One integer in ``[0, highs[i])`` from each sample's stream (NumPy ``randint`` bounds).

    A bound of 0 or 1 yields 0 without consuming a draw.
    """
    out = []
    for g, high in zip(rng.generators, highs, strict=True):
        out.append(int(torch.randint(0, int(high), (), generator=g)) if high > 1 else 0)
    return out
