from __future__ import annotations

import sqlite3

import pytest

from robench.errors import InputError, MissingFileError, StoreLockedError
from robench.store import CellKey, CellRecord, Store, exclusive


def _rec(level: int, errs: int) -> CellRecord:
    return CellRecord(CellKey("m", "s", "corruption", "fog", level), "cfg", 10, {"n": 10, "top1_errors": errs}, {})


def test_cells_roundtrip_and_replace(tmp_path):
    path = tmp_path / "r.sqlite"
    with Store(path) as st:
        st.put_cells([_rec(1, 3), _rec(2, 4)])
        st.put_cells([_rec(2, 5)])
    with Store(path, readonly=True) as st:
        cells = list(st.cells())
    assert [(c.key.level, c.counts["top1_errors"]) for c in cells] == [(1, 3), (2, 5)]
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_missing_store_and_non_store_file(tmp_path):
    with pytest.raises(MissingFileError, match="run `robench eval` first"):
        Store(tmp_path / "none.sqlite", readonly=True)
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(InputError):
        Store(junk)


def test_second_writer_fails_with_clear_message(tmp_path):
    path = tmp_path / "r.sqlite"
    with exclusive(path), pytest.raises(StoreLockedError, match="in use by robench"), exclusive(path):
        pass
    with exclusive(path):  # released after the first holder leaves
        pass
