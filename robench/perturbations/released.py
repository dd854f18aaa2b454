"""Reading the released ImageNet-P videos.

Layout (zenodo record 3565846): ``<root>/<perturbation>/<wnid>/<val image stem>.mp4``;
the noise perturbations' difficulties 2 and 3 are separate datasets in
``<root>/<perturbation>_2`` and ``_3``. Other perturbations have one dataset; their
difficulty is the evaluation stride. Frames are decoded with OpenCV (``cv2.VideoCapture``,
the decoder of Hendrycks' ``video_loader.py``) and converted from BGR to RGB; they are
H.264-compressed, so frame 0 of a noise video is close to, not equal to, the clean crop.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from robench.errors import InputError, MissingFileError, UnknownNameError
from robench.perturbations._base import PERTURBATIONS, check_difficulty


def _cv2():
    try:
        import cv2
    except ImportError:  # pragma: no cover - depends on the environment
        raise InputError("Reading ImageNet-P videos needs OpenCV; install opencv-python-headless.") from None
    return cv2


def dataset_dir(root: str | Path, perturbation: str, difficulty: int = 1) -> Path:
    """The folder of one released dataset: ``<root>/<p>``, or ``<root>/<p>_<d>`` for noise at d > 1."""
    p = PERTURBATIONS.get(perturbation)
    check_difficulty(difficulty)
    name = f"{perturbation}_{difficulty}" if p.noise and difficulty > 1 else perturbation
    return Path(root) / name


def read_video(path: str | Path) -> torch.Tensor:
    """Decode every frame of a video into a ``T×3×H×W`` float tensor in ``[0, 1]`` (RGB).

    Raises:
        MissingFileError: the file does not exist.
        InputError: OpenCV cannot open it or it has no frames.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"No video at {path}.")
    cv2 = _cv2()
    capture = cv2.VideoCapture(str(path))
    frames = []
    try:
        if not capture.isOpened():
            raise InputError(f"OpenCV cannot open the video {path} (unsupported or corrupt file).")
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    finally:
        capture.release()
    if not frames:
        raise InputError(f"The video {path} has no decodable frames.")
    video = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2)
    return video.to(torch.float32) / 255.0


class ReleasedImageNetP(torch.utils.data.Dataset):
    """The released videos of one perturbation and difficulty, as ``(T×3×H×W video, label)``.

    Args:
        root: Folder holding the perturbation folders.
        perturbation: Perturbation name, e.g. ``"rotate"``.
        difficulty: 1 … 3; selects ``<p>_2``/``<p>_3`` for noise perturbations.
        class_index: wnid → model class index. Default: the sorted wnid folders
            numbered 0, 1, … (Hendrycks' ``DatasetFolder``), which is only right when all
            1000 class folders are present — pass the mapping for partial downloads.

    Raises:
        MissingFileError: the dataset folder does not exist.
        InputError: it holds no videos, or a wnid is missing from ``class_index``.
    """

    def __init__(
        self,
        root: str | Path,
        perturbation: str,
        difficulty: int = 1,
        *,
        class_index: Mapping[str, int] | None = None,
    ) -> None:
        self.directory = dataset_dir(root, perturbation, difficulty)
        if not self.directory.is_dir():
            raise MissingFileError(
                f"No ImageNet-P folder {self.directory}; expected <root>/<perturbation>/<wnid>/<name>.mp4."
            )
        wnids = sorted(d.name for d in self.directory.iterdir() if d.is_dir())
        index = dict(class_index) if class_index is not None else {w: i for i, w in enumerate(wnids)}
        self.samples: list[tuple[Path, int]] = []
        for wnid in wnids:
            videos = sorted(self.directory.joinpath(wnid).glob("*.mp4"))
            if videos and wnid not in index:
                raise UnknownNameError(f"Class folder {wnid!r} is not in the given class index.")
            self.samples += [(v, index[wnid]) for v in videos]
        if not self.samples:
            raise InputError(f"No .mp4 videos under {self.directory}.")

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[i]
        return read_video(path), label
