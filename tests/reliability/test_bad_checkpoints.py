"""Untrusted and damaged checkpoints through the CLI: refused in one line (exit 2), payloads never run, NaN never
averaged into a metric, earlier cells untouched. Complements tests/test_checkpoints.py (library level)."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from robench._paths import zoo_dir
from robench.errors import CheckpointError
from robench.models.checkpoints import read_checkpoint
from tests.reliability.conftest import SUITE_TOML, assert_one_line_error, robench, snapshot

DEMO = {pool: load_file(str(zoo_dir() / f"demo-{pool}.safetensors")) for pool in ("gap", "gcp")}
SMALL_SUITE = SUITE_TOML.replace('"fog", "jpeg_compression"', '"fog"').split("[perturbations]")[0]


class Payload:
    """Unpickling this creates ``marker``: proof that the file's code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


@pytest.fixture
def suite(tmp_path) -> Path:
    path = tmp_path / "small.toml"
    path.write_text(SMALL_SUITE)
    return path


def run(cli, suite: Path, out: Path, *ckpt_args: str) -> tuple[int, str]:
    return cli("eval", "--suite", str(suite), "--limit", "8", "--out", str(out), *ckpt_args)


def test_code_execution_payload_is_refused_and_never_runs(tmp_path, suite):
    """In a real `python -m robench` process, like a user who downloaded the file."""
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {**DEMO["gap"], "fc.weight": Payload(marker)}}, path)
    proc = robench("eval", "--ckpt", str(path), "--suite", str(suite), "--limit", "8", "--out", str(tmp_path / "o"))
    assert_one_line_error(proc.returncode, proc.stderr, "Refusing to load", "evil.pth", "exec", "safetensors")
    assert not marker.exists()
    assert not (tmp_path / "o" / "results.sqlite").exists() or not snapshot(tmp_path / "o" / "results.sqlite").cells


@pytest.mark.parametrize("how", ["raw-pickle", "raw-pickle-protocol-0", "numpy-object-array"])
def test_other_pickles_are_refused(cli, tmp_path, suite, how):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    if how == "raw-pickle":
        path.write_bytes(pickle.dumps({"fc.weight": Payload(marker)}))
    elif how == "raw-pickle-protocol-0":
        path.write_bytes(pickle.dumps(Payload(marker), protocol=0))
    else:
        import numpy as np

        torch.save({"fc.weight": np.array([Payload(marker)], dtype=object)}, path)
    rc, err = run(cli, suite, tmp_path / "o", "--ckpt", str(path), "--arch", "resnet_demo", "--pool", "gap")
    assert_one_line_error(rc, err, "Refusing to load", "evil.pt")
    assert not marker.exists()


def _truncated_zip(tmp: Path) -> Path:
    torch.save(DEMO["gap"], tmp / "full.pt")
    data = (tmp / "full.pt").read_bytes()
    (tmp / "cut.pt").write_bytes(data[: len(data) // 2])
    return tmp / "cut.pt"


def _truncated_legacy(tmp: Path) -> Path:
    torch.save(DEMO["gap"], tmp / "full.pt", _use_new_zipfile_serialization=False)
    data = (tmp / "full.pt").read_bytes()
    (tmp / "cut.pt").write_bytes(data[: len(data) // 3])
    return tmp / "cut.pt"


def _truncated_safetensors(tmp: Path) -> Path:
    data = (zoo_dir() / "demo-gap.safetensors").read_bytes()
    (tmp / "cut.safetensors").write_bytes(data[: len(data) - 1000])
    return tmp / "cut.safetensors"


def _random_bytes(tmp: Path) -> Path:
    (tmp / "noise.pth").write_bytes(torch.randint(0, 256, (20000,), generator=torch.Generator().manual_seed(0),
                                                  dtype=torch.uint8).numpy().tobytes())
    return tmp / "noise.pth"


def _text(tmp: Path) -> Path:
    (tmp / "notes.pt").write_text("these are my training notes, not weights\n" * 20)
    return tmp / "notes.pt"


def _empty(tmp: Path) -> Path:
    (tmp / "empty.pt").write_bytes(b"")
    return tmp / "empty.pt"


def _jpeg(tmp: Path) -> Path:
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp / "photo.pth", format="JPEG")
    return tmp / "photo.pth"


@pytest.mark.parametrize("make", [_truncated_zip, _truncated_legacy, _truncated_safetensors, _random_bytes, _text,
                                  _empty, _jpeg], ids=lambda f: f.__name__.strip("_"))
def test_damaged_or_foreign_files_are_one_line(cli, tmp_path, suite, make):
    path = make(tmp_path)
    rc, err = run(cli, suite, tmp_path / "o", "--ckpt", str(path), "--arch", "resnet_demo", "--pool", "gap")
    line = assert_one_line_error(rc, err, path.name)
    assert "unpickling it could run code" not in line or "may be" in line  # no false accusation


@pytest.mark.parametrize(("have", "claim"), [("gap", "gcp"), ("gcp", "gap")])
def test_state_dict_of_the_other_pooling_is_refused(cli, tmp_path, suite, have, claim):
    path = tmp_path / f"demo-{have}.pt"
    torch.save(DEMO[have], path)
    rc, err = run(cli, suite, tmp_path / "o", "--ckpt", str(path), "--arch", "resnet_demo", "--pool", claim)
    assert_one_line_error(rc, err, f"does not fit resnet_demo/{claim}", "fc.weight", "--arch/--pool")
    rc, err = run(cli, suite, tmp_path / "o", "--ckpt", str(path), "--arch", "resnet18", "--pool", have)
    assert_one_line_error(rc, err, "does not fit resnet18")


def test_nan_weights_are_refused_and_earlier_cells_stay(cli, tmp_path, suite):
    out = tmp_path / "o"
    rc, err = run(cli, suite, out, "--ckpt", "demo-gap")
    assert rc == 0, err
    before = snapshot(out / "results.sqlite")
    state = {k: v.clone() for k, v in DEMO["gcp"].items()}
    state["layer2.0.conv1.weight"][0, 0, 0, 0] = float("nan")
    save_file(state, str(tmp_path / "nan.safetensors"))
    rc, err = run(cli, suite, out, "--ckpt", "demo-gap", "--ckpt", str(tmp_path / "nan.safetensors"))
    assert_one_line_error(rc, err, "nan.safetensors", "NaN/inf", "layer2.0.conv1.weight")
    assert snapshot(out / "results.sqlite") == before


def test_nan_logits_stop_the_run_and_are_never_averaged(cli, tmp_path, suite):
    """Finite but huge weights overflow to inf/NaN logits at run time: the cell is not stored, earlier ones stay."""
    out = tmp_path / "o"
    rc, err = run(cli, suite, out, "--ckpt", "demo-gap")
    assert rc == 0, err
    before = snapshot(out / "results.sqlite")
    state = {k: v.clone() for k, v in DEMO["gcp"].items()}
    state["fc.weight"] = torch.where(state["fc.weight"] >= 0, 3e38, -3e38)
    save_file(state, str(tmp_path / "huge.safetensors"))
    rc, err = run(cli, suite, out, "--ckpt", "demo-gap", "--ckpt", str(tmp_path / "huge.safetensors"))
    assert_one_line_error(rc, err, "model huge", "NaN/inf logits", "Finished cells are kept")
    after = snapshot(out / "results.sqlite")
    assert after.cells == before.cells  # no cell of the bad model, the good ones untouched
    rc, err = cli("leaderboard", "--store", str(out / "results.sqlite"), "--out", str(tmp_path / "board"))
    assert rc == 0, err
    board = (tmp_path / "board" / "leaderboard.csv").read_text()
    assert "huge.safetensors" not in board and "nan" not in board.lower()


@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fmt=st.sampled_from(["zip", "legacy", "safetensors"]), cut=st.floats(0.0, 1.0),
       flips=st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 255)), max_size=4))
def test_any_damage_to_a_checkpoint_is_a_checkpoint_error(tmp_path, fmt, cut, flips):
    """Truncate a real checkpoint anywhere and overwrite a few bytes: never anything but CheckpointError (or a
    successful read, when the damage missed)."""
    path = tmp_path / f"damaged.{'safetensors' if fmt == 'safetensors' else 'pt'}"
    small = {"conv1.weight": DEMO["gap"]["conv1.weight"], "fc.bias": DEMO["gap"]["fc.bias"]}
    if fmt == "safetensors":
        save_file(small, str(path))
    else:
        torch.save(small, path, _use_new_zipfile_serialization=fmt == "zip")
    data = bytearray(path.read_bytes())
    data = data[: max(0, round(cut * len(data)))] if cut < 1 else data
    for where, value in flips:
        if data:
            data[min(len(data) - 1, int(where * len(data)))] = value
    path.write_bytes(bytes(data))
    try:
        read_checkpoint(path)
    except CheckpointError as e:
        assert "\n" not in str(e)
