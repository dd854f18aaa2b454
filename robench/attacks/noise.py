"""Random-noise baselines for the gradient-masking checks.

If noise of the same norm fools the model more often than a gradient attack, the
gradients are misleading (masked) and the attack's robust accuracy is not credible.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from robench.attacks._base import Attack, Draws, Kind, Norm, first_success, register_attack


@dataclass(frozen=True)
class NoiseSettings:
    """Settings of the noise baselines.

    Attributes:
        draws: Noise draws per sample; a sample is fooled if any draw fools the model.
    """

    draws: int = 10

    def __post_init__(self) -> None:
        if self.draws < 1:
            raise ValueError(f"draws must be >= 1, got {self.draws}")


class _Noise(Attack[NoiseSettings]):
    """Template: ``draws`` independent noise samples of norm exactly eps (before clipping)."""

    kind = Kind.RANDOM
    settings_type = NoiseSettings

    def noise(self, x: torch.Tensor, draws: Draws, key: str, todo: torch.Tensor) -> torch.Tensor:
        """Unit-norm noise for the samples ``todo``."""
        raise NotImplementedError

    def run(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        eps: float,
        draws: Draws,
        settings: NoiseSettings,
    ) -> torch.Tensor:
        def attempt(k: int, todo: torch.Tensor) -> torch.Tensor:
            return (x[todo] + eps * self.noise(x, draws, f"draw{k}", todo)).clamp(0.0, 1.0)

        return first_success(model, x, y, range(settings.draws), attempt)


@register_attack
class LinfNoise(_Noise):
    """Uniformly random corners of the L∞ ball (every pixel ±eps)."""

    name = "random-noise-linf"
    fixed_norm = Norm.LINF

    def noise(self, x: torch.Tensor, draws: Draws, key: str, todo: torch.Tensor) -> torch.Tensor:
        bits = draws.rng(key, todo).integers(0, 2, x.shape[1:], device=x.device)
        return (2 * bits - 1).to(x.dtype)


@register_attack
class L2Noise(_Noise):
    """Uniformly random points on the L2 sphere of radius eps."""

    name = "random-noise-l2"
    fixed_norm = Norm.L2

    def noise(self, x: torch.Tensor, draws: Draws, key: str, todo: torch.Tensor) -> torch.Tensor:
        g = draws.rng(key, todo).normal(x.shape[1:], device=x.device, dtype=x.dtype)
        return g / g.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (x.ndim - 1))
