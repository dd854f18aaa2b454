"""Fashion-MNIST in the demo models' input format (3×32×32 uint8).

Reads the IDX files of the Zalando release (as installed by Debian's
``dataset-fashion-mnist`` into ``/usr/share/datasets/fashion-mnist``) or the small test
subset shipped in the package. Images are resized 28 → 32 px (bilinear, rounded to
uint8, like a 32-px dataset stored on disk) and the grey channel is replicated three
times, so the corruptions see RGB images as in CIFAR-10-C.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from robench._paths import data_dir
from robench.errors import InputError, MissingFileError

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
DEMO_FILE = "fashion-mnist-test-2k.npz"
"""The shipped subset: the first 2,000 images of the official test split (28×28 uint8)."""


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 8 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise InputError(f"{path} is not an uint8 IDX file; pass the folder of the Fashion-MNIST release.")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    count = int(np.prod(dims))
    if len(data) - offset != count:
        raise InputError(f"{path} is truncated ({len(data) - offset} of {count} bytes); download it again.")
    return np.frombuffer(data, np.uint8, count, offset).reshape(dims)


def load_split(split: str, data: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Raw ``(images N×28×28 uint8, labels N uint8)`` of the official ``train``/``test`` split."""
    root = Path(data) if data is not None else DEBIAN_DIR
    names = SPLIT_FILES[split]
    paths = []
    for name in names:
        candidates = [root / name, root / name.removesuffix(".gz")]
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            raise MissingFileError(
                f"Fashion-MNIST file {name} not found in {root}; install Debian's dataset-fashion-mnist "
                "or pass --data DIR holding the four IDX files."
            )
        paths.append(found)
    return _read_idx(paths[0]), _read_idx(paths[1])


def load_demo_subset() -> tuple[np.ndarray, np.ndarray]:
    """The shipped 2,000-image test subset as ``(images N×28×28, labels N)``."""
    with np.load(data_dir() / DEMO_FILE) as z:
        return z["images"], z["labels"]


def to_model_input(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``N×28×28`` uint8 → ``N×3×32×32`` uint8 (bilinear resize, rounded, grey → RGB)."""
    x = torch.tensor(np.asarray(images), dtype=torch.float32)[:, None]  # copies: IDX buffers are read-only
    x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False, antialias=False)
    return x.round_().clamp_(0, 255).to(torch.uint8).expand(-1, 3, -1, -1).contiguous()
