"""ImageNet-1k class lists shipped with robench: the 1,000 WNIDs and the 200-class subsets of ImageNet-A/-R.

Class ``k`` of every ImageNet-1k model is the ``k``-th WNID in sorted order (``imagenet_wnids.txt``).
ImageNet-A and ImageNet-R each use 200 of them (``imagenet_{a,r}_wnids.txt``, ascending 1k index, the
order of their released folders); a class's label is always its ImageNet-1k index, never its position
among the folders present (a partial download must not shift labels). Sources and licences: NOTICE.
"""

from __future__ import annotations

import functools
import re

from robench._paths import data_dir
from robench._registry import Registry
from robench.errors import InputError

WNID = re.compile(r"n\d{8}")
"""A WordNet ID as ImageNet names its class folders."""

SUBSETS: Registry[str] = Registry("class subset")
"""Subset name → file (in the package's data folder) listing its WNIDs."""
SUBSETS.add("imagenet-a", "imagenet_a_wnids.txt")
SUBSETS.add("imagenet-r", "imagenet_r_wnids.txt")


def _read(file: str) -> tuple[str, ...]:
    lines = (data_dir() / file).read_text(encoding="utf-8").splitlines()
    return tuple(s for s in (line.strip() for line in lines) if s and not s.startswith("#"))


@functools.cache
def imagenet_wnids() -> tuple[str, ...]:
    """The 1,000 ImageNet-1k WNIDs; position = class index."""
    return _read("imagenet_wnids.txt")


@functools.cache
def _index() -> dict[str, int]:
    return {w: k for k, w in enumerate(imagenet_wnids())}


def imagenet_index(wnid: str, where: str) -> int:
    """ImageNet-1k index of ``wnid``; ``where`` names the folder in the error for a non-ImageNet name."""
    try:
        return _index()[wnid]
    except KeyError:
        raise InputError(f"{where}: {wnid!r} is not an ImageNet-1k class (expected a WNID such as n01440764).") \
            from None


@functools.cache
def subset_wnids(name: str) -> tuple[str, ...]:
    """The WNIDs of a registered subset (``imagenet-a``, ``imagenet-r``), ascending ImageNet-1k index."""
    return _read(SUBSETS.get(name))


@functools.cache
def subset_indices(name: str) -> tuple[int, ...]:
    """The ImageNet-1k indices of a registered subset, ascending."""
    return tuple(imagenet_index(w, SUBSETS.get(name)) for w in subset_wnids(name))
