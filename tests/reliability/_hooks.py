"""Fault hooks for `robench` subprocesses, installed as a ``sitecustomize`` module on their PYTHONPATH.

The child still runs ``python -m robench …`` unchanged; environment variables select a fault:

``ROBENCH_TEST_KILL_IN_WRITE="K:STEPS"``
    SIGKILL the process inside its K-th result-store write (``Store.put_cells``) after STEPS SQLite VM
    instructions, i.e. in the middle of the INSERTs or of the COMMIT; if the transaction finishes first, right
    after it returns.
``ROBENCH_TEST_PAUSE_AT_WRITE="K:GATE"``
    Before the K-th write, create ``GATE.paused`` and wait until ``GATE`` exists (a run held mid-way, for
    concurrency tests).
"""

from __future__ import annotations

from pathlib import Path

SITECUSTOMIZE = '''
import os

_kill = os.environ.get("ROBENCH_TEST_KILL_IN_WRITE")
_pause = os.environ.get("ROBENCH_TEST_PAUSE_AT_WRITE")
if _kill or _pause:
    import signal
    import time

    import robench.store as _store

    _original = _store.Store.put_cells
    _calls = [0]

    def _die():
        os.kill(os.getpid(), signal.SIGKILL)

    def put_cells(self, records):
        _calls[0] += 1
        if _pause:
            at, gate = _pause.split(":", 1)
            if _calls[0] == int(at):
                open(gate + ".paused", "w").close()
                while not os.path.exists(gate):
                    time.sleep(0.02)
        if _kill:
            at, steps = (int(v) for v in _kill.split(":"))
            if _calls[0] == at:
                count = [0]

                def progress():
                    count[0] += 1
                    if count[0] >= steps:
                        _die()
                    return 0

                self._db.set_progress_handler(progress, 1)
                _original(self, records)
                _die()
        return _original(self, records)

    _store.Store.put_cells = put_cells
'''


def install(folder: Path) -> Path:
    """Write the hook into ``folder`` (to be put on the child's PYTHONPATH) and return ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return folder
