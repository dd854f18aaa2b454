"""The JPEG round trip's conversions around the codec: every 8-bit level, every output dtype."""

from __future__ import annotations

import pytest
import torch

import robench.corruptions as C


def level_blocks(dtype: torch.dtype, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A 128×128 image of 8×8 blocks, one per level 0 … 255 (flat blocks survive quality 100 exactly)."""
    levels = torch.arange(256).reshape(16, 16)
    img = levels.repeat_interleave(8, 0).repeat_interleave(8, 1)
    scaled = img.to(dtype).mul_(1.0 / 255.0)  # what the decoded levels must equal, bit for bit
    x = scaled.expand(1, channels, 128, 128).contiguous()
    return x, x.clone()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("channels", [1, 3])
def test_every_level_decodes_to_torchs_level_times_one_255th(dtype: torch.dtype, channels: int) -> None:
    x, want = level_blocks(dtype, channels)
    got = C.jpeg_roundtrip(x, 100)
    assert got.dtype == dtype and got.shape == x.shape
    assert torch.equal(got, want)  # not merely close: level·(1/255) rounded as torch rounds it


def test_images_of_a_batch_are_coded_independently() -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.rand(5, 3, 24, 40, generator=g)
    whole = C.jpeg_roundtrip(x, 30)
    assert torch.equal(whole[2:3], C.jpeg_roundtrip(x[2:3], 30))
    assert torch.equal(whole, torch.cat([C.jpeg_roundtrip(x[:2], 30), C.jpeg_roundtrip(x[2:], 30)]))
