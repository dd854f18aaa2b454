"""Shared pieces of the reliability suite: the `robench` command as a user runs it, store snapshots, and one
uninterrupted reference run that the kill, concurrency and disk-full tests compare against."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}

# A small suite over both demo models: clean, six corruptions x 5 severities, two perturbation sequences.
# 33 (item, level) groups -> 66 cells; 3 batches per cell, so kills land between and within cells.
SUITE_TOML = """\
name = "reliability"
dataset = "fashion-mnist-demo"
param_set = "cifar"
seed = 0
[clean]
[corruptions]
names = ["gaussian_noise", "impulse_noise", "defocus_blur", "contrast", "fog", "jpeg_compression"]
severities = [1, 2, 3, 4, 5]
[perturbations]
names = ["gaussian_noise", "translate"]
difficulties = [1]
"""
SUITE_CELLS = 2 * (1 + 6 * 5 + 2)


def eval_args(suite: Path) -> list[str]:
    return ["eval", "--suite", str(suite), "--limit", "30", "--batch-size", "10"]


def robench(*args: str, env: dict | None = None, preexec_fn=None, timeout: int = 600) -> subprocess.CompletedProcess:
    """``python -m robench ARGS`` in a fresh process."""
    return subprocess.run([sys.executable, "-m", "robench", *args], capture_output=True, text=True,
                          env=env or ENV, preexec_fn=preexec_fn, timeout=timeout)


def spawn(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "robench", *args], env=env or ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def assert_one_line_error(rc: int, stderr: str, *needles: str) -> str:
    """Exit code 2, exactly one non-empty stderr line, no traceback, every needle in it."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert rc == 2, stderr
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def integrity(store: Path) -> str:
    con = sqlite3.connect(store)
    try:
        return con.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        con.close()


def copy_store(store: Path, dest: Path) -> Path:
    """Copy a store with its WAL and shared-memory files, so it can be inspected without touching the original
    (opening a store recovers and checkpoints its WAL, which would change what a resumed run finds)."""
    dest.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        src = Path(str(store) + suffix)
        if src.exists():
            shutil.copy2(src, dest / src.name)
    return dest / store.name


@dataclass(frozen=True)
class Snapshot:
    """What a store holds, minus the wall-clock time in each cell's provenance."""

    cells: tuple
    models: tuple
    suites: tuple
    per_image: tuple = ()

    @property
    def keys(self) -> list[tuple]:
        return [c[:5] for c in self.cells]


def snapshot(store: Path) -> Snapshot:
    """Read every table of a store after checking its integrity and that every cell is whole."""
    assert integrity(store) == "ok"
    con = sqlite3.connect(store)
    try:
        rows = con.execute("SELECT model, suite, kind, item, level, config, n, counts, provenance FROM cells "
                           "ORDER BY model, suite, kind, item, level").fetchall()
        cells = []
        for *key, config, n, counts, provenance in rows:
            counts, provenance = json.loads(counts), json.loads(provenance)  # half-written JSON fails here
            assert n > 0 and counts and len(config) == 20, (key, n, counts)
            provenance.pop("time")
            cells.append((*key, config, n, json.dumps(counts, sort_keys=True), json.dumps(provenance, sort_keys=True)))
        models = tuple(con.execute("SELECT * FROM models ORDER BY model").fetchall())
        suites = tuple(con.execute("SELECT * FROM suites ORDER BY name").fetchall())
        distinct = con.execute("SELECT COUNT(DISTINCT model || '|' || suite || '|' || kind || '|' || item || '|' "
                               "|| level) FROM cells").fetchone()[0]
        per_image = tuple(con.execute("SELECT * FROM per_image ORDER BY model, suite, kind, item, level, field"))
    finally:
        con.close()
    assert distinct == len(cells), "duplicate cells"
    # a cell and its per-image outcomes are written together: never one without the other
    assert {r[:5] for r in per_image} == {tuple(c[:5]) for c in cells}, "cells and per-image outcomes differ"
    return Snapshot(tuple(cells), models, suites, per_image)


@dataclass(frozen=True)
class Reference:
    """The uninterrupted run: its store and tables, and how long it worked after taking the store lock."""

    suite: Path
    out: Path
    snapshot: Snapshot
    leaderboard: bytes
    results: bytes
    seconds: float

    @property
    def args(self) -> list[str]:
        return eval_args(self.suite)

    def assert_same(self, out: Path) -> None:
        """``out`` holds exactly the uninterrupted run's store and tables."""
        assert snapshot(out / "results.sqlite") == self.snapshot
        assert (out / "leaderboard.csv").read_bytes() == self.leaderboard
        assert (out / "results.csv").read_bytes() == self.results


def wait_for_lock(out: Path, proc: subprocess.Popen, seconds: float = 300) -> bool:
    """Wait until the run holds the store lock (imports done, work begins); False if it ended first."""
    lock = out / "results.sqlite.lock"
    deadline = time.monotonic() + seconds
    while proc.poll() is None and time.monotonic() < deadline:
        if lock.exists():
            return True
        time.sleep(0.01)
    return False


@pytest.fixture(scope="session")
def reference(tmp_path_factory) -> Reference:
    """One uninterrupted `robench eval` of the reliability suite on both demo models."""
    root = tmp_path_factory.mktemp("reference")
    suite = root / "reliability.toml"
    suite.write_text(SUITE_TOML)
    out = root / "out"
    proc = spawn(*eval_args(suite), "--out", str(out))
    assert wait_for_lock(out, proc)
    start = time.monotonic()
    _, err = proc.communicate(timeout=600)
    seconds = time.monotonic() - start
    assert proc.returncode == 0, err
    snap = snapshot(out / "results.sqlite")
    assert len(snap.cells) == SUITE_CELLS
    return Reference(suite, out, snap, (out / "leaderboard.csv").read_bytes(), (out / "results.csv").read_bytes(),
                     seconds)


@pytest.fixture
def cli(capsys):
    """``robench.cli.main`` in this process (fast; the same entry point as the console script).

    Returns ``call(*argv) -> (exit code, stderr)``. The CLI configures logging and quietness globally; both are
    restored afterwards so other tests see the logging setup pytest made.
    """
    from robench._progress import set_quiet
    from robench.cli import main

    root = logging.getLogger()
    saved = (root.handlers[:], root.level)

    def call(*argv: str) -> tuple[int, str]:
        capsys.readouterr()
        rc = main(["-q", *argv])
        return rc, capsys.readouterr().err

    yield call
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    set_quiet(False)
