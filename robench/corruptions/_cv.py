"""The few OpenCV routines the originals call, re-implemented in batched torch.

Each follows OpenCV's documented arithmetic (integer Sobel/Canny, fixed-point chamfer
distance, 8-bit histogram equalisation, fixed-point bilinear resize) closely enough
that 8-bit results agree with ``cv2`` on natural inputs; the tests compare them.
All take and return float tensors holding 8-bit values (0 … 255) unless stated.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from robench.corruptions._filters import filter2d

_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
_TG22 = 13573  # tan(22.5°)·2^15, rounded, as OpenCV's Canny
_SHIFT = 15


def canny(img: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """``cv2.Canny(img, low, high)`` (aperture 3, L1 gradient) of N×H×W 8-bit images.

    Returns a bool tensor of edge pixels. Sobel borders replicate; the magnitude outside
    the image counts as 0; non-maximum suppression uses OpenCV's integer sector test
    (``tan 22.5°`` in 15-bit fixed point, strict/non-strict comparisons as in OpenCV);
    hysteresis keeps candidates (``|gx|+|gy| > low``) 8-connected to a pixel above ``high``.
    """
    x = img[:, None].to(torch.float64)
    gx = filter2d(x, _SOBEL_X, "nearest")[:, 0].round().long()
    gy = filter2d(x, _SOBEL_X.t().contiguous(), "nearest")[:, 0].round().long()
    mag = gx.abs() + gy.abs()
    mp = F.pad(mag, (1, 1, 1, 1))  # zeros outside

    def at(di: int, dj: int) -> torch.Tensor:
        h, w = mag.shape[-2:]
        return mp[:, 1 + di : 1 + di + h, 1 + dj : 1 + dj + w]

    xs = gx.abs()
    ys = gy.abs() << _SHIFT
    tg22 = xs * _TG22
    tg67 = tg22 + (xs << (_SHIFT + 1))
    horiz = ys < tg22
    vert = ~horiz & (ys > tg67)
    diag = ~horiz & ~vert
    same_sign = (gx ^ gy) >= 0
    keep_h = (mag > at(0, -1)) & (mag >= at(0, 1))
    keep_v = (mag > at(-1, 0)) & (mag >= at(1, 0))
    keep_d = torch.where(
        same_sign, (mag > at(-1, -1)) & (mag > at(1, 1)), (mag > at(-1, 1)) & (mag > at(1, -1))
    )
    nms = (horiz & keep_h) | (vert & keep_v) | (diag & keep_d)
    cand = nms & (mag > low)
    edges = cand & (mag > high)
    candf = cand[:, None].to(torch.float32)
    cur = edges[:, None].to(torch.float32)
    while True:
        grown = F.max_pool2d(cur, 3, stride=1, padding=1) * candf
        grown = torch.maximum(grown, cur)
        if torch.equal(grown, cur):
            break
        cur = grown
    return cur[:, 0] > 0


_CHAMFER5 = ((1, 0, 1.0), (1, 1, 1.4), (2, 1, 2.1969))  # (di, dj, step): OpenCV DIST_L2, mask 5


def distance_transform_l2_5(zero: torch.Tensor, cap: float) -> torch.Tensor:
    """``cv2.distanceTransform(src, DIST_L2, 5)`` where ``zero`` marks ``src == 0``.

    OpenCV's 5×5 chamfer metric (steps 1, 1.4, 2.1969 in float32) is the shortest-path
    distance over the 16 mask moves, computed here by batched relaxation. Distances
    above ``cap`` are only known to exceed it (the caller truncates there). Outside the
    image counts as far away. Returns float32 distances (N×H×W).
    """
    limit = float(cap) + 3.0
    d = torch.where(zero, 0.0, limit).to(torch.float32)
    moves = []
    for a, b, step in _CHAMFER5:
        for di, dj in {(a, b), (b, a), (-a, b), (b, -a), (a, -b), (-b, a), (-a, -b), (-b, -a)}:
            moves.append((di, dj, step))
    h, w = d.shape[-2:]
    while True:
        p = F.pad(d, (2, 2, 2, 2), value=limit)
        best = d
        for di, dj, step in moves:
            best = torch.minimum(best, p[:, 2 + di : 2 + di + h, 2 + dj : 2 + dj + w] + step)
        best = best.clamp_max(limit)
        if torch.equal(best, d):
            break
        d = best
    return d


def box3_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum over 3×3 windows with reflect-101 borders (exact in float64), N×H×W."""
    ones = torch.ones(3, 3, dtype=torch.float64)
    return filter2d(x[:, None].to(torch.float64), ones, "reflect101")[:, 0]


def equalize_hist(img: torch.Tensor) -> torch.Tensor:
    """``cv2.equalizeHist`` of N×H×W 8-bit images (per image)."""
    n = img.shape[0]
    flat = img.reshape(n, -1).long()
    total = flat.shape[1]
    hist = torch.zeros(n, 256, dtype=torch.long, device=img.device)
    hist.scatter_add_(1, flat, torch.ones_like(flat))
    first = (hist > 0).long().argmax(dim=1, keepdim=True)
    first_count = hist.gather(1, first)
    cum = hist.cumsum(1) - first_count
    scale = (255.0 / (total - first_count).clamp_min(1).to(torch.float32)).to(torch.float32)
    lut = torch.round(cum.to(torch.float32) * scale).clamp(0, 255)
    constant = first_count == total
    lut = torch.where(constant, first.to(lut.dtype).expand(-1, 256), lut)
    return lut.gather(1, flat).reshape(img.shape).to(img.dtype)


def resize_linear_u8(img: torch.Tensor, fx: float, fy: float, dsize: tuple[int, int] | None = None) -> torch.Tensor:
    """``cv2.resize(img, dsize or (0, 0), fx=fx, fy=fy)`` (INTER_LINEAR) of an H×W×C uint8 image.

    Pixel-centre mapping ``(d + ½)/f − ½`` evaluated in float32, 11-bit weights and the
    vertical pass of OpenCV's SIMD 8-bit path (16-bit high products, final ``(t + 2) >> 2``).
    """
    h, w = img.shape[:2]
    out_w, out_h = dsize if dsize is not None else (round(w * fx), round(h * fy))

    def taps(n_in: int, n_out: int, inv_scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        scale = 1.0 / inv_scale
        src = ((torch.arange(n_out, dtype=torch.float64) + 0.5) * scale - 0.5).to(torch.float32)
        s0 = torch.floor(src)
        f = src - s0
        s0 = s0.long()
        f = torch.where(s0 < 0, torch.zeros_like(f), f)
        s0 = s0.clamp_min(0)
        last = s0 >= n_in - 1
        f = torch.where(last, torch.zeros_like(f), f)
        s0 = torch.where(last, torch.full_like(s0, n_in - 1), s0)
        c0 = torch.round((1.0 - f) * 2048.0).long()
        idx = torch.stack([s0, (s0 + 1).clamp_max(n_in - 1)], 1)
        return idx, torch.stack([c0, 2048 - c0], 1)

    ix, cx = taps(w, out_w, out_w / w if dsize is not None else fx)
    iy, cy = taps(h, out_h, out_h / h if dsize is not None else fy)
    src = img.long()
    horiz = src[:, ix[:, 0]] * cx[:, 0, None] + src[:, ix[:, 1]] * cx[:, 1, None]  # H×W'×C
    # OpenCV's SIMD vertical pass: 16-bit high products of (row >> 4) and the weights.
    top = ((horiz[iy[:, 0]] >> 4) * cy[:, 0, None, None]) >> 16
    bottom = ((horiz[iy[:, 1]] >> 4) * cy[:, 1, None, None]) >> 16
    return ((top + bottom + 2) >> 2).clamp(0, 255).to(torch.uint8)

