"""Shared image-filtering helpers with OpenCV / SciPy border semantics.

Padding is done by index arithmetic, so every border mode works for any image size,
including pads wider than the image (where torch's own ``reflect`` refuses).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _reflect101_index(n: int, pad_before: int, pad_after: int, device) -> torch.Tensor:
    """Indices of OpenCV's BORDER_REFLECT_101 (``gfedcb|abcdefgh|gfedcba``)."""
    idx = torch.arange(-pad_before, n + pad_after, device=device)
    if n == 1:
        return torch.zeros_like(idx)
    period = 2 * (n - 1)
    idx = idx.remainder(period)
    return torch.where(idx >= n, period - idx, idx)


def _nearest_index(n: int, pad_before: int, pad_after: int, device) -> torch.Tensor:
    """Indices of edge replication (OpenCV BORDER_REPLICATE, SciPy ``nearest``)."""
    return torch.arange(-pad_before, n + pad_after, device=device).clamp(0, n - 1)


def _symmetric_index(n: int, pad_before: int, pad_after: int, device) -> torch.Tensor:
    """Indices of SciPy's ``reflect`` (``dcba|abcd|dcba``, edge repeated)."""
    idx = torch.arange(-pad_before, n + pad_after, device=device).remainder(2 * n)
    return torch.where(idx >= n, 2 * n - 1 - idx, idx)


BORDER_INDEX = {
    "reflect101": _reflect101_index,
    "nearest": _nearest_index,
    "symmetric": _symmetric_index,
}


def pad2d(x: torch.Tensor, ph: int, pw: int, mode: str) -> torch.Tensor:
    """Pad the last two dims of ``x`` by ``ph``/``pw`` on each side with a border mode."""
    index = BORDER_INDEX[mode]
    h, w = x.shape[-2:]
    x = x.index_select(-2, index(h, ph, ph, x.device))
    return x.index_select(-1, index(w, pw, pw, x.device))


def filter2d(x: torch.Tensor, kernel: torch.Tensor, mode: str = "reflect101") -> torch.Tensor:
    """Correlate every channel of ``x`` (N×C×H×W) with one 2-D ``kernel`` (odd sides, centred)."""
    kh, kw = kernel.shape
    c = x.shape[1]
    xp = pad2d(x, kh // 2, kw // 2, mode)
    weight = kernel.to(x.device, x.dtype).expand(c, 1, kh, kw)
    return F.conv2d(xp, weight, groups=c)


def gaussian_kernel1d(sigma: float, radius: int, dtype=torch.float64) -> torch.Tensor:
    """Normalised samples of a Gaussian at ``-radius … radius``."""
    t = torch.arange(-radius, radius + 1, dtype=dtype)
    k = torch.exp(-(t**2) / (2.0 * sigma**2))
    return k / k.sum()


def separable_filter(x: torch.Tensor, k1d: torch.Tensor, mode: str) -> torch.Tensor:
    """Apply the same odd-length 1-D kernel along H and W of an N×C×H×W tensor."""
    return filter2d(filter2d(x, k1d[None, :], mode), k1d[:, None], mode)
