"""Human-readable forms of the tables: ``29.74 [29.12, 30.41]`` for a value and its interval, p-values
with three decimals, ``mean ± sd`` for seed groups. CSV files keep the separate numeric columns."""

from __future__ import annotations

import math

import pandas as pd

MISSING_INTERVAL = "[—]"
"""Shown after a value whose interval could not be computed (no per-image data for its cells)."""


def _number(value: object, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def with_interval(value: object, lo: object, hi: object) -> str:
    if _number(value) == "":
        return ""
    if _number(lo) == "" or _number(hi) == "":
        return f"{_number(value)} {MISSING_INTERVAL}"
    return f"{_number(value)} [{_number(lo)}, {_number(hi)}]"


def p_value(p: object) -> str:
    if _number(p) == "":
        return ""
    return "<0.001" if float(p) < 0.001 else f"{float(p):.3f}"


def readable(board: pd.DataFrame) -> pd.DataFrame:
    """The board with every ``<m>``/``<m>_lo``/``<m>_hi`` triple merged into one text column ``<m>``,
    every ``<m>_mean``/``<m>_sd`` pair into ``<m>`` as ``mean ± sd``, and p-values as text."""
    out: dict[str, object] = {}
    cols = list(board.columns)
    used: set[str] = set()
    for c in cols:
        if c in used:
            continue
        lo, hi = f"{c}_lo", f"{c}_hi"
        if lo in board.columns and hi in board.columns:
            out[c] = [with_interval(v, a, b) for v, a, b in zip(board[c], board[lo], board[hi])]
            used |= {lo, hi}
        elif c.endswith("_mean") and f"{c[:-5]}_sd" in board.columns:
            sd = board[f"{c[:-5]}_sd"]
            out[c[:-5]] = [
                "" if _number(m) == "" else _number(m) + ("" if _number(s) == "" else f" ± {_number(s)}")
                for m, s in zip(board[c], sd)]
            used.add(f"{c[:-5]}_sd")
        elif c == "p" or c.endswith("_p") or c.startswith("p_"):
            out[c] = [p_value(v) for v in board[c]]
        else:
            out[c] = board[c]
    return pd.DataFrame(out, index=board.index)
