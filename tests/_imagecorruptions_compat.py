"""Import bethgelab's ``imagecorruptions`` 1.1.2 (a test-only reference) on today's stack.

The PyPI release needs three shims: ``pkg_resources`` (gone with recent setuptools),
``np.float_`` (removed in NumPy 2) and scikit-image's ``multichannel=`` keyword
(replaced by ``channel_axis``). It also uses the global NumPy RNG, so callers seed it.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
import types
from typing import Any

import numpy as np
import pytest


def _install_shims() -> None:
    if "pkg_resources" not in sys.modules:
        try:
            importlib.import_module("pkg_resources")
        except ImportError:
            shim = types.ModuleType("pkg_resources")

            def resource_filename(package: str, name: str) -> str:
                module = importlib.import_module(package)
                return os.path.join(os.path.dirname(module.__file__), name)

            shim.resource_filename = resource_filename  # type: ignore[attr-defined]
            sys.modules["pkg_resources"] = shim
    if not hasattr(np, "float_"):
        np.float_ = np.float64  # type: ignore[attr-defined]


def _gaussian_compat(gaussian: Any) -> Any:
    def wrapper(image: Any, *args: Any, multichannel: bool | None = None, **kwargs: Any) -> Any:
        if multichannel:
            kwargs.setdefault("channel_axis", -1)
        return gaussian(image, *args, **kwargs)

    return wrapper


def load_imagecorruptions() -> types.ModuleType:
    """The ``imagecorruptions`` package with the shims applied, or skip the test."""
    pytest.importorskip("cv2")
    _install_shims()
    ic = pytest.importorskip("imagecorruptions")
    corr = sys.modules["imagecorruptions.corruptions"]
    if not getattr(corr, "_robench_patched", False):
        corr.gaussian = _gaussian_compat(corr.gaussian)
        corr._robench_patched = True
    return ic


def ic_corrupt(ic: types.ModuleType, img: np.ndarray, name: str, severity: int, seed: int) -> np.ndarray:
    """``imagecorruptions.corrupt`` on an H×W×3 uint8 image with the global NumPy RNG seeded.

    impulse noise draws through ``skimage.util.random_noise``, whose own generator ignores
    the global seed; it gets ``rng=seed`` so the reference is reproducible (a flaky
    0.506 dB against the 0.5 dB bound was seen without it).
    """
    np.random.seed(seed)
    sk_util = sys.modules["imagecorruptions.corruptions"].sk.util
    random_noise = sk_util.random_noise
    sk_util.random_noise = functools.partial(random_noise, rng=seed)
    try:
        return ic.corrupt(img, corruption_name=name, severity=severity)
    finally:
        sk_util.random_noise = random_noise


_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field", "retina")
_GREY = ("camera", "brick")


def natural_photos(size: int, count: int = 16) -> np.ndarray:
    """``count`` natural photos from ``skimage.data`` as count×size×size×3 uint8.

    Each colour photo gives a whole-image view (short side resized, centre crop) and a
    2× zoomed view of its centre; two greyscale photos are stacked to RGB.
    """
    from PIL import Image
    from skimage import data

    def square(img: np.ndarray, zoom: float) -> np.ndarray:
        h, w = img.shape[:2]
        side = int(min(h, w) / zoom)
        top, left = (h - side) // 2, (w - side) // 2
        crop = Image.fromarray(img[top : top + side, left : left + side])
        return np.asarray(crop.resize((size, size), Image.BILINEAR))

    views = []
    for name in _PHOTOS:
        img = getattr(data, name)()[..., :3]
        views += [square(img, 1.0), square(img, 2.0)]
    for name in _GREY:
        g = getattr(data, name)()
        views.append(square(np.stack([g] * 3, axis=-1), 1.0))
    return np.stack(views[:count])
