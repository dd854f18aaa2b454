"""The preprocessing a model's weights expect: resize, centre crop, interpolation, normalisation.

Every loaded model carries one :class:`Preprocessing`, resolved from where the model came from
(timm's pretrained config, a torchvision weights enum's transforms, a model card, or an
architecture's defaults). It is shown by ``robench list models --ckpt X``, recorded in each
cell's provenance, and — for suites with ``resolution = "model"`` — it prepares the images.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from robench.errors import InputError

INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "box", "hamming", "lanczos")
"""Resampling filters of ``torchvision.transforms.InterpolationMode`` (PIL images) by name."""


@dataclass(frozen=True)
class Preprocessing:
    """How an image becomes the model's input (before the normaliser inside the model).

    Attributes:
        input_size: Side of the square network input (the native resolution).
        resize: Shorter side after resizing (``None``: images are used as they are).
        crop: Centre-crop side (``None``: no crop).
        interpolation: Resampling filter of the resize (one of :data:`INTERPOLATIONS`).
        mean: Per-channel normalisation mean (applied inside the model).
        std: Per-channel normalisation std.
        crop_pct: ``crop / resize`` as the source states it (timm), ``None`` where it gives sizes.
        origin: Where these values come from (``timm pretrained_cfg``, ``model card``, …).
    """

    input_size: int
    resize: int | None
    crop: int | None
    interpolation: str = "bilinear"
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    crop_pct: float | None = None
    origin: str = ""

    def __post_init__(self) -> None:
        if self.interpolation not in INTERPOLATIONS:
            raise InputError(
                f"Interpolation {self.interpolation!r} is not supported; use one of {', '.join(INTERPOLATIONS)}."
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible data (lists for the statistics)."""
        out = asdict(self)
        out["mean"], out["std"] = list(self.mean), list(self.std)
        return out

    def describe(self) -> str:
        """One line, e.g. ``resize 302 (bicubic) → centre crop 288, mean (…), std (…)``."""
        steps = []
        if self.resize:
            steps.append(f"resize shorter side to {self.resize} ({self.interpolation})")
        if self.crop:
            steps.append(f"centre crop {self.crop}")
        if not steps:
            steps.append("images as they are")
        pct = f", crop_pct {self.crop_pct:g}" if self.crop_pct is not None else ""
        mean = ", ".join(f"{v:.4g}" for v in self.mean)
        std = ", ".join(f"{v:.4g}" for v in self.std)
        return (f"native {self.input_size} px: {' → '.join(steps)}{pct}; normalise mean ({mean}), std ({std})"
                + (f" [{self.origin}]" if self.origin else ""))


def from_crop_pct(
    input_size: int, crop_pct: float, interpolation: str, mean: tuple[float, ...], std: tuple[float, ...], origin: str
) -> Preprocessing:
    """timm's evaluation transform: resize the shorter side to ``floor(input_size / crop_pct)``, centre crop.

    (``timm.data.transforms_imagenet_eval`` with ``crop_mode="center"`` and a square input.)
    """
    if not 0 < crop_pct <= 1:
        raise InputError(f"crop_pct must be in (0, 1], got {crop_pct!r}.")
    resize = math.floor(input_size / crop_pct)
    return Preprocessing(input_size, resize, input_size, interpolation, tuple(mean), tuple(std), crop_pct, origin)
