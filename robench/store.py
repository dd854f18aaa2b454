"""The result store: one SQLite file holding raw counts per cell, per-image outcomes, plus provenance.

A *cell* is ``(model, suite, kind, item, level)``. Each finished cell is written in its
own transaction (WAL journal, full sync), so a run killed at any moment leaves only
whole cells behind and a rerun resumes from them. Aggregates (mCE, …) are never stored;
reports recompute them from the counts.

Schema 2 adds, per cell, the per-image terms of its counts (table ``per_image``: one zlib-compressed
array per field, see :mod:`robench.outcomes`), written in the cell's transaction and checked against
its counts on every read; and, per dataset fingerprint, the relative path of every dataset index
(table ``datasets``) for per-image exports.

Schema 3 adds table ``calibration``: per classification cell, its per-image calibration terms (``nll``,
``brier``; :mod:`robench.metrics.calibration`), laid out like ``per_image`` and aligned with its rows.

A schema-1 or schema-2 store is migrated in one transaction when opened for writing (only tables are
added: its cells keep their counts and outcomes, and simply have no calibration terms, which reports
show as blanks); a read-only open reads it as it is.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import sqlite3
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robench import outcomes as _outcomes
from robench.errors import InputError, MissingFileError, StoreLockedError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 3
READABLE_SCHEMAS = (1, 2, 3)
"""Schema versions a read-only open accepts (1: counts only, no per-image outcomes; 2: no calibration terms)."""

_SCHEMA_1 = (
    """CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS models (
    model TEXT PRIMARY KEY,
    arch TEXT NOT NULL,
    pooling TEXT NOT NULL,
    num_classes INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    card TEXT NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS suites (name TEXT PRIMARY KEY, definition TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS cells (
    model TEXT NOT NULL,
    suite TEXT NOT NULL,
    kind TEXT NOT NULL,
    item TEXT NOT NULL,
    level INTEGER NOT NULL,
    config TEXT NOT NULL,
    n INTEGER NOT NULL,
    counts TEXT NOT NULL,
    provenance TEXT NOT NULL,
    PRIMARY KEY (model, suite, kind, item, level)
)""",
)
"""The tables of schema 1 (all kept unchanged in schema 2)."""

_SCHEMA_2 = (
    """CREATE TABLE IF NOT EXISTS per_image (
    model TEXT NOT NULL,
    suite TEXT NOT NULL,
    kind TEXT NOT NULL,
    item TEXT NOT NULL,
    level INTEGER NOT NULL,
    field TEXT NOT NULL,
    dtype TEXT NOT NULL,
    length INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (model, suite, kind, item, level, field)
)""",
    "CREATE TABLE IF NOT EXISTS datasets (fingerprint TEXT PRIMARY KEY, paths BLOB NOT NULL)",
)
"""What schema 2 adds to schema 1 (the migration runs exactly these)."""

_SCHEMA_3 = (
    """CREATE TABLE IF NOT EXISTS calibration (
    model TEXT NOT NULL,
    suite TEXT NOT NULL,
    kind TEXT NOT NULL,
    item TEXT NOT NULL,
    level INTEGER NOT NULL,
    field TEXT NOT NULL,
    dtype TEXT NOT NULL,
    length INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (model, suite, kind, item, level, field)
) WITHOUT ROWID""",
)
"""What schema 3 adds to schema 2: per-image calibration terms of classification cells (a clustered table: one
B-tree, so a cell's write touches one more page, not two)."""


@dataclass(frozen=True)
class CellKey:
    model: str
    suite: str
    kind: str
    item: str
    level: int


@dataclass(frozen=True)
class CellRecord:
    """One finished cell; ``outcomes`` holds its per-image arrays (see :mod:`robench.outcomes`)."""

    key: CellKey
    config: str
    n: int
    counts: Mapping[str, Any]
    provenance: Mapping[str, Any]
    outcomes: Mapping[str, np.ndarray] | None = None


@dataclass(frozen=True)
class ModelRecord:
    model: str
    arch: str
    pooling: str
    num_classes: int
    sha256: str
    card: Mapping[str, Any]


class Store:
    """A SQLite result store.

    Args:
        path: The database file; created (with its folder) unless ``readonly``.
        readonly: Open an existing store for reading only (reports).
    """

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        if readonly:
            if not self.path.is_file():
                raise MissingFileError(f"Result store {self.path} does not exist; run `robench eval` first.")
            uri = f"file:{self.path.resolve()}?mode=ro"
            self._db = sqlite3.connect(uri, uri=True)
            self.schema = self._schema_version()
            if self.schema not in READABLE_SCHEMAS:
                raise InputError(f"{self.path} has store schema {self.schema}, this robench reads "
                                 f"{', '.join(map(str, READABLE_SCHEMAS))}; upgrade robench.")
            return
        ensure_folder(self.path.parent)
        try:
            self._db = sqlite3.connect(self.path)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=10000")
            self.schema = self._create_or_migrate()
        except sqlite3.DatabaseError as e:
            raise _store_error(self.path, e) from None

    def _schema_version(self) -> int | None:
        try:
            row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        except sqlite3.DatabaseError as e:
            raise InputError(f"{self.path} is not a robench result store ({e}).") from None
        return None if row is None else int(row[0])

    def _create_or_migrate(self) -> int:
        """Create a fresh store, or migrate a schema-1 or schema-2 store to schema 3, in one transaction.

        A run killed here leaves either the store as it was or the complete new schema, never a
        version number that does not match the tables. The migration only adds tables; cells are
        kept as they are (schema-1 cells with no per-image outcomes, schema-1/2 cells with no
        calibration terms).
        """
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in (*_SCHEMA_1, *_SCHEMA_2, *_SCHEMA_3):  # no-ops where the tables exist
                db.execute(statement)
            db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            found = self._schema_version()
            if found not in (*READABLE_SCHEMAS, SCHEMA_VERSION):
                raise InputError(f"{self.path} has store schema {found}, this robench writes {SCHEMA_VERSION}; "
                                 "upgrade robench or choose another --out.")
            if found != SCHEMA_VERSION:
                db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),))
            db.commit()
        except BaseException:
            db.rollback()
            raise
        if found != SCHEMA_VERSION:
            lacking = "per-image outcomes or calibration terms" if found == 1 else "calibration terms"
            log.info("%s: migrated the result store from schema %d to %d (cells kept; they have no %s)",
                     self.path, found, SCHEMA_VERSION, lacking)
        return SCHEMA_VERSION

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- writing ----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """One transaction; a failed write (disk full, read-only, I/O error) rolls back and becomes one clear error."""
        try:
            with self._db:
                yield
        except sqlite3.OperationalError as e:
            raise InputError(
                f"Cannot write to the result store {self.path} ({e}); free disk space or choose a writable --out. "
                "Finished cells are kept."
            ) from None

    def put_model(self, rec: ModelRecord) -> None:
        with self._writing():
            self._db.execute(
                "INSERT OR REPLACE INTO models VALUES (?, ?, ?, ?, ?, ?)",
                (rec.model, rec.arch, rec.pooling, rec.num_classes, rec.sha256,
                 json.dumps(rec.card, sort_keys=True)),
            )

    def put_suite(self, name: str, definition: Mapping[str, Any]) -> None:
        """Record what a suite measured (its tests and baseline), so reports need no suite file."""
        with self._writing():
            self._db.execute(
                "INSERT OR REPLACE INTO suites VALUES (?, ?)", (name, json.dumps(definition, sort_keys=True))
            )

    def put_cells(self, records: Iterable[CellRecord]) -> None:
        """Write finished cells, with their per-image outcomes, atomically (all or none).

        Raises:
            InputError: a record's outcomes do not add up to its counts (nothing is written).
        """
        records = list(records)
        rows = [
            (r.key.model, r.key.suite, r.key.kind, r.key.item, r.key.level, r.config, r.n,
             json.dumps(r.counts, sort_keys=True), json.dumps(r.provenance, sort_keys=True))
            for r in records
        ]
        blobs, terms = [], []
        for r in records:
            if r.outcomes is None:
                continue
            arrays = _outcomes.normalised(r.key.kind, r.outcomes)
            _check(r.key, arrays, r.counts)
            spec = _outcomes.OUTCOMES.get(r.key.kind)
            blobs += [(*_key_tuple(r.key), f, spec.fields[f], len(a), _outcomes.pack(a, spec.fields[f]))
                      for f, a in arrays.items()]
            calibration = _calibration(r.key, r.outcomes, len(arrays["index"]))
            terms += [(*_key_tuple(r.key), f, spec.calibration[f], len(a), _outcomes.pack(a, spec.calibration[f]))
                      for f, a in (calibration or {}).items()]
        with self._writing():
            self._db.executemany("INSERT OR REPLACE INTO cells VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            self._db.executemany(
                "DELETE FROM per_image WHERE model=? AND suite=? AND kind=? AND item=? AND level=?",
                [_key_tuple(r.key) for r in records],
            )
            self._db.executemany("INSERT INTO per_image VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", blobs)
            self._db.executemany(
                "DELETE FROM calibration WHERE model=? AND suite=? AND kind=? AND item=? AND level=?",
                [_key_tuple(r.key) for r in records],
            )
            self._db.executemany("INSERT INTO calibration VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", terms)

    def put_dataset(self, fingerprint: str, paths: Sequence[str]) -> None:
        """Record the relative path of every index of a dataset (once per fingerprint)."""
        if self._db.execute("SELECT 1 FROM datasets WHERE fingerprint=?", (fingerprint,)).fetchone():
            return
        blob = zlib.compress("\n".join(paths).encode("utf-8"), 6)
        with self._writing():
            self._db.execute("INSERT OR REPLACE INTO datasets VALUES (?, ?)", (fingerprint, blob))

    def delete_model_suite(self, model: str, suite: str) -> int:
        with self._writing():
            cur = self._db.execute("DELETE FROM cells WHERE model=? AND suite=?", (model, suite))
            self._db.execute("DELETE FROM per_image WHERE model=? AND suite=?", (model, suite))
            self._db.execute("DELETE FROM calibration WHERE model=? AND suite=?", (model, suite))
        return cur.rowcount

    # ---- reading ----------------------------------------------------------------------------------

    def configs(self, model: str, suite: str) -> dict[CellKey, str]:
        """Config hash of every stored cell of ``(model, suite)``."""
        rows = self._db.execute(
            "SELECT kind, item, level, config FROM cells WHERE model=? AND suite=?", (model, suite)
        )
        return {CellKey(model, suite, k, i, lv): c for k, i, lv, c in rows}

    def cells(self) -> Iterator[CellRecord]:
        rows = self._db.execute(
            "SELECT model, suite, kind, item, level, config, n, counts, provenance FROM cells "
            "ORDER BY model, suite, kind, item, level"
        )
        for m, s, k, i, lv, cfg, n, counts, prov in rows:
            yield CellRecord(CellKey(m, s, k, i, lv), cfg, n, json.loads(counts), json.loads(prov))

    def suites(self) -> dict[str, dict[str, Any]]:
        return {n: json.loads(d) for n, d in self._db.execute("SELECT name, definition FROM suites")}

    def models(self) -> dict[str, ModelRecord]:
        rows = self._db.execute("SELECT model, arch, pooling, num_classes, sha256, card FROM models")
        return {m: ModelRecord(m, a, p, nc, sha, json.loads(card)) for m, a, p, nc, sha, card in rows}

    def outcomes(self, model: str, suite: str) -> dict[tuple[str, str, int], dict[str, np.ndarray]]:
        """Per-image outcomes of every cell of ``(model, suite)`` that has them, keyed by ``(kind, item, level)``.

        Arrays are aligned and sorted by ascending dataset index (fields: :mod:`robench.outcomes`).
        Cells without per-image data (written by a schema-1 robench) are absent.

        Raises:
            InputError: a cell's per-image data does not add up to its stored counts (a damaged store).
        """
        if self.schema < 2:
            return {}
        counts = {
            (k, i, lv): json.loads(c) for k, i, lv, c in self._db.execute(
                "SELECT kind, item, level, counts FROM cells WHERE model=? AND suite=?", (model, suite))
        }
        rows = self._db.execute(
            "SELECT kind, item, level, field, dtype, length, data FROM per_image WHERE model=? AND suite=? "
            "ORDER BY kind, item, level", (model, suite),
        )
        raw: dict[tuple[str, str, int], dict[str, np.ndarray]] = {}
        for k, i, lv, f, dt, length, blob in rows:
            try:
                raw.setdefault((k, i, lv), {})[f] = _outcomes.unpack(blob, dt, length)
            except (zlib.error, ValueError, TypeError) as e:
                raise InputError(f"{self.path}: per-image field {f!r} of cell {_name(CellKey(model, suite, k, i, lv))} "
                                 f"is damaged ({e}); recompute it with `robench eval --fresh`.") from None
        out = {}
        for cell, arrays in raw.items():
            key = CellKey(model, suite, *cell)
            if cell not in counts:
                raise InputError(f"{self.path}: cell {_name(key)} has per-image outcomes but no counts; "
                                 "recompute it with `robench eval --fresh`.")
            fields = _outcomes.OUTCOMES.get(key.kind).fields
            _check(key, arrays, counts[cell], self.path)
            out[cell] = {f: arrays[f] for f in fields}
        return out

    def calibration(self, model: str, suite: str) -> dict[tuple[str, str, int], dict[str, np.ndarray]]:
        """Per-image calibration terms (``nll``, ``brier``) of every cell of ``(model, suite)`` that has them.

        Keyed by ``(kind, item, level)``; aligned with :meth:`outcomes` of the same cell (ascending dataset
        index). Cells written before store schema 3 are absent (their calibration is blank in reports).

        Raises:
            InputError: a cell's terms are damaged or do not fit its per-image outcomes.
        """
        if self.schema < 3:
            return {}
        lengths = {
            (k, i, lv): length for k, i, lv, length in self._db.execute(
                "SELECT kind, item, level, length FROM per_image WHERE model=? AND suite=? AND field='index'",
                (model, suite))
        }
        rows = self._db.execute(
            "SELECT kind, item, level, field, dtype, length, data FROM calibration WHERE model=? AND suite=? "
            "ORDER BY kind, item, level", (model, suite),
        )
        raw: dict[tuple[str, str, int], dict[str, np.ndarray]] = {}
        for k, i, lv, f, dt, length, blob in rows:
            key = CellKey(model, suite, k, i, lv)
            try:
                raw.setdefault((k, i, lv), {})[f] = _outcomes.unpack(blob, dt, length)
            except (zlib.error, ValueError, TypeError) as e:
                raise InputError(f"{self.path}: calibration field {f!r} of cell {_name(key)} is damaged ({e}); "
                                 "recompute it with `robench eval --fresh`.") from None
        for cell, terms in raw.items():
            key = CellKey(model, suite, *cell)
            problem = (_outcomes.calibration_mismatch(key.kind, terms, lengths[cell]) if cell in lengths
                       else "the cell has no per-image outcomes")
            if problem is not None:
                raise InputError(f"{self.path}: calibration terms of cell {_name(key)} are invalid ({problem}); "
                                 "recompute it with `robench eval --fresh`.")
        return raw

    def cells_without_outcomes(self, model: str | None = None, suite: str | None = None) -> list[CellKey]:
        """Stored cells of a kind with per-image outcomes that have none (e.g. migrated from schema 1)."""
        kinds = _outcomes.OUTCOMES.names()
        where = f"c.kind IN ({', '.join('?' * len(kinds))})"
        args: list[Any] = list(kinds)
        for column, value in (("model", model), ("suite", suite)):
            if value is not None:
                where += f" AND c.{column}=?"
                args.append(value)
        if self.schema >= 2:
            where += (" AND NOT EXISTS (SELECT 1 FROM per_image p WHERE p.model=c.model AND p.suite=c.suite "
                      "AND p.kind=c.kind AND p.item=c.item AND p.level=c.level)")
        order = "ORDER BY model, suite, kind, item, level"
        rows = self._db.execute(f"SELECT model, suite, kind, item, level FROM cells c WHERE {where} {order}", args)
        return [CellKey(*r) for r in rows]

    def cells_without_calibration(self, model: str, suite: str) -> list[CellKey]:
        """Cells with per-image outcomes of a kind that has calibration terms, but without those terms
        (written before store schema 3)."""
        kinds = [k for k, spec in _outcomes.OUTCOMES.items() if spec.calibration]
        if self.schema < 2 or not kinds:
            return []
        have = "" if self.schema < 3 else (
            " AND NOT EXISTS (SELECT 1 FROM calibration c WHERE c.model=p.model AND c.suite=p.suite "
            "AND c.kind=p.kind AND c.item=p.item AND c.level=p.level)")
        rows = self._db.execute(
            f"SELECT model, suite, kind, item, level FROM per_image p WHERE p.field='index' AND p.model=? "
            f"AND p.suite=? AND p.kind IN ({', '.join('?' * len(kinds))}){have} ORDER BY kind, item, level",
            [model, suite, *kinds])
        return [CellKey(*r) for r in rows]

    def dataset_paths(self, fingerprint: str) -> list[str] | None:
        """Relative path of every index of the dataset with ``fingerprint`` (``None`` if not recorded)."""
        if self.schema < 2:
            return None
        row = self._db.execute("SELECT paths FROM datasets WHERE fingerprint=?", (fingerprint,)).fetchone()
        if row is None:
            return None
        text = zlib.decompress(row[0]).decode("utf-8")
        return text.split("\n") if text else []


def _key_tuple(key: CellKey) -> tuple[str, str, str, str, int]:
    return key.model, key.suite, key.kind, key.item, key.level


def _name(key: CellKey) -> str:
    return f"{key.model}/{key.suite}/{key.kind}/{key.item}/{key.level}"


def _calibration(key: CellKey, outcomes: Mapping[str, Any], length: int) -> dict[str, np.ndarray] | None:
    """The record's calibration terms, checked (``None`` when it has none)."""
    try:
        terms = _outcomes.split_calibration(key.kind, outcomes)
    except ValueError as e:
        raise InputError(f"calibration terms of cell {_name(key)} are incomplete ({e}).") from None
    if terms is None:
        return None
    problem = _outcomes.calibration_mismatch(key.kind, terms, length)
    if problem is not None:
        raise InputError(f"calibration terms of cell {_name(key)} are invalid ({problem}); "
                         "recompute it with `robench eval --fresh`.")
    return terms


def _check(key: CellKey, arrays: Mapping[str, np.ndarray], counts: Mapping[str, Any], path: Path | None = None) -> None:
    problem = _outcomes.mismatch(key.kind, arrays, counts)
    if problem is not None:
        where = f"{path}: " if path is not None else ""
        raise InputError(f"{where}per-image outcomes of cell {_name(key)} do not match its counts ({problem}); "
                         "recompute it with `robench eval --fresh`.")


@contextlib.contextmanager
def exclusive(path: str | Path) -> Iterator[None]:
    """Hold the store's writer lock; a second writer fails at once with a clear message."""
    lock_path = Path(str(path) + ".lock")
    ensure_folder(lock_path.parent)
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise InputError(f"Cannot create the store lock {lock_path} ({e.strerror}); choose a writable --out.") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
            raise StoreLockedError(
                f"The result store {path} is in use by robench (pid {holder}); wait for that run to finish "
                "or pass another --out."
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        except OSError:  # the pid is only a courtesy for the message above; the lock is what counts
            pass
        yield
    finally:
        os.close(fd)


def ensure_folder(folder: Path) -> None:
    """Create the output folder (and parents) or explain in one line why it cannot be used.

    Raises:
        InputError: ``folder`` (or a parent) is a file, or cannot be created (read-only, permissions, no space).
    """
    if folder.exists() and not folder.is_dir():
        raise InputError(f"Output folder {folder} is an existing file, not a folder; pass another --out.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(
            f"Cannot create the output folder {folder} ({e.strerror or e}); pass a writable --out."
        ) from None


def _store_error(path: Path, e: sqlite3.DatabaseError) -> InputError:
    """Opening a store failed: a damaged or foreign file, or a disk/permission problem."""
    text = str(e)
    if path.is_dir():
        return InputError(f"Cannot use {path} as a result store: it is a folder; remove it or choose another --out.")
    if isinstance(e, sqlite3.OperationalError) and not ("not a database" in text or "malformed" in text):
        return InputError(
            f"Cannot open the result store {path} ({text}); free disk space or choose a writable --out."
        )
    return InputError(
        f"{path} is not a usable robench result store ({text}); move it away or choose another --out."
    )
