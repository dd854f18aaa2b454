"""Curvature of the training loss in weight space (LANDSCAPE.md §3; a modern complement, not the paper's method).

Hessian-vector products by double back-propagation (Pearlmutter 1994) through the
whole network, all parameters, batch-mean cross-entropy without weight decay, on one
minibatch, batch-norm in **train mode** (batch statistics, as the GCP probe; PyHessian
would force eval mode). The model is copied, so its weights, BN buffers and gradients
are not touched; the random vectors come from a generator of their own. iSQRT-COV is
plain autograd in robench, so the double backward through it is exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from robench.landscape.probes import probe_copy

Vectors = list[torch.Tensor]


class HessianVectorProduct:
    """``v ↦ H·v`` for the loss of a copy of ``model`` on ``(x, target)``.

    The gradient graph is built once and reused by every product.

    Attributes:
        shapes: Shapes of the parameters (the blocks of ``v``).
        dtype: Their dtype.
        device: Their device.
    """

    def __init__(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> None:
        twin = probe_copy(model)
        self._params = [p.requires_grad_(True) for p in twin.parameters()]
        loss = F.cross_entropy(twin(x), target)
        self._grads = torch.autograd.grad(loss, self._params, create_graph=True)
        self.shapes = [p.shape for p in self._params]
        self.dtype = self._params[0].dtype
        self.device = self._params[0].device

    def __call__(self, v: Vectors) -> Vectors:
        return list(torch.autograd.grad(self._grads, self._params, grad_outputs=v, retain_graph=True))


def _dot(a: Vectors, b: Vectors) -> float:
    return sum(float((u.double() * w.double()).sum()) for u, w in zip(a, b))


@dataclass(frozen=True)
class TopEigen:
    """Result of the power iteration.

    Attributes:
        value: Rayleigh quotient ``vᵀHv`` of the final unit vector: the eigenvalue of largest
            magnitude (may be negative).
        iterations: Products used.
        converged: Whether the relative change fell below the tolerance.
    """

    value: float
    iterations: int
    converged: bool


def top_eigenvalue(hvp: HessianVectorProduct, *, max_iter: int = 20, tol: float = 1e-3,
                   generator: torch.Generator | None = None) -> TopEigen:
    """Power iteration ``v ← Hv/‖Hv‖`` from a random unit vector; stops when ``|λ_j − λ_{j−1}| ≤ tol·|λ_j|``.

    PyHessian's defaults are ``max_iter=100, tol=1e-3``.
    """
    shapes, dtype, device = hvp.shapes, hvp.dtype, hvp.device
    v = [torch.randn(s, generator=generator, dtype=torch.float64).to(device, dtype) for s in shapes]
    scale = 1.0 / math.sqrt(_dot(v, v))
    v = [t * scale for t in v]
    value, previous = math.nan, math.nan
    for j in range(1, max_iter + 1):
        hv = hvp(v)
        value = _dot(v, hv)
        size = math.sqrt(_dot(hv, hv))
        if size == 0:
            return TopEigen(0.0, j, True)
        v = [t / size for t in hv]
        if j > 1 and abs(value - previous) <= tol * abs(value):
            return TopEigen(value, j, True)
        previous = value
    return TopEigen(value, max_iter, False)


@dataclass(frozen=True)
class TraceEstimate:
    """Hutchinson's estimate: mean of ``vᵀHv`` over Rademacher ``v``, with its standard error."""

    value: float
    stderr: float
    samples: int


def hutchinson_trace(hvp: HessianVectorProduct, *, samples: int = 50,
                     generator: torch.Generator | None = None) -> TraceEstimate:
    """``tr(H) ≈ (1/m) Σ_j v_jᵀ H v_j`` with entries of ``v_j`` ±1 (unbiased; Hutchinson 1990).

    The standard error is the sample standard deviation over ``√m`` (NaN for one sample).
    """
    shapes, dtype, device = hvp.shapes, hvp.dtype, hvp.device
    draws = []
    for _ in range(samples):
        v = [(torch.randint(0, 2, s, generator=generator) * 2 - 1).to(device, dtype) for s in shapes]
        draws.append(_dot(v, hvp(v)))
    mean = sum(draws) / len(draws)
    if len(draws) < 2:
        return TraceEstimate(mean, math.nan, len(draws))
    var = sum((d - mean) ** 2 for d in draws) / (len(draws) - 1)
    return TraceEstimate(mean, math.sqrt(var / len(draws)), len(draws))


@dataclass(frozen=True)
class Curvature:
    top: TopEigen
    trace: TraceEstimate


def curvature(model: nn.Module, x: torch.Tensor, target: torch.Tensor, *, power_iters: int = 20,
              tol: float = 1e-3, trace_samples: int = 50, seed: int = 0) -> Curvature:
    """Top eigenvalue and trace of the Hessian of the minibatch loss at the current weights."""
    hvp = HessianVectorProduct(model, x, target)
    gen = torch.Generator().manual_seed(seed)
    return Curvature(top_eigenvalue(hvp, max_iter=power_iters, tol=tol, generator=gen),
                     hutchinson_trace(hvp, samples=trace_samples, generator=gen))
