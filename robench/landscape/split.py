"""Where the probes cut a network: ``f`` = the stem, ``h`` = everything after it.

The GCP code (``landscape/*/models/*_Base.py``) perturbs the output of the stem: ResNet
``conv1 → bn1 → ReLU → max-pool``, MobileNetV2 ``features[0]`` (LANDSCAPE.md §1.1). Each
architecture registers the two halves here, keyed by its name in ``ARCHS``; the
normaliser of a :class:`~robench.models.wrap.Normalized` model belongs to the stem.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from robench._registry import Registry
from robench.models.wrap import Normalized


@dataclass(frozen=True)
class StemSplit:
    """The two halves of a network.

    Attributes:
        stem: ``stem(net, x)``: normalised images → stem activations ``y``.
        rest: ``rest(net, y)``: stem activations → logits.
        description: The cut, in words.
    """

    stem: Callable[[nn.Module, torch.Tensor], torch.Tensor]
    rest: Callable[[nn.Module, torch.Tensor], torch.Tensor]
    description: str


SPLITS: Registry[StemSplit] = Registry("stem split (architecture without a probe cut)")


def _resnet_stem(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return net.maxpool(net.relu(net.bn1(net.conv1(x))))


def _resnet_rest(net: nn.Module, y: torch.Tensor) -> torch.Tensor:
    return net.forward_head(net.layer4(net.layer3(net.layer2(net.layer1(y)))))


def _demo_stem(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return net.relu(net.bn1(net.conv1(x)))


def _demo_rest(net: nn.Module, y: torch.Tensor) -> torch.Tensor:
    return net.forward_head(net.layer3(net.layer2(net.layer1(y))))


def _mobilenet_stem(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return net.features[0](x)


def _mobilenet_rest(net: nn.Module, y: torch.Tensor) -> torch.Tensor:
    return net.forward_head(net.features[1:](y))


def _shufflenet_stem(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return net.maxpool(net.conv1(x))


def _shufflenet_rest(net: nn.Module, y: torch.Tensor) -> torch.Tensor:
    return net.forward_head(net.conv5(net.stage4(net.stage3(net.stage2(y)))))


for _name in ("resnet18", "resnet34", "resnet50", "resnet101"):
    SPLITS.add(_name, StemSplit(_resnet_stem, _resnet_rest, "after conv1 → bn1 → ReLU → max-pool (as the GCP code)"))
SPLITS.add("resnet_demo", StemSplit(_demo_stem, _demo_rest, "after conv1 → bn1 → ReLU (the demo has no max-pool)"))
SPLITS.add("mobilenet_v2", StemSplit(_mobilenet_stem, _mobilenet_rest, "after features[0] (as the GCP code)"))
SPLITS.add("shufflenet_v2_x1_0", StemSplit(
    _shufflenet_stem, _shufflenet_rest, "after conv1 → max-pool (no GCP probe code exists for ShuffleNetV2)"))


def unwrap(model: nn.Module) -> tuple[nn.Module, Callable[[torch.Tensor], torch.Tensor]]:
    """``(network, normalise)`` of a :class:`Normalized` model (identity for a bare network)."""
    if isinstance(model, Normalized):
        return model.model, model.normalize
    return model, lambda x: x
