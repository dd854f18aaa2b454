"""ImageMagick's ``MotionBlurImage``, batched, with a per-sample angle.

Semantics of ImageMagick 7 ``MagickCore/effect.c`` (as called by Wand's
``MagickMotionBlurImage`` in Hendrycks' generator):

* ``width = 2·ceil(radius) + 1`` taps (``GetOptimalKernelWidth1D`` for radius > 0);
* a **one-sided** Gaussian ``k_i ∝ exp(−i²/2σ²)``, ``i = 0 … width−1``, normalised to 1
  (the current pixel weighs most);
* tap ``i`` reads the pixel at ``(x + ceil(i·cos θ − ½), y + ceil(i·sin θ − ½))``
  (rows point down), θ the angle in degrees;
* samples outside the image take the nearest edge pixel (the default "edge"
  virtual-pixel method).

Unlike imagecorruptions' stand-in, the sum never stops early when a shift exceeds the
image size (ImageMagick keeps clamping). ImageMagick's own 16-bit quantum and the
8-bit PNG round trip are applied by :func:`imagemagick_png8` where the original read
its result back from an 8-bit PNG.
"""

from __future__ import annotations

import math

import torch

from robench.corruptions._filters import CV2_BORDER, cv2_planes, use_cv2


def imagemagick_png8(x: torch.Tensor) -> torch.Tensor:
    """The 8-bit PNG that ImageMagick (Q16) writes for a blur ``x`` of 8-bit input, in ``[0, 1]``.

    The original hands ImageMagick an 8-bit PNG, so each input sample is the Q16 value
    ``257·v`` (``v`` = 0 … 255); a blur is a convex combination, so its exact result is
    ``257·S`` with ``S = 255·x`` in ``[0, 255]`` (no clamping happens). ImageMagick stores
    the pixel as the nearest Q16 integer ``q = ⌊257·S + ½⌋`` and its PNG writer keeps
    ``q // 257`` (integer division, i.e. truncation), which ``cv2.imdecode`` reads back.
    Hence the 8-bit value is ``⌊S⌋``, except that ``S`` within ``1/514`` below an integer
    rounds up to it — neither plain rounding (what robench did before: +0.5 grey levels
    on average) nor plain ``⌊255·x⌋``. Checked pixel by pixel against ImageMagick
    6.9.11 Q16 ``-motion-blur`` on random 8-bit images (grey and RGB, 32 px).
    """
    q = torch.floor(x * (255.0 * 257.0) + 0.5)
    return torch.floor(q / 257.0).clamp_(0, 255) / 255.0


def motion_kernel(radius: float, sigma: float) -> torch.Tensor:
    """The normalised one-sided kernel of ``GetMotionBlurKernel`` (float64)."""
    if radius <= 0 or sigma <= 0:
        raise ValueError(f"motion blur needs radius > 0 and sigma > 0, got {radius}, {sigma}")
    width = 2 * math.ceil(radius) + 1
    i = torch.arange(width, dtype=torch.float64)
    k = torch.exp(-(i**2) / (2.0 * sigma * sigma))
    return k / k.sum()


def motion_offsets(width: int, angle_deg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Column and row offsets ``(N, width)`` of every tap, computed as ImageMagick does."""
    theta = angle_deg.detach().to("cpu", torch.float64) * (math.pi / 180.0)
    px = width * torch.sin(theta)  # ImageMagick's point.x
    py = width * torch.cos(theta)  # point.y
    hyp = torch.hypot(px, py)[:, None]
    i = torch.arange(width, dtype=torch.float64)[None, :]
    off_x = torch.ceil(i * py[:, None] / hyp - 0.5).long()
    off_y = torch.ceil(i * px[:, None] / hyp - 0.5).long()
    return off_x, off_y


def motion_blur_image(x: torch.Tensor, radius: float, sigma: float, angle_deg: torch.Tensor) -> torch.Tensor:
    """Motion-blur every image of a batch along its own angle.

    Args:
        x: ``N×C×H×W`` float images (any range; the result is a convex combination).
        radius: ImageMagick radius (``2·ceil(radius)+1`` taps).
        sigma: ImageMagick sigma of the one-sided Gaussian.
        angle_deg: ``(N,)`` angles in degrees (0 = smear towards +x, 90 = towards +y).

    Returns:
        The blurred batch, same shape, dtype and device as ``x``.
    """
    n, _, h, w = x.shape
    kernel = motion_kernel(radius, sigma)
    width = kernel.numel()
    off_x, off_y = motion_offsets(width, angle_deg.reshape(n))
    if use_cv2(x):
        return torch.stack([_motion_blur_cv2(x[i], kernel, off_x[i], off_y[i]) for i in range(n)])
    weights = kernel.tolist()
    out = torch.empty_like(x)
    for i in range(n):
        ox, oy = off_x[i].tolist(), off_y[i].tolist()
        # edge-pad just enough for this sample's offsets, then add shifted views
        pl, pr = max(0, -min(ox)), max(0, max(ox))
        pt, pb = max(0, -min(oy)), max(0, max(oy))
        rows = torch.arange(-pt, h + pb, device=x.device).clamp(0, h - 1)
        cols = torch.arange(-pl, w + pr, device=x.device).clamp(0, w - 1)
        xp = x[i].index_select(1, rows).index_select(2, cols)
        acc = torch.zeros_like(x[i])
        for k, (dx, dy) in enumerate(zip(ox, oy)):
            acc.add_(xp[:, pt + dy : pt + dy + h, pl + dx : pl + dx + w], alpha=weights[k])
        out[i] = acc
    return out


def _motion_blur_cv2(img: torch.Tensor, kernel: torch.Tensor, off_x: torch.Tensor, off_y: torch.Tensor) -> torch.Tensor:
    """One C×H×W image: OpenCV ``filter2D`` with the taps scattered into their bounding box
    (anchored at tap 0) and replicated borders, i.e. ImageMagick's edge clamping."""
    import cv2

    box = torch.zeros(int(off_y.max() - off_y.min()) + 1, int(off_x.max() - off_x.min()) + 1, dtype=torch.float64)
    box.index_put_((off_y - off_y.min(), off_x - off_x.min()), kernel, accumulate=True)
    k = box.numpy()
    anchor = (-int(off_x.min()), -int(off_y.min()))
    border = CV2_BORDER["nearest"]
    return cv2_planes(img, lambda a, b: cv2.filter2D(a, -1, k, dst=b, anchor=anchor, borderType=border))
