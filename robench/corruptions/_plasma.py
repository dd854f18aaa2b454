"""The diamond-square plasma fractal of ImageNet-C's fog, batched with per-sample draws."""

from __future__ import annotations

import torch

from robench._rng import SampleRNG


def noise_count(mapsize: int) -> int:
    """Uniform draws one map of side ``mapsize`` consumes: three ``4^k`` sets per level ``k``."""
    return sum(3 * 4**k for k in range(mapsize.bit_length() - 1))


def plasma_fractal(
    rng: SampleRNG, mapsize: int, wibbledecay: float, *, device=None, dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """One ``mapsize × mapsize`` plasma map per sample, scaled to ``[0, 1]``.

    Hendrycks' variant of diamond-square on a torus: the map starts at 0, each level
    fills square centres, then the two diamond sets, each with ``sum/4 + w·U(−w, w)``
    (noise amplitude ``w²``), ``w`` starting at 100 and divided by ``wibbledecay`` per
    level; finally the map is shifted and scaled to ``[0, 1]``.

    The grid of each level is held compactly (the points already set, ``m × m``) and
    interleaved into the next level's ``2m × 2m`` grid, which gives the original's values
    without its strided writes into the full map. Each sample's noise is one draw of
    :func:`noise_count` values, consumed level by level in the original's order (squares,
    diamonds on the corner rows, diamonds on the centre rows). ``float32`` (the default)
    differs from a ``float64`` map by < 1e-6 after scaling, far below 1/255.

    Args:
        rng: Per-sample streams (one map each).
        mapsize: A power of two.
        wibbledecay: Roughness decay per level.
        device: Where the map is built.
        dtype: Arithmetic and draw precision.

    Returns:
        ``N × mapsize × mapsize`` maps.
    """
    if mapsize < 1 or mapsize & (mapsize - 1):
        raise ValueError(f"mapsize must be a power of two, got {mapsize}")
    n = len(rng)
    noise = rng.uniform((noise_count(mapsize),), low=-1.0, high=1.0, dtype=dtype, device=device)
    grid = torch.zeros(n, 1, 1, dtype=dtype, device=device)
    wibble, used = 100.0, 0

    def wibbled_mean(total: torch.Tensor) -> torch.Tensor:
        nonlocal used
        m = total.shape[1]
        draws = noise[:, used : used + m * m].view(n, m, m)
        used += m * m
        return total.mul_(0.25).add_(draws, alpha=wibble * wibble)

    while grid.shape[1] < mapsize:
        m = grid.shape[1]
        pairs = grid + grid.roll(-1, 1)
        centres = wibbled_mean(pairs + pairs.roll(-1, 2))
        across = wibbled_mean(centres + centres.roll(1, 1) + grid + grid.roll(-1, 2))  # corner rows
        down = wibbled_mean(centres + centres.roll(1, 2) + grid + grid.roll(-1, 1))  # centre rows
        finer = torch.empty(n, 2 * m, 2 * m, dtype=dtype, device=device)
        finer[:, 0::2, 0::2] = grid
        finer[:, 1::2, 1::2] = centres
        finer[:, 0::2, 1::2] = across
        finer[:, 1::2, 0::2] = down
        grid = finer
        wibble /= wibbledecay
    flat = grid.view(n, -1)
    flat.sub_(flat.amin(dim=1, keepdim=True))
    return flat.div_(flat.amax(dim=1, keepdim=True).clamp_min(torch.finfo(dtype).tiny)).view(n, mapsize, mapsize)
