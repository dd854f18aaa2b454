"""The `robench` command as a user runs it (subprocesses, demo models, small limits)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from robench.models import list_cards
from tests._helpers import cell_count

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def robench(*args: str, cwd: Path | None = None, check: bool = False) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "robench", *args], capture_output=True, text=True, env=ENV,
                          cwd=cwd, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"robench {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0]


def test_missing_checkpoint_is_one_line_exit_2(tmp_path):
    proc = robench("eval", "--ckpt", "does-not-exist.pt", "--out", str(tmp_path))
    assert_one_line_error(proc, "does-not-exist.pt")


def test_unknown_suite_and_corruption_names_suggest_fixes(tmp_path):
    assert_one_line_error(robench("eval", "--suite", "dmeo", "--out", str(tmp_path)), "Did you mean: demo")
    bad = tmp_path / "bad.toml"
    bad.write_text('dataset = "fashion-mnist-demo"\n[corruptions]\nnames = ["gausian_noise"]\nseverities = [9]\n')
    assert_one_line_error(robench("eval", "--suite", str(bad), "--out", str(tmp_path)), "severity 9")
    bad.write_text('dataset = "fashion-mnist-demo"\n[corruptions]\nnames = ["gausian_noise"]\n')
    assert_one_line_error(robench("eval", "--suite", str(bad), "--out", str(tmp_path)), "gaussian_noise")


def test_clean_error_matches_the_cards_reported_accuracy(tmp_path):
    suite = tmp_path / "clean.toml"
    suite.write_text('name = "clean"\ndataset = "fashion-mnist-demo"\nparam_set = "cifar"\n[clean]\n')
    robench("eval", "--suite", str(suite), "--out", str(tmp_path / "o"), check=True)
    board = pd.read_csv(tmp_path / "o" / "leaderboard.csv").set_index("pooling")
    cards = {c.name: c for c in list_cards()}
    for pooling in ("gap", "gcp"):
        row = board.loc[pooling]
        reported = cards[row.model].accuracy["fashion-mnist-test-2k"]
        assert abs(row.clean_err - (100 - reported)) <= 0.5
        assert row.clean_err < 10  # the demo models reach >= 90 % accuracy


@pytest.mark.slow  # ~80 s; the default run keeps tests/reliability/test_kill_resume.py's SIGKILL-and-resume cases
def test_sigkill_then_rerun_gives_the_uninterrupted_leaderboard(tmp_path):
    args = ["eval", "--limit", "120", "--batch-size", "50"]
    robench(*args, "--out", str(tmp_path / "ref"), check=True)
    out = tmp_path / "killed"
    store = out / "results.sqlite"
    for target in (3, 40, 150):  # kill after a few cells, in the middle, and late
        proc = subprocess.Popen([sys.executable, "-m", "robench", *args, "--out", str(out)], env=ENV,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 300
        while proc.poll() is None and cell_count(store) < target and time.time() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    before = cell_count(store)
    rerun = robench(*args, "--out", str(out), check=True)
    assert f"{before} cells finished earlier and reused" in rerun.stderr
    assert (out / "leaderboard.csv").read_bytes() == (tmp_path / "ref" / "leaderboard.csv").read_bytes()
    assert (out / "results.csv").read_bytes() == (tmp_path / "ref" / "results.csv").read_bytes()
    con = sqlite3.connect(store)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("SELECT COUNT(*) FROM cells").fetchone()[0] == 2 * _demo_cells()
    # the store alone re-renders the same leaderboard
    again = tmp_path / "again"
    robench("leaderboard", "--store", str(store), "--out", str(again), check=True)
    assert (again / "leaderboard.csv").read_bytes() == (out / "leaderboard.csv").read_bytes()


def _demo_cells() -> int:
    from robench.suites import load_suite

    return sum(len(i.levels) for i in load_suite("demo").items)


def test_second_writer_on_one_store_fails_clearly(tmp_path):
    from robench.store import exclusive

    with exclusive(tmp_path / "results.sqlite"):
        proc = robench("eval", "--limit", "10", "--out", str(tmp_path))
    assert_one_line_error(proc, "in use by robench", "--out")


def test_list_commands():
    models = robench("list", "models", check=True).stdout
    assert "demo-gap" in models and "demo-gcp" in models and "resnet50" in models
    assert "gaussian_noise" in robench("list", "corruptions", check=True).stdout
    assert "imagenet-c" in robench("list", "suites", check=True).stdout


@pytest.mark.parametrize("what", ["modles"])
def test_list_unknown_thing_exits_2(what):
    assert robench("list", what).returncode == 2
