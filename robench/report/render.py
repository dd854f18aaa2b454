"""Writers: markdown (tabulate), CSV, the static HTML page and figures."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from robench.errors import InputError
from robench.report.display import readable
from robench.report.evidence import Evidence, store_outcomes
from robench.report.tables import leaderboard, load_results
from robench.stats.bootstrap import Bootstrap
from robench.store import Store

REPORT_TABLES = ("overall", "paired", "paired_corruptions", "groups", "published", "effective_robustness",
                 "paired_effective_robustness", "corruptions", "severities", "perturbations", "attacks", "reliability")
DATA_ONLY_TABLES = ("reliability",)
"""Tables written as CSV (and drawn as figures) but not shown on the HTML page."""

INTERVAL_METHODS = {
    "clean_err, clean_err5": "Wilson score interval from the stored counts",
    "mCE, rel_mCE, FP, T5D, RA@eps, per-corruption err/CE, per-perturbation FP/T5D": "image bootstrap, percentile",
    "mFR, mT5D": "image bootstrap, BCa (jackknife acceleration over images)",
    "ECE, mECE": "image bootstrap, BCa (the plug-in ECE is biased upward; BCa's bias correction can put the "
    "interval mostly below the value)",
    "NLL, Brier, mNLL, mBrier": "image bootstrap, percentile",
    "ER delta (paired_effective_robustness)": "paired image bootstrap of the two models' ER replicates, percentile; "
    "with >= 3 seed pairs: paired-by-seed t interval",
    "ER (effective robustness)": "image bootstrap of both accuracies of every model, line refitted per replicate "
    "when fitted on the store's models (a published line is fixed), percentile",
    "paired deltas": "paired image bootstrap (same weights for both models), percentile; p = (1 + 2·min tail) / "
    "(B + 1); with >= 3 seed pairs: paired-by-seed t interval and t test",
    "paired_corruptions": "McNemar exact and mid-p per cell, Holm over the suite's corruption cells, Cohen's kappa",
}

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
    "verdict": "gcp better / gap better when the headline metric's p < 0.05, else no significant difference",
    "ECE": "top-label expected calibration error (%) on the clean images, 15 equal-width confidence bins",
    "NLL": "negative log-likelihood of the true class (nats) on the clean images",
    "Brier": "multi-class Brier score (sum over classes of the squared probability error, 0–2) on the clean images",
    "mECE": "ECE (%) averaged over the corruption cells (the test corruptions at every severity)",
    "mNLL": "NLL averaged over the corruption cells",
    "mBrier": "Brier score averaged over the corruption cells",
    "ER": "effective robustness (points): shifted accuracy minus the logit-space line's prediction from the clean "
    "accuracy (Taori et al. 2020)",
}


def markdown_table(board: pd.DataFrame) -> str:
    shown = readable(board)
    # Text columns ("29.74 [29.12, 30.41]", p-values "0.030") stay as written; numbers get two decimals.
    text = [i for i, c in enumerate(shown.columns) if not pd.api.types.is_numeric_dtype(shown[c])]
    return tabulate(shown, headers="keys", tablefmt="github", showindex=False, floatfmt=".2f", missingval="",
                    disable_numparse=text if text and len(shown) else False)


def interval_note(bootstrap: Bootstrap) -> str:
    """How the bracketed intervals were computed (printed under every table that has them)."""
    return (f"Brackets: {100 * bootstrap.confidence:g} % intervals — Wilson for clean_err / clean_err5; image "
            f"bootstrap (B = {bootstrap.replicates}, seed = {bootstrap.seed}; percentile, BCa for mFR / mT5D) "
            "for the aggregates, calibration (BCa for ECE / mECE) and deltas; [—]: no per-image data for these cells.")


def to_markdown(board: pd.DataFrame, *, title: str = "robench leaderboard", bootstrap: Bootstrap | None = None) -> str:
    """Markdown table with two decimals, intervals in brackets and a legend of the columns present."""
    legend = [f"- {c}: {LEGEND[c]}." for c in board.columns if c in LEGEND]
    if any(c.endswith("_lo") for c in board.columns):
        legend.append(f"- {interval_note(bootstrap or Bootstrap())}")
    return f"# {title}\n\n{markdown_table(board)}\n\n" + "\n".join(legend) + "\n"


def write_reports(
    store: str | Path, out: str | Path, *, figures: bool = True, html: bool = True, baseline: str | None = None,
    bootstrap: Bootstrap | None = None,
) -> list[Path]:
    """Write every report of ``store`` into ``out``.

    Files: leaderboard.md/csv (overall), results.csv (cells), paired.md/csv (GAP vs GCP),
    corruptions.csv, severities.csv, perturbations.csv, effective_robustness.csv/md,
    paired_effective_robustness.csv, reliability.csv,
    figures/*.png|svg and index.html.
    ``baseline`` names the stored model that normalises FP / T5D into mFR / mT5D; ``bootstrap`` sets the
    intervals' replicates, seed and level (recorded in ``intervals.json``). The same store gives
    byte-identical files.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"Report folder {out} is an existing file; choose a folder for --out.")
    out.mkdir(parents=True, exist_ok=True)
    bootstrap = bootstrap or Bootstrap()
    with Store(store, readonly=True) as st:
        evidence = Evidence(store_outcomes(st), bootstrap)
        boards = {kind: leaderboard(st, kind, baseline=baseline, evidence=evidence) for kind in REPORT_TABLES}
        cells = load_results(st)
    written = []

    def emit(name: str, text: str) -> None:
        # Write then rename, so a run killed here never leaves a half-written table behind.
        path = out / name
        tmp = path.with_name(f".{name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
        written.append(path)

    emit("leaderboard.md", to_markdown(boards["overall"], bootstrap=bootstrap))
    emit("leaderboard.csv", boards["overall"].to_csv(index=False, float_format="%.4f"))
    emit("results.csv", cells.to_csv(index=False, float_format="%.4f"))
    emit("paired.md", to_markdown(boards["paired"], title="GAP vs GCP (delta = GCP − GAP)", bootstrap=bootstrap))
    emit("paired.csv", boards["paired"].to_csv(index=False, float_format="%.4f"))
    emit("paired_corruptions.csv", boards["paired_corruptions"].to_csv(index=False, float_format="%.6g"))
    emit("groups.csv", boards["groups"].to_csv(index=False, float_format="%.4f"))
    if not boards["groups"].empty:
        emit("groups.md", to_markdown(boards["groups"], title="Seed groups (mean ± sd over seeds)"))
    emit("intervals.json", json.dumps({"confidence": bootstrap.confidence, "replicates": bootstrap.replicates,
                                       "seed": bootstrap.seed, "resampling": "multinomial over source images",
                                       "methods": INTERVAL_METHODS}, indent=2, sort_keys=True) + "\n")
    emit("corruptions.csv", boards["corruptions"].to_csv(index=False, float_format="%.4f"))
    emit("severities.csv", boards["severities"].to_csv(index=False, float_format="%.4f"))
    emit("perturbations.csv", boards["perturbations"].to_csv(index=False, float_format="%.4f"))
    emit("attacks.csv", boards["attacks"].to_csv(index=False, float_format="%.4f"))
    emit("published.md", to_markdown(boards["published"], title="Measured vs published (measured − published)"))
    emit("published.csv", boards["published"].to_csv(index=False, float_format="%.4f"))
    emit("effective_robustness.csv", boards["effective_robustness"].to_csv(index=False, float_format="%.4f"))
    if not boards["effective_robustness"].empty:
        emit("effective_robustness.md", to_markdown(boards["effective_robustness"],
                                                    title="Effective robustness (points above the line)",
                                                    bootstrap=bootstrap))
    emit("paired_effective_robustness.csv",
         boards["paired_effective_robustness"].to_csv(index=False, float_format="%.4f"))
    emit("reliability.csv", boards["reliability"].to_csv(index=False, float_format="%.4f"))
    figs = []
    if figures:
        from robench.report.figures import write_figures

        figs = write_figures(cells, boards, out / "figures")
        written.extend(f for pair in figs for f in pair)
    if html:
        from robench.report.html import render_html

        shown = {k: v for k, v in boards.items() if k not in DATA_ONLY_TABLES}
        emit("index.html", render_html(shown, [png for png, _ in figs], note=interval_note(bootstrap)))
    return written
