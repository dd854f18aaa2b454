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


FLOAT_FIELDS = ("confidence",)
"""Per-image fields computed in floating point from the logits. A batched forward is not bit-identical
across batch sizes (BLAS picks other kernels), so these are compared with a tolerance; every other
per-image field must be byte-identical."""


def per_image_blobs(store: Path) -> dict[tuple, tuple[str, int, bytes]]:
    """Every stored per-image field as ``(model, suite, kind, item, level, field) -> (dtype, length, blob)``."""
    con = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT model, suite, kind, item, level, field, dtype, length, data FROM per_image")
        return {tuple(r[:6]): (r[6], r[7], bytes(r[8])) for r in rows}
    finally:
        con.close()


def assert_same_per_image(a: Path, b: Path, atol: float = 1e-5) -> int:
    """Two stores hold the same per-image outcomes: integer/bool fields byte for byte, floats within ``atol``.

    Returns the number of fields compared.
    """
    from robench.outcomes import unpack

    blobs_a, blobs_b = per_image_blobs(a), per_image_blobs(b)
    assert blobs_a.keys() == blobs_b.keys() and blobs_a
    for key, value in blobs_a.items():
        if key[-1] in FLOAT_FIELDS:
            import numpy as np

            np.testing.assert_allclose(unpack(*_ordered(value)), unpack(*_ordered(blobs_b[key])), rtol=0, atol=atol)
        else:
            assert value == blobs_b[key], key
    return len(blobs_a)


def _ordered(value: tuple[str, int, bytes]) -> tuple[bytes, str, int]:
    dtype, length, blob = value
    return blob, dtype, length
