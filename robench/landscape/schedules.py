"""The GCP paper's learning-rate schedules (``src/main.py`` of ZhangLi-CS/GCP_Optimization).

Each schedule gives the learning rate of epoch ``e`` (counted from 0, constant within an
epoch) and its length in epochs. LANDSCAPE.md §4 lists the formulas; the official code
is followed where the two could differ (e.g. LRfast runs at ``0.1·(53/52)^11 ≈ 0.123`` in
epoch 0 because the code's ``e_start`` is 1 while its epochs start at 0).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from robench._registry import Registry


@dataclass(frozen=True)
class Schedule:
    """One registered schedule.

    Attributes:
        name: Registry name (``lrnorm``).
        description: One line for listings and reports.
        lr: ``lr(epoch)`` for epochs counted from 0.
        epochs: Training length in epochs.
        base_lr: The learning rate the paper's runs start from (``--lr``).
    """

    name: str
    description: str
    lr: Callable[[float], float]
    epochs: int
    base_lr: float


def _poly(base: float, e_start: float, e_end: float, power: float) -> Callable[[float], float]:
    """``base·(1 − (e − e_start)/(e_end − e_start))^power`` — the code's LRfast/LRadju form."""

    def lr(e: float) -> float:
        return base * (1.0 - (e - e_start) / (e_end - e_start)) ** power

    return lr


def _step(base: float, every: int, gamma: float) -> Callable[[float], float]:
    def lr(e: float) -> float:
        return base * gamma ** (int(e) // every)

    return lr


def _exp(base: float, gamma: float) -> Callable[[float], float]:
    def lr(e: float) -> float:
        return base * gamma**e

    return lr


def _mobilenet_adju(base: float) -> Callable[[float], float]:
    """Piecewise linear 0.06 → 0.01 (e 0–50) → 0.001 (50–100) → 1e-5 (100–150), then 1e-5."""

    def lr(e: float) -> float:
        if e <= 50:
            return base - (base - 0.01) / 50 * e
        if e <= 100:
            return 0.01 - (0.01 - 0.001) / 50 * (e - 50)
        if e <= 150:
            return 0.001 - (0.001 - 0.00001) / 50 * (e - 100)
        return 0.00001

    return lr


SCHEDULES: Registry[Schedule] = Registry("learning-rate schedule")

SCHEDULES.add("lrnorm", Schedule(
    "lrnorm", "ResNet LRnorm: 0.1·0.1^⌊e/30⌋, 100 epochs", _step(0.1, 30, 0.1), 100, 0.1))
SCHEDULES.add("lrfast", Schedule(
    "lrfast", "ResNet LRfast: 0.1·(1 − (e−1)/52)^11, 30 epochs", _poly(0.1, 1, 53, 11.0), 30, 0.1))
SCHEDULES.add("lradju", Schedule(
    "lradju", "ResNet LRadju: 0.1·(1 − (e−1)/49)^2, 50 epochs", _poly(0.1, 1, 50, 2.0), 50, 0.1))
SCHEDULES.add("mbv2-lrnorm", Schedule(
    "mbv2-lrnorm", "MobileNetV2 LRnorm: 0.045·0.98^e, 400 epochs", _exp(0.045, 0.98), 400, 0.045))
SCHEDULES.add("mbv2-lrfast", Schedule(
    "mbv2-lrfast", "MobileNetV2 LRfast: 0.06·0.92^e, 100 epochs", _exp(0.06, 0.92), 100, 0.06))
SCHEDULES.add("mbv2-lradju", Schedule(
    "mbv2-lradju", "MobileNetV2 LRadju: piecewise linear 0.06→0.01→0.001→1e-5, 150 epochs",
    _mobilenet_adju(0.06), 150, 0.06))

RESNET_SCHEDULES = ("lrnorm", "lrfast", "lradju")
"""The three schedules of the ResNet experiments (and of the demo protocol)."""


@dataclass(frozen=True)
class ScaledSchedule:
    """A paper schedule on a shorter clock: ``scale`` paper epochs per demo epoch.

    Demo epoch ``u`` (from 0) trains at the paper's rate of epoch ``scale·u``, and the
    run lasts ``ceil(epochs / scale)`` demo epochs, so the shape of the decay is kept
    (LRnorm's two decays at paper epochs 30 and 60 fall at demo epochs 30/scale, 60/scale).

    Attributes:
        schedule: The paper schedule.
        scale: Paper epochs represented by one demo epoch (1: the schedule as published).
    """

    schedule: Schedule
    scale: int = 1

    @property
    def epochs(self) -> int:
        return -(-self.schedule.epochs // self.scale)

    def lr(self, epoch: int) -> float:
        """Learning rate of demo epoch ``epoch`` (from 0)."""
        return self.schedule.lr(self.scale * epoch)

    def paper_epoch(self, epoch: int) -> int:
        """The paper epoch at the start of demo epoch ``epoch`` (from 0)."""
        return self.scale * epoch
