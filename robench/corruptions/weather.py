"""Weather corruptions (ImageNet-C): brightness here; snow, frost and fog follow."""

from __future__ import annotations

import torch

from robench._rng import SampleRNG
from robench.corruptions._base import Family, register_corruption

BRIGHTNESS = {  # added to HSV value
    "imagenet": (0.1, 0.2, 0.3, 0.4, 0.5),
    "tinyimagenet": (0.1, 0.2, 0.3, 0.4, 0.5),
    "cifar": (0.05, 0.1, 0.15, 0.2, 0.3),
}


@register_corruption("brightness", family=Family.WEATHER, params=BRIGHTNESS)
def brightness(x: torch.Tensor, delta: float, rng: SampleRNG) -> torch.Tensor:
    """HSV value ``V ← clip(V + delta)`` with hue and saturation kept.

    Equal to scikit-image's rgb2hsv → hsv2rgb round trip: RGB is linear in V at fixed
    H and S, so each pixel scales by V'/V; black pixels (V = 0, S = 0) become grey V'.
    """
    v = x.amax(dim=1, keepdim=True)
    v_new = (v + delta).clamp(0.0, 1.0)
    scale = torch.where(v > 0, v_new / v.clamp_min(1e-12), torch.zeros_like(v))
    return torch.where(v > 0, x * scale, v_new.expand_as(x))
