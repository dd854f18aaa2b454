"""MobileNetV2 and ShuffleNetV2 with a pluggable pooling head.

The backbones are torchvision's (the GCP repository's copies have the same module
structure). GCP heads follow the released models: ``dimension_reduction`` =
(1×1 conv to 256 without bias, BN, ReLU6), iSQRT-COV on the 7×7 map, then
``classifier`` = (Dropout 0.2, Linear) for MobileNetV2 and ``fc`` for ShuffleNetV2.
With GAP the heads are torchvision's.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import mobilenetv2 as tv_mobilenet
from torchvision.models import shufflenetv2 as tv_shufflenet

from robench.models.pooling import Pooling, reduction_block
from robench.models.resnet import init_weights


def _reduction(pool: Pooling, channels: int) -> tuple[nn.Module, int]:
    if pool.reduce_to is None:
        return nn.Identity(), channels
    block = reduction_block(channels, pool.reduce_to, nn.ReLU6(inplace=True))
    init_weights(block)
    return block, pool.reduce_to


class MobileNetV2(tv_mobilenet.MobileNetV2):
    """torchvision's MobileNetV2 (width 1.0) with the head of ``pool``."""

    def __init__(self, pool: Pooling, num_classes: int = 1000) -> None:
        super().__init__(num_classes=num_classes)
        self.dimension_reduction, channels = _reduction(pool, self.last_channel)
        self.global_pool = pool.make()
        self.num_features = pool.features(channels)
        self.classifier = nn.Sequential(nn.Dropout(p=0.2), nn.Linear(self.num_features, num_classes))
        nn.init.normal_(self.classifier[1].weight, 0, 0.01)
        nn.init.zeros_(self.classifier[1].bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.global_pool(self.dimension_reduction(x))
        return x if pre_logits else self.classifier(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class ShuffleNetV2(tv_shufflenet.ShuffleNetV2):
    """torchvision's ShuffleNetV2 with the head of ``pool``."""

    def __init__(
        self, pool: Pooling, stages_repeats: list[int], stages_out_channels: list[int], num_classes: int = 1000
    ) -> None:
        super().__init__(stages_repeats, stages_out_channels, num_classes=num_classes)
        del self.fc
        self.dimension_reduction, channels = _reduction(pool, stages_out_channels[-1])
        self.global_pool = pool.make()
        self.num_features = pool.features(channels)
        self.fc = nn.Linear(self.num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))
        return self.conv5(self.stage4(self.stage3(self.stage2(x))))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.global_pool(self.dimension_reduction(x))
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def build_mobilenet_v2(pool: Pooling, num_classes: int) -> nn.Module:
    return MobileNetV2(pool, num_classes)


def build_shufflenet_v2_x1_0(pool: Pooling, num_classes: int) -> nn.Module:
    return ShuffleNetV2(pool, [4, 8, 4], [24, 116, 232, 464, 1024], num_classes)
