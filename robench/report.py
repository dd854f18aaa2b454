"""Reports from the store: tidy per-cell results and leaderboards (markdown, CSV).

Nothing here recomputes a model output: every number derives from the stored counts.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from robench._registry import Registry
from robench.metrics.corruption import corruption_error, relative_corruption_error
from robench.store import Store
from robench.suites import Baseline

RESULT_COLUMNS = ["model", "arch", "pooling", "suite", "kind", "item", "level", "n",
                  "top1_errors", "top5_errors", "err", "err5"]


def load_results(store: str | Path | Store) -> pd.DataFrame:
    """One row per stored cell: identity, raw counts and error rates in percent.

    Columns: model, arch, pooling, suite, kind, item, level, n, top1_errors, top5_errors,
    err, err5 (plus any further counts a cell kind stores).
    """
    st = store if isinstance(store, Store) else Store(store, readonly=True)
    try:
        models = st.models()
        rows = []
        for rec in st.cells():
            k = rec.key
            m = models.get(k.model)
            row = {
                "model": k.model, "arch": m.arch if m else "", "pooling": m.pooling if m else "",
                "suite": k.suite, "kind": k.kind, "item": k.item, "level": k.level, "n": rec.n,
            }
            row.update({c: v for c, v in rec.counts.items() if c != "n"})
            rows.append(row)
    finally:
        if st is not store:
            st.close()
    df = pd.DataFrame(rows, columns=RESULT_COLUMNS[:10] if not rows else None)
    if rows:
        df["err"] = 100.0 * df["top1_errors"] / df["n"]
        df["err5"] = 100.0 * df["top5_errors"] / df["n"]
    else:
        df["err"] = pd.Series(dtype=float)
        df["err5"] = pd.Series(dtype=float)
    first = [c for c in RESULT_COLUMNS if c in df.columns]
    return df[first + [c for c in df.columns if c not in first]].reset_index(drop=True)


def _baseline(definition: dict) -> Baseline | None:
    b = definition.get("baseline")
    if not b:
        return None
    return Baseline(b["name"], b["clean_error"], {k: tuple(v) for k, v in b["errors"].items()})


def _overall_row(cells: pd.DataFrame, definition: dict) -> dict:
    """Clean error and corruption aggregates of one (model, suite)."""
    row: dict = {}
    clean = cells[cells.kind == "clean"]
    clean_err = float(clean.err.iloc[0]) if len(clean) else float("nan")
    row["clean_err"] = clean_err
    tests = definition.get("test_corruptions", [])
    corr = cells[(cells.kind == "corruption") & cells.item.isin(tests)]
    if corr.empty:
        return row
    errors = {c: (g.sort_values("level").err / 100.0).tolist() for c, g in corr.groupby("item")}
    base = _baseline(definition)
    normalisable = base is not None and all(
        c in base.errors and len(e) == len(base.errors[c]) for c, e in errors.items()
    )
    if normalisable:
        row["mCE"] = sum(corruption_error(e, base.errors[c]) for c, e in errors.items()) / len(errors)
        if base.clean_error is not None and len(clean):
            row["rel_mCE"] = sum(
                relative_corruption_error(e, clean_err / 100.0, base.errors[c], base.clean_error)
                for c, e in errors.items()
            ) / len(errors)
    else:
        # Without a baseline, mCE is the unnormalised mean corruption error (percent).
        row["mCE"] = sum(sum(e) / len(e) for e in errors.values()) / len(errors) * 100.0
    row["corruptions"] = len(errors)
    return row


def _overall(df: pd.DataFrame, suites: dict) -> pd.DataFrame:
    rows = []
    for (model, suite), cells in df.groupby(["model", "suite"], sort=True):
        row = {"model": model, "arch": cells.arch.iloc[0], "pooling": cells.pooling.iloc[0],
               "suite": suite, "n": int(cells.n.max())}
        row.update(_overall_row(cells, suites.get(suite, {})))
        rows.append(row)
    cols = ["model", "arch", "pooling", "suite", "n", "clean_err", "mCE", "rel_mCE", "corruptions"]
    out = pd.DataFrame(rows)
    return out[[c for c in cols if c in out.columns] + [c for c in out.columns if c not in cols]]


def _per_cell(df: pd.DataFrame, suites: dict) -> pd.DataFrame:
    return df


LEADERBOARDS: Registry[Callable[[pd.DataFrame, dict], pd.DataFrame]] = Registry("leaderboard kind")
LEADERBOARDS.add("overall", _overall)
LEADERBOARDS.add("cells", _per_cell)


def leaderboard(store: str | Path | Store, kind: str = "overall") -> pd.DataFrame:
    """A leaderboard DataFrame computed from the store's counts.

    Args:
        store: Path of a result store (or an open :class:`Store`).
        kind: ``"overall"`` (one row per model and suite) or ``"cells"`` (one row per cell).
    """
    render = LEADERBOARDS.get(kind)
    st = store if isinstance(store, Store) else Store(store, readonly=True)
    try:
        suites = st.suites()
        df = load_results(st)
    finally:
        if st is not store:
            st.close()
    return render(df, suites)


def to_markdown(board: pd.DataFrame, *, title: str = "robench leaderboard") -> str:
    """Markdown table with two decimals and a legend of the columns."""
    table = tabulate(board, headers="keys", tablefmt="github", showindex=False, floatfmt=".2f")
    legend = [
        "clean_err: top-1 error (%) on the clean images.",
        "mCE: mean corruption error (%): AlexNet-normalised CE averaged over the test corruptions when "
        "the suite has a baseline, else the plain mean top-1 error over corruptions and severities.",
    ]
    if "rel_mCE" in board.columns:
        legend.append("rel_mCE: relative mCE (%), corruption error minus clean error, baseline-normalised.")
    return f"# {title}\n\n{table}\n\n" + "\n".join(f"- {line}" for line in legend) + "\n"


def write_reports(store: str | Path, out: str | Path) -> list[Path]:
    """Write leaderboard.md, leaderboard.csv and results.csv next to each other in ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    board = leaderboard(store)
    cells = load_results(store)
    written = [out / "leaderboard.md", out / "leaderboard.csv", out / "results.csv"]
    written[0].write_text(to_markdown(board), encoding="utf-8")
    board.to_csv(written[1], index=False, float_format="%.4f")
    cells.to_csv(written[2], index=False, float_format="%.4f")
    return written
