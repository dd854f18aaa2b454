"""JPEG encode/decode round trips (libjpeg-turbo through OpenCV, pixel-identical to Pillow's)."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from robench.corruptions._base import check_image_batch

_CV_DEPTH = {torch.float32: cv2.CV_32F, torch.float64: cv2.CV_64F}


def _to_interleaved_uint8(xi: np.ndarray, out: np.ndarray) -> np.ndarray:
    """One ``C×H×W`` float image in ``[0, 1]`` → ``out`` (``H×W×C`` uint8, nearest level, OpenCV's BGR order).

    Plane by plane through OpenCV's SIMD saturating conversion, then one merge: torch's float→uint8 and
    channel-last copies cost about as much as the JPEG codec itself.
    """
    levels = [cv2.addWeighted(p, 255.0, p, 0.0, 0.0, dtype=cv2.CV_8U) for p in xi]  # saturating, nearest
    cv2.merge(levels[::-1], out)  # writes into out, 1 channel included
    return out


def _to_planar_float(decoded: np.ndarray, out: np.ndarray, depth: int) -> None:
    """A decoded ``H×W×C`` (or ``H×W``) uint8 BGR image → ``out`` (``C×H×W`` RGB float, ``level · (1/255)``).

    One SIMD pass per plane (widen and scale); bit-identical to torch's ``float(level).mul_(1/255)``
    (all 256 levels are checked in ``tests/test_jpeg_codec.py``).
    """
    for plane, level in zip(out, cv2.split(decoded)[::-1], strict=True):
        cv2.addWeighted(level, 1.0 / 255.0, level, 0.0, 0.0, dst=plane, dtype=depth)


def jpeg_roundtrip(x: torch.Tensor, quality: int = 85) -> torch.Tensor:
    """Quantise to 8 bits, JPEG-encode and decode every image.

    This is the official ImageNet-C storage step (quality 85, 4:2:0 chroma subsampling,
    integer DCT: Pillow's defaults; ``optimize=True`` of the original only changes the
    Huffman tables, not the pixels). OpenCV's ``imencode``/``imdecode`` call libjpeg-turbo
    with the same settings as Pillow: the same file bytes and the same decoded pixels
    (``tests/test_corruptions_fidelity.py`` checks every quality). Values are rounded to
    the nearest of the 256 levels first (inputs already on the 8-bit grid, as in the
    official pipeline, pass unchanged). 1-channel images are coded as greyscale JPEGs.

    Args:
        x: ``N×C×H×W`` float images in ``[0, 1]``, C = 1 or 3, on any device.
        quality: JPEG quality, 1 … 100.

    Returns:
        The decoded images as float in ``[0, 1]`` (multiples of 1/255), like ``x``.
    """
    check_image_batch(x)
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"JPEG quality must be in 1 … 100, got {quality}")
    if x.shape[0] == 0:
        return x.detach().clone()
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    src = x.detach().to("cpu", torch.float32)
    n, c, h, w = src.shape
    dtype = x.dtype if x.dtype in _CV_DEPTH else torch.float32  # half types: scaled in float32, then rounded
    out = torch.empty(n, c, h, w, dtype=dtype)
    interleaved = np.empty((h, w, c), dtype=np.uint8)
    # Image by image, so that each image's float, 8-bit and decoded copies stay in the CPU's caches.
    for xi, oi in zip(src.numpy(), out.numpy(), strict=True):
        encoded = cv2.imencode(".jpg", _to_interleaved_uint8(xi, interleaved), params)[1]
        _to_planar_float(cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED), oi, _CV_DEPTH[dtype])
    return out.to(x.device, x.dtype)
