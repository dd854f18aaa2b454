"""Batched image warps with the sampling rules of the libraries ImageNet-P used.

* :func:`pil_affine` — ``PIL.Image.transform(AFFINE)`` as called by torchvision 0.2's
  ``F.affine``: output pixel centres ``(x + ½, y + ½)`` are mapped by the inverse
  matrix; a source point outside ``[0, W) × [0, H)`` gives black; bilinear sampling
  clamps the 2×2 neighbourhood to the image; 8-bit results are truncated (checked
  against Pillow), which the perturbation template's quantisation does.
* :func:`cv_warp_perspective` — ``cv2.warpPerspective`` with ``INTER_LINEAR`` and a
  constant black border: source coordinates rounded to 1/32 pixel, bilinear weights
  in fixed point, 8-bit result rounded half up; neighbours outside the image count
  as black.

Coordinates are computed in float64 on the CPU (they depend only on the frame, not
on the images) and the sampling runs on the images' device.
"""

from __future__ import annotations

import math

import torch


def pil_affine_matrix(
    width: int,
    height: int,
    *,
    angle: float = 0.0,
    translate: tuple[float, float] = (0.0, 0.0),
    scale: float = 1.0,
    shear: float = 0.0,
) -> tuple[float, float, float, float, float, float]:
    """The inverse affine matrix of torchvision 0.2's ``F.affine`` (the version ImageNet-P used).

    Rotation and shear in degrees (clockwise on screen), centre ``(W/2 + ½, H/2 + ½)``
    in PIL's pixel-edge coordinates. The inverse linear part is
    ``[[cos(a+s), sin(a+s)], [−sin a, cos a]] / (scale·cos s)`` — later torchvision
    releases changed both the centre and the shear model.
    """
    cx, cy = width * 0.5 + 0.5, height * 0.5 + 0.5
    a = math.radians(angle)
    s = math.radians(shear)
    inv_scale = 1.0 / scale
    d = math.cos(a + s) * math.cos(a) + math.sin(a + s) * math.sin(a)
    m = [math.cos(a + s), math.sin(a + s), 0.0, -math.sin(a), math.cos(a), 0.0]
    m = [inv_scale / d * v for v in m]
    tx, ty = translate
    m[2] += m[0] * (-cx - tx) + m[1] * (-cy - ty)
    m[5] += m[3] * (-cx - tx) + m[4] * (-cy - ty)
    m[2] += cx
    m[5] += cy
    return (m[0], m[1], m[2], m[3], m[4], m[5])


def _gather(x: torch.Tensor, iy: torch.Tensor, ix: torch.Tensor) -> torch.Tensor:
    """``x[..., iy, ix]`` for index grids of the output's shape (indices inside the image)."""
    n, c, h, w = x.shape
    flat = (iy * w + ix).reshape(-1).to(x.device)
    return x.reshape(n, c, h * w).index_select(2, flat).reshape(n, c, *iy.shape)


def pil_affine(x: torch.Tensor, matrix: tuple[float, ...], *, nearest: bool = False) -> torch.Tensor:
    """Warp ``N×C×H×W`` images with a PIL inverse affine ``matrix`` (output keeps the size).

    Args:
        x: Images in ``[0, 1]``.
        matrix: ``(a, b, c, d, e, f)``: output ``(x, y)`` samples the input at
            ``(a·x' + b·y' + c, d·x' + e·y' + f)`` with ``x' = x + ½``, ``y' = y + ½``.
        nearest: Nearest-neighbour instead of bilinear sampling.
    """
    _, _, h, w = x.shape
    a, b, c, d, e, f = matrix
    ys = torch.arange(h, dtype=torch.float64)[:, None] + 0.5
    xs = torch.arange(w, dtype=torch.float64)[None, :] + 0.5
    xin = a * xs + b * ys + c
    yin = d * xs + e * ys + f
    valid = ((xin >= 0) & (xin < w) & (yin >= 0) & (yin < h)).to(x.device, x.dtype)
    if nearest:
        ix = torch.floor(xin).long().clamp_(0, w - 1)
        iy = torch.floor(yin).long().clamp_(0, h - 1)
        return _gather(x, iy, ix) * valid
    xin = xin - 0.5
    yin = yin - 0.5
    x0 = torch.floor(xin)
    y0 = torch.floor(yin)
    dx = (xin - x0).to(x.device, x.dtype)
    dy = (yin - y0).to(x.device, x.dtype)
    x0, y0 = x0.long(), y0.long()
    xa, xb = x0.clamp(0, w - 1), (x0 + 1).clamp(0, w - 1)
    ya, yb = y0.clamp(0, h - 1), (y0 + 1).clamp(0, h - 1)
    top = _gather(x, ya, xa)
    top = top + (_gather(x, ya, xb) - top) * dx
    bottom = _gather(x, yb, xa)
    bottom = bottom + (_gather(x, yb, xb) - bottom) * dx
    return (top + (bottom - top) * dy) * valid


def shift(x: torch.Tensor, dx: int, dy: int = 0) -> torch.Tensor:
    """Integer translation with black fill: ``out[y, x] = in[y − dy, x − dx]``.

    Equal to :func:`pil_affine` with ``nearest=True`` and a pure translation matrix
    (PIL then samples ``floor(x + ½ − dx) = x − dx``), without the gather.
    """
    out = torch.zeros_like(x)
    h, w = x.shape[-2:]
    if abs(dx) >= w or abs(dy) >= h:
        return out
    src_y = slice(max(0, -dy), h - max(0, dy))
    dst_y = slice(max(0, dy), h - max(0, -dy))
    src_x = slice(max(0, -dx), w - max(0, dx))
    dst_x = slice(max(0, dx), w - max(0, -dx))
    out[..., dst_y, dst_x] = x[..., src_y, src_x]
    return out


def tilt_matrix(width: int, height: int, phi_deg: float, theta_deg: float) -> torch.Tensor:
    """ImageNet-P's forward homography ``P2·T·RX(θ)·RY(φ)·P1`` (float64, 3×3).

    P1 lifts pixel coordinates to 3-D centred at ``(w/2, h/2)``, RX and RY rotate about
    the x and y axes, T pushes the plane to depth ``f = √(w² + h²)`` and P2 projects it
    back with focal length f about the same centre.
    """
    w, h = float(width), float(height)
    phi, theta = math.radians(phi_deg), math.radians(theta_deg)
    f = math.sqrt(w**2 + h**2)
    t64 = torch.float64
    p1 = torch.tensor([[1, 0, -w / 2], [0, 1, -h / 2], [0, 0, 1], [0, 0, 1]], dtype=t64)
    rx = torch.tensor(
        [
            [1, 0, 0, 0],
            [0, math.cos(theta), -math.sin(theta), 0],
            [0, math.sin(theta), math.cos(theta), 0],
            [0, 0, 0, 1],
        ],
        dtype=t64,
    )
    ry = torch.tensor(
        [
            [math.cos(phi), 0, -math.sin(phi), 0],
            [0, 1, 0, 0],
            [math.sin(phi), 0, math.cos(phi), 0],
            [0, 0, 0, 1],
        ],
        dtype=t64,
    )
    t = torch.tensor([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, f], [0, 0, 0, 1]], dtype=t64)
    p2 = torch.tensor([[f, 0, w / 2, 0], [0, f, h / 2, 0], [0, 0, 1, 0]], dtype=t64)
    return p2 @ t @ rx @ ry @ p1


_INTER_BITS = 5
_TAB = 1 << _INTER_BITS  # OpenCV's INTER_TAB_SIZE: coordinates are rounded to 1/32 pixel


def cv_warp_perspective(x: torch.Tensor, forward: torch.Tensor) -> torch.Tensor:
    """``cv2.warpPerspective(img, forward, (W, H))`` (bilinear, black border) of 8-bit images.

    Args:
        x: ``N×C×H×W`` images on 8-bit levels in ``[0, 1]``.
        forward: 3×3 homography from source to destination pixel coordinates
            (pixel centres at integers, OpenCV's convention).

    Returns:
        Warped images of the same size, rounded to 8-bit levels like OpenCV.
    """
    _, _, h, w = x.shape
    m = torch.linalg.inv(forward.to(torch.float64))
    ys = torch.arange(h, dtype=torch.float64)[:, None]
    xs = torch.arange(w, dtype=torch.float64)[None, :]
    x_src = m[0, 0] * xs + m[0, 1] * ys + m[0, 2]
    y_src = m[1, 0] * xs + m[1, 1] * ys + m[1, 2]
    den = m[2, 0] * xs + m[2, 1] * ys + m[2, 2]
    inv_den = torch.where(den != 0, _TAB / torch.where(den != 0, den, 1.0), torch.zeros_like(den))
    bound = float(2**31 - 1)
    fx = torch.round((x_src * inv_den).clamp(-bound, bound)).long()  # cvRound: half to even
    fy = torch.round((y_src * inv_den).clamp(-bound, bound)).long()
    ix, ax = fx >> _INTER_BITS, fx & (_TAB - 1)
    iy, ay = fy >> _INTER_BITS, fy & (_TAB - 1)
    levels = torch.round(x * 255.0)
    acc = torch.zeros(x.shape, dtype=x.dtype, device=x.device)
    for oy, wy in ((0, _TAB - ay), (1, ay)):
        for ox, wx in ((0, _TAB - ax), (1, ax)):
            sy, sx = iy + oy, ix + ox
            inside = (sy >= 0) & (sy < h) & (sx >= 0) & (sx < w)
            weight = (wy * wx * inside).to(x.device, x.dtype)
            acc += _gather(levels, sy.clamp(0, h - 1), sx.clamp(0, w - 1)) * weight
    # Weights sum to 32·32 = 1024; OpenCV's fixed point (2^15 scale) gives the same
    # round-half-up of acc / 1024.
    return torch.floor((acc + 512.0) / 1024.0).clamp_(0, 255) / 255.0
