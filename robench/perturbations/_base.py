"""The perturbation registry and the template every ImageNet-P sequence follows.

A perturbation turns one image into a sequence of T frames (Hendrycks & Dietterich,
ImageNet-P). Its implementation is a generator ``fn(x, p, rng) -> Iterator[Tensor]``
on an ``N×C×H×W`` batch in ``[0, 1]``: ``p`` is the parameter record of the parameter
set (and, for noise, of the difficulty) and ``rng`` holds one random stream per
sample. Random draws that the original makes once per video (the snow layer, the
liquid layer) are made once, before the first frame; per-frame draws (noise) come
from the same stream in frame order, so a sequence never depends on the batch it
was generated in.

The template (:meth:`Perturbation.frames`) checks the input, rounds it to 8 bits
(the originals start from a uint8 PIL image), applies the centre crop where asked
(before photometric perturbations, after geometric ones, as ImageNet-P does) and
quantises every frame to 8 bits by truncation, as ``np.uint8`` / ``ToPILImage`` did
when the original wrote its PNG frames. Operations that the original delegated to a
library with its own rounding (OpenCV, ImageMagick) round inside the implementation;
the final truncation then leaves their values unchanged.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from robench._registry import Registry
from robench._rng import SampleRNG
from robench.corruptions._base import check_image_batch, quantize_uint8
from robench.errors import InputError

PARAM_SETS = ("imagenet", "cifar")
"""ImageNet-P (224-px crops of the 256-px resized image) and CIFAR-10-P (32 px)."""

DIFFICULTIES = (1, 2, 3)


class PerturbationFamily(str, enum.Enum):
    NOISE = "noise"
    BLUR = "blur"
    WEATHER = "weather"
    DIGITAL = "digital"
    GEOMETRIC = "geometric"


SequenceFn = Callable[[torch.Tensor, Any, SampleRNG], Iterator[torch.Tensor]]


@dataclass(frozen=True)
class Perturbation:
    """One registered ImageNet-P perturbation.

    Attributes:
        name: Hendrycks' name (also the ImageNet-P folder name).
        family: noise / blur / weather / digital / geometric.
        fn: The batched frame generator, ``fn(x, params, rng)``.
        params: Per parameter set, the parameter records of difficulties 1, 2, 3
            (identical records where difficulty is only the evaluation stride).
            Every record has a ``frames`` field.
        test: True for the 10 test perturbations, False for the 4 validation ones.
        before_crop: True where ImageNet-P applies the perturbation to the 256-px
            image and crops afterwards (geometric ones and zoom blur).
        revision: Bumped whenever the frames produced for a given seed change, so
            stored cells are recomputed (as :attr:`robench.corruptions.Corruption.revision`).
    """

    name: str
    family: PerturbationFamily
    fn: SequenceFn
    params: Mapping[str, Sequence[Any]]
    test: bool = True
    before_crop: bool = False
    revision: int = 1

    @property
    def noise(self) -> bool:
        """Whether evaluation compares every frame with frame 0 (Hendrycks: "noise" in the name)."""
        return "noise" in self.name

    def param(self, param_set: str, difficulty: int = 1) -> Any:
        check_difficulty(difficulty)
        try:
            table = self.params[param_set]
        except KeyError:
            raise InputError(
                f"Unknown parameter set {param_set!r} for perturbation {self.name}; "
                f"use one of {', '.join(self.params)}."
            ) from None
        return table[difficulty - 1]

    def num_frames(self, param_set: str = "imagenet") -> int:
        """Frames per sequence (31; translate 41 for ImageNet, 16 for CIFAR; CIFAR motion blur 21)."""
        return int(self.param(param_set).frames)

    def frames(
        self,
        x: torch.Tensor,
        *,
        difficulty: int = 1,
        rng: SampleRNG,
        param_set: str = "imagenet",
        crop: int | None = None,
    ) -> Iterator[torch.Tensor]:
        """Stream the sequence of a batch, one ``N×C×h×w`` frame at a time.

        Args:
            x: ``N×C×H×W`` float images in ``[0, 1]`` (C = 1 or 3), on any device.
            difficulty: 1 … 3. Selects the noise level of noise perturbations; for
                the others it is the evaluation stride and does not change the frames.
            rng: One random stream per sample (:class:`robench._rng.SampleRNG`).
            param_set: ``"imagenet"`` or ``"cifar"``.
            crop: ``None`` to perturb ``x`` as given (frames like ``x``); an integer
                ``c`` to follow ImageNet-P exactly when ``x`` is the *uncropped*
                resized image: geometric perturbations act on ``x`` and each frame
                is centre-cropped to ``c×c``; the others act on the centre crop.

        Yields:
            The T frames, each ``N×C×h×w`` in ``[0, 1]`` on 8-bit levels.
        """
        check_image_batch(x)
        if len(rng) != x.shape[0]:
            raise ValueError(f"{len(rng)} random streams for a batch of {x.shape[0]} images")
        p = self.param(param_set, difficulty)
        x = quantize_uint8(x.clamp(0.0, 1.0))
        if crop is not None and not self.before_crop:
            x = center_crop(x, crop)
        for frame in self.fn(x, p, rng):
            if crop is not None and self.before_crop:
                frame = center_crop(frame, crop)
            yield quantize_uint8(frame.clamp(0.0, 1.0))


PERTURBATIONS: Registry[Perturbation] = Registry("perturbation")


def register_perturbation(
    name: str,
    *,
    family: PerturbationFamily,
    params: Mapping[str, Any],
    test: bool = True,
    before_crop: bool = False,
    revision: int = 1,
) -> Callable[[SequenceFn], SequenceFn]:
    """Decorator registering a frame generator with its parameter records.

    ``params[param_set]`` is either one record (used at every difficulty) or a
    sequence of three records (difficulties 1, 2, 3; noise perturbations).
    """
    tables: dict[str, tuple[Any, ...]] = {}
    for param_set in PARAM_SETS:
        if param_set not in params:
            raise ValueError(f"{name}: no parameters for parameter set {param_set!r}")
        entry = params[param_set]
        table = tuple(entry) if isinstance(entry, (tuple, list)) else (entry,) * len(DIFFICULTIES)
        if len(table) != len(DIFFICULTIES):
            raise ValueError(f"{name}: {param_set} needs one record or one per difficulty")
        tables[param_set] = table

    def deco(fn: SequenceFn) -> SequenceFn:
        PERTURBATIONS.add(name, Perturbation(name, family, fn, tables, test, before_crop, revision))
        return fn

    return deco


def check_difficulty(difficulty: int) -> None:
    if difficulty not in DIFFICULTIES:
        raise InputError(f"Difficulty {difficulty!r} is out of range; use 1, 2 or 3.")


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """torchvision ``CenterCrop(size)`` of an ``…×H×W`` tensor (offsets ``round((H − size)/2)``)."""
    h, w = x.shape[-2:]
    if size > h or size > w:
        raise InputError(
            f"Cannot centre-crop {size}×{size} from a {h}×{w} image; use a crop of at most {min(h, w)} "
            "(suite key perturbations.crop) or none."
        )
    if size < 1:
        raise InputError(f"Crop size must be a positive integer, got {size}; use None (suite: 0) for no crop.")
    top = round((h - size) / 2.0)
    left = round((w - size) / 2.0)
    return x[..., top : top + size, left : left + size]


def to_levels(x: torch.Tensor) -> torch.Tensor:
    """8-bit images in ``[0, 1]`` as exact integer levels 0 … 255 (same dtype)."""
    return torch.round(x * 255.0)


def rgb_to_gray(x: torch.Tensor) -> torch.Tensor:
    """OpenCV ``COLOR_RGB2GRAY`` (0.299 R + 0.587 G + 0.114 B); one-channel input is returned as is."""
    if x.shape[1] == 1:
        return x
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    return 0.299 * r + 0.587 * g + 0.114 * b
