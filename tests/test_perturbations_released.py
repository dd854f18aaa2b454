"""Reading released ImageNet-P videos (small mp4 files written here with OpenCV)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from robench.errors import InputError, MissingFileError
from robench.perturbations.released import ReleasedImageNetP, dataset_dir, read_video

cv2 = pytest.importorskip("cv2")

H, W, T = 32, 48, 6


def write_video(path: Path, frames_rgb: np.ndarray) -> None:
    """Write T×H×W×3 uint8 RGB frames with the 'mp4v' codec (the one this OpenCV build has)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 1, (W, H))
    assert writer.isOpened()
    for frame in frames_rgb:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


def flat_frames(shade: int) -> np.ndarray:
    """Frames with a red left half and a blue right half, brightening over time."""
    frames = np.zeros((T, H, W, 3), np.uint8)
    for t in range(T):
        frames[t, :, : W // 2, 0] = shade + 10 * t
        frames[t, :, W // 2 :, 2] = shade + 10 * t
    return frames


def test_read_video_rgb_frames(tmp_path):
    path = tmp_path / "v.mp4"
    frames = flat_frames(120)
    write_video(path, frames)
    video = read_video(path)
    assert video.shape == (T, 3, H, W) and video.dtype == torch.float32
    expected = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255
    # Lossy codec: compare the halves' means (this also pins down BGR → RGB).
    assert torch.allclose(
        video[..., 4:-4, 4 : W // 2 - 4].mean(dim=(2, 3)),
        expected[..., 4:-4, 4 : W // 2 - 4].mean(dim=(2, 3)),
        atol=6 / 255,
    )
    assert float(video[:, 0, :, W // 2 + 4 :].mean()) < 10 / 255
    assert float(video[:, 2, :, W // 2 + 4 :].mean()) > 100 / 255


def test_dataset_layout_and_noise_difficulty_folders(tmp_path):
    for wnid, n in (("n01440764", 2), ("n01443537", 1)):
        for i in range(n):
            write_video(tmp_path / "rotate" / wnid / f"ILSVRC2012_val_{i:08d}.mp4", flat_frames(50))
    write_video(tmp_path / "shot_noise_2" / "n01443537" / "a.mp4", flat_frames(50))
    ds = ReleasedImageNetP(tmp_path, "rotate", difficulty=3)  # stride only: same folder
    assert len(ds) == 3
    assert [label for _, label in ds.samples] == [0, 0, 1]
    video, label = ds[2]
    assert video.shape == (T, 3, H, W) and label == 1
    assert dataset_dir(tmp_path, "shot_noise", 2) == tmp_path / "shot_noise_2"
    assert dataset_dir(tmp_path, "shot_noise", 1) == tmp_path / "shot_noise"
    mapped = ReleasedImageNetP(tmp_path, "shot_noise", 2, class_index={"n01443537": 1})
    assert mapped.samples[0][1] == 1


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(MissingFileError):
        read_video(tmp_path / "nope.mp4")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(InputError):
        read_video(bad)
    with pytest.raises(MissingFileError):
        ReleasedImageNetP(tmp_path, "tilt")
