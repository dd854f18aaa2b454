"""Two `robench eval` processes on one store: the second fails at once with a clear message, a reader keeps
working, and the first run finishes with exactly the uninterrupted result."""

from __future__ import annotations

import os
import time

import pytest

from tests.reliability import _hooks
from tests.reliability.conftest import ENV, assert_one_line_error, integrity, robench, spawn


def wait_for(path, proc, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_second_run_on_a_busy_store_fails_and_the_first_finishes(reference, tmp_path):
    out = tmp_path / "out"
    gate = tmp_path / "gate"
    # The first run pauses before its 5th store write, so the others provably meet it mid-run.
    hooks = str(_hooks.install(tmp_path / "hooks"))
    env = {**ENV, "PYTHONPATH": os.pathsep.join(p for p in (hooks, ENV.get("PYTHONPATH")) if p),
           "ROBENCH_TEST_PAUSE_AT_WRITE": f"5:{gate}"}
    first = spawn(*reference.args, "--out", str(out), env=env)
    try:
        wait_for(tmp_path / "gate.paused", first)
        second = robench(*reference.args, "--out", str(out))
        line = assert_one_line_error(second.returncode, second.stderr, "in use by robench", f"pid {first.pid}",
                                     "--out")
        assert "wait for that run to finish" in line
        fresh = robench(*reference.args, "--fresh", "--out", str(out))  # --fresh must not delete under a writer
        assert_one_line_error(fresh.returncode, fresh.stderr, "in use by robench")
        reader = robench("leaderboard", "--store", str(out / "results.sqlite"))  # readers are never blocked
        assert reader.returncode == 0, reader.stderr
        assert "demo-gap" in reader.stdout and "demo-gcp" in reader.stdout
    finally:
        gate.touch()
        _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    assert integrity(out / "results.sqlite") == "ok"
    reference.assert_same(out)


@pytest.mark.slow
def test_two_runs_started_together(reference, tmp_path):
    """Both start on an empty --out at once: each either finishes or exits 2 at the lock; the store ends complete."""
    out = tmp_path / "out"
    procs = [spawn(*reference.args, "--out", str(out)) for _ in range(2)]
    results = []
    for p in procs:
        _, err = p.communicate(timeout=600)
        results.append((p.returncode, err))
    for rc, err in results:
        if rc != 0:
            assert_one_line_error(rc, err, "in use by robench")
    assert any(rc == 0 for rc, _ in results)
    reference.assert_same(out)
