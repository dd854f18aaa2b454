"""iSQRT-COV: global covariance pooling with a Newton–Schulz matrix square root.

The layer follows Li et al., "Towards Faster Training of Global Covariance Pooling
Networks by Iterative Matrix Square Root Normalization" (CVPR 2018) exactly as the
released code computes it (REFERENCE.md §5.1), per sample of a batch:

1. covariance ``Σ = X Ī Xᵀ`` of the ``C × M`` feature matrix with ``Ī = I/M − 11ᵀ/M²``
   (mean-centred, divided by ``M``);
2. pre-normalisation ``A = Σ / tr(Σ)`` — without an ε, so an all-constant feature map
   gives NaN, as in the original;
3. coupled Newton–Schulz iterations ``Y₀ = A, Z₀ = I, T = ½(3I − Z Y), Y ← Y T, Z ← T Z``,
   where the last of the ``iter_n`` iterations updates ``Y`` only;
4. post-compensation ``S = sqrt(tr(Σ)) · Y``;
5. the upper triangle of ``S`` (``i ≤ j``) in row-major order, the order of
   :func:`torch.triu_indices`, giving ``C(C+1)/2`` features.

The backward pass is plain autograd. A hand-written backward through the iterations
(the paper's approach, exploiting that ``Y`` and ``Z`` are symmetric and commute) was
measured against it with ``benchmarks/bench_gcp.py`` (batch 32, C = 256, 14×14, float32,
2 shared CPU threads, three runs): 1.05–1.82 s against 0.64–1.13 s for autograd, i.e.
1.6–1.9× slower, with equal gradients (5e-7 relative). It needs 9 matrix products per iteration where reverse mode
through the forward graph needs 6, so the simpler form is kept.
"""

from __future__ import annotations

import torch
from torch import nn

ITER_N = 5
"""Newton–Schulz iterations used by every released GCP / fast-MPN-COV model."""


def covariance(x: torch.Tensor) -> torch.Tensor:
    """Mean-centred covariance with ``1/M`` of ``B×C×H×W`` (or ``B×C×M``) features → ``B×C×C``.

    Equal to ``X Ī Xᵀ`` with ``Ī = I/M − 11ᵀ/M²``, without building the ``M × M`` matrix.
    """
    x = x.flatten(2)
    m = x.shape[-1]
    xc = x - x.mean(dim=-1, keepdim=True)
    return xc @ xc.transpose(-1, -2) / m


def newton_schulz_sqrt(a: torch.Tensor, iter_n: int = ITER_N) -> torch.Tensor:
    """Coupled Newton–Schulz square root of trace-normalised SPD matrices ``B×C×C``.

    Converges to ``A^{1/2}`` when the eigenvalues of ``A`` lie in ``(0, 1]`` (which
    ``A = Σ / tr Σ`` guarantees); the last iteration computes ``Y`` only.
    """
    if iter_n < 1:
        raise ValueError(f"iter_n must be >= 1, got {iter_n}")
    eye3 = 3.0 * torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
    if iter_n == 1:
        return 0.5 * a @ (eye3 - a)
    t = 0.5 * (eye3 - a)
    y, z = a @ t, t
    for _ in range(iter_n - 2):
        t = 0.5 * (eye3 - z @ y)
        y, z = y @ t, t @ z
    return 0.5 * y @ (eye3 - z @ y)


def triu_vec(s: torch.Tensor) -> torch.Tensor:
    """Upper triangle (``i ≤ j``) of ``B×C×C`` matrices, row-major → ``B×C(C+1)/2``."""
    c = s.shape[-1]
    rows, cols = torch.triu_indices(c, c, device=s.device)
    return s[..., rows, cols]


def isqrt_cov(x: torch.Tensor, iter_n: int = ITER_N, *, vectorize: bool = True) -> torch.Tensor:
    """iSQRT-COV pooling of ``B×C×H×W`` features (REFERENCE.md §5.1).

    Args:
        x: Feature maps ``B×C×H×W`` (or ``B×C×M``), float32 or float64.
        iter_n: Newton–Schulz iterations (5 in every released model).
        vectorize: Return the ``B×C(C+1)/2`` upper-triangular vector (True) or the
            ``B×C×C`` matrix square root (False).

    Returns:
        Float32 for half/bfloat16 inputs (the statistics are computed in float32, also
        under autocast), else the input dtype.
    """
    dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    with torch.autocast(x.device.type, enabled=False):
        sigma = covariance(x.to(dtype))
        trace = sigma.diagonal(dim1=-2, dim2=-1).sum(-1)[:, None, None]
        y = newton_schulz_sqrt(sigma / trace, iter_n)
        s = y * trace.sqrt()
        return triu_vec(s) if vectorize else s


def isqrt_cov_features(channels: int) -> int:
    """Length of the iSQRT-COV vector for ``channels`` input channels."""
    return channels * (channels + 1) // 2


class ISqrtCovPool(nn.Module):
    """iSQRT-COV as a parameter-free pooling module: ``B×C×H×W → B×C(C+1)/2``."""

    def __init__(self, iter_n: int = ITER_N) -> None:
        super().__init__()
        self.iter_n = iter_n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return isqrt_cov(x, self.iter_n)

    def extra_repr(self) -> str:
        return f"iter_n={self.iter_n}"
