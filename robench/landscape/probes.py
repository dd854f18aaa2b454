"""Loss-landscape and gradient-predictiveness probes (LANDSCAPE.md §1.2–1.3, §2).

**Activation space** (the GCP code): with ``y = f(x)`` the stem output for the current
minibatch, ``L`` the batch-mean cross-entropy of the rest ``h`` and ``g = ∇_y L(y)``, for
every step ``η_k`` of a grid:

- loss landscape ``ℓ_k = L(y + η_k·g)`` — a step *up* the gradient, as in the code;
- gradient predictiveness ``d_k = ‖∇_y L(y + η_k·g) − g‖`` (Frobenius norm over the whole
  batch tensor);
- effective smoothness ``β_eff = max_k d_k / (η_k·‖g‖)`` (Santurkar et al.; the GCP code
  never logs it).

**Weight space** (Santurkar et al. §3.1): the same three quantities along ``W − η·G`` with
``G = ∇_W L(W)`` over all parameters (loss without weight decay).

Both run on a copy of the model in train mode (batch-norm with batch statistics,
recomputed at every shifted point, as the GCP code's probe copies do) with dropout
switched off (the GCP landscape models never apply theirs). The copy's parameters do not
require gradients, so nothing of the trained model — weights, BN running statistics,
gradients — and no random stream is touched. Because BN uses batch statistics, a probe
is defined per minibatch: splitting the batch changes the result.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from robench._registry import Registry
from robench.errors import InputError
from robench.landscape.split import StemSplit, unwrap


@dataclass(frozen=True)
class Grid:
    """``points`` linearly spaced steps in ``[start, stop]``, both ends included (η = 0 is not on it).

    Attributes:
        start: First step ``a``.
        stop: Last step ``b``.
        points: ``K`` (50 in the GCP code).
        description: Where the grid comes from.
    """

    start: float
    stop: float
    points: int = 50
    description: str = ""

    def __post_init__(self) -> None:
        if self.points < 1 or not 0 < self.start <= self.stop or (self.points == 1 and self.start != self.stop):
            raise InputError(
                f"A step grid needs 0 < start <= stop and at least one point, got [{self.start}, {self.stop}] with "
                f"{self.points} points; fix --eta-min/--eta-max/--points."
            )

    def etas(self) -> list[float]:
        """``η_k = a + k·(b − a)/(K − 1)`` in Python floats, the code's arithmetic."""
        if self.points == 1:
            return [self.start]
        step = (self.stop - self.start) / (self.points - 1)
        return [self.start + step * k for k in range(self.points)]

    def with_points(self, points: int) -> Grid:
        return Grid(self.start, self.stop, points, self.description)


GRIDS: Registry[Grid] = Registry("step grid")
GRIDS.add("resnet18", Grid(0.1, 75.0, 50, "GCP code, ResNet-18 at batch 256: [0.1, 75] (= [lr, 750·lr])"))
GRIDS.add("resnet18-v1", Grid(0.05, 0.8, 50, "first version of the GCP code (2430183): [0.05, 0.8]"))
GRIDS.add("mobilenet_v2", Grid(0.045, 1.5, 50, "GCP code, MobileNetV2 at batch 96: [0.045, 1.5] (= [lr, 33·lr])"))
GRIDS.add("demo", Grid(
    0.05, 37.5, 50,
    "ResNet-18 grid × 128/256: the same per-sample displacement at batch 128 (g ∝ 1/B for a batch-mean loss)"))
GRIDS.add("santurkar", Grid(0.05, 0.4, 50, "Santurkar et al. weight space: [lr/2, 4·lr] at lr 0.1"))


@dataclass(frozen=True)
class ProbeResult:
    """One probe at one step on one minibatch.

    Attributes:
        etas: The step grid ``η_k``.
        losses: ``ℓ_k``.
        grad_diffs: ``d_k``.
        base_loss: ``L`` at the unshifted point.
        grad_norm: ``‖g‖`` (Frobenius, whole batch).
        point_norm: ``‖y‖`` (activation space) or ``‖W‖`` (weight space).
    """

    etas: tuple[float, ...]
    losses: tuple[float, ...]
    grad_diffs: tuple[float, ...]
    base_loss: float
    grad_norm: float
    point_norm: float

    @property
    def beta_eff(self) -> float:
        """``max_k d_k / (η_k·‖g‖)``; NaN when ``g = 0``."""
        if self.grad_norm == 0:
            return math.nan
        return max(d / (eta * self.grad_norm) for eta, d in zip(self.etas, self.grad_diffs))


def probe_copy(model: nn.Module) -> nn.Module:
    """A detached twin: train mode (BN batch statistics), dropout off, no parameter gradients."""
    twin = copy.deepcopy(model)
    twin.train()
    for m in twin.modules():
        if isinstance(m, nn.modules.dropout._DropoutNd):
            m.eval()
    for p in twin.parameters():
        p.requires_grad_(False)
    return twin


def _norm(t: torch.Tensor | Sequence[torch.Tensor]) -> float:
    parts = [t] if isinstance(t, torch.Tensor) else list(t)
    return math.sqrt(sum(float(p.detach().double().square().sum()) for p in parts))


def activation_probe(model: nn.Module, split: StemSplit, x: torch.Tensor, target: torch.Tensor,
                     etas: Sequence[float]) -> ProbeResult:
    """The GCP code's probe of the stem activations (LANDSCAPE.md §1.2).

    Args:
        model: The network (a :class:`~robench.models.wrap.Normalized` one takes ``[0, 1]`` images).
            It is copied; the original is not touched.
        split: Where the stem ends (``SPLITS.get(arch)``).
        x: The minibatch the training step uses (already augmented).
        target: Its labels.
        etas: The step grid.
    """
    net, normalise = unwrap(probe_copy(model))
    with torch.no_grad():
        y = split.stem(net, normalise(x))

    def loss_and_grad(point: torch.Tensor) -> tuple[float, torch.Tensor]:
        point = point.detach().requires_grad_(True)
        loss = F.cross_entropy(split.rest(net, point), target)
        (grad,) = torch.autograd.grad(loss, point)
        return float(loss.detach()), grad

    base, g = loss_and_grad(y)
    losses, diffs = [], []
    for eta in etas:
        loss, grad = loss_and_grad(y + eta * g)
        losses.append(loss)
        diffs.append(_norm(grad - g))
    return ProbeResult(tuple(etas), tuple(losses), tuple(diffs), base, _norm(g), _norm(y))


def weight_probe(model: nn.Module, split: StemSplit | None, x: torch.Tensor, target: torch.Tensor,
                 etas: Sequence[float]) -> ProbeResult:
    """Santurkar et al.'s probe along the weight gradient, ``W − η·G`` (LANDSCAPE.md §2).

    Every point costs a forward and backward pass with parameter gradients; BN in train
    mode; the loss has no weight-decay term. ``split`` is unused (the whole network moves).
    """
    twin = probe_copy(model)
    names = [n for n, _ in twin.named_parameters()]
    w0 = [p.detach() for _, p in twin.named_parameters()]
    buffers = dict(twin.named_buffers())

    def loss_and_grad(weights: list[torch.Tensor]) -> tuple[float, list[torch.Tensor]]:
        params = {n: w.detach().requires_grad_(True) for n, w in zip(names, weights)}
        state = {**params, **{n: b.clone() for n, b in buffers.items()}}  # BN updates stay on clones
        loss = F.cross_entropy(functional_call(twin, state, (x,)), target)
        return float(loss.detach()), list(torch.autograd.grad(loss, list(params.values())))

    base, g = loss_and_grad(w0)
    losses, diffs = [], []
    for eta in etas:
        loss, grad = loss_and_grad([w - eta * gw for w, gw in zip(w0, g)])
        losses.append(loss)
        diffs.append(_norm([a - b for a, b in zip(grad, g)]))
    return ProbeResult(tuple(etas), tuple(losses), tuple(diffs), base, _norm(g), _norm(w0))


Prober = Callable[[nn.Module, StemSplit, torch.Tensor, torch.Tensor, Sequence[float]], ProbeResult]


@dataclass(frozen=True)
class Space:
    """A probe space: the function and its default grid name."""

    probe: Prober
    grid: str
    description: str


SPACES: Registry[Space] = Registry("probe space")
SPACES.add("activation", Space(activation_probe, "demo", "stem activations along +∇_y L (GCP code)"))
SPACES.add("weights", Space(weight_probe, "santurkar", "all weights along −∇_W L (Santurkar et al.)"))
