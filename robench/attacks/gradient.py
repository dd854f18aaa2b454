"""FGSM and PGD (L∞, L2) through foolbox 3, with per-sample random starts.

foolbox's own random start draws from the global torch RNG, so the draws of a sample
would depend on its batch. The PGD classes here subclass foolbox's and override only
its ``get_random_start`` hook with per-sample draws of the same distributions (uniform
in the L∞ ball; uniform in the L2 ball via foolbox's n+2-sphere projection), so the
optimisation loop is foolbox's own.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from robench.attacks._base import Attack, Draws, Kind, Norm, first_success, register_attack
from robench.attacks._foolbox import foolbox, foolbox_model


@dataclass(frozen=True)
class FGSMSettings:
    """FGSM has no settings: one signed-gradient step of size eps."""


@register_attack
class FGSM(Attack[FGSMSettings]):
    """Fast gradient sign method (foolbox ``LinfFastGradientAttack``, no random start)."""

    name = "fgsm"
    kind = Kind.SINGLE_STEP
    settings_type = FGSMSettings
    fixed_norm = Norm.LINF

    def run(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        eps: float,
        draws: Draws,
        settings: FGSMSettings,
    ) -> torch.Tensor:
        attack = foolbox().attacks.LinfFastGradientAttack(random_start=False)
        return attack.run(foolbox_model(model, x.device), x, y, epsilon=eps)


@dataclass(frozen=True)
class PGDSettings:
    """Settings of foolbox's PGD (defaults in the subclasses).

    Attributes:
        steps: Gradient steps per restart.
        rel_stepsize: Step size as a fraction of eps (ignored when ``abs_stepsize`` is set).
        abs_stepsize: Absolute step size.
        random_start: Start from a uniform point of the eps ball (else from the image).
        restarts: Runs per sample; a restart runs only on samples not yet fooled.
    """

    steps: int
    rel_stepsize: float
    abs_stepsize: float | None = None
    random_start: bool = True
    restarts: int = 1

    def __post_init__(self) -> None:
        if self.steps < 1 or self.restarts < 1:
            raise ValueError(f"steps and restarts must be >= 1, got {self.steps} and {self.restarts}")
        if self.rel_stepsize <= 0 or (self.abs_stepsize is not None and self.abs_stepsize <= 0):
            raise ValueError("step sizes must be > 0")


@dataclass(frozen=True)
class LinfPGDSettings(PGDSettings):
    """The literature's evaluation setting: 20 steps of eps/4 (2/255 at 8/255, 1/255 at 4/255).

    foolbox's own ``LinfPGD`` defaults (40 steps of eps/30, Madry's MNIST setting) are
    ``steps=40, rel_stepsize=0.01/0.3``; they are weaker than FGSM on nearly linear models.
    """

    steps: int = 20
    rel_stepsize: float = 0.25


@dataclass(frozen=True)
class L2PGDSettings(PGDSettings):
    """20 steps of eps/4, as for L∞ (foolbox's ``L2PGD``: ``steps=50, rel_stepsize=0.025``)."""

    steps: int = 20
    rel_stepsize: float = 0.25


class _PGD(Attack[PGDSettings]):
    """Template of the PGD variants: the norm picks the foolbox class and the start."""

    kind = Kind.ITERATIVE
    foolbox_class: ClassVar[str]

    def unit_start(self, x: torch.Tensor, draws: Draws, key: str, todo: torch.Tensor) -> torch.Tensor:
        """Random start offsets for eps = 1, per sample."""
        raise NotImplementedError

    def run(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        eps: float,
        draws: Draws,
        settings: PGDSettings,
    ) -> torch.Tensor:
        fmodel = foolbox_model(model, x.device)
        cls = _seeded(self.foolbox_class)

        def attempt(restart: int, todo: torch.Tensor) -> torch.Tensor:
            attack = cls(
                steps=settings.steps,
                rel_stepsize=settings.rel_stepsize,
                abs_stepsize=settings.abs_stepsize,
                random_start=settings.random_start,
            )
            if settings.random_start:
                attack.unit_start = self.unit_start(x, draws, f"restart{restart}", todo)
            return attack.run(fmodel, x[todo], y[todo], epsilon=eps)

        return first_success(model, x, y, range(settings.restarts), attempt)


@register_attack
class LinfPGD(_PGD):
    """PGD in the L∞ ball (Madry et al.), foolbox ``LinfPGD``."""

    name = "pgd-linf"
    settings_type = LinfPGDSettings
    fixed_norm = Norm.LINF
    foolbox_class = "LinfPGD"

    def unit_start(self, x: torch.Tensor, draws: Draws, key: str, todo: torch.Tensor) -> torch.Tensor:
        return draws.rng(key, todo).uniform(x.shape[1:], low=-1.0, high=1.0, device=x.device, dtype=x.dtype)


@register_attack
class L2PGD(_PGD):
    """PGD in the L2 ball, foolbox ``L2PGD``."""

    name = "pgd-l2"
    settings_type = L2PGDSettings
    fixed_norm = Norm.L2
    foolbox_class = "L2PGD"

    def unit_start(self, x: torch.Tensor, draws: Draws, key: str, todo: torch.Tensor) -> torch.Tensor:
        return uniform_l2_ball(draws.rng(key, todo), x.shape[1:], device=x.device, dtype=x.dtype)


def uniform_l2_ball(rng: Any, shape: torch.Size, *, device: Any, dtype: torch.dtype) -> torch.Tensor:
    """Uniform draws in the unit L2 ball (first n coordinates of a point on the n+2-sphere)."""
    n = math.prod(shape)
    s = rng.normal((n + 2,), device=device, dtype=dtype)
    s = s / s.norm(dim=1, keepdim=True)
    return s[:, :n].reshape(-1, *shape)


@functools.cache
def _seeded(name: str) -> type:
    """foolbox's PGD class ``name`` with a replayable random start (``unit_start``)."""
    fb = foolbox()
    import eagerpy as ep  # installed with foolbox

    base = getattr(fb.attacks, name)

    def get_random_start(self: Any, x0: Any, epsilon: float) -> Any:
        if getattr(self, "unit_start", None) is None:
            raise RuntimeError("PGD random start requested without per-sample draws")
        return x0 + epsilon * ep.astensor(self.unit_start)

    return type(f"Seeded{name}", (base,), {"get_random_start": get_random_start, "unit_start": None})
