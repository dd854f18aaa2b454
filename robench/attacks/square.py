"""Square Attack (Andriushchenko et al., 2020): AutoAttack's score-based random search.

A re-implementation of ``SquareAttack.attack_single_run`` of the reference code
(fra31/auto-attack, on PyPI as ``pyautoattack``) for the L∞ and L2 norms, with AutoAttack's
settings: margin loss, ``p_init = 0.8``, 5,000 queries, one restart and the schedule of ``p``
indexed by the raw iteration (``resc_schedule=False``). Each iteration proposes, for every
sample not yet fooled, a change of one random square window (L∞: ±2·eps per channel; L2: a
centred bump, moving mass from a second window) and keeps it when the margin decreases or
the sample becomes misclassified.

Deviation, on purpose: the reference draws one window position (and, for L∞, one sign
pattern) per iteration for the whole batch from the global RNG, so a sample's search depends
on its batch. Here every sample draws its own positions and signs from its per-sample stream,
with the same distribution, so results do not depend on the batch size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from robench.attacks._base import Attack, Draws, Kind, Norm, first_success, register_attack


@dataclass(frozen=True)
class SquareSettings:
    """Settings of Square (defaults: AutoAttack ``standard``).

    Attributes:
        norm: ``"linf"`` or ``"l2"``.
        n_queries: Iterations (queries) per restart (AutoAttack: 5,000).
        p_init: Initial fraction of pixels changed by a square (0.8).
        restarts: Restarts (AutoAttack: 1).
        rescale_schedule: Stretch the ``p`` schedule to ``n_queries`` (AutoAttack: False).
    """

    norm: str = "linf"
    n_queries: int = 5000
    p_init: float = 0.8
    restarts: int = 1
    rescale_schedule: bool = False

    def __post_init__(self) -> None:
        if self.norm not in (n.value for n in Norm):
            raise ValueError(f"norm must be 'linf' or 'l2', got {self.norm!r}")
        if self.n_queries < 1 or self.restarts < 1:
            raise ValueError("n_queries and restarts must be >= 1")
        if not 0 < self.p_init <= 1:
            raise ValueError("p_init must lie in (0, 1]")


@register_attack
class Square(Attack[SquareSettings]):
    """Square Attack on the margin loss (AutoAttack's fourth attack)."""

    name = "square"
    kind = Kind.SEARCH
    settings_type = SquareSettings

    def norm(self, settings: SquareSettings) -> Norm:
        return Norm(settings.norm)

    def run(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, draws: Draws, settings: SquareSettings
    ) -> torch.Tensor:
        search = _SEARCHES[Norm(settings.norm)]

        def attempt(restart: int, todo: torch.Tensor) -> torch.Tensor:
            return search(model, x[todo], y[todo], eps, draws, f"restart{restart}", todo, settings)

        return first_success(model, x, y, range(settings.restarts), attempt)


def p_schedule(it: int, n_queries: int, p_init: float, rescale: bool) -> float:
    """The reference's piecewise-constant fraction of pixels per square at iteration ``it``."""
    if rescale:
        it = int(it / n_queries * 10000)
    for bound, divisor in ((10, 1), (50, 2), (200, 4), (500, 8), (1000, 16), (2000, 32), (4000, 64), (6000, 128),
                           (8000, 256)):
        if it <= bound:
            return p_init / divisor
    return p_init / 512


def margin(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``z_y − max_{k≠y} z_k`` per sample (≤ 0: misclassified)."""
    logits = model(x)
    rows = torch.arange(x.shape[0], device=x.device)
    true = logits[rows, y].clone()
    logits[rows, y] = -math.inf
    return true - logits.amax(1)


def _window_mask(corner_h: torch.Tensor, corner_w: torch.Tensor, s: int, h: int, w: int) -> torch.Tensor:
    """Bool ``N×1×H×W``: per sample the ``s×s`` window with top-left corner (corner_h, corner_w)."""
    rows = torch.arange(h, device=corner_h.device)
    cols = torch.arange(w, device=corner_w.device)
    in_rows = (rows >= corner_h[:, None]) & (rows < corner_h[:, None] + s)
    in_cols = (cols >= corner_w[:, None]) & (cols < corner_w[:, None] + s)
    return (in_rows[:, :, None] & in_cols[:, None, :]).unsqueeze(1)


def _random_int(u: torch.Tensor, high: int) -> torch.Tensor:
    """The reference's ``random_int(0, high)``: ``floor(high·u)``, in ``[0, high)`` (0 when high is 0)."""
    return (high * u).long()


def _sign(u: torch.Tensor) -> torch.Tensor:
    """The reference's ``random_choice``: the sign of ``2u − 1``."""
    return torch.sign(2 * u - 1)


class _Search:
    """State shared by both norms: the best point, its margin, and the per-sample query loop."""

    def __init__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, x_best: torch.Tensor) -> None:
        self.model, self.x, self.y = model, x, y
        self.x_best = x_best
        with torch.no_grad():
            self.margin = margin(model, x_best, y)

    def update(self, active: torch.Tensor, x_new: torch.Tensor) -> None:
        """Keep proposals that lower the margin or misclassify (margin ≤ 0), as the reference."""
        with torch.no_grad():
            m = margin(self.model, x_new, self.y[active])
        better = (m < self.margin[active]) | (m <= 0)
        self.margin[active] = torch.where(better, m, self.margin[active])
        self.x_best[active] = torch.where(better.view(-1, 1, 1, 1), x_new, self.x_best[active])


def _linf(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, draws: Draws, key: str, todo: torch.Tensor,
    settings: SquareSettings,
) -> torch.Tensor:
    _, c, h, w = x.shape
    rng = draws.rng(key, todo)
    # Start: vertical stripes of ±eps (one sign per channel and column).
    start = _sign(rng.uniform((c, 1, w), device=x.device, dtype=x.dtype))
    state = _Search(model, x, y, (x + eps * start).clamp(0.0, 1.0))
    # Per sample and iteration: window row, window column, one sign per channel.
    u = rng.uniform((settings.n_queries, 2 + c), device=x.device, dtype=torch.float32)
    for it in range(settings.n_queries):
        active = (state.margin > 0).nonzero().flatten()
        if not active.numel():
            break
        p = p_schedule(it, settings.n_queries, settings.p_init, settings.rescale_schedule)
        s = min(max(round(math.sqrt(p * h * w)), 1), h, w)
        draw = u[active, it]
        mask = _window_mask(_random_int(draw[:, 0], h - s), _random_int(draw[:, 1], w - s), s, h, w)
        signs = _sign(draw[:, 2:]).to(x.dtype).view(-1, c, 1, 1)
        x0 = x[active]
        x_new = state.x_best[active] + mask * (2.0 * eps * signs)
        x_new = torch.minimum(torch.maximum(x_new, x0 - eps), x0 + eps).clamp(0.0, 1.0)
        state.update(active, x_new)
    return state.x_best


def _bump_rectangle(rows: int, cols: int, device: torch.device) -> torch.Tensor:
    """The reference's ``eta_rectangles`` (L2): nested centred rectangles weighted 1/(k+1)², unit L2 norm."""
    out = torch.zeros(rows, cols, device=device)
    centre_r, centre_c = rows // 2 + 1, cols // 2 + 1
    top, left = centre_r - 1, centre_c - 1
    for k in range(max(centre_r, centre_c)):
        out[max(top, 0):min(top + 2 * k + 1, rows), max(0, left):min(left + 2 * k + 1, cols)] += 1.0 / (k + 1) ** 2
        top -= 1
        left -= 1
    return out / (out**2).sum().sqrt()


def _bump(s: int, device: torch.device) -> torch.Tensor:
    """The reference's ``eta`` (L2): a positive bump over a negative one, unit L2 norm (``s×s``)."""
    out = torch.zeros(s, s, device=device)
    out[: s // 2] = _bump_rectangle(s // 2, s, device)
    out[s // 2:] = -_bump_rectangle(s - s // 2, s, device)
    return out / (out**2).sum().sqrt()


def _bumps(s: int, flip: torch.Tensor) -> torch.Tensor:
    """``N×1×s×s``: the bump, transposed where the sample's draw ``flip`` exceeds 0.5."""
    bump = _bump(s, flip.device)
    return torch.where((flip > 0.5).view(-1, 1, 1, 1), bump.t(), bump).to(flip.dtype)


def _l2_size(t: torch.Tensor) -> torch.Tensor:
    return (t**2).flatten(1).sum(-1).sqrt().view(-1, 1, 1, 1)


def _l2_normalize(t: torch.Tensor) -> torch.Tensor:
    return t / (_l2_size(t) + 1e-12)


def _window(t: torch.Tensor, corner_h: torch.Tensor, corner_w: torch.Tensor, s: int) -> tuple[torch.Tensor, ...]:
    """Advanced indices of each sample's ``s×s`` window (for reading ``t[idx]`` as ``N×s×s×C``)."""
    offsets = torch.arange(s, device=t.device)
    rows = (corner_h[:, None] + offsets)[:, :, None]
    cols = (corner_w[:, None] + offsets)[:, None, :]
    return torch.arange(t.shape[0], device=t.device)[:, None, None], slice(None), rows, cols


def _l2(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, draws: Draws, key: str, todo: torch.Tensor,
    settings: SquareSettings,
) -> torch.Tensor:
    _, c, h, w = x.shape
    rng = draws.rng(key, todo)
    # Start: a grid of bumps with random per-channel signs, scaled to norm eps.
    s = h // 5
    first = (h - s * 5) // 2
    grid = [(first + i * s, first + j * s) for i in range(h // s) for j in range(w // s)]
    u0 = rng.uniform((len(grid), 1 + c), device=x.device, dtype=x.dtype)
    delta = torch.zeros_like(x)
    for g, (top, left) in enumerate(grid):
        bumps = _bumps(s, u0[:, g, 0])
        delta[:, :, top:top + s, left:left + s] += (bumps * _sign(u0[:, g, 1:]).view(-1, c, 1, 1))[
            :, :, : max(0, min(s, h - top)), : max(0, min(s, w - left))
        ]
    state = _Search(model, x, y, (x + _l2_normalize(delta) * eps).clamp(0.0, 1.0))
    # Per sample and iteration: window 1 (row, column), window 2 (row, column), bump flip, signs.
    u = rng.uniform((settings.n_queries, 5 + c), device=x.device, dtype=torch.float32)
    for it in range(settings.n_queries):
        active = (state.margin > 0).nonzero().flatten()
        if not active.numel():
            break
        p = p_schedule(it, settings.n_queries, settings.p_init, settings.rescale_schedule)
        s = max(round(math.sqrt(p * h * w)), 3)
        s = min(s + (s % 2 == 0), h, w)
        draw = u[active, it]
        x0, best = x[active], state.x_best[active]
        step = best - x0
        h1, w1 = _random_int(draw[:, 0], h - s), _random_int(draw[:, 1], w - s)
        h2, w2 = _random_int(draw[:, 2], h - s), _random_int(draw[:, 3], w - s)
        win1 = _window(step, h1, w1, s)
        old = step[win1].permute(0, 3, 1, 2)  # N×C×s×s
        old_size = (old**2).sum(dim=(-2, -1), keepdim=True).sqrt()
        both = _window_mask(h1, w1, s, h, w) | _window_mask(h2, w2, s, h, w)
        windows_size = ((step * both) ** 2).sum(dim=(-2, -1), keepdim=True).sqrt()
        image_size = _l2_size(step)
        new = _bumps(s, draw[:, 4].to(x.dtype)) * _sign(draw[:, 5:]).to(x.dtype).view(-1, c, 1, 1)
        new = new + old / (1e-12 + old_size)
        budget = (torch.clamp_min(eps**2 - image_size**2, 0.0) / c + windows_size**2).sqrt()
        new = new / (1e-12 + (new**2).sum(dim=(-2, -1), keepdim=True).sqrt()) * budget
        step = step * ~_window_mask(h2, w2, s, h, w)
        step[win1] = new.permute(0, 2, 3, 1)
        x_new = (x0 + _l2_normalize(step) * eps).clamp(0.0, 1.0)
        state.update(active, x_new)
    return state.x_best


_SEARCHES = {Norm.LINF: _linf, Norm.L2: _l2}
