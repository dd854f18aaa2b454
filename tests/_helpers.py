"""Small helpers shared by test modules."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def cell_count(store: Path) -> int:
    """Cells visible to a reader right now (0 while the store does not exist yet)."""
    try:
        con = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
        try:
            return con.execute("SELECT COUNT(*) FROM cells").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def per_image_blobs(store: Path) -> dict[tuple, tuple[str, int, bytes]]:
    """Every stored per-image field as ``(model, suite, kind, item, level, field) -> (dtype, length, blob)``."""
    con = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT model, suite, kind, item, level, field, dtype, length, data FROM per_image")
        return {tuple(r[:6]): (r[6], r[7], bytes(r[8])) for r in rows}
    finally:
        con.close()


def assert_same_per_image(a: Path, b: Path) -> int:
    """Two stores hold byte-identical per-image outcomes (confidences included: the CPU inference form
    gives the same logits whatever the batch, :mod:`robench.models.inference`).

    Returns the number of fields compared.
    """
    blobs_a, blobs_b = per_image_blobs(a), per_image_blobs(b)
    assert blobs_a.keys() == blobs_b.keys() and blobs_a
    for key, value in blobs_a.items():
        assert value == blobs_b[key], key
    return len(blobs_a)
