"""Effective robustness (Taori et al., NeurIPS 2020; SHIFTS.md §5): accuracy on a shift beyond what the
clean accuracy predicts.

The prediction β(x) = logit⁻¹(s · logit(x) + t) comes from an ordinary least-squares line of logit(shifted
accuracy) on logit(clean accuracy) over reference models (accuracies as fractions); ER(f) = acc_shift(f) −
β(acc_clean(f)), in accuracy points. :data:`PUBLISHED_LINES` holds the lines SHIFTS.md derives from
imagenet-testbed's published accuracies (keyed by the shift suite's name); without one, a line is fitted
on the models in the store and labelled so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from robench._registry import Registry

MIN_FIT_MODELS = 3
"""Fewest reference models a line is fitted on (two points always lie on their own line)."""


def logit(p: np.ndarray | float) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    return np.log(p) - np.log1p(-p)


def expit(z: np.ndarray | float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64)))


@dataclass(frozen=True)
class LogitLine:
    """A logit-space line, optionally piecewise: ``pieces`` are ``(x_below, slope, intercept)`` with the
    first piece whose ``x_below`` (clean accuracy, fraction) exceeds x applying (ImageNet-A's two lines)."""

    pieces: tuple[tuple[float, float, float], ...]
    source: str
    models: int = 0

    @property
    def slope(self) -> float:
        return self.pieces[-1][1]

    @property
    def intercept(self) -> float:
        return self.pieces[-1][2]

    def predict(self, x: np.ndarray | float) -> np.ndarray:
        """Predicted shifted accuracy (fraction) at clean accuracy ``x`` (fraction)."""
        x = np.asarray(x, dtype=np.float64)
        z = logit(x)
        out = np.full(x.shape, np.nan)
        done = np.zeros(x.shape, dtype=bool)
        for below, s, t in self.pieces:
            here = ~done & (x < below)
            out = np.where(here, s * z + t, out)
            done |= here
        return expit(out)


def fit_lines(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OLS slope and intercept of ``logit(y)`` on ``logit(x)`` along the last axis (rows: replicates).

    ``x``, ``y``: accuracies as fractions, shape ``(..., models)``. Rows with a non-finite value or no
    spread in x give NaN.
    """
    zx, zy = logit(x), logit(y)
    mx, my = zx.mean(axis=-1, keepdims=True), zy.mean(axis=-1, keepdims=True)
    sxx = ((zx - mx) ** 2).sum(axis=-1)
    sxy = ((zx - mx) * (zy - my)).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = np.where(sxx > 0, sxy / sxx, np.nan)
    return slope, my[..., 0] - slope * mx[..., 0]


def fitted_line(x: Sequence[float], y: Sequence[float]) -> LogitLine | None:
    """The OLS line over the given reference accuracies (fractions); ``None`` under :data:`MIN_FIT_MODELS`."""
    if len(x) < MIN_FIT_MODELS:
        return None
    s, t = fit_lines(np.asarray(x), np.asarray(y))
    if not np.isfinite(s):
        return None
    return LogitLine(((np.inf, float(s), float(t)),), f"fitted on {len(x)} models in this store", len(x))


def clip_accuracy(p: np.ndarray | float, n: int | np.ndarray) -> np.ndarray:
    """Accuracy kept half an image away from 0 and 1, so its logit is finite (0 % on ImageNet-A)."""
    half = 0.5 / np.asarray(n, dtype=np.float64)
    return np.clip(np.asarray(p, dtype=np.float64), half, 1.0 - half)


@dataclass(frozen=True)
class ShiftLine:
    """How a natural-shift suite is put on the line: the published line (if any) and where its x comes from.

    Attributes:
        line: The published line, ``None`` to fit one on the store's models.
        x: What the clean accuracy is (``val``, ``val on R classes``, …).
        x_suites: Suites whose clean cell gives x, first found wins.
    """

    line: LogitLine | None
    x: str
    x_suites: tuple[str, ...]


_TB = "published: Taori et al. 2020 protocol, OLS on imagenet-testbed accuracies (SHIFTS.md §5)"
VAL_SUITES = ("imagenet-val", "imagenet", "imagenet-c")
"""Suites whose clean cell is the ImageNet validation accuracy (first found wins)."""

PUBLISHED_LINES: Registry[ShiftLine] = Registry("effective-robustness shift")
PUBLISHED_LINES.add("imagenetv2-matched-frequency",
                    ShiftLine(LogitLine(((np.inf, 0.9232, -0.4977),), _TB, 85), "val", VAL_SUITES))
PUBLISHED_LINES.add("imagenetv2-threshold0.7", ShiftLine(None, "val", VAL_SUITES))
PUBLISHED_LINES.add("imagenetv2-top-images", ShiftLine(None, "val", VAL_SUITES))
PUBLISHED_LINES.add("imagenet-sketch", ShiftLine(LogitLine(((np.inf, 1.0709, -2.3701),), _TB, 85), "val", VAL_SUITES))
PUBLISHED_LINES.add("imagenet-r", ShiftLine(LogitLine(((np.inf, 0.6368, -2.1077),), _TB, 80), "val on R classes",
                                            ("imagenet-val-r-classes",)))
# ImageNet-A: two lines split at ResNet-50's val-on-A-classes accuracy (91.86 %), as imagenet-testbed plots it.
PUBLISHED_LINES.add("imagenet-a", ShiftLine(
    LogitLine(((0.9186, 0.6894, -5.1400), (np.inf, 2.9560, -10.2774)), _TB, 84), "val on A classes",
    ("imagenet-val-a-classes",)))
