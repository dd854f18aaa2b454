"""Auto-PGD (Croce & Hein, 2020): APGD-CE, APGD-DLR and APGD-T (targeted DLR).

A re-implementation of ``APGDAttack.attack_single_run`` of the reference code
(fra31/auto-attack, on PyPI as ``pyautoattack``) for the L∞ and L2 norms: step size
2·eps, momentum 0.75, step halving at the checkpoints built from 0.22/0.06/0.03·n_iter
with ρ = 0.75, restarting from the best point. It is re-implemented rather than
wrapped because the reference draws its random starts from the global torch RNG
(after re-seeding it), so a sample's result would depend on its batch; here the start
comes from per-sample streams. ``tests/test_attacks.py`` checks that, given the same
start, this loop and the reference's reach the same per-sample outcome.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from robench.attacks._base import Attack, Draws, Kind, Norm, first_success, register_attack
from robench.errors import InputError

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def ce_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy, per sample."""
    return F.cross_entropy(logits, y, reduction="none")


def dlr_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Difference-of-logits-ratio loss (untargeted), per sample."""
    z, _ = logits.sort(dim=1)
    u = torch.arange(logits.shape[0], device=logits.device)
    top_is_y = (logits.argmax(1) == y).to(logits.dtype)
    other = z[:, -2] * top_is_y + z[:, -1] * (1.0 - top_is_y)
    return -(logits[u, y] - other) / (z[:, -1] - z[:, -3] + 1e-12)


def targeted_dlr_loss(target: torch.Tensor) -> Loss:
    """Targeted DLR loss towards ``target``, per sample."""

    def loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        z, _ = logits.sort(dim=1)
        u = torch.arange(logits.shape[0], device=logits.device)
        return -(logits[u, y] - logits[u, target]) / (z[:, -1] - 0.5 * (z[:, -3] + z[:, -4]) + 1e-12)

    return loss


@dataclass(frozen=True)
class APGDSettings:
    """Settings of APGD (defaults: AutoAttack ``standard``).

    Attributes:
        norm: ``"linf"`` or ``"l2"``.
        n_iter: Iterations per restart (AutoAttack: 100).
        restarts: Restarts per sample (per target class for APGD-T); AutoAttack: 1.
        rho: Fraction of increasing steps below which the step size is halved.
        n_target_classes: APGD-T only: targets = classes ranked 2 … n+1 by clean logits,
            capped at (number of classes − 1). AutoAttack: 9.
    """

    norm: str = "linf"
    n_iter: int = 100
    restarts: int = 1
    rho: float = 0.75
    n_target_classes: int = 9

    def __post_init__(self) -> None:
        if self.norm not in (n.value for n in Norm):
            raise ValueError(f"norm must be 'linf' or 'l2', got {self.norm!r}")
        if self.n_iter < 1 or self.restarts < 1 or self.n_target_classes < 1:
            raise ValueError("n_iter, restarts and n_target_classes must be >= 1")


class _APGD(Attack[APGDSettings]):
    """Template of the APGD variants: subclasses choose the loss and the attempts."""

    kind = Kind.ITERATIVE
    settings_type = APGDSettings
    min_classes = 2

    def norm(self, settings: APGDSettings) -> Norm:
        return Norm(settings.norm)

    def _check_classes(self, logits: torch.Tensor) -> None:
        if logits.shape[1] < self.min_classes:
            raise InputError(
                f"Attack {self.name!r} needs at least {self.min_classes} classes, the model has {logits.shape[1]}."
            )


class _Untargeted(_APGD):
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # a staticmethod in subclasses

    def run(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        eps: float,
        draws: Draws,
        settings: APGDSettings,
    ) -> torch.Tensor:
        norm = Norm(settings.norm)

        def attempt(restart: int, todo: torch.Tensor) -> torch.Tensor:
            start = random_start(x[todo], eps, norm, draws, f"restart{restart}", todo)
            return apgd_single_run(
                model,
                x[todo],
                y[todo],
                start,
                eps=eps,
                norm=norm,
                loss=self.loss,
                n_iter=settings.n_iter,
                rho=settings.rho,
                check=self._check_classes,
            )

        return first_success(model, x, y, range(settings.restarts), attempt)


@register_attack
class APGDCE(_Untargeted):
    """APGD on the cross-entropy loss (AutoAttack's first attack)."""

    name = "apgd-ce"
    loss = staticmethod(ce_loss)


@register_attack
class APGDDLR(_Untargeted):
    """APGD on the untargeted DLR loss (AutoAttack ``plus``/``rand``)."""

    name = "apgd-dlr"
    min_classes = 3
    loss = staticmethod(dlr_loss)


@register_attack
class APGDT(_APGD):
    """APGD on the targeted DLR loss, one run per target class (AutoAttack's second attack)."""

    name = "apgd-t"
    min_classes = 4

    def run(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        eps: float,
        draws: Draws,
        settings: APGDSettings,
    ) -> torch.Tensor:
        norm = Norm(settings.norm)
        with torch.no_grad():
            clean = model(x)
        self._check_classes(clean)
        n_targets = min(settings.n_target_classes, clean.shape[1] - 1)
        ranked = clean.argsort(dim=1, descending=False)  # the reference sorts ascending
        attempts = [(t, r) for t in range(2, n_targets + 2) for r in range(settings.restarts)]

        def attempt(item: tuple[int, int], todo: torch.Tensor) -> torch.Tensor:
            rank, restart = item
            target = ranked[todo, -rank]
            start = random_start(x[todo], eps, norm, draws, f"target{rank}/restart{restart}", todo)
            return apgd_single_run(
                model,
                x[todo],
                y[todo],
                start,
                eps=eps,
                norm=norm,
                loss=targeted_dlr_loss(target),
                n_iter=settings.n_iter,
                rho=settings.rho,
            )

        return first_success(model, x, y, attempts, attempt)


def random_start(x: torch.Tensor, eps: float, norm: Norm, draws: Draws, key: str, todo: torch.Tensor) -> torch.Tensor:
    """The reference's start: a random direction scaled to norm eps, clipped to [0, 1]."""
    rng = draws.rng(key, todo)
    if norm is Norm.LINF:
        t = rng.uniform(x.shape[1:], low=-1.0, high=1.0, device=x.device, dtype=x.dtype)
    else:
        t = rng.normal(x.shape[1:], device=x.device, dtype=x.dtype)
    return (x + eps * _normalize(t, norm)).clamp(0.0, 1.0)


def _normalize(t: torch.Tensor, norm: Norm) -> torch.Tensor:
    return t / (norm.size(t).view(-1, *[1] * (t.ndim - 1)) + 1e-12)


def _project(x: torch.Tensor, x_new: torch.Tensor, eps: float, norm: Norm) -> torch.Tensor:
    if norm is Norm.LINF:
        return torch.minimum(torch.maximum(x_new, x - eps), x + eps).clamp(0.0, 1.0)
    delta = x_new - x
    size = norm.size(delta).view(-1, *[1] * (x.ndim - 1))
    return (x + _normalize(delta, norm) * torch.clamp(size, max=eps)).clamp(0.0, 1.0)


def _loss_and_grad(
    model: nn.Module, x_adv: torch.Tensor, y: torch.Tensor, loss: Loss
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x_adv = x_adv.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x_adv)
        per_sample = loss(logits, y)
        grad = torch.autograd.grad(per_sample.sum(), [x_adv])[0]
    return logits.detach(), per_sample.detach(), grad.detach()


def apgd_single_run(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    start: torch.Tensor,
    *,
    eps: float,
    norm: Norm,
    loss: Loss,
    n_iter: int = 100,
    rho: float = 0.75,
    check: Callable[[torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """One APGD run from ``start``; returns per sample the last adversarial point found
    (or the start when none was found), like the reference's ``x_best_adv``."""
    n_iter_2 = max(int(0.22 * n_iter), 1)
    n_iter_min = max(int(0.06 * n_iter), 1)
    size_decr = max(int(0.03 * n_iter), 1)
    shape = [-1] + [1] * (x.ndim - 1)

    x_adv = start.clone()
    x_best_adv = x_adv.clone()
    logits, loss_cur, grad = _loss_and_grad(model, x_adv, y, loss)
    if check is not None:
        check(logits)
    robust = logits.argmax(1) == y
    x_best, grad_best, loss_best = x_adv.clone(), grad.clone(), loss_cur.clone()
    # Row -1 is read (as zeros) by the first oscillation check, as in the reference.
    loss_steps = torch.zeros(n_iter, x.shape[0], device=x.device, dtype=loss_cur.dtype)

    step = torch.full((x.shape[0], *shape[1:]), 2.0 * eps, device=x.device, dtype=x.dtype)
    x_adv_old = x_adv.clone()
    k, counter = n_iter_2, 0
    loss_best_last_check = loss_best.clone()
    reduced_last_check = torch.ones_like(loss_best, dtype=torch.bool)

    for i in range(n_iter):
        momentum_input = x_adv - x_adv_old
        x_adv_old = x_adv.clone()
        a = 0.75 if i > 0 else 1.0
        direction = grad.sign() if norm is Norm.LINF else _normalize(grad, norm)
        x_1 = _project(x, x_adv + step * direction, eps, norm)
        x_adv = _project(x, x_adv + (x_1 - x_adv) * a + momentum_input * (1 - a), eps, norm)

        logits, loss_cur, grad = _loss_and_grad(model, x_adv, y, loss)
        fooled = logits.argmax(1) != y
        robust &= ~fooled
        x_best_adv[fooled] = x_adv[fooled]

        loss_steps[i] = loss_cur
        better = loss_cur > loss_best
        x_best[better], grad_best[better], loss_best[better] = x_adv[better], grad[better], loss_cur[better]

        counter += 1
        if counter == k:
            increases = sum((loss_steps[i - j] > loss_steps[i - j - 1]).to(x.dtype) for j in range(k))
            halve = increases <= k * rho
            halve |= ~reduced_last_check & (loss_best_last_check >= loss_best)
            reduced_last_check = halve.clone()
            loss_best_last_check = loss_best.clone()
            if halve.any():
                step[halve] /= 2.0
                x_adv[halve] = x_best[halve]
                grad[halve] = grad_best[halve]
            k = max(k - size_decr, n_iter_min)
            counter = 0
    return x_best_adv
