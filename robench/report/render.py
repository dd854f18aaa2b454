"""Writers: markdown (tabulate), CSV, the static HTML page and figures."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from robench.errors import InputError
from robench.report.tables import leaderboard, load_results
from robench.store import Store

REPORT_TABLES = ("overall", "paired", "published", "corruptions", "severities", "perturbations", "attacks")

LEGEND = {
    "skipped": "unreadable images skipped under --on-bad-image skip (the most in any cell); errors exclude them",
    "clean_err": "top-1 error (%) on the clean images",
    "clean_err5": "top-5 error (%) on the clean images",
    "mCE": "mean corruption error (%): AlexNet-normalised CE averaged over the test corruptions when the suite "
    "has a baseline, else the plain mean top-1 error over corruptions and severities",
    "rel_mCE": "relative mCE (%): corruption error minus clean error, baseline-normalised",
    "corruptions": "number of test corruptions averaged",
    "FP": "raw flip probability (%), mean over the test perturbations at difficulty 1 (not normalised)",
    "T5D": "raw top-5 distance, mean over the test perturbations at difficulty 1 (not normalised)",
    "mFR": "mean flip rate (%): FP divided by the baseline model's FP per perturbation, averaged",
    "mT5D": "mean top-5 distance (%): T5D divided by the baseline model's T5D per perturbation, averaged",
    "perturbations": "number of test perturbations averaged",
    "warnings": "gradient-masking symptoms and clean-accuracy mismatches found in the attack cells",
}


def markdown_table(board: pd.DataFrame) -> str:
    return tabulate(board, headers="keys", tablefmt="github", showindex=False, floatfmt=".2f", missingval="")


def to_markdown(board: pd.DataFrame, *, title: str = "robench leaderboard") -> str:
    """Markdown table with two decimals and a legend of the columns present."""
    legend = [f"- {c}: {LEGEND[c]}." for c in board.columns if c in LEGEND]
    return f"# {title}\n\n{markdown_table(board)}\n\n" + "\n".join(legend) + "\n"


def write_reports(
    store: str | Path, out: str | Path, *, figures: bool = True, html: bool = True, baseline: str | None = None
) -> list[Path]:
    """Write every report of ``store`` into ``out``.

    Files: leaderboard.md/csv (overall), results.csv (cells), paired.md/csv (GAP vs GCP),
    corruptions.csv, severities.csv, perturbations.csv, figures/*.png|svg and index.html.
    ``baseline`` names the stored model that normalises FP / T5D into mFR / mT5D.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"Report folder {out} is an existing file; choose a folder for --out.")
    out.mkdir(parents=True, exist_ok=True)
    with Store(store, readonly=True) as st:
        boards = {kind: leaderboard(st, kind, baseline=baseline) for kind in REPORT_TABLES}
        cells = load_results(st)
    written = []

    def emit(name: str, text: str) -> None:
        # Write then rename, so a run killed here never leaves a half-written table behind.
        path = out / name
        tmp = path.with_name(f".{name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
        written.append(path)

    emit("leaderboard.md", to_markdown(boards["overall"]))
    emit("leaderboard.csv", boards["overall"].to_csv(index=False, float_format="%.4f"))
    emit("results.csv", cells.to_csv(index=False, float_format="%.4f"))
    emit("paired.md", to_markdown(boards["paired"], title="GAP vs GCP (delta = GCP − GAP)"))
    emit("paired.csv", boards["paired"].to_csv(index=False, float_format="%.4f"))
    emit("corruptions.csv", boards["corruptions"].to_csv(index=False, float_format="%.4f"))
    emit("severities.csv", boards["severities"].to_csv(index=False, float_format="%.4f"))
    emit("perturbations.csv", boards["perturbations"].to_csv(index=False, float_format="%.4f"))
    emit("attacks.csv", boards["attacks"].to_csv(index=False, float_format="%.4f"))
    emit("published.md", to_markdown(boards["published"], title="Measured vs published (measured − published)"))
    emit("published.csv", boards["published"].to_csv(index=False, float_format="%.4f"))
    figs = []
    if figures:
        from robench.report.figures import write_figures

        figs = write_figures(cells, boards, out / "figures")
        written.extend(f for pair in figs for f in pair)
    if html:
        from robench.report.html import render_html

        emit("index.html", render_html(boards, [png for png, _ in figs]))
    return written
