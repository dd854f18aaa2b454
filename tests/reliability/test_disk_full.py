"""A full disk and unusable output folders.

A full disk is simulated with ``RLIMIT_FSIZE`` in the child (SIGXFSZ ignored, so writes past the limit fail with
EFBIG, as they would with ENOSPC); SQLite then fails in the middle of the run. A read-only location is simulated
with sysfs (``/sys``), where even root cannot create folders; chmod does not stop root.
"""

from __future__ import annotations

import resource
import signal
from pathlib import Path

import pytest

from tests.reliability.conftest import assert_one_line_error, copy_store, robench, snapshot


def file_size_limit(limit: int):
    def preexec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return preexec


def test_disk_full_mid_run_keeps_a_valid_store_and_a_rerun_completes(reference, tmp_path):
    out = tmp_path / "out"
    # ~120 kB lets the schema and a few cells into the WAL, then a commit fails.
    full = robench("-q", *reference.args, "--out", str(out), preexec_fn=file_size_limit(120_000))
    assert_one_line_error(full.returncode, full.stderr, "Cannot write to the result store", "free disk space",
                          "--out", "Finished cells are kept")
    kept = snapshot(copy_store(out / "results.sqlite", tmp_path / "copy"))
    assert 0 < len(kept.cells) < len(reference.snapshot.cells)
    assert set(kept.cells) <= set(reference.snapshot.cells)  # whole, correct cells only
    rerun = robench(*reference.args, "--out", str(out))
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(kept.cells)} cells finished earlier and reused" in rerun.stderr
    reference.assert_same(out)


def test_disk_full_while_opening_the_store(reference, tmp_path):
    out = tmp_path / "out"
    proc = robench("-q", *reference.args, "--out", str(out), preexec_fn=file_size_limit(4096))
    line = assert_one_line_error(proc.returncode, proc.stderr, "results.sqlite", "free disk space", "--out")
    assert "remove" not in line  # never advise deleting a store because the disk is full


def test_disk_full_while_writing_reports(reference, tmp_path):
    """Every cell is stored, but index.html (~200 kB) does not fit: one line, and the store is untouched."""
    out = tmp_path / "out"
    copy_store(reference.out / "results.sqlite", out)
    proc = robench("-q", *reference.args, "--out", str(out), preexec_fn=file_size_limit(100_000))
    assert_one_line_error(proc.returncode, proc.stderr, "free disk space")
    assert snapshot(out / "results.sqlite").cells == reference.snapshot.cells


@pytest.mark.parametrize("where", ["file", "under-file", "store-is-folder", "store-is-junk", "read-only"])
def test_unusable_output_is_one_line(cli, reference, tmp_path, where):
    target = tmp_path / "target"
    if where == "file":
        target.write_text("not a folder")
        out, needles = target, ("is an existing file", "--out")
    elif where == "under-file":
        target.write_text("not a folder")
        out, needles = target / "sub", ("Cannot create the output folder", "--out")
    elif where == "store-is-folder":
        (target / "results.sqlite").mkdir(parents=True)
        out, needles = target, ("is a folder", "--out")
    elif where == "store-is-junk":
        target.mkdir()
        (target / "results.sqlite").write_bytes(b"\x00junk" * 2000)
        out, needles = target, ("not a usable robench result store", "--out")
    else:
        out = Path("/sys/robench-reliability-test")
        if not Path("/sys").is_dir() or out.exists():
            pytest.skip("no sysfs here")
        needles = ("Cannot create the output folder", "--out")
    rc, err = cli(*reference.args, "--ckpt", "demo-gap", "--out", str(out))
    assert_one_line_error(rc, err, *needles)
    if where == "store-is-junk":
        assert (target / "results.sqlite").read_bytes() == b"\x00junk" * 2000  # nothing overwritten


def test_leaderboard_into_an_existing_file_is_one_line(cli, reference, tmp_path):
    target = tmp_path / "target"
    target.write_text("not a folder")
    rc, err = cli("leaderboard", "--store", str(reference.out / "results.sqlite"), "--out", str(target))
    assert_one_line_error(rc, err, str(target))
