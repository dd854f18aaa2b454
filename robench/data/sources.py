"""Dataset sources, registered by name; a suite's ``dataset`` field picks one.

Every source yields ``(uint8 C×H×W tensor, label)`` pairs; the evaluator turns them
into float ``[0, 1]`` batches. Each source also gives a fingerprint, stored with
every cell, so results computed on other images are never reused by mistake, and,
without reading any image, the label (``targets``) and relative path (``paths``) of
every index, which subsets (:mod:`robench.data.selection`) and per-image exports use.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from robench._registry import Registry
from robench.data import fashion_mnist
from robench.errors import InputError, MissingFileError
from robench.suites import Protocol

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


class TensorSource(Dataset):
    """Images held in memory as one uint8 ``N×C×H×W`` tensor."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, *, classes: tuple[str, ...], name: str,
                 path_prefix: str | None = None):
        self.images = images
        self.labels = labels.to(torch.int64)
        self.classes = classes
        self.name = name
        self.path_prefix = path_prefix or name
        h = hashlib.sha256()
        h.update(images.numpy().tobytes())
        h.update(self.labels.numpy().tobytes())
        self.fingerprint = f"{name}:{len(labels)}:{h.hexdigest()[:16]}"

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def targets(self) -> np.ndarray:
        return self.labels.numpy()

    @property
    def paths(self) -> list[str]:
        """``<path_prefix>/<index>``: in-memory images have no files."""
        return [f"{self.path_prefix}/{i}" for i in range(len(self.labels))]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i], int(self.labels[i])

    def batch(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Fast path for in-memory data: a whole batch without a DataLoader."""
        idx = torch.as_tensor(indices)
        return self.images[idx], self.labels[idx]


ON_BAD_IMAGE = ("error", "skip")


def read_rgb(path: Path, on_bad: str = "error"):
    """A PIL RGB image (grey, CMYK, RGBA and palette images converted), or ``None`` for an unreadable
    file under ``on_bad="skip"``; under ``"error"`` an unreadable file is a one-line error."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as e:
        if on_bad == "skip":
            log.warning("skipping unreadable image %s (%s)", path, e)
            return None
        raise InputError(
            f"Cannot read image {path} ({e}); replace the file or pass --on-bad-image skip."
        ) from None


class ImageFilesSource(Dataset):
    """Image files with given labels, in the given order (``samples``: ``(path, label)``).

    Images are converted to RGB and, when the protocol says so, resized (short side,
    bilinear unless a model's own preprocessing says otherwise) and centre-cropped — ImageNet-C's
    Resize(256) → CenterCrop(224).

    Args:
        root: Folder the paths are relative to (``paths``, fingerprint).
        classes: The label space (label ``k`` = ``classes[k]``); models need at least this many outputs.
        name: First part of the fingerprint (the dataset's name in reports).
    """

    def __init__(self, root: Path, samples: list[tuple[Path, int]], *, classes: tuple[str, ...],
                 protocol: Protocol, on_bad: str = "error", name: str = "imagefolder"):
        if on_bad not in ON_BAD_IMAGE:
            raise InputError(f"--on-bad-image must be one of {', '.join(ON_BAD_IMAGE)}, got {on_bad!r}.")
        self.root, self.samples, self.classes = root, samples, classes
        self.protocol, self.on_bad, self.name = protocol, on_bad, name
        h = hashlib.sha256()
        for p, label in self.samples:
            h.update(f"{p.relative_to(root)}\x1f{p.stat().st_size}\x1f{label}\n".encode())
        self.fingerprint = f"{name}:{len(self.samples)}:{h.hexdigest()[:16]}"

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def targets(self) -> np.ndarray:
        return np.asarray([label for _, label in self.samples], dtype=np.int64)

    @property
    def paths(self) -> list[str]:
        """``<class>/<file>`` of every index, relative to the root."""
        return [p.relative_to(self.root).as_posix() for p, _ in self.samples]

    def __getitem__(self, i: int) -> tuple[torch.Tensor | None, int]:
        from torchvision.transforms import functional as TF

        path, label = self.samples[i]
        img = read_rgb(path, self.on_bad)
        if img is None:
            return None, label
        if self.protocol.resize:
            mode = TF.InterpolationMode(self.protocol.interpolation)
            img = TF.resize(img, self.protocol.resize, interpolation=mode)
        if self.protocol.crop:
            img = TF.center_crop(img, self.protocol.crop)
        return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1), label


def image_files(folder: Path) -> list[Path]:
    """The image files (:data:`IMAGE_EXTENSIONS`, any case) directly inside ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)


class ImageFolderSource(ImageFilesSource):
    """``root/<class>/<image>`` with classes = sorted folder names (as torchvision's ImageFolder)."""

    def __init__(self, root: Path, protocol: Protocol, on_bad: str = "error"):
        if on_bad not in ON_BAD_IMAGE:
            raise InputError(f"--on-bad-image must be one of {', '.join(ON_BAD_IMAGE)}, got {on_bad!r}.")
        if not root.is_dir():
            raise MissingFileError(f"Data folder {root} does not exist; pass --data DIR (an ImageFolder root).")
        classes = tuple(sorted(d.name for d in root.iterdir() if d.is_dir()))
        if not classes:
            raise InputError(f"{root} has no class folders; expected DIR/<class>/<image files>.")
        samples = [(p, label) for label, cls in enumerate(classes) for p in image_files(root / cls)]
        if not samples:
            raise InputError(f"{root} holds no images ({', '.join(IMAGE_EXTENSIONS)}) in its class folders.")
        super().__init__(root, samples, classes=classes, protocol=protocol, on_bad=on_bad)


@dataclass(frozen=True)
class SourceSpec:
    """How to open a named dataset source: ``open(data_dir_or_None, protocol, on_bad)``.

    ``scoring`` names the decision rule its images are scored with
    (:data:`robench.metrics.scoring.SCORING_RULES`), e.g. the 200-class mask of ImageNet-A.
    """

    open: Callable[[Path | None, Protocol, str], Dataset]
    description: str
    scoring: str = "all-classes"


DATASETS: Registry[SourceSpec] = Registry("dataset")


def _fashion_mnist(data: Path | None, protocol: Protocol, on_bad: str) -> Dataset:
    if data is None:
        images, labels = fashion_mnist.load_demo_subset()
        name = "fashion-mnist-test-2k"
    else:
        images, labels = fashion_mnist.load_split("test", data)
        name = "fashion-mnist-test"
    # The shipped subset is the first 2,000 images of the official test split, so index i is test image i
    # in both cases.
    return TensorSource(
        fashion_mnist.to_model_input(images), torch.from_numpy(labels.astype(np.int64)),
        classes=fashion_mnist.CLASSES, name=name, path_prefix="fashion-mnist-test",
    )


def _imagefolder(data: Path | None, protocol: Protocol, on_bad: str) -> Dataset:
    if data is None:
        raise InputError("This suite reads an image folder; pass --data DIR (DIR/<class>/<images>).")
    return ImageFolderSource(data, protocol, on_bad)


def _released(make: Callable[[Path, str], Dataset]) -> Callable[[Path | None, Protocol, str], Dataset]:
    def open_released(data: Path | None, protocol: Protocol, on_bad: str) -> Dataset:
        if data is None:
            raise InputError("This suite reads a released dataset; pass --data ROOT (the download's folder).")
        return make(data, on_bad)

    return open_released


def _released_c(root: Path, on_bad: str) -> Dataset:
    from robench.data.released import imagenet_c

    return imagenet_c(root, on_bad)


def _released_p(root: Path, on_bad: str) -> Dataset:
    from robench.data.released import imagenet_p

    return imagenet_p(root, on_bad)


DATASETS.add("fashion-mnist-demo", SourceSpec(
    _fashion_mnist, "Fashion-MNIST test images at 32 px (shipped 2k subset; --data DIR: full IDX test split)"))
DATASETS.add("imagefolder", SourceSpec(
    _imagefolder, "DIR/<class>/<image> folders, resized/cropped per the suite protocol"))
DATASETS.add("imagenet-c-released", SourceSpec(
    _released(_released_c), "released ImageNet-C: ROOT/<corruption>/<severity>/<wnid>/<file>.JPEG"))
DATASETS.add("imagenet-p-released", SourceSpec(
    _released(_released_p), "released ImageNet-P: ROOT/<perturbation>[_2|_3]/<wnid>/<name>.mp4"))


def open_dataset(name: str, data: Path | str | None, protocol: Protocol, *, on_bad: str = "error") -> Dataset:
    """Open the suite's dataset source, reading from ``data`` when given.

    Args:
        on_bad: ``"error"`` (an unreadable image stops the run) or ``"skip"`` (it is counted and skipped).
    """
    if on_bad not in ON_BAD_IMAGE:
        raise InputError(f"--on-bad-image must be one of {', '.join(ON_BAD_IMAGE)}, got {on_bad!r}.")
    path = None if data is None else Path(data)
    if path is not None and not path.exists():
        raise MissingFileError(f"Data path {path} does not exist; check --data.")
    return DATASETS.get(name).open(path, protocol, on_bad)


# The released distribution-shift datasets (ImageNet-A/-R/-Sketch/-V2/-ReaL, C-bar, 3DCC) register themselves.
from robench.data import shifts as _shifts  # noqa: E402, F401
