"""Pooling heads: the pluggable piece where GAP and GCP models differ.

A :class:`Pooling` describes what an architecture builds between its last feature map
and its classifier: an optional 1×1 reduction (conv, BN, activation), a parameter-free
global pooling module and the resulting feature length. Architectures read these
properties instead of branching on the pooling's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from robench._registry import Registry
from robench.models.isqrtcov import ISqrtCovPool, isqrt_cov_features


class GlobalAvgPool(nn.Module):
    """Global average pooling: ``B×C×H×W → B×C``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


@dataclass(frozen=True)
class Pooling:
    """One registered pooling head.

    Attributes:
        name: Registry name (``gap``, ``gcp``).
        description: One line for ``robench list``.
        make: Builds the parameter-free pooling module ``B×C×H×W → B×F``.
        features: Output length ``F`` for ``C`` input channels.
        reduce_to: Channels of the 1×1 reduction block before pooling, ``None`` for none.
        full_resolution: Whether ResNets keep the last stage at stride 1 (14×14 maps at
            224 px, as the released GCP ResNets do).
    """

    name: str
    description: str
    make: Callable[[], nn.Module]
    features: Callable[[int], int]
    reduce_to: int | None = None
    full_resolution: bool = False


POOLINGS: Registry[Pooling] = Registry("pooling head")

POOLINGS.add(
    "gap",
    Pooling(
        name="gap",
        description="global average pooling (torchvision heads)",
        make=GlobalAvgPool,
        features=lambda c: c,
    ),
)
POOLINGS.add(
    "gcp",
    Pooling(
        name="gcp",
        description="iSQRT-COV global covariance pooling, 1×1 reduction to 256, Newton–Schulz iterN=5",
        make=ISqrtCovPool,
        features=isqrt_cov_features,
        reduce_to=256,
        full_resolution=True,
    ),
)


def reduction_block(in_channels: int, out_channels: int, act: nn.Module) -> nn.Sequential:
    """The GCP dimension reduction: 1×1 conv without bias, BN, activation."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False), nn.BatchNorm2d(out_channels), act
    )
