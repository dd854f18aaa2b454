"""ResNets with a pluggable pooling head.

With GAP the networks are torchvision's (same modules, same state_dict keys). With GCP
they are the released GCP / fast-MPN-COV ResNets: ``layer4`` at stride 1, then
``layer_reduce`` (1×1 conv to 256, no bias), ``layer_reduce_bn``, ``layer_reduce_relu``,
iSQRT-COV and ``fc`` on the 32896-long vector — the names of the official files.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn
from torchvision.models import resnet as tv

from robench.models.pooling import Pooling

DEMO_WIDTHS = (16, 32, 64)
"""Stage widths of ``resnet_demo`` (one BasicBlock per stage)."""
DEMO_STRIDES = (2, 2, 1)
"""Stage strides of ``resnet_demo``: 32 → 16 → 8 → 8 px, so the heads see 8×8 maps."""
DEMO_GCP_DIM = 32
"""Channels the demo's GCP head reduces to (528 covariance features at 8×8 positions)."""


def init_weights(module: nn.Module, generator: torch.Generator | None = None) -> None:
    """torchvision's ResNet initialisation for every conv / BN / linear under ``module``."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu", generator=generator)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            bound = m.in_features**-0.5
            nn.init.uniform_(m.weight, -bound, bound, generator=generator)
            nn.init.zeros_(m.bias)


class _PooledHead(nn.Module):
    """Shared ``forward_head``/``forward`` of the ResNets below (timm's split)."""

    layer_reduce: nn.Module
    layer_reduce_bn: nn.Module
    layer_reduce_relu: nn.Module
    global_pool: nn.Module
    fc: nn.Linear

    def _build_head(self, pool: Pooling, channels: int, num_classes: int) -> None:
        dim = pool.reduce_to
        if dim is None:
            self.layer_reduce = self.layer_reduce_bn = self.layer_reduce_relu = nn.Identity()
        else:
            self.layer_reduce = nn.Conv2d(channels, dim, kernel_size=1, bias=False)
            self.layer_reduce_bn = nn.BatchNorm2d(dim)
            self.layer_reduce_relu = nn.ReLU(inplace=True)
            channels = dim
        self.global_pool = pool.make()
        self.num_features = pool.features(channels)
        self.fc = nn.Linear(self.num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Reduction (GCP), pooling and, unless ``pre_logits``, the classifier."""
        x = self.layer_reduce_relu(self.layer_reduce_bn(self.layer_reduce(x)))
        x = self.global_pool(x)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class ResNet(_PooledHead, tv.ResNet):
    """torchvision's ResNet with the head of ``pool`` (GCP: stride-1 ``layer4``, reduction)."""

    def __init__(
        self,
        block: type[tv.BasicBlock | tv.Bottleneck],
        layers: list[int],
        pool: Pooling,
        num_classes: int = 1000,
    ) -> None:
        tv.ResNet.__init__(self, block, layers, num_classes=num_classes)
        del self.avgpool, self.fc
        if pool.full_resolution:
            self.inplanes = 256 * block.expansion
            self.layer4 = self._make_layer(block, 512, layers[3], stride=1)
            init_weights(self.layer4)
        self._build_head(pool, 512 * block.expansion, num_classes)
        init_weights(self.layer_reduce)
        init_weights(self.layer_reduce_bn)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class DemoResNet(_PooledHead):
    """A tiny ResNet for 3×32×32 inputs: 3×3 stem, one BasicBlock per stage.

    The backbone is the same for every pooling; the GCP head reduces to
    :data:`DEMO_GCP_DIM` channels (not 256) because the last map has only 8×8 = 64
    positions and the demo must stay fast on a CPU.
    """

    def __init__(
        self,
        pool: Pooling,
        num_classes: int = 10,
        widths: tuple[int, ...] = DEMO_WIDTHS,
        strides: tuple[int, ...] = DEMO_STRIDES,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        stages = []
        for i, (width, stride) in enumerate(zip(widths, strides, strict=True)):
            in_ch = widths[max(i - 1, 0)]
            downsample = None
            if stride != 1 or in_ch != width:
                downsample = nn.Sequential(tv.conv1x1(in_ch, width, stride), nn.BatchNorm2d(width))
            stages.append(nn.Sequential(tv.BasicBlock(in_ch, width, stride, downsample)))
        self.layer1, self.layer2, self.layer3 = stages
        reduced = pool if pool.reduce_to is None else replace(pool, reduce_to=DEMO_GCP_DIM)
        self._build_head(reduced, widths[-1], num_classes)
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        return self.layer3(self.layer2(self.layer1(x)))


def resnet_builder(block: type[tv.BasicBlock | tv.Bottleneck], layers: list[int]):
    """A ``build(pool, num_classes)`` function for one ResNet depth."""

    def build(pool: Pooling, num_classes: int) -> nn.Module:
        return ResNet(block, layers, pool, num_classes)

    return build


def build_demo(pool: Pooling, num_classes: int) -> nn.Module:
    return DemoResNet(pool, num_classes)
