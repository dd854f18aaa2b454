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
