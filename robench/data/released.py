"""The released ImageNet-C and ImageNet-P datasets on disk as sources of the same cells.

ImageNet-C: ``<root>/<corruption>/<severity>/<wnid>/<file>.JPEG`` (224 px, JPEG q85).
ImageNet-P: ``<root>/<perturbation>/<wnid>/<name>.mp4`` (noise difficulties 2/3 in ``<p>_2``, ``<p>_3``).

Dataset index *i* is the *i*-th ``<wnid>/<file>`` of the first folder in sorted order; every cell reads its
own folder at the same relative paths, so all cells see the same images. Labels number the sorted wnid
folders (as Hendrycks' ImageFolder/VideoFolder); with a partial download that shifts labels, so the
folders present must be the full class set the model was trained on. There are no clean images in these
downloads: evaluate clean error with the on-the-fly suites on the validation set.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Mapping
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from robench.data.sources import read_rgb
from robench.errors import InputError, MissingFileError
from robench.suites import Item

Reader = Callable[[Path, str], "torch.Tensor | None"]
Labeller = Callable[[tuple[str, ...], Path], "tuple[Mapping[str, int], tuple[str, ...]]"]
"""``(class folder names, their parent) -> (label of each folder, label space)``."""


def _read_image(path: Path, on_bad: str) -> torch.Tensor | None:
    img = read_rgb(path, on_bad)
    return None if img is None else torch.from_numpy(np.array(img)).permute(2, 0, 1)


def _read_mp4(path: Path, on_bad: str) -> torch.Tensor | None:
    from robench.perturbations.released import read_video

    try:
        return read_video(path).mul(255.0).round_().to(torch.uint8)
    except InputError:
        if on_bad == "skip":
            return None
        raise


class CellView(Dataset):
    """The images (or videos) of one released (item, level) folder, in the source's index order."""

    def __init__(self, folder: Path, entries: list[tuple[Path, int]], read: Reader, on_bad: str) -> None:
        if not folder.is_dir():
            raise MissingFileError(f"Released data folder {folder} is missing; the download is incomplete.")
        self.folder, self.entries, self.read, self.on_bad = folder, entries, read, on_bad

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        rel, label = self.entries[i]
        path = self.folder / rel
        if not path.is_file():
            raise MissingFileError(f"{path} is missing; the released dataset is incomplete (download it again).")
        return self.read(path, self.on_bad), label


class ReleasedSource(Dataset):
    """Index space and per-cell views of a released dataset.

    Args:
        root: The download's root folder.
        depth: Folder levels between ``root`` and the wnid folders (2 for ImageNet-C, 1 for ImageNet-P).
        suffixes: File suffixes (lower case) of the images or videos inside each wnid folder.
        read: Decoder of one file into a uint8 tensor.
        folder_of: ``(root, item, level) -> folder`` of one cell.
        items: The item folders the index may be taken from (default: any folder under ``root``).
        labels: ``(class folder names, their parent) -> (label of each folder, label space)``;
            default: the sorted folder names numbered from 0.
    """

    def __init__(self, root: Path, *, depth: int, suffixes: tuple[str, ...], read: Reader,
                 folder_of: Callable[[Path, Item, int], Path], name: str, kind: str, on_bad: str = "error",
                 items: Collection[str] = (), labels: Labeller | None = None) -> None:
        if not root.is_dir():
            raise MissingFileError(f"Released dataset folder {root} does not exist; pass --data ROOT.")
        first = root
        for level in range(depth):
            subdirs = sorted(d for d in first.iterdir() if d.is_dir() and (level or not items or d.name in items))
            if not subdirs:
                raise InputError(f"{root} does not have the {name} layout; see `robench list datasets`.")
            first = subdirs[0]
        folders = tuple(sorted(d.name for d in first.iterdir() if d.is_dir()))
        if labels is None:
            self.classes, label_of = folders, {w: k for k, w in enumerate(folders)}
        else:
            label_of, self.classes = labels(folders, first)
        self.entries = [(f.relative_to(first), label_of[wnid]) for wnid in sorted(folders, key=label_of.__getitem__)
                        for f in sorted((first / wnid).iterdir()) if f.suffix.lower() in suffixes]
        if not self.entries:
            raise InputError(f"No {'/'.join(suffixes)} files under {first}; expected <wnid>/<file> folders.")
        self.root, self.read, self.folder_of, self.name, self.kind = root, read, folder_of, name, kind
        self.on_bad = on_bad
        h = hashlib.sha256("\n".join(f"{r}\x1f{lb}" for r, lb in self.entries).encode())
        self.fingerprint = f"{name}:{len(self.entries)}:{h.hexdigest()[:16]}"

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def targets(self) -> np.ndarray:
        return np.asarray([label for _, label in self.entries], dtype=np.int64)

    @property
    def paths(self) -> list[str]:
        """``<wnid>/<file>`` of every index (the same in every cell folder)."""
        return [rel.as_posix() for rel, _ in self.entries]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        raise InputError(f"The {self.name} download has no clean images; evaluate it through its cells.")

    def cell_view(self, item: Item, level: int) -> Dataset:
        """The already-transformed images of one cell, index-aligned with this source."""
        if item.kind != self.kind:
            raise InputError(
                f"The {self.name} download holds {self.kind} cells only (no clean images); remove the "
                f"{item.kind} items from the suite and measure them on the validation set."
            )
        return CellView(self.folder_of(self.root, item, level), self.entries, self.read, self.on_bad)


def imagenet_c(root: Path, on_bad: str = "error") -> ReleasedSource:
    return ReleasedSource(root, depth=2, suffixes=(".jpeg", ".jpg", ".png"), read=_read_image, on_bad=on_bad,
                          folder_of=lambda r, item, level: r / item.name / str(level), name="imagenet-c-released",
                          kind="corruption")


def imagenet_p(root: Path, on_bad: str = "error") -> ReleasedSource:
    from robench.perturbations.released import dataset_dir

    return ReleasedSource(root, depth=1, suffixes=(".mp4",), read=_read_mp4, on_bad=on_bad,
                          folder_of=lambda r, item, level: dataset_dir(r, item.name, level),
                          name="imagenet-p-released", kind="perturbation")
