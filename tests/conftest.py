from __future__ import annotations

import os
from dataclasses import dataclass

import pytest
import torch
from torch import nn

# Two CPU cores are shared by the whole suite; one thread per test process keeps timings sane.
torch.set_num_threads(int(os.environ.get("ROBENCH_TEST_THREADS", "1")))


@dataclass
class FakeModel:
    """A ``robench.models.ResolvedModel`` look-alike around any module."""

    name: str
    arch: str
    pooling: str
    num_classes: int
    sha256: str
    module: nn.Module


def tiny_net(seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    # A random linear read-out of 4×4-pooled pixels: cheap, differentiable, and its predictions vary
    # with content and position (so flips, errors and attacks are all non-trivial).
    net = nn.Sequential(nn.AvgPool2d(4), nn.Flatten(), nn.Linear(3 * 8 * 8, 10))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return net.eval()


@pytest.fixture
def fake_models() -> list[FakeModel]:
    return [
        FakeModel("tiny-gap", "tiny", "gap", 10, "a" * 64, tiny_net(0)),
        FakeModel("tiny-gcp", "tiny", "gcp", 10, "b" * 64, tiny_net(1)),
    ]
