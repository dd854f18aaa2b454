"""The diamond-square plasma fractal of ImageNet-C's fog, batched with per-sample draws."""

from __future__ import annotations

import torch

from robench._rng import SampleRNG


def plasma_fractal(rng: SampleRNG, mapsize: int, wibbledecay: float, *, device=None) -> torch.Tensor:
    """One ``mapsize × mapsize`` plasma map per sample, scaled to ``[0, 1]`` (float64).

    Hendrycks' variant of diamond-square on a torus: the map starts at 0, each level
    fills square centres, then the two diamond sets, each with ``sum/4 + w·U(−w, w)``
    (noise amplitude ``w²``), ``w`` starting at 100 and divided by ``wibbledecay`` per
    level. Draws per level: squares, diamonds on rows ``0::s``, diamonds on rows
    ``s/2::s``, as in the original.

    Args:
        rng: Per-sample streams (one map each).
        mapsize: A power of two.
        wibbledecay: Roughness decay per level.
        device: Where the map is built.
    """
    if mapsize < 1 or mapsize & (mapsize - 1):
        raise ValueError(f"mapsize must be a power of two, got {mapsize}")
    n = len(rng)
    a = torch.zeros(n, mapsize, mapsize, dtype=torch.float64, device=device)
    step = mapsize
    wibble = 100.0

    def wibbled_mean(total: torch.Tensor) -> torch.Tensor:
        noise = rng.uniform(total.shape[1:], low=-wibble, high=wibble, dtype=torch.float64, device=device)
        return total / 4 + wibble * noise

    while step >= 2:
        half = step // 2
        corners = a[:, 0::step, 0::step]
        squares = corners + corners.roll(-1, 1)
        squares = squares + squares.roll(-1, 2)
        a[:, half::step, half::step] = wibbled_mean(squares)
        centres = a[:, half::step, half::step]
        corners = a[:, 0::step, 0::step]
        a[:, 0::step, half::step] = wibbled_mean(centres + centres.roll(1, 1) + corners + corners.roll(-1, 2))
        a[:, half::step, 0::step] = wibbled_mean(centres + centres.roll(1, 2) + corners + corners.roll(-1, 1))
        step = half
        wibble /= wibbledecay
    flat = a.reshape(n, -1)
    lo = flat.min(dim=1).values.view(n, 1, 1)
    a = a - lo
    hi = a.reshape(n, -1).max(dim=1).values.view(n, 1, 1)
    return a / hi.clamp_min(1e-300)
