"""Bad images and folder layouts: one clear error, or counted and skipped under --on-bad-image skip."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from robench.errors import InputError
from robench.evaluate import EvalConfig, run_eval

SUITE = 'name = "bad"\ndataset = "imagefolder"\nparam_set = "imagenet"\n[protocol]\nresize = 36\ncrop = 32\n[clean]\n'


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "val"
    good = root / "n01"
    odd = root / "n02"
    good.mkdir(parents=True)
    odd.mkdir()
    (root / "n03").mkdir()  # an empty class folder keeps its label slot
    rgb = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(good / "a.JPEG")
    Image.fromarray(rgb[..., 0]).save(odd / "grey.png")
    Image.fromarray(rgb).convert("CMYK").save(odd / "cmyk.jpg")
    Image.fromarray(np.dstack([rgb, rgb[..., :1]])).save(odd / "rgba.png")
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG")
    (good / "truncated.JPEG").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 3])
    (good / "empty.JPEG").write_bytes(b"")
    (good / "text.jpg").write_text("not an image")
    suite = tmp_path / "bad.toml"
    suite.write_text(SUITE)
    return root, suite


def test_bad_image_stops_with_the_file_named(folder, tmp_path, fake_models):
    root, suite = folder
    with pytest.raises(InputError, match=r"Cannot read image .*(empty|text|truncated).*--on-bad-image skip"):
        run_eval(EvalConfig(suite=str(suite), data=root, out=tmp_path / "o"), models=fake_models)


def test_skip_counts_bad_images_and_converts_the_rest(folder, tmp_path, fake_models):
    root, suite = folder
    s = run_eval(EvalConfig(suite=str(suite), data=root, out=tmp_path / "o", on_bad_image="skip", batch_size=2),
                 models=fake_models)
    from robench.report import leaderboard, load_results

    cells = load_results(s.store)
    assert (cells.skipped == 3).all() and (cells.n == 4).all()  # grey, CMYK, RGBA and the good JPEG remain
    assert (leaderboard(s.store).skipped == 3).all()


def test_cli_error_is_one_line_even_from_worker_processes(folder, tmp_path):
    root, suite = folder
    proc = subprocess.run(
        [sys.executable, "-m", "robench", "eval", "--suite", str(suite), "--data", str(root), "--workers", "2",
         "--ckpt", "demo-gap", "--out", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=300,
    )
    errors = [line for line in proc.stderr.splitlines() if line.startswith("robench:")]
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(errors) == 1 and errors[0].startswith("robench: error: Cannot read image"), proc.stderr


def test_wrong_layouts_are_clear_errors(tmp_path, fake_models):
    suite = tmp_path / "s.toml"
    suite.write_text(SUITE)
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(flat / "x.png")
    with pytest.raises(InputError, match="no class folders"):
        run_eval(EvalConfig(suite=str(suite), data=flat, out=tmp_path / "o"), models=fake_models)
    empty = tmp_path / "empty"
    (empty / "n01").mkdir(parents=True)
    with pytest.raises(InputError, match="holds no images"):
        run_eval(EvalConfig(suite=str(suite), data=empty, out=tmp_path / "o"), models=fake_models)
    with pytest.raises(FileNotFoundError, match="check --data"):
        run_eval(EvalConfig(suite=str(suite), data=tmp_path / "missing", out=tmp_path / "o"), models=fake_models)
