"""Released distribution-shift datasets as dataset sources, each read in its exact released layout.

* Natural shifts, one class folder per class: ImageNet-A and ImageNet-R (200 WNID folders each, scored
  with the 200-class mask of :mod:`robench.metrics.scoring`), ImageNet-Sketch (1,000 WNID folders) and
  the three ImageNetV2 test sets (folders named by the integer class index ``0`` … ``999``).
* ImageNet-ReaL: the ILSVRC-2012 validation images (``VAL/<wnid>/ILSVRC2012_val_########.JPEG``) scored
  against the label sets of ``real.json``; images with an empty set are left out.
* Released corruption sets: ImageNet-C-bar and ImageNet-3DCC, ``ROOT/<corruption>/<severity>/<wnid>/<file>``
  (the corruption names are in :mod:`robench.corruptions.catalog`).

Every label is the ImageNet-1k index of its folder's class, looked up by name (a WNID in the shipped
1,000-class list, or ImageNetV2's integer), never the position of a folder among those present: a
lexicographic sort would make ImageNetV2's folder ``10`` class 2, and a partial download would shift every
later class. The label space is always the 1,000 ImageNet classes. Images are read, resized and cropped
like ``imagefolder`` sources (the suites use Resize 256 → CenterCrop 224); released corruption images are
evaluated as they are, like ``imagenet-c-released``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from robench.corruptions.catalog import RELEASED_CORRUPTIONS, released_names
from robench.data.imagenet_classes import WNID, imagenet_index, imagenet_wnids, subset_wnids
from robench.data.released import ReleasedSource, _read_image
from robench.data.sources import DATASETS, ImageFilesSource, SourceSpec, image_files
from robench.errors import InputError, MissingFileError
from robench.suites import Item, Protocol

log = logging.getLogger(__name__)

FolderLabels = Callable[[Sequence[str], Path], dict[str, int]]
"""``(class folder names, their parent) -> ImageNet-1k label of each``; raises for a foreign folder."""


@dataclass(frozen=True)
class Release:
    """Where a dataset comes from: its name, download page and licence (as its authors state it)."""

    title: str
    url: str
    licence: str


def wnid_labels(subset: str | None = None, *, skip_others: bool = False) -> FolderLabels:
    """Labels of WNID folders. With ``subset``, every folder must be one of that subset's classes, or,
    with ``skip_others``, the folders of other classes are left out (the subset's classes of val)."""
    allowed = None if subset is None else frozenset(subset_wnids(subset))

    def labels(names: Sequence[str], where: Path) -> dict[str, int]:
        for name in names:
            if not WNID.fullmatch(name):
                raise InputError(f"{where / name} is not a class folder: expected only WNID folders such as "
                                 "n01440764; move other folders out.")
            if allowed is not None and name not in allowed and not skip_others:
                raise InputError(f"{where / name}: {name} is not one of the {len(allowed)} {subset} classes; "
                                 f"is {where} the {subset} download?")
        return {name: imagenet_index(name, str(where)) for name in names if allowed is None or name in allowed}

    return labels


def v2_labels(names: Sequence[str], where: Path) -> dict[str, int]:
    """ImageNetV2: folder ``k`` is ImageNet-1k class ``k`` (int, not string order); WNID folders
    (an older copy of the release) are accepted as well, but not a mix of both."""
    if all(WNID.fullmatch(n) for n in names):
        return wnid_labels()(names, where)
    if not all(n.isdigit() for n in names):
        bad = next(n for n in names if not n.isdigit())
        raise InputError(f"{where / bad} is not an ImageNetV2 class folder: expected folders 0 … 999 (the class "
                         "index) or only WNID folders; move other folders out.")
    labels = {n: int(n) for n in names}
    big = [n for n, k in labels.items() if k >= len(imagenet_wnids())]
    if big:
        raise InputError(f"{where / big[0]}: ImageNetV2 class folders are 0 … 999, not {big[0]}.")
    return labels


def _is_number(name: str) -> bool:
    return name.isdigit()


def _is_wnid(name: str) -> bool:
    return WNID.fullmatch(name) is not None


def _root(data: Path | None, title: str, layout: str, url: str) -> Path:
    if data is None:
        raise InputError(f"This suite reads {title}; pass --data ROOT ({layout}; download: {url}).")
    if not data.is_dir():
        raise MissingFileError(f"{title} folder {data} does not exist; pass --data ROOT ({layout}).")
    return data


def _class_dirs(root: Path, title: str, layout: str, looks_like: Callable[[str], bool]) -> list[str]:
    """The class folders of ``root`` (hidden folders and files such as README.txt skipped), or a one-line
    error when none look like class folders, pointing into a sub-folder that holds them."""
    dirs = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not any(looks_like(d) for d in dirs):
        inner = [d for d in dirs if any(looks_like(e.name) for e in (root / d).iterdir() if e.is_dir())]
        hint = f"; it holds {inner[0]}/: pass --data {root / inner[0]}" if inner else ""
        raise InputError(f"{root} is not the {title} folder: expected {layout}{hint}.")
    return dirs


def _warn_partial(root: Path, title: str, found: int, expected: int) -> None:
    if found < expected:
        log.warning("%s: %d of the %d class folders of %s are present; results are not comparable with "
                    "published numbers", root, found, expected, title)


@dataclass(frozen=True)
class FolderShift:
    """A released dataset of ``ROOT/<class folder>/<image>`` (ImageNet-A/-R/-Sketch/-V2)."""

    name: str
    release: Release
    layout: str
    classes: int
    labels: FolderLabels
    looks_like: Callable[[str], bool] = _is_wnid
    scoring: str = "all-classes"

    def open(self, data: Path | None, protocol: Protocol, on_bad: str) -> Dataset:
        root = _root(data, self.release.title, self.layout, self.release.url)
        dirs = _class_dirs(root, self.release.title, self.layout, self.looks_like)
        label_of = self.labels(dirs, root)
        samples = [(p, label_of[d]) for d in sorted(label_of, key=lambda d: (label_of[d], d))
                   for p in image_files(root / d)]
        if not samples:
            raise InputError(f"{root} holds no images in its class folders; expected {self.layout}.")
        _warn_partial(root, self.release.title, len(label_of), self.classes)
        return ImageFilesSource(root, samples, classes=imagenet_wnids(), protocol=protocol, on_bad=on_bad,
                                name=self.name)


VAL_FILE = re.compile(r"ILSVRC2012_val_(\d{8})\.[A-Za-z]+")


class RealLabelsSource(ImageFilesSource):
    """ILSVRC-2012 val images whose label is the ReaL label set, padded with -1 to one width.

    ``targets`` (used to balance subsets) stay the original one-class labels of the folders.
    """

    def __init__(self, root: Path, samples: list[tuple[Path, int]], label_sets: list[list[int]], *,
                 protocol: Protocol, on_bad: str) -> None:
        super().__init__(root, samples, classes=imagenet_wnids(), protocol=protocol, on_bad=on_bad,
                         name="imagenet-real")
        width = max(len(s) for s in label_sets)
        self.label_sets = [tuple(s) + (-1,) * (width - len(s)) for s in label_sets]
        h = hashlib.sha256(self.fingerprint.encode())
        h.update(json.dumps(label_sets).encode())
        self.fingerprint = f"imagenet-real:{len(samples)}:{h.hexdigest()[:16]}"

    def __getitem__(self, i: int) -> tuple[torch.Tensor | None, tuple[int, ...]]:  # type: ignore[override]
        img, _ = super().__getitem__(i)
        return img, self.label_sets[i]


def read_real_json(path: Path) -> list[list[int]]:
    """ReaL's ``real.json``: entry ``i`` = the valid labels of ``ILSVRC2012_val_{i+1:08d}``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"Cannot read {path} as JSON ({e}); download real.json again.") from None
    width = len(imagenet_wnids())
    if not isinstance(data, list):
        raise InputError(f"{path} is not ReaL's real.json: expected a list of label lists.")
    for i, labels in enumerate(data):
        if not isinstance(labels, list) or not all(
            isinstance(k, int) and not isinstance(k, bool) and 0 <= k < width for k in labels
        ):
            raise InputError(f"{path} is not ReaL's real.json: entry {i} is {labels!r}, not a list of "
                             f"class indices 0 … {width - 1}.")
    return data


@dataclass(frozen=True)
class RealShift:
    """ImageNet-ReaL: ``--data VAL`` with ``real.json`` in VAL or beside it (VAL's parent folder)."""

    name: str
    release: Release
    layout: str
    scoring: str = "real-label-sets"

    def open(self, data: Path | None, protocol: Protocol, on_bad: str) -> Dataset:
        root = _root(data, self.release.title, self.layout, self.release.url)
        dirs = _class_dirs(root, "ILSVRC-2012 validation", self.layout, _is_wnid)
        label_of = wnid_labels()(dirs, root)
        places = (root / "real.json", root.parent / "real.json")
        path = next((p for p in places if p.is_file()), None)
        if path is None:
            raise MissingFileError(f"No real.json in {places[0].parent} or {places[1].parent}; download it from "
                                   f"{self.release.url} and put it at {places[1]}.")
        real = read_real_json(path)
        samples, sets, excluded = [], [], 0
        for d in dirs:
            for p in image_files(root / d):
                m = VAL_FILE.fullmatch(p.name)
                k = int(m[1]) - 1 if m else -1
                if not 0 <= k < len(real):
                    raise InputError(f"{p}: ReaL labels are keyed by the val file names ILSVRC2012_val_00000001 … "
                                     f"{len(real):08d}; rename or remove this file.")
                if not real[k]:
                    excluded += 1
                    continue
                samples.append((p, label_of[d]))
                sets.append(sorted(real[k]))
        if not samples:
            raise InputError(f"{root} holds no val image with a ReaL label; expected {self.layout}.")
        _warn_partial(root, "ILSVRC-2012 val", len(dirs), len(imagenet_wnids()))
        log.info("imagenet-real: %d images scored, %d without a valid ReaL label excluded (labels: %s)",
                 len(samples), excluded, path)
        return RealLabelsSource(root, samples, sets, protocol=protocol, on_bad=on_bad)


def _wnid_label_space(folders: tuple[str, ...], where: Path) -> tuple[Mapping[str, int], tuple[str, ...]]:
    return wnid_labels()(folders, where), imagenet_wnids()


@dataclass(frozen=True)
class CorruptionShift:
    """A released corruption set: ``ROOT/<corruption>/<severity>/<wnid>/<file>``, evaluated as stored."""

    name: str
    release: Release
    layout: str
    scoring: str = "all-classes"

    def open(self, data: Path | None, protocol: Protocol, on_bad: str) -> Dataset:
        root = _root(data, self.release.title, self.layout, self.release.url)
        names = released_names(self.name)
        _class_dirs(root, self.release.title, f"{self.layout} with <corruption> one of {', '.join(names)}",
                    names.__contains__)
        return ReleasedSource(root, depth=2, suffixes=(".jpeg", ".jpg", ".png"), read=_read_image,
                              folder_of=severity_folder, name=self.name, kind="corruption", on_bad=on_bad,
                              items=names, labels=_wnid_label_space)


def severity_folder(root: Path, item: Item, level: int) -> Path:
    """``ROOT/<corruption>/<level>``, or the generator's value-named folder (C-bar ``2.35``) where only
    that exists."""
    folder = root / item.name / str(level)
    values = RELEASED_CORRUPTIONS.get(item.name).value_folders if item.name in RELEASED_CORRUPTIONS else ()
    if not folder.is_dir() and values and (root / item.name / values[level - 1]).is_dir():
        return root / item.name / values[level - 1]
    return folder


Shift = FolderShift | RealShift | CorruptionShift

_A = Release("ImageNet-A", "https://github.com/hendrycks/natural-adv-examples", "MIT")
_R = Release("ImageNet-R", "https://github.com/hendrycks/imagenet-r", "MIT")
_SKETCH = Release("ImageNet-Sketch", "https://github.com/HaohanWang/ImageNet-Sketch", "MIT")
_V2 = "https://github.com/modestyachts/ImageNetV2", "MIT code; images under their Flickr terms, used like ImageNet"
_V2_LAYOUT = "ROOT/<class index 0…999>/<image>.jpeg (ROOT = imagenetv2-{}-format-val/)"

SHIFTS: tuple[Shift, ...] = (
    FolderShift("imagenet-a", _A, "ROOT/<wnid>/<image> (ROOT = imagenet-a/ of imagenet-a.tar, 200 WNID folders)",
                200, wnid_labels("imagenet-a"), scoring="imagenet-a-200"),
    FolderShift("imagenet-r", _R, "ROOT/<wnid>/<image> (ROOT = imagenet-r/ of imagenet-r.tar, 200 WNID folders)",
                200, wnid_labels("imagenet-r"), scoring="imagenet-r-200"),
    *(FolderShift(f"imagenet-val-{s[-1]}-classes", Release(f"ImageNet val on the {s} classes",
                                                            "https://image-net.org", "ImageNet terms of access"),
                  f"VAL/<wnid>/<image> (ILSVRC-2012 val; only the 200 {s} class folders are read)", 200,
                  wnid_labels(s, skip_others=True), scoring=f"{s}-200")
      for s in ("imagenet-a", "imagenet-r")),
    FolderShift("imagenet-sketch", _SKETCH, "ROOT/<wnid>/<image>.JPEG (ROOT = sketch/ of ImageNet-Sketch.zip, "
                "1000 WNID folders)", 1000, wnid_labels()),
    *(FolderShift(f"imagenetv2-{v}", Release(f"ImageNetV2 {title}", *_V2), _V2_LAYOUT.format(v), 1000, v2_labels,
                  looks_like=lambda n: _is_number(n) or _is_wnid(n))
      for v, title in (("matched-frequency", "MatchedFrequency"), ("threshold0.7", "Threshold0.7"),
                       ("top-images", "TopImages"))),
    RealShift("imagenet-real", Release("ImageNet-ReaL", "https://github.com/google-research/reassessed-imagenet",
                                       "Apache-2.0 (labels); images under the ImageNet terms"),
              "VAL/<wnid>/ILSVRC2012_val_########.JPEG, with ReaL's real.json in VAL or its parent folder"),
    CorruptionShift("imagenet-c-bar", Release("ImageNet-C-bar",
                                              "https://github.com/facebookresearch/augmentation-corruption", "MIT"),
                    "ROOT/<corruption>/<1..5>/<wnid>/<file>.JPEG (ROOT = the folder of imagenet_c_bar.tar.gz)"),
    CorruptionShift("imagenet-3dcc", Release("ImageNet-3DCC", "https://github.com/EPFL-VILAB/3DCommonCorruptions",
                                             "CC-BY-NC 4.0"),
                    "ROOT/<corruption>/<1..5>/<wnid>/<file> (ROOT = ImageNet-3DCC/ of the per-corruption archives)"),
)

for _shift in SHIFTS:
    DATASETS.add(_shift.name, SourceSpec(
        _shift.open, f"{_shift.release.title} ({_shift.release.licence}; {_shift.release.url}): {_shift.layout}",
        scoring=_shift.scoring))
