"""scikit-image's ``rgb2hsv`` / ``hsv2rgb`` on N×3×H×W tensors (same tie-breaking)."""

from __future__ import annotations

import torch


def rgb2hsv(x: torch.Tensor) -> torch.Tensor:
    """HSV with H, S, V in ``[0, 1]``; ties for the maximum resolve blue > green > red
    and grey pixels get H = S = 0, as scikit-image."""
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    v = x.amax(dim=1)
    delta = v - x.amin(dim=1)
    safe = torch.where(delta == 0, torch.ones_like(delta), delta)
    s = torch.where(v == 0, torch.zeros_like(v), delta / torch.where(v == 0, torch.ones_like(v), v))
    h = (g - b) / safe
    h = torch.where(g == v, 2.0 + (b - r) / safe, h)
    h = torch.where(b == v, 4.0 + (r - g) / safe, h)
    h = torch.remainder(h / 6.0, 1.0)
    h = torch.where(delta == 0, torch.zeros_like(h), h)
    return torch.stack([h, s, v], dim=1)


def hsv2rgb(hsv: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb2hsv` (scikit-image's sector formula)."""
    h, s, v = hsv[:, 0], hsv[:, 1], hsv[:, 2]
    hi = torch.floor(h * 6.0)
    f = h * 6.0 - hi
    hi = torch.remainder(hi, 6).long()
    p = v * (1 - s)
    q = v * (1 - f * s)
    t = v * (1 - (1 - f) * s)
    table = torch.stack(
        [
            torch.stack([v, t, p], 1),
            torch.stack([q, v, p], 1),
            torch.stack([p, v, t], 1),
            torch.stack([p, q, v], 1),
            torch.stack([t, p, v], 1),
            torch.stack([v, p, q], 1),
        ],
        dim=0,
    )  # 6×N×3×H×W
    index = hi[None, :, None].expand(1, -1, 3, -1, -1)
    return table.gather(0, index)[0]
