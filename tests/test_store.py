from __future__ import annotations

import logging
import sqlite3

import numpy as np
import pytest

from robench.errors import InputError, MissingFileError, StoreLockedError
from robench.outcomes import pack
from robench.store import SCHEMA_VERSION, CellKey, CellRecord, Store, exclusive


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


# ---- per-image outcomes (schema 2) ---------------------------------------------------------------------------


def _classified(level: int = 1, model: str = "m") -> CellRecord:
    index = np.array([3, 5, 8, 13, 21])
    label = np.array([0, 1, 2, 1, 0])
    pred = np.array([0, 2, 2, 1, 1])
    correct5 = np.array([True, True, True, True, False])
    confidence = np.array([0.9, 0.4, 0.55, 0.7, 0.3], dtype=np.float32)
    per_image = {"index": index, "label": label, "pred": pred, "correct": pred == label, "correct5": correct5,
                 "confidence": confidence}
    counts = {"n": 5, "top1_errors": 2, "top5_errors": 1, "skipped": 0}
    return CellRecord(CellKey(model, "s", "corruption", "fog", level), "cfg", 5, counts, {}, per_image)


def _video(level: int = 1) -> CellRecord:
    per_video = {"index": np.array([0, 1, 2]), "flips": np.array([1, 0, 4]), "t5d": np.array([3.0, 0.0, 11.0]),
                 "pairs": np.array([9, 9, 9])}
    counts = {"videos": 3, "flips": 5, "t5d_sum": 14, "pairs": 27, "skipped": 0}
    return CellRecord(CellKey("m", "s", "perturbation", "rotate", level), "cfg", 3, counts, {}, per_video)


def _attack() -> CellRecord:
    per_image = {"index": np.array([0, 1, 2, 3]), "robust": np.array([True, False, False, True])}
    counts = {"n": 4, "robust": 2, "robust_idx": [0, 3], "clean_correct": 3, "forwards": 9, "backwards": 8,
              "skipped": 0}
    return CellRecord(CellKey("m", "s", "attack", "fgsm", 1), "cfg", 4, counts, {}, per_image)


def test_outcomes_round_trip_in_declared_dtypes(tmp_path):
    path = tmp_path / "r.sqlite"
    with Store(path) as st:
        st.put_cells([_classified(), _video(), _attack(), _rec(2, 3)])  # level 2: counts only
    with Store(path, readonly=True) as st:
        got = st.outcomes("m", "s")
        assert [c.key.level for c in st.cells() if c.key.item == "fog"] == [1, 2]
        assert st.cells_without_outcomes() == [CellKey("m", "s", "corruption", "fog", 2)]
    assert set(got) == {("corruption", "fog", 1), ("perturbation", "rotate", 1), ("attack", "fgsm", 1)}
    cell = got[("corruption", "fog", 1)]
    assert list(cell) == ["index", "label", "pred", "correct", "correct5", "confidence"]
    assert [cell[f].dtype for f in cell] == [np.int64] * 3 + [np.bool_] * 2 + [np.float32]
    for field, values in _classified().outcomes.items():
        np.testing.assert_array_equal(cell[field], values)
    assert int((~cell["correct"]).sum()) == 2
    video = got[("perturbation", "rotate", 1)]
    assert video["t5d"].dtype == np.float64 and video["t5d"].sum() == 14
    assert got[("attack", "fgsm", 1)]["robust"].tolist() == [True, False, False, True]


def test_rewriting_a_cell_replaces_its_outcomes_and_fresh_deletes_them(tmp_path):
    path = tmp_path / "r.sqlite"
    with Store(path) as st:
        st.put_cells([_classified()])
        st.put_cells([_rec(1, 3)])  # recomputed without per-image data: the old arrays must not survive
        assert st.outcomes("m", "s") == {}
        st.put_cells([_classified()])
        assert st.delete_model_suite("m", "s") == 1
        assert st.outcomes("m", "s") == {} and not list(st.cells())


def test_outcomes_that_do_not_add_up_are_refused_on_write(tmp_path):
    bad = _classified()
    bad = CellRecord(bad.key, bad.config, bad.n, {**bad.counts, "top1_errors": 3}, {}, bad.outcomes)
    with Store(tmp_path / "r.sqlite") as st:
        with pytest.raises(InputError, match=r"m/s/corruption/fog/1 .*top-1 errors is 2 but the stored count is 3"):
            st.put_cells([_classified(2), bad])
        assert not list(st.cells())  # all or none


@pytest.mark.parametrize(
    ("field", "values", "message"),
    [("correct5", np.array([True, False, True, True, False]), "top-5 errors is 2"),
     ("index", np.array([3, 5, 5, 13, 21]), "not strictly ascending"),
     ("pred", np.array([0, 1, 2, 1, 1]), "'correct' disagrees")],
)
def test_tampered_outcomes_are_detected_on_read(tmp_path, field, values, message):
    path = tmp_path / "r.sqlite"
    with Store(path) as st:
        st.put_cells([_classified()])
    dtype = {"correct5": "|b1", "index": "<i8", "pred": "<i8"}[field]
    con = sqlite3.connect(path)
    with con:
        con.execute("UPDATE per_image SET data=? WHERE field=?", (pack(values, dtype), field))
    con.close()
    with Store(path, readonly=True) as st, pytest.raises(InputError, match=f"m/s/corruption/fog/1.*{message}"):
        st.outcomes("m", "s")


def test_a_damaged_blob_is_a_clear_error(tmp_path):
    path = tmp_path / "r.sqlite"
    with Store(path) as st:
        st.put_cells([_video()])
    con = sqlite3.connect(path)
    with con:
        con.execute("UPDATE per_image SET data=? WHERE field='flips'", (b"garbage",))
    con.close()
    with Store(path, readonly=True) as st, pytest.raises(InputError, match="'flips' of cell m/s/perturbation/rotate/1"):
        st.outcomes("m", "s")


# The schema-1 tables exactly as robench 0.1.0 (store schema 1) created them.
_SCHEMA_1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE models (model TEXT PRIMARY KEY, arch TEXT NOT NULL, pooling TEXT NOT NULL,
    num_classes INTEGER NOT NULL, sha256 TEXT NOT NULL, card TEXT NOT NULL);
CREATE TABLE suites (name TEXT PRIMARY KEY, definition TEXT NOT NULL);
CREATE TABLE cells (model TEXT NOT NULL, suite TEXT NOT NULL, kind TEXT NOT NULL, item TEXT NOT NULL,
    level INTEGER NOT NULL, config TEXT NOT NULL, n INTEGER NOT NULL, counts TEXT NOT NULL,
    provenance TEXT NOT NULL, PRIMARY KEY (model, suite, kind, item, level));
INSERT INTO meta VALUES ('schema_version', '1');
INSERT INTO models VALUES ('m', 'tiny', 'gap', 10, 'aa', '{}');
INSERT INTO cells VALUES ('m', 's', 'clean', 'clean', 0, 'c0', 40,
    '{"n": 40, "skipped": 0, "top1_errors": 7, "top5_errors": 1}', '{}');
INSERT INTO cells VALUES ('m', 's', 'corruption', 'fog', 1, 'c1', 40,
    '{"n": 40, "skipped": 0, "top1_errors": 9, "top5_errors": 2}', '{}');
"""


def _schema_1_store(path):
    con = sqlite3.connect(path)
    con.executescript(_SCHEMA_1)
    con.close()
    return path


def _dump(path) -> list[tuple]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return con.execute("SELECT * FROM cells ORDER BY kind").fetchall()
    finally:
        con.close()


def test_a_read_only_open_reads_a_schema_1_store_without_changing_it(tmp_path):
    path = _schema_1_store(tmp_path / "old.sqlite")
    before = path.read_bytes()
    with Store(path, readonly=True) as st:
        assert st.schema == 1
        assert [c.counts["top1_errors"] for c in st.cells()] == [7, 9]
        assert st.outcomes("m", "s") == {} and st.dataset_paths("x") is None
        assert len(st.cells_without_outcomes("m", "s")) == 2
    assert path.read_bytes() == before


def test_schema_1_store_is_migrated_keeping_its_cells(tmp_path, caplog):
    path = _schema_1_store(tmp_path / "old.sqlite")
    cells = _dump(path)
    with caplog.at_level(logging.INFO, logger="robench.store"), Store(path) as st:
        assert st.schema == SCHEMA_VERSION
        assert st.outcomes("m", "s") == {}
        assert [k.item for k in st.cells_without_outcomes("m", "s")] == ["clean", "fog"]
        st.put_cells([_classified(2)])  # new cells get per-image data beside the old ones
        assert set(st.outcomes("m", "s")) == {("corruption", "fog", 2)}
    assert "migrated the result store from schema 1" in caplog.text
    assert _dump(path)[:1] == cells[:1] and _dump(path)[1] == cells[1]
    con = sqlite3.connect(path)
    assert con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    with Store(path) as st:  # a second open finds nothing to migrate
        assert st.schema == SCHEMA_VERSION and len(list(st.cells())) == 3


def test_a_failed_migration_leaves_the_schema_1_store_as_it_was(tmp_path, monkeypatch):
    import robench.store as store_module

    path = _schema_1_store(tmp_path / "old.sqlite")
    before = _dump(path)
    monkeypatch.setattr(store_module, "_SCHEMA_2", (*store_module._SCHEMA_2, "CREATE TABLE broken (x"))
    with pytest.raises(InputError):
        Store(path)
    con = sqlite3.connect(path)
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "1"
    con.close()
    assert tables == {"meta", "models", "suites", "cells"} and _dump(path) == before


def test_a_newer_schema_is_refused(tmp_path):
    path = _schema_1_store(tmp_path / "new.sqlite")
    con = sqlite3.connect(path)
    with con:
        con.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    con.close()
    for readonly in (True, False):
        with pytest.raises(InputError, match="schema 99"):
            Store(path, readonly=readonly)
