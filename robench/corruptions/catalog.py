"""Corruptions known only from released image sets (ImageNet-C-bar, ImageNet-3DCC).

robench does not generate these (3DCC needs predicted depth and video codecs; C-bar is evaluated as its
authors released it); a suite names them in ``[corruptions]`` and reads their images from the released
folders (:mod:`robench.data.shifts`). :func:`any_corruption` looks a name up among both these and the
generated corruptions of :data:`robench.corruptions.CORRUPTIONS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from robench._registry import Registry
from robench.corruptions._base import CORRUPTIONS, Corruption
from robench.errors import InputError


@dataclass(frozen=True)
class ReleasedCorruption:
    """A corruption available as released images only.

    Attributes:
        dataset: The dataset source (``robench list datasets``) holding its images.
        test: Counted in the suite's mCE: only where a published per-severity normaliser exists.
        value_folders: Severity folder names of the authors' generator, severity 1..5, where they differ
            from the ``1`` … ``5`` of the released archive (C-bar's ``"%.2f"`` of the parameter).
    """

    name: str
    dataset: str
    test: bool
    value_folders: tuple[str, ...] = ()
    revision: str = "released"

    def __call__(self, x: Any, severity: int, *, rng: Any, param_set: str) -> Any:
        raise InputError(
            f"Corruption {self.name} exists only as released images ({self.dataset}); evaluate it with "
            f"dataset = \"{self.dataset}\" and --data ROOT (the download), e.g. `--suite {self.dataset}`."
        )


RELEASED_CORRUPTIONS: Registry[ReleasedCorruption] = Registry("released-only corruption")

# ImageNet-C-bar (Mintun et al. 2021; facebookresearch/augmentation-corruption imagenet_c_bar.csv): severity
# parameters s1..s5; the generator names the severity folders "%.2f" of them, the released tarball 1..5.
C_BAR_PARAMETERS: dict[str, Sequence[float]] = {
    "blue_noise_sample": (0.8, 1.6, 2.4, 4.0, 5.6),
    "brownish_noise": (1.0, 2.0, 3.0, 4.0, 5.0),
    "caustic_refraction": (2.35, 3.2, 4.9, 6.6, 9.15),
    "checkerboard_cutout": (2.0, 3.0, 4.0, 5.0, 6.0),
    "cocentric_sine_waves": (3.0, 5.0, 8.0, 9.0, 10.0),
    "inverse_sparkles": (1.0, 2.0, 4.0, 9.0, 10.0),
    "perlin_noise": (4.6, 5.2, 5.8, 7.6, 8.8),
    "plasma_noise": (4.75, 7.0, 8.5, 9.25, 10.0),
    "single_frequency_greyscale": (1.0, 1.5, 2.0, 4.5, 5.0),
    "sparkles": (1.0, 2.0, 3.0, 5.0, 6.0),
}
# ImageNet-3DCC (Kar et al. 2022), in RobustBench's order (CORRUPTIONS_3DCC); RobustBench publishes AlexNet's
# accuracy per corruption and severity, the normaliser of its 3DCC mCE.
CORRUPTIONS_3DCC = ("near_focus", "far_focus", "bit_error", "color_quant", "flash", "fog_3d", "h265_abr",
                    "h265_crf", "iso_noise", "low_light", "xy_motion_blur", "z_motion_blur")

for _name, _params in C_BAR_PARAMETERS.items():
    RELEASED_CORRUPTIONS.add(_name, ReleasedCorruption(
        _name, "imagenet-c-bar", test=False, value_folders=tuple(f"{p:.2f}" for p in _params)))
for _name in CORRUPTIONS_3DCC:
    RELEASED_CORRUPTIONS.add(_name, ReleasedCorruption(_name, "imagenet-3dcc", test=True))


def released_names(dataset: str) -> tuple[str, ...]:
    """The released-only corruptions of one dataset source, in registration order."""
    return tuple(n for n, c in RELEASED_CORRUPTIONS.items() if c.dataset == dataset)


def any_corruption() -> Registry[Corruption | ReleasedCorruption]:
    """Generated and released-only corruptions together (a name in both would fail here)."""
    both: Registry[Corruption | ReleasedCorruption] = Registry("corruption")
    for registry in (CORRUPTIONS, RELEASED_CORRUPTIONS):
        for name, item in registry.items():
            both.add(name, item)
    return both
