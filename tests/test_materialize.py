from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from robench.corruptions import corrupt, quantize_uint8
from robench.data.sources import ImageFolderSource
from robench.errors import MissingFileError, UnknownNameError
from robench.materialize import CorruptConfig, materialize
from robench.suites import Protocol


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "val"
    for cls in ("n01", "n02"):
        (root / cls).mkdir(parents=True)
        for k in range(3):
            Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(root / cls / f"im{k}.JPEG")
    return root


def _cfg(folder, out, **kw):
    return CorruptConfig(data=folder, out=out, corruptions=("gaussian_noise", "contrast"), severities=(1, 3),
                         resize=36, crop=32, **kw)


def test_writes_official_layout_and_resumes(folder, tmp_path):
    out = tmp_path / "c"
    assert materialize(_cfg(folder, out)) == {"written": 24, "skipped": 0}
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.JPEG"))
    assert len(files) == 24 and "gaussian_noise/3/n02/im1.JPEG" in files
    assert not list(out.rglob("*.tmp"))
    (out / "contrast" / "1" / "n01" / "im0.JPEG").unlink()
    assert materialize(_cfg(folder, out)) == {"written": 1, "skipped": 23}


def test_written_images_equal_on_the_fly_corruption(folder, tmp_path):
    out = tmp_path / "png"
    materialize(_cfg(folder, out, jpeg=False, seed=4))
    ds = ImageFolderSource(folder, Protocol(resize=36, crop=32))
    for i in (0, 4):
        x = ds[i][0][None].float() / 255
        expected = quantize_uint8(corrupt(x, "gaussian_noise", 3, seed=4, indices=[i]))
        rel = ds.samples[i][0].relative_to(folder).with_suffix(".png")
        written = np.array(Image.open(out / "gaussian_noise" / "3" / rel))
        assert torch.equal(torch.from_numpy(written).permute(2, 0, 1)[None].float() / 255, expected)


def test_bad_inputs(folder, tmp_path):
    with pytest.raises(MissingFileError):
        materialize(CorruptConfig(data=tmp_path / "nope", out=tmp_path / "o"))
    with pytest.raises(UnknownNameError, match="Did you mean: contrast"):
        materialize(CorruptConfig(data=folder, out=tmp_path / "o", corruptions=("contrst",)))


def test_cli_corrupt_exit_codes(folder, tmp_path):
    run = [sys.executable, "-m", "robench", "corrupt", "--data", str(folder), "--out", str(tmp_path / "o"),
           "--corruption", "contrast", "--severity", "2", "--resize", "36", "--crop", "32"]
    ok = subprocess.run(run, capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0 and "6 images written" in ok.stderr
    bad = subprocess.run([*run[:-4], "--severity", "7"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "Severity 7 is out of range" in bad.stderr and "Traceback" not in bad.stderr
