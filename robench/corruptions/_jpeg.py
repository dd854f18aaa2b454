"""JPEG encode/decode round trips through Pillow, one image at a time."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

from robench.corruptions._base import check_image_batch


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Float images in ``[0, 1]`` to uint8 by rounding half up (exact for images that came from uint8)."""
    return (x.detach() * 255.0 + 0.5).clamp_(0.0, 255.0).to(torch.uint8)


def jpeg_bytes_roundtrip(img: np.ndarray, quality: int) -> np.ndarray:
    """Encode an H×W or H×W×3 uint8 array with Pillow at ``quality`` and decode it."""
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    with Image.open(buf) as dec:
        return np.asarray(dec)


def jpeg_roundtrip(x: torch.Tensor, quality: int = 85) -> torch.Tensor:
    """Quantise to 8 bits, JPEG-encode and decode every image with Pillow.

    This is the official ImageNet-C storage step (quality 85; Pillow's defaults, i.e.
    4:2:0 chroma subsampling; ``optimize=True`` of the original only changes the
    Huffman tables, not the pixels). 1-channel images are coded as greyscale JPEGs.

    Args:
        x: ``N×C×H×W`` float images in ``[0, 1]``, C = 1 or 3, on any device.
        quality: Pillow JPEG quality, 1 … 95.

    Returns:
        The decoded images as float in ``[0, 1]`` (multiples of 1/255), like ``x``.
    """
    check_image_batch(x)
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"JPEG quality must be in 1 … 100, got {quality}")
    n, c, h, w = x.shape
    src = x.detach().cpu()
    out = torch.empty(n, c, h, w, dtype=x.dtype)
    hwc = torch.empty(h, w, c, dtype=x.dtype)
    for xi, oi in zip(src, out, strict=True):  # image by image: cache-sized pieces
        torch.mul(xi.permute(1, 2, 0), 255.0, out=hwc)
        u8 = hwc.add_(0.5).clamp_(0.0, 255.0).to(torch.uint8).numpy()
        dec = torch.from_numpy(np.array(jpeg_bytes_roundtrip(u8[..., 0] if c == 1 else u8, quality)))
        oi.copy_(dec[None] if c == 1 else dec.permute(2, 0, 1)).mul_(1.0 / 255.0)
    return out.to(x.device)
