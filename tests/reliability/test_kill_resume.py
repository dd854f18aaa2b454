"""SIGKILL `robench eval` at random moments, resume it, and get exactly the uninterrupted run.

Kill points come from ``random.Random(ROBENCH_KILL_SEED)`` (default fixed), so a failure can be replayed and the
case re-run with other points: ``ROBENCH_KILL_SEED=7 pytest tests/reliability/test_kill_resume.py -m "slow or not
slow"``. Four ways to pick the moment:

* ``write``: inside the K-th store write, after a random number of SQLite VM steps (mid-INSERT or mid-COMMIT);
* ``time``: a random time after the run takes the store lock (loading, computing, writing the reports);
* ``cells``: as soon as a reader sees at least K cells (just after a commit, often while reports are written);
* ``wal``: as soon as the WAL file changes size for the J-th time (while SQLite is writing).

After each kill the store copy must pass ``integrity_check`` with only whole cells; the resumed run must reuse
exactly the cells that were visible, and end with the uninterrupted store, leaderboard.csv and results.csv.
"""

from __future__ import annotations

import os
import random
import re
import signal
import time
from pathlib import Path

import pytest

from tests._helpers import cell_count
from tests.reliability import _hooks
from tests.reliability.conftest import (
    ENV,
    SUITE_CELLS,
    Reference,
    copy_store,
    robench,
    snapshot,
    spawn,
    wait_for_lock,
)

KILL_SEED = int(os.environ.get("ROBENCH_KILL_SEED", "20240917"))
MODES = ("write", "time", "cells", "wal")
WRITES = SUITE_CELLS // 2  # one transaction per (item, level), holding both models' cells


def kill_plan(n: int, seed: int, modes: tuple[str, ...]) -> list[tuple[str, float]]:
    """``n`` (mode, parameter) pairs; every mode appears when ``n >= len(modes)``."""
    rng = random.Random(seed)
    chosen = [modes[i % len(modes)] for i in range(n)]
    rng.shuffle(chosen)
    plan = []
    for mode in chosen:
        if mode == "write":
            # K * 1000 + VM steps; one write of two cells takes ~80 steps, so a few land just after the commit
            plan.append((mode, rng.randint(1, WRITES) * 1000 + rng.randint(1, 88)))
        elif mode == "time":
            plan.append((mode, rng.uniform(0.0, 1.0)))  # fraction of the reference run's working time
        elif mode == "cells":
            plan.append((mode, rng.randint(1, SUITE_CELLS)))
        else:
            plan.append((mode, rng.randint(1, WRITES // 2)))  # the WAL restarts after checkpoints
    return plan


def killed_run(ref: Reference, out: Path, mode: str, param: float, hooks: Path) -> int | None:
    """Start `robench eval` on ``out``, SIGKILL it at the planned moment; its exit status (None if not started)."""
    env = dict(ENV)
    if mode == "write":
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(hooks), ENV.get("PYTHONPATH")) if p)
        env["ROBENCH_TEST_KILL_IN_WRITE"] = f"{int(param) // 1000}:{int(param) % 1000}"
    proc = spawn(*ref.args, "--out", str(out), env=env)
    store, wal = out / "results.sqlite", out / "results.sqlite-wal"
    if mode == "time":
        wait_for_lock(out, proc)
    start, deadline = time.monotonic(), time.monotonic() + 300
    sizes, last = 0, -1
    while proc.poll() is None and time.monotonic() < deadline:
        if mode == "time" and time.monotonic() - start >= param * ref.seconds:
            break
        if mode == "cells" and cell_count(store) >= param:
            break
        if mode == "wal":
            size = wal.stat().st_size if wal.exists() else -1
            if size != last:
                sizes, last = sizes + (last != -1), size
                if sizes >= param:
                    break
        time.sleep(0.001 if mode == "wal" else 0.01)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.communicate()
    return proc.returncode


def kill_and_resume(ref: Reference, tmp_path: Path, plan: list[tuple[str, float]]) -> list[str]:
    hooks = _hooks.install(tmp_path / "hooks")
    log = []
    for i, (mode, param) in enumerate(plan):
        out = tmp_path / f"run{i}"
        rc = killed_run(ref, out, mode, param, hooks)
        where = f"kill {i} ({mode} {param}, seed {KILL_SEED})"
        if mode == "write":
            assert rc == -signal.SIGKILL, f"{where}: the hook did not fire (exit {rc})"
        visible = 0
        if (out / "results.sqlite").exists():
            visible = len(snapshot(copy_store(out / "results.sqlite", tmp_path / f"copy{i}")).cells)
        resumed = robench(*ref.args, "--out", str(out))
        assert resumed.returncode == 0, f"{where}: {resumed.stderr}"
        reused = re.search(r"(\d+) cells finished earlier and reused", resumed.stderr)
        assert reused is not None and int(reused[1]) == visible, f"{where}: {resumed.stderr}"
        ref.assert_same(out)
        log.append(f"{where}: exit {rc}, {visible} cells kept")
    return log


def test_kill_plan_is_reproducible_and_covers_every_mode():
    assert kill_plan(10, 1, MODES) == kill_plan(10, 1, MODES)
    assert kill_plan(10, 1, MODES) != kill_plan(10, 2, MODES)
    assert {m for m, _ in kill_plan(10, KILL_SEED, MODES)} == set(MODES)


def test_sigkill_twice_then_resume(reference, tmp_path):
    """Fast variant: one kill inside a store transaction, one at a random time."""
    plan = [kill_plan(1, KILL_SEED, ("write",))[0], kill_plan(1, KILL_SEED + 1, ("time",))[0]]
    kill_and_resume(reference, tmp_path, plan)


@pytest.mark.slow
def test_sigkill_at_ten_random_moments(reference, tmp_path):
    log = kill_and_resume(reference, tmp_path, kill_plan(10, KILL_SEED, MODES))
    print("\n".join(log))


@pytest.mark.slow
def test_repeated_kills_on_one_store(reference, tmp_path):
    """Kills pile up on the same store (each resumed run is killed again), then one run finishes it."""
    hooks = _hooks.install(tmp_path / "hooks")
    out = tmp_path / "out"
    for mode, param in kill_plan(6, KILL_SEED + 2, MODES):
        killed_run(reference, out, mode, param, hooks)
    assert robench(*reference.args, "--out", str(out)).returncode == 0
    reference.assert_same(out)


def test_ctrl_c_is_one_line_and_keeps_finished_cells(reference, tmp_path):
    """SIGINT (Ctrl-C) mid-run: exit 130 with one line, no traceback; the rerun completes the same store."""
    out = tmp_path / "out"
    proc = spawn(*reference.args, "--out", str(out))
    deadline = time.monotonic() + 300
    while proc.poll() is None and cell_count(out / "results.sqlite") < 10 and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted; finished cells are kept" in err
    kept = snapshot(copy_store(out / "results.sqlite", tmp_path / "copy"))
    resumed = robench(*reference.args, "--out", str(out))
    assert f"{len(kept.cells)} cells finished earlier and reused" in resumed.stderr
    reference.assert_same(out)
