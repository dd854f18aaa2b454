"""The result store: one SQLite file holding raw counts per cell, plus provenance.

A *cell* is ``(model, suite, kind, item, level)``. Each finished cell is written in its
own transaction (WAL journal, full sync), so a run killed at any moment leaves only
whole cells behind and a rerun resumes from them. Aggregates (mCE, …) are never stored;
reports recompute them from the counts.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robench.errors import InputError, MissingFileError, StoreLockedError

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS models (
    model TEXT PRIMARY KEY,
    arch TEXT NOT NULL,
    pooling TEXT NOT NULL,
    num_classes INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    card TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS suites (name TEXT PRIMARY KEY, definition TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cells (
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
);
"""


@dataclass(frozen=True)
class CellKey:
    model: str
    suite: str
    kind: str
    item: str
    level: int


@dataclass(frozen=True)
class CellRecord:
    key: CellKey
    config: str
    n: int
    counts: Mapping[str, Any]
    provenance: Mapping[str, Any]


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
        if readonly:
            if not self.path.is_file():
                raise MissingFileError(f"Result store {self.path} does not exist; run `robench eval` first.")
            uri = f"file:{self.path.resolve()}?mode=ro"
            self._db = sqlite3.connect(uri, uri=True)
        else:
            ensure_folder(self.path.parent)
            try:
                self._db = sqlite3.connect(self.path)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
                self._db.execute("PRAGMA busy_timeout=10000")
                with self._db:
                    self._db.executescript(_SCHEMA)
                    self._db.execute(
                        "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
                    )
            except sqlite3.DatabaseError as e:
                raise _store_error(self.path, e) from None
        self._check_schema()

    def _check_schema(self) -> None:
        try:
            row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        except sqlite3.DatabaseError as e:
            raise InputError(f"{self.path} is not a robench result store ({e}).") from None
        if row is None or int(row[0]) != SCHEMA_VERSION:
            raise InputError(f"{self.path} has store schema {row and row[0]}, this robench reads {SCHEMA_VERSION}.")

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
        """Write finished cells atomically (all or none)."""
        rows = [
            (r.key.model, r.key.suite, r.key.kind, r.key.item, r.key.level, r.config, r.n,
             json.dumps(r.counts, sort_keys=True), json.dumps(r.provenance, sort_keys=True))
            for r in records
        ]
        with self._writing():
            self._db.executemany("INSERT OR REPLACE INTO cells VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def delete_model_suite(self, model: str, suite: str) -> int:
        with self._writing():
            cur = self._db.execute("DELETE FROM cells WHERE model=? AND suite=?", (model, suite))
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
