"""FAB-T (Croce & Hein, 2020): the targeted Fast Adaptive Boundary attack of AutoAttack.

A re-implementation of ``FABAttack.attack_single_run`` (targeted branch) and ``perturb`` of the
reference code (fra31/auto-attack, on PyPI as ``pyautoattack``) for the L∞ and L2 norms.
Per target class (ranked 2 … n+1 by clean logits) and restart, FAB linearises the margin
``z_t − z_y`` at the current point, projects both the current point and the clean image onto
that hyperplane within the box ``[0, 1]`` (minimal Lp step), moves towards a convex
combination of the two projections (weight ``alpha ≤ alpha_max``, overshoot ``eta``) and, once
misclassified, keeps the smallest adversarial point and steps back towards the clean image by
``beta``. The search is minimal-norm and does not use eps except to accept a point (norm ≤
eps) and to scale a random start (only from the second restart on, as in the reference:
AutoAttack ``standard`` runs one restart, so FAB-T draws nothing random).

Each sample's iterations involve only its own logits and gradient, so results do not depend
on the batch; random starts (restarts > 1) come from per-sample streams.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from robench.attacks._base import Attack, Draws, Kind, Norm, first_success, register_attack
from robench.errors import InputError


@dataclass(frozen=True)
class FABSettings:
    """Settings of FAB-T (defaults: AutoAttack ``standard``).

    Attributes:
        norm: ``"linf"`` or ``"l2"``.
        n_iter: Iterations per target and restart (AutoAttack: 100).
        restarts: Restarts per target; the first starts at the clean image (AutoAttack: 1).
        n_target_classes: Targets = classes ranked 2 … n+1 by clean logits (AutoAttack: 9).
        alpha_max: Largest weight of the clean image's projection (0.1).
        eta: Overshoot of the projection step (1.05).
        beta: Backward step towards the clean image after a success (0.9).
    """

    norm: str = "linf"
    n_iter: int = 100
    restarts: int = 1
    n_target_classes: int = 9
    alpha_max: float = 0.1
    eta: float = 1.05
    beta: float = 0.9

    def __post_init__(self) -> None:
        if self.norm not in (n.value for n in Norm):
            raise ValueError(f"norm must be 'linf' or 'l2', got {self.norm!r}")
        if self.n_iter < 1 or self.restarts < 1 or self.n_target_classes < 1:
            raise ValueError("n_iter, restarts and n_target_classes must be >= 1")
        if not 0 <= self.alpha_max <= 1 or self.eta <= 0 or not 0 < self.beta <= 1:
            raise ValueError("alpha_max must lie in [0, 1], eta > 0 and beta in (0, 1]")


@register_attack
class FABT(Attack[FABSettings]):
    """Targeted FAB, one run per target class (AutoAttack's third attack)."""

    name = "fab-t"
    kind = Kind.MINIMAL  # a minimal-norm search whose point counts only within eps
    settings_type = FABSettings

    def norm(self, settings: FABSettings) -> Norm:
        return Norm(settings.norm)

    def run(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, draws: Draws, settings: FABSettings
    ) -> torch.Tensor:
        norm = Norm(settings.norm)
        with torch.no_grad():
            clean = model(x)
        if clean.shape[1] < 3:
            raise InputError(f"Attack {self.name!r} needs at least 3 classes, the model has {clean.shape[1]}.")
        n_targets = min(settings.n_target_classes, clean.shape[1] - 1)
        ranked = clean.sort(dim=1)[1]  # ascending, as the reference: target of rank r is ranked[:, -r]
        attempts = [(t, r) for t in range(2, n_targets + 2) for r in range(settings.restarts)]

        def attempt(item: tuple[int, int], todo: torch.Tensor) -> torch.Tensor:
            rank, restart = item
            x0 = x[todo]
            start = x0 if restart == 0 else _random_start(x0, eps, norm, draws, f"target{rank}/restart{restart}", todo)
            adv, size = fab_targeted_run(model, x0, y[todo], ranked[todo, -rank], start, norm=norm, settings=settings)
            # A point counts only within the budget (the reference's ``res > eps`` check).
            ok = (size <= eps).view(-1, *[1] * (x.ndim - 1))
            return torch.where(ok, adv, x0)

        return first_success(model, x, y, attempts, attempt)


def _random_start(x: torch.Tensor, eps: float, norm: Norm, draws: Draws, key: str, todo: torch.Tensor) -> torch.Tensor:
    """The reference's restart point: a random direction of norm eps/2 around x, clipped to [0, 1]."""
    rng = draws.rng(key, todo)
    if norm is Norm.LINF:
        t = rng.uniform(x.shape[1:], low=-1.0, high=1.0, device=x.device, dtype=x.dtype)
    else:
        t = rng.normal(x.shape[1:], device=x.device, dtype=x.dtype)
    t = t / norm.size(t).view(-1, *[1] * (x.ndim - 1))
    return (x + eps * t * 0.5).clamp(0.0, 1.0)


def fab_targeted_run(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    target: torch.Tensor,
    start: torch.Tensor,
    *,
    norm: Norm,
    settings: FABSettings,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One targeted FAB run from ``start``.

    Returns:
        Per sample the smallest adversarial point found (``x`` where none) and its norm
        (``inf`` where none).
    """
    n = x.shape[0]
    shape = (-1, *[1] * (x.ndim - 1))
    rows = torch.arange(n, device=x.device)
    flat0 = x.reshape(n, -1)
    best = x.clone()
    best_size = torch.full((n,), math.inf, device=x.device, dtype=x.dtype)
    project = _PROJECTIONS[norm]
    x1 = start.clone()
    for _ in range(settings.n_iter):
        # Linearise the margin towards the target: f(z) ≈ f(x1) + <g, z − x1>, f = z_t − z_y.
        probe = x1.detach().requires_grad_(True)
        with torch.enable_grad():
            logits = model(probe)
            margin = logits[rows, target] - logits[rows, y]
            grad = torch.autograd.grad(margin.sum(), [probe])[0]
        with torch.no_grad():
            w = grad.reshape(n, -1)
            b = (w * x1.reshape(n, -1)).sum(1) - margin.detach()
            # Minimal steps from the current point and from the clean image onto {z: <w, z> = b} ∩ box.
            steps = project(torch.cat((x1.reshape(n, -1), flat0)), torch.cat((w, w)), torch.cat((b, b)))
            d1, d2 = steps[:n].reshape(x.shape), steps[n:].reshape(x.shape)
            sizes = norm.size(steps).clamp_min(1e-8).view(shape)
            a1, a2 = sizes[:n], sizes[n:]
            alpha = (a1 / (a1 + a2)).clamp(0.0, settings.alpha_max)
            x1 = ((x1 + settings.eta * d1) * (1 - alpha) + (x + settings.eta * d2) * alpha).clamp(0.0, 1.0)
            fooled = model(x1).argmax(1) != y
            if fooled.any():
                size = norm.size(x1 - x)
                smaller = fooled & (size < best_size)
                best[smaller] = x1[smaller]
                best_size[smaller] = size[smaller]
                x1[fooled] = x[fooled] + (x1[fooled] - x[fooled]) * settings.beta
    return best, best_size


def project_linf(t: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per row, the step ``d`` of least L∞ norm with ``<w, t + d> = b`` and ``t + d`` in ``[0, 1]``
    (or the step to the box corner that comes closest when the hyperplane is out of reach).

    ``d_i = −sign(w_i)·min(λ, room_i)`` where ``room_i`` is the distance to the bound ``d`` moves
    towards; the smallest sufficient ``λ`` is found by bisection over the sorted ``room``.
    """
    w = w.clone()
    side = 2 * ((w * t).sum(1) - b >= 0) - 1  # orient the hyperplane so that <w, d> must decrease
    w.mul_(side.unsqueeze(1))
    b = b * side
    up = (w < 0).to(t.dtype)  # coordinates that move towards 1 (the others towards 0)
    corner = (up - t) * (w != 0).to(t.dtype)  # full move to the box corner
    room = up - t * (2 * up - 1)
    order = room.argsort(dim=1)
    need = b - (w * t).sum(1)  # the required change of <w, ·> (≤ 0)
    at_corner = (w * corner).sum(1)  # the change at the corner (most negative reachable)

    desc = order.flip((1,))
    w_desc = w.gather(1, desc)
    slope = w_desc.abs().cumsum(1)  # Σ|w| over the k+1 largest rooms (not saturated at λ = room_k)
    saturated = (-w_desc * corner.gather(1, desc)).cumsum(1) + at_corner.unsqueeze(1)

    smallest_room = room.gather(1, order[:, :1]).squeeze(1)
    below_all = need - (saturated[:, -1] - slope[:, -1] * smallest_room) > 0  # λ < every room
    search = (need - at_corner > 0) & ~below_all
    lo = torch.zeros(int(search.sum()), device=t.device)
    hi = torch.full_like(lo, w.shape[1] - 1)
    order_s, sat_s, slope_s = order[search], saturated[search], slope[search]
    room_s, need_s = room[search], need[search]
    for _ in range(math.ceil(math.log2(w.shape[1]))):
        mid = torch.floor((lo + hi) / 2)
        k = mid.long().unsqueeze(1)
        coord = order_s.gather(1, order_s.shape[1] - 1 - k)
        value = (sat_s.gather(1, k) - slope_s.gather(1, k) * room_s.gather(1, coord)).squeeze(1)
        further = need_s - value > 0
        lo = torch.where(further, mid, lo)
        hi = torch.where(further, hi, mid)
    k = lo.long()

    d = corner.clone()
    if below_all.any():
        lam = torch.clamp_min((need[below_all] - saturated[below_all, -1]) / (-slope[below_all, -1]), 0).unsqueeze(-1)
        d[below_all] = (2 * up[below_all] - 1) * lam
    lam = torch.clamp_min((need[search] - saturated[search, k]) / (-slope[search, k]), 0).unsqueeze(-1)
    d[search] = torch.min(lam, corner[search]) * up[search] + torch.max(-lam, corner[search]) * (1 - up[search])
    return d * (w != 0).to(t.dtype)


def project_l2(t: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per row, the step ``d`` of least L2 norm with ``<w, t + d> = b`` and ``t + d`` in ``[0, 1]``.

    The solution is ``−a·w`` clipped to the box; coordinate ``i`` saturates at ``a = r_i``. The
    right ``a`` is found by bisection over the sorted ``r`` (or the full clipped move when the
    hyperplane is out of reach).
    """
    w = w.clone()
    gap = (w * t).sum(1) - b
    side = 2 * (gap >= 0) - 1
    w.mul_(side.unsqueeze(1))
    gap = gap * side
    r = torch.max(t / w, (t - 1) / w).clamp(min=-1e12, max=1e12)
    r.masked_fill_(w.abs() < 1e-8, 1e12)
    r[r == -1e12] *= -1
    r_sorted, order = torch.sort(r, dim=1)
    r_next = torch.nn.functional.pad(r_sorted[:, 1:], (0, 1))
    r_sorted.masked_fill_(r_sorted == 1e12, 0)
    r_next.masked_fill_(r_next == 1e12, 0)

    w2 = (w**2).gather(1, order)
    w2_total = w2.sum(dim=1, keepdim=True)
    w2_free = w2_total - w2.cumsum(1)  # Σ w² of the coordinates not saturated past position k
    d = -(r * w)
    d.mul_((w.abs() > 1e-8).to(t.dtype))
    change = torch.cat(
        (-w2_total * r_sorted[:, :1], ((r_sorted - r_next) * w2_free).cumsum(1) - w2_total * r_sorted[:, :1]), 1
    )

    first = change[:, 0] + gap < 0  # reached before any coordinate saturates
    beyond = (d * w).sum(1) + gap > 0  # not reachable even fully saturated: keep d
    search = ~(first | beyond)
    lo = torch.zeros(int(search.sum()), device=t.device)
    hi = torch.full_like(lo, w.shape[1] - 1)
    change_s, gap_s = change[search], gap[search]
    for _ in range(math.ceil(math.log2(w.shape[1]))):
        mid = torch.floor((lo + hi) / 2)
        further = change_s.gather(1, mid.long().unsqueeze(1)).squeeze(1) + gap_s > 0
        lo = torch.where(further, mid, lo)
        hi = torch.where(further, hi, mid)
    k = lo.long()

    if first.any():
        a = gap[first] / w2_total[first].squeeze(-1)
        d[first] = -a.unsqueeze(-1) * w[first]
    if search.any():
        a = (change[search, k] + gap[search]) / w2_free[search, k] + r_sorted[search, k]
        a[w2_free[search, k] == 0] = 0
        free = (a.unsqueeze(-1) > r[search]).to(t.dtype)
        d[search] = d[search] * free - a.unsqueeze(-1) * w[search] * (1 - free)
    return d * (w.abs() > 1e-8).to(t.dtype)


_PROJECTIONS = {Norm.LINF: project_linf, Norm.L2: project_l2}
