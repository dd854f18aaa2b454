"""Speed of iSQRT-COV pooling (forward + backward) against an eigendecomposition square root.

Three implementations of the same pooling (covariance → trace-normalised matrix square
root → upper-triangular vector) are timed on the same input in one run:

* ``isqrt-autograd``: :func:`robench.models.isqrtcov.isqrt_cov` (Newton–Schulz, iterN=5,
  backward by autograd) — what robench uses;
* ``isqrt-manual``: the same forward with a hand-written backward through the
  Newton–Schulz iterations (the paper's approach; it exploits that all iterates are
  symmetric and commute);
* ``eigh``: the exact square root ``U diag(sqrt λ) Uᵀ`` from ``torch.linalg.eigh``,
  differentiated by autograd (the MPN-COV way).

Measured here (batch 32, C = 256, 14×14, float32, 2 shared CPU threads, three runs):
isqrt-autograd 0.64–1.13 s, isqrt-manual 1.05–1.82 s (1.6–1.9× slower, hence autograd),
eigh 0.43–0.56 s (0.5–0.66× of isqrt-autograd: on a CPU the batched eigendecomposition
of 256×256 matrices costs fewer FLOPs than five coupled Newton–Schulz iterations with
their backward). With M = 196 < C = 256 the covariance is rank-deficient and five
iterations stay far from the exact root (≈ 44 % relative difference), as in the paper.

Usage::

    python benchmarks/bench_gcp.py [--batch 32 --channels 256 --size 14 --repeats 10]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from robench.models.isqrtcov import ITER_N, covariance, isqrt_cov, triu_vec


class _NewtonSchulzManual(torch.autograd.Function):
    """Coupled Newton–Schulz on trace-normalised ``A`` with a hand-written backward.

    Every iteration is ``Y' = 1.5 Y − 0.5 Y Z Y`` and ``Z' = 1.5 Z − 0.5 Z Y Z`` (with
    ``Y₀ = A``, ``Z₀ = I``; the last one computes ``Y'`` only). For symmetric ``Y``, ``Z``
    the chain rule gives, with ``Gy``/``Gz`` the gradients w.r.t. ``Y'``/``Z'``:
    ``∂Y = 1.5 Gy − 0.5 (Gy Y Z + Z Y Gy) − 0.5 Z Gz Z`` and
    ``∂Z = 1.5 Gz − 0.5 (Gz Z Y + Y Z Gz) − 0.5 Y Gy Y``.
    """

    @staticmethod
    def forward(ctx, a: torch.Tensor, iter_n: int) -> torch.Tensor:  # type: ignore[override]
        eye = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device).expand_as(a)
        ys, zs = [a], [eye]
        y, z = a, eye
        for _ in range(iter_n - 1):
            zy = z @ y
            y, z = 1.5 * y - 0.5 * y @ zy, 1.5 * z - 0.5 * zy @ z
            ys.append(y)
            zs.append(z)
        out = 1.5 * y - 0.5 * y @ (z @ y)
        ctx.save_for_backward(*ys, *zs)
        ctx.iter_n = iter_n
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        saved = ctx.saved_tensors
        n = ctx.iter_n
        ys, zs = saved[:n], saved[n:]
        gy, gz = grad, None
        for k in range(n - 1, -1, -1):
            y, z = ys[k], zs[k]
            yz = y @ z
            zy = yz.transpose(-1, -2)
            new_gy = 1.5 * gy - 0.5 * (gy @ yz + zy @ gy)
            new_gz = -0.5 * (y @ gy @ y)
            if gz is not None:
                new_gy = new_gy - 0.5 * (z @ gz @ z)
                new_gz = new_gz + 1.5 * gz - 0.5 * (gz @ zy + yz @ gz)
            gy, gz = new_gy, new_gz
        return gy, None


def isqrt_manual(x: torch.Tensor, iter_n: int = ITER_N) -> torch.Tensor:
    sigma = covariance(x)
    trace = sigma.diagonal(dim1=-2, dim2=-1).sum(-1)[:, None, None]
    y = _NewtonSchulzManual.apply(sigma / trace, iter_n)
    return triu_vec(y * trace.sqrt())


def eig_sqrt_pool(x: torch.Tensor) -> torch.Tensor:
    sigma = covariance(x)
    vals, vecs = torch.linalg.eigh(sigma)
    root = (vecs * vals.clamp_min(0).sqrt()[..., None, :]) @ vecs.transpose(-1, -2)
    return triu_vec(root)


IMPLEMENTATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "isqrt-autograd": isqrt_cov,
    "isqrt-manual": isqrt_manual,
    "eigh": eig_sqrt_pool,
}


def time_fwd_bwd(
    fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, weight: torch.Tensor, repeats: int
) -> tuple[float, float]:
    """Median and best seconds of one forward + backward."""
    times = []
    for i in range(repeats + 1):
        xi = x.detach().requires_grad_(True)
        t0 = time.perf_counter()
        (fn(xi) * weight).sum().backward()
        if i:  # the first call warms up
            times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--channels", type=int, default=256)
    parser.add_argument("--size", type=int, default=14)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    gen = torch.Generator().manual_seed(0)
    # ReLU-like non-negative features, as after the reduction block
    x = torch.randn(args.batch, args.channels, args.size, args.size, generator=gen, dtype=dtype).relu_()
    n = args.channels * (args.channels + 1) // 2
    weight = torch.randn(args.batch, n, generator=gen, dtype=dtype)

    xa = x.clone().requires_grad_(True)
    (isqrt_cov(xa) * weight).sum().backward()
    xm = x.clone().requires_grad_(True)
    (isqrt_manual(xm) * weight).sum().backward()
    grad_err = ((xa.grad - xm.grad).norm() / xa.grad.norm()).item()
    out_err = ((isqrt_cov(x) - eig_sqrt_pool(x)).norm() / eig_sqrt_pool(x).norm()).item()
    xe = x.clone().requires_grad_(True)
    (eig_sqrt_pool(xe) * weight).sum().backward()
    eig_finite = torch.isfinite(xe.grad).float().mean().item()
    rank = torch.linalg.matrix_rank(covariance(x)).min().item()

    print(
        f"iSQRT-COV forward+backward, batch {args.batch}, C={args.channels}, {args.size}x{args.size}, "
        f"{args.dtype}, {torch.get_num_threads()} threads, CPU, median of {args.repeats}"
    )
    results = {}
    for name, fn in IMPLEMENTATIONS.items():
        results[name] = time_fwd_bwd(fn, x, weight, args.repeats)
        median, best = results[name]
        print(f"  {name:<15} {1000 * median:9.1f} ms   (best {1000 * best:.1f} ms)")
    base = results["isqrt-autograd"][0]
    print(f"  eigh / isqrt-autograd:         {results['eigh'][0] / base:6.2f}x")
    print(f"  isqrt-manual / isqrt-autograd: {results['isqrt-manual'][0] / base:6.2f}x")
    print(f"  gradient difference manual vs autograd (relative): {grad_err:.2e}")
    print(
        f"  output difference iterN={ITER_N} vs eigh (relative): {out_err:.2e} "
        f"(covariance rank {rank} of {args.channels}: M = {args.size**2} positions)"
    )
    print(f"  finite eigh gradient entries: {100 * eig_finite:.1f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
