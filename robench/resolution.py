"""Resolution-aware protocols: a suite's ``resolution = "model"``.

With the official protocol (``resolution = 224``, the default) every model sees the suite's images:
ImageNet-C's Resize 256 → CenterCrop 224, bilinear. A model trained at 288 px with bicubic
resizing is then measured through a resize it never saw (timm #184). With ``resolution = "model"``
the run prepares the images with the models' own preprocessing (resize, centre crop, interpolation:
:class:`~robench.models.preprocess.Preprocessing`) and picks the corruption/perturbation parameters
by one rule, :data:`RULE`: the published parameter set whose image size is nearest to the model's
native size on a log scale (CIFAR-10-C 32 px, Tiny-ImageNet-C 64 px, ImageNet-C 224 px). The
parameters are then applied at the native size as published; README ("Resolution-aware protocols")
has the measurement behind this choice.

A suite that crops after transforming (``imagenet-p``: resize 256, warp, then the perturbation's
``crop = 224``) keeps that order: the model's resize, then its crop size as the perturbation crop.
Attack budgets are not rescaled (Linf is per pixel; an L2 budget keeps its value).

All models of one run share one set of images, so they must resolve to the same protocol; models
with different preprocessing are evaluated in separate runs, and the reports refuse to pair two
models whose cells were computed under different protocols.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from robench.errors import InputError
from robench.suites import Protocol, Suite

PARAM_SET_SIZES: Mapping[str, int] = {"cifar": 32, "tinyimagenet": 64, "imagenet": 224}
"""Image side each published parameter set was made for (REFERENCE.md: CIFAR-10-C, Tiny-ImageNet-C, ImageNet-C)."""

RULE = ("nearest published parameter set by native size on a log scale (cifar 32 px, tinyimagenet 64 px, "
        "imagenet 224 px), applied at the native size")


def nearest_param_set(size: int) -> str:
    """The parameter set of :data:`PARAM_SET_SIZES` nearest to ``size`` on a log scale (ties: the larger)."""
    if size < 1:
        raise InputError(f"Image size must be positive, got {size}.")
    return min(PARAM_SET_SIZES, key=lambda n: (abs(math.log(size / PARAM_SET_SIZES[n])), -PARAM_SET_SIZES[n]))


def _native(pre: Any) -> int:
    return int(pre.crop or pre.input_size)


def at_model_resolution(suite: Suite, models: Sequence[Any]) -> Suite:
    """``suite`` with the models' own preprocessing and the parameter set of :data:`RULE` (unchanged when
    the suite keeps the official protocol).

    Raises:
        InputError: A model without known preprocessing, or models that prepare images differently.
    """
    if suite.protocol.resolution != "model":
        return suite
    seen: dict[tuple[int, int, str], list[str]] = {}
    for m in models:
        pre = getattr(m, "preprocessing", None)
        if pre is None:
            raise InputError(
                f"Suite {suite.name} has resolution = \"model\" but model {m.name} does not say how it preprocesses "
                "images; give it a model card (input_size, resize, crop) or use resolution = 224."
            )
        seen.setdefault((pre.resize or 0, pre.crop or 0, pre.interpolation), []).append(m.name)
    if len(seen) > 1:
        which = "; ".join(f"{', '.join(names)}: resize {r}, crop {c}, {i}" for (r, c, i), names in seen.items())
        raise InputError(
            f"Suite {suite.name} has resolution = \"model\" but the models prepare images differently ({which}); "
            "evaluate them in separate runs (they are then not paired) or use resolution = 224 for one protocol."
        )
    (resize, crop, interpolation), _ = next(iter(seen.items()))
    native = _native(models[0].preprocessing)
    # A suite that crops after transforming (ImageNet-P: resize 256, warp, then the perturbation's crop 224)
    # keeps that order at the model's sizes.
    protocol = replace(suite.protocol, resize=resize, crop=crop if suite.protocol.crop else 0,
                       interpolation=interpolation)
    items = tuple(replace(i, settings={**i.settings, "crop": native}) if i.settings.get("crop") else i
                  for i in suite.items)
    return replace(suite, protocol=protocol, items=items, param_set=nearest_param_set(native))


def protocol_record(suite: Suite) -> dict[str, Any]:
    """What provenance records about the protocol the cells were computed under."""
    p: Protocol = suite.protocol
    out: dict[str, Any] = {"key": p.key(), "resolution": p.resolution, "resize": p.resize, "crop": p.crop,
                           "interpolation": p.interpolation, "param_set": suite.param_set}
    if p.resolution == "model":
        out["param_set_rule"] = RULE
    return out
