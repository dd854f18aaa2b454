"""Released ImageNet-C / ImageNet-P folders as cell sources (tiny trees written by the tests)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from robench.errors import InputError
from robench.evaluate import EvalConfig, run_eval
from robench.materialize import CorruptConfig, materialize
from robench.report import load_results

CORR = ["gaussian_noise", "contrast", "jpeg_compression"]


@pytest.fixture
def val(tmp_path):
    rng = np.random.default_rng(1)
    root = tmp_path / "val"
    for cls in ("n01", "n02", "n03"):
        (root / cls).mkdir(parents=True)
        for k in range(4):
            Image.fromarray(rng.integers(0, 256, (36, 40, 3), dtype=np.uint8)).save(root / cls / f"x{k}.png")
    return root


def _suite(tmp_path, name, dataset, protocol, extra=""):
    path = tmp_path / f"{name}.toml"
    path.write_text(f'name = "{name}"\ndataset = "{dataset}"\nparam_set = "imagenet"\nseed = 3\n'
                    f"[protocol]\n{protocol}\n[corruptions]\nnames = {CORR!r}\nseverities = [2, 5]\n{extra}")
    return path


def test_released_imagenet_c_gives_the_on_the_fly_numbers(tmp_path, val, fake_models):
    released = tmp_path / "ImageNet-C"
    materialize(CorruptConfig(data=val, out=released, corruptions=tuple(CORR), severities=(2, 5), seed=3,
                              resize=32, crop=32))
    fly = _suite(tmp_path, "fly", "imagefolder", "resize = 32\ncrop = 32\nquantize = true\njpeg_quality = 85")
    rel = _suite(tmp_path, "rel", "imagenet-c-released", "quantize = false\njpeg_quality = 0")
    a = run_eval(EvalConfig(suite=str(fly), data=val, out=tmp_path / "a", batch_size=5), models=fake_models)
    b = run_eval(EvalConfig(suite=str(rel), data=released, out=tmp_path / "b", batch_size=7), models=fake_models)
    cols = ["model", "item", "level", "n", "top1_errors", "top5_errors"]
    ra, rb = load_results(a.store)[cols], load_results(b.store)[cols]
    assert len(ra) == 2 * len(CORR) * 2
    pd.testing.assert_frame_equal(ra.reset_index(drop=True), rb.reset_index(drop=True))


def test_released_data_without_clean_images_and_missing_files(tmp_path, val, fake_models):
    released = tmp_path / "ImageNet-C"
    materialize(CorruptConfig(data=val, out=released, corruptions=("contrast",), severities=(2,), resize=32,
                              crop=32))
    with_clean = _suite(tmp_path, "c", "imagenet-c-released", "quantize = false", extra="[clean]\n")
    with pytest.raises(InputError, match="no clean images"):
        run_eval(EvalConfig(suite=str(with_clean), data=released, out=tmp_path / "o"), models=fake_models)
    other = _suite(tmp_path, "d", "imagenet-c-released", "quantize = false")
    with pytest.raises(FileNotFoundError, match="download is incomplete"):
        run_eval(EvalConfig(suite=str(other), data=released, out=tmp_path / "o2"), models=fake_models)


def _write_video(path, frames):
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 1, (w, h))
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()


def test_released_imagenet_p_videos_give_flip_counts(tmp_path, fake_models):
    root = tmp_path / "ImageNet-P"
    ramp = np.linspace(0, 255, 32, dtype=np.float64)
    still = np.stack([np.tile(ramp, (32, 1)), np.tile(ramp[:, None], (1, 32)), np.full((32, 32), 60.0)], -1)
    still = still.astype(np.uint8)  # smooth content survives the lossy mp4v codec
    other = still[::-1, ::-1].copy()
    for p in ("translate", "rotate"):
        for wnid in ("n01", "n02"):
            _write_video(root / p / wnid / "a.mp4", [still] * 6)  # no change → no flips possible
            _write_video(root / p / wnid / "b.mp4", [still, other] * 3)  # alternating content
    suite = tmp_path / "p.toml"
    suite.write_text('name = "p"\ndataset = "imagenet-p-released"\nparam_set = "imagenet"\n'
                     '[perturbations]\nnames = ["translate", "rotate"]\ndifficulties = [1, 2]\n')
    s = run_eval(EvalConfig(suite=str(suite), data=root, out=tmp_path / "o", batch_size=3), models=fake_models)
    cells = load_results(s.store)
    assert set(cells.item) == {"translate", "rotate"} and (cells.videos == 4).all()
    d1 = cells[cells.level == 1]
    assert (d1.pairs == 4 * 5).all()
    assert (d1.flips > 0).any()  # the alternating videos flip
    d2 = cells[cells.level == 2]  # stride 2: frames 0,2,4 and 1,3,5 hold the same image each (mp4v is lossy,
    assert (d2.flips == 0).all()  # so lower top-5 ranks may still move)
