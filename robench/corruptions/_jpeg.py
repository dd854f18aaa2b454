"""JPEG encode/decode round trips (libjpeg-turbo through OpenCV, pixel-identical to Pillow's)."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from robench.corruptions._base import check_image_batch


def _interleaved_uint8(x: torch.Tensor) -> np.ndarray:
    """``N×C×H×W`` float in ``[0, 1]`` → ``N×H×W×C`` uint8 (nearest level), channels reversed (OpenCV's BGR).

    Image by image, plane by plane through OpenCV's SIMD saturating conversion and merge:
    torch's float→uint8 and channel-last copies cost about as much as the JPEG codec itself.
    """
    n, c, h, w = x.shape
    out = np.empty((n, h, w, c), dtype=np.uint8)
    for xi, oi in zip(x.numpy(), out, strict=True):
        levels = [cv2.addWeighted(p, 255.0, p, 0.0, 0.0, dtype=cv2.CV_8U) for p in xi]  # saturating, nearest
        cv2.merge(levels[::-1], oi)  # writes into oi, 1 channel included
    return out


def _planar_float(decoded: list[np.ndarray], dtype: torch.dtype) -> torch.Tensor:
    """Decoded ``H×W×C`` (or ``H×W``) uint8 BGR images → one ``N×C×H×W`` RGB float batch in ``[0, 1]``."""
    out = torch.empty(len(decoded), *decoded[0].shape[2:] or (1,), *decoded[0].shape[:2], dtype=dtype)
    for oi, di in zip(out, decoded, strict=True):
        for plane, level in zip(oi, cv2.split(di)[::-1], strict=True):
            plane.copy_(torch.from_numpy(level))  # contiguous planes: a fast widening copy
        oi.mul_(1.0 / 255.0)
    return out


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
    decoded = [cv2.imdecode(cv2.imencode(".jpg", ui, params)[1], cv2.IMREAD_UNCHANGED)
               for ui in _interleaved_uint8(x.detach().to("cpu", torch.float32))]
    return _planar_float(decoded, x.dtype).to(x.device)
