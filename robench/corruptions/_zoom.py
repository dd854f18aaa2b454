"""Hendrycks' ``clipped_zoom``: crop the centre, zoom it back up bilinearly, trim to size.

The original (square images) crops ``ch = ceil(h / z)`` pixels starting at
``(h − ch) // 2``, zooms them with ``scipy.ndimage.zoom(order=1)`` to ``round(ch·z)``
pixels (SciPy maps output index ``o`` to input coordinate ``o·(ch − 1)/(out − 1)``) and
keeps ``h`` pixels starting at ``(out − h) // 2``. Here each axis is treated the same
way on its own, which equals the original on square images.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F


@functools.lru_cache(maxsize=512)
def zoom_coords(n: int, z: float) -> torch.Tensor:
    """Source coordinate (pixels, float64) of each of ``n`` output samples."""
    ch = max(1, math.ceil(n / z))
    top = (n - ch) // 2
    out = round(ch * z)
    trim = max(0, (out - n) // 2)
    ratio = (ch - 1) / (out - 1) if out > 1 else 1.0
    return (torch.arange(n, dtype=torch.float64) + trim) * ratio + top


def clipped_zoom(x: torch.Tensor, z: float) -> torch.Tensor:
    """Zoom the centre of the last two dims of ``x`` (any leading dims) by ``z ≥ 1``, keeping the size.

    Bilinear (``grid_sample``, corner-aligned, so normalised coordinate −1 … 1 spans
    pixel centres 0 … n−1); every sample lies inside the image.
    """
    shape = x.shape
    h, w = shape[-2:]
    x = x.reshape(-1, 1, h, w)
    n = x.shape[0]
    gy = zoom_coords(h, float(z)) * (2.0 / max(h - 1, 1)) - 1.0
    gx = zoom_coords(w, float(z)) * (2.0 / max(w - 1, 1)) - 1.0
    grid = torch.stack(torch.broadcast_tensors(gx[None, :], gy[:, None]), dim=-1)
    grid = grid.to(x.device, x.dtype)[None].expand(n, h, w, 2)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out.reshape(shape)
