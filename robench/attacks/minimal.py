"""Minimal-perturbation attacks through foolbox 3: DeepFool and Carlini–Wagner L2.

They search for the smallest adversarial perturbation; foolbox then clips it to the
eps ball (``clipped``) and a sample counts as fooled only if the clipped point is
misclassified. Neither draws random numbers, so foolbox runs them unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from robench.attacks._base import Attack, Draws, Kind, Norm, register_attack
from robench.attacks._foolbox import foolbox, foolbox_model


@dataclass(frozen=True)
class DeepFoolSettings:
    """foolbox ``DeepFoolAttack`` defaults.

    Attributes:
        norm: ``"l2"`` (the original DeepFool) or ``"linf"``.
        steps: Maximum iterations.
        candidates: Most likely classes considered (all when larger than the class count).
        overshoot: Relative overshoot of the boundary.
        loss: ``"logits"`` (logit differences) or ``"crossentropy"``.
    """

    norm: str = "l2"
    steps: int = 50
    candidates: int = 10
    overshoot: float = 0.02
    loss: str = "logits"

    def __post_init__(self) -> None:
        if self.norm not in (n.value for n in Norm):
            raise ValueError(f"norm must be 'linf' or 'l2', got {self.norm!r}")
        if self.loss not in ("logits", "crossentropy"):
            raise ValueError(f"loss must be 'logits' or 'crossentropy', got {self.loss!r}")
        if self.steps < 1 or self.candidates < 2:
            raise ValueError("steps must be >= 1 and candidates >= 2")


@register_attack
class DeepFool(Attack[DeepFoolSettings]):
    """DeepFool (Moosavi-Dezfooli et al.), foolbox ``L2DeepFoolAttack``/``LinfDeepFoolAttack``."""

    name = "deepfool"
    kind = Kind.MINIMAL
    settings_type = DeepFoolSettings

    def norm(self, settings: DeepFoolSettings) -> Norm:
        return Norm(settings.norm)

    def run(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        eps: float,
        draws: Draws,
        settings: DeepFoolSettings,
    ) -> torch.Tensor:
        attacks = foolbox().attacks
        cls = attacks.L2DeepFoolAttack if settings.norm == Norm.L2.value else attacks.LinfDeepFoolAttack
        attack = cls(
            steps=settings.steps, candidates=settings.candidates, overshoot=settings.overshoot, loss=settings.loss
        )
        _, clipped, _ = attack(foolbox_model(model, x.device), x, y, epsilons=eps)
        return clipped


@dataclass(frozen=True)
class CWSettings:
    """foolbox ``L2CarliniWagnerAttack`` defaults (those of Carlini & Wagner, 2017).

    Attributes:
        binary_search_steps: Steps of the search over the trade-off constant.
        steps: Adam steps per constant.
        stepsize: Adam step size.
        confidence: Required logit margin.
        initial_const: First trade-off constant.
        abort_early: Stop a constant's optimisation when the loss stalls.
    """

    binary_search_steps: int = 9
    steps: int = 10000
    stepsize: float = 0.01
    confidence: float = 0.0
    initial_const: float = 0.001
    abort_early: bool = True

    def __post_init__(self) -> None:
        if self.binary_search_steps < 1 or self.steps < 1:
            raise ValueError("binary_search_steps and steps must be >= 1")


@register_attack
class CarliniWagnerL2(Attack[CWSettings]):
    """Carlini–Wagner L2, foolbox ``L2CarliniWagnerAttack``."""

    name = "cw-l2"
    kind = Kind.MINIMAL
    settings_type = CWSettings
    fixed_norm = Norm.L2

    def run(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        eps: float,
        draws: Draws,
        settings: CWSettings,
    ) -> torch.Tensor:
        attack = foolbox().attacks.L2CarliniWagnerAttack(
            binary_search_steps=settings.binary_search_steps,
            steps=settings.steps,
            stepsize=settings.stepsize,
            confidence=settings.confidence,
            initial_const=settings.initial_const,
            abort_early=settings.abort_early,
        )
        _, clipped, _ = attack(foolbox_model(model, x.device), x, y, epsilons=eps)
        return clipped
