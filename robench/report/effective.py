"""Effective robustness table: per shift, the logit-space line and each model's distance above it.

Shifts in a store:

* every suite with a clean cell and corruption cells: ``<suite> corruptions`` — shifted accuracy = 100 −
  the mean top-1 error over the corruption cells averaged by the leaderboard's calibration means (the test
  corruptions at every stored severity), clean accuracy = the suite's clean cell; the line is fitted on the
  store's models of that suite;
* every natural-shift suite registered in :data:`~robench.metrics.effective_robustness.PUBLISHED_LINES`:
  shifted accuracy = that suite's clean cell, clean accuracy = the clean cell of its reference suite
  (ImageNet val, or val on the shift's classes); the published line where SHIFTS.md has one, else fitted.

Intervals: image bootstrap (the suites' own replicates, :class:`~robench.report.evidence.Evidence`): each
replicate recomputes every model's two accuracies and, for a fitted line, refits it, so the interval holds
both the model's and the line's test-set variation. A published line is taken as fixed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from robench.metrics.effective_robustness import (
    MIN_FIT_MODELS,
    PUBLISHED_LINES,
    LogitLine,
    clip_accuracy,
    expit,
    fit_lines,
    fitted_line,
    logit,
)
from robench.report.calibration import corruption_cells
from robench.report.comparisons import MIN_SEEDS_FOR_T, _arm, seed_pairs, verdict
from robench.report.evidence import ALL_LEVELS, Estimand, Evidence
from robench.stats.bootstrap import percentile_interval
from robench.stats.paired import bootstrap_p
from robench.stats.seeds import paired_t

ER_COLUMNS = ["shift", "x", "model", "arch", "pooling", "pair", "acc_clean", "acc_shift", "predicted", "ER", "ER_lo",
              "ER_hi", "slope", "intercept", "line"]


@dataclass(frozen=True)
class Accuracy:
    """One model's accuracy (%) on one cell set, its image count and how to resample it."""

    value: float
    n: int
    suite: str
    estimand: Estimand | None


def _clean_accuracy(df: pd.DataFrame, model: str, suite: str) -> Accuracy | None:
    clean = df[(df.model == model) & (df.suite == suite) & (df.kind == "clean")]
    if clean.empty:
        return None
    r = clean.iloc[0]
    return Accuracy(100.0 - float(r.err), int(r.n), suite,
                    Estimand(((model, "clean", r["item"], int(r["level"]), "err"),), (1.0,)))


def _corruption_accuracy(df: pd.DataFrame, model: str, suite: str, definition: Mapping[str, Any]) -> Accuracy | None:
    cells = df[(df.model == model) & (df.suite == suite)]
    chosen = corruption_cells(cells, definition)
    if not chosen:
        return None
    corr = cells[cells.kind == "corruption"].set_index(["item", "level"])
    errors = [float(corr.loc[(item, level), "err"]) for _, item, level in chosen]
    levels: dict[str, int] = {}
    for _, item, _ in chosen:
        levels[item] = levels.get(item, 0) + 1
    keys = tuple((model, "corruption", item, ALL_LEVELS, "err") for item in sorted(levels))
    est = Estimand(keys, tuple(1.0 / len(chosen) for _ in keys))
    return Accuracy(100.0 - sum(errors) / len(errors), int(cells[cells.kind == "corruption"].n.min()), suite, est)


def _shifts(df: pd.DataFrame, suites: Mapping[str, Any]) -> list[tuple[str, str, LogitLine | None, dict]]:
    """``(shift, x label, published line or None, {model: (x Accuracy, y Accuracy)})`` per shift in ``df``."""
    out = []
    for suite in sorted(df.suite.unique()):
        models = sorted(df[df.suite == suite].model.unique())
        points = {}
        for m in models:
            x, y = _clean_accuracy(df, m, suite), _corruption_accuracy(df, m, suite, suites.get(suite, {}))
            if x is not None and y is not None:
                points[m] = (x, y)
        if points:
            out.append((f"{suite} corruptions", f"{suite} clean", None, points))
        if suite in PUBLISHED_LINES:
            spec = PUBLISHED_LINES.get(suite)
            points = {}
            for m in models:
                y = _clean_accuracy(df, m, suite)
                x = next((a for s in spec.x_suites if (a := _clean_accuracy(df, m, s)) is not None), None)
                if x is not None and y is not None:
                    points[m] = (x, y)
            if points:
                out.append((suite, spec.x, spec.line, points))
    return out


def _replicates(evidence: Evidence, df: pd.DataFrame, acc: Accuracy) -> np.ndarray | None:
    """Bootstrap replicates of an accuracy (fraction), ``None`` without per-image data."""
    if acc.estimand is None:
        return None
    sample = evidence.sample(df, acc.suite)
    evidence.prepare(sample, [acc.estimand])
    found = evidence.estimate(sample, acc.estimand, 100.0 - acc.value)
    return None if found is None else 1.0 - found.star / 100.0


def _pairs(
    df: pd.DataFrame, models: list[str], cards: Mapping[str, Mapping[str, Any]] | None
) -> dict[str, list[tuple[str, str]]]:
    """arch → ``(gap_model, gcp_model)`` seed pairs among ``models`` (architectures with both poolings)."""
    rows = df[df.model.isin(models)].drop_duplicates("model")
    out: dict[str, list[tuple[str, str]]] = {}
    for arch, group in rows.groupby("arch", sort=True):
        arms = {p: _arm(g, cards) for p, g in group.groupby("pooling")}
        if "gap" in arms and "gcp" in arms:
            out[str(arch)] = [(a["model"], b["model"]) for a, b in seed_pairs(arms["gap"][1], arms["gcp"][1], cards)]
    return out


@dataclass(frozen=True)
class ShiftResult:
    """One shift's line, per-model rows and ER replicates (``B × models``, or ``None``)."""

    shift: str
    models: list[str]
    rows: list[dict[str, Any]]
    star: np.ndarray | None
    pairs: dict[str, list[tuple[str, str]]]


def shift_results(
    df: pd.DataFrame, suites: Mapping[str, Any], evidence: Evidence, cards: Mapping[str, Mapping[str, Any]] | None
) -> list[ShiftResult]:
    """Every shift in ``df`` with its line, each model's ER and the ER replicates."""
    results = []
    for shift, x_label, published, points in _shifts(df, suites):
        models = sorted(points)
        x = np.array([clip_accuracy(points[m][0].value / 100.0, points[m][0].n) for m in models])
        y = np.array([clip_accuracy(points[m][1].value / 100.0, points[m][1].n) for m in models])
        line = published if published is not None else fitted_line(x, y)
        reps = [(_replicates(evidence, df, points[m][0]), _replicates(evidence, df, points[m][1])) for m in models]
        er_star = _er_replicates(line, published is None, models, points, reps)
        pairs = _pairs(df, models, cards)
        label = {m: f"{a} vs {b}" for ps in pairs.values() for a, b in ps for m in (a, b)}
        rows = []
        for k, m in enumerate(models):
            predicted = float(line.predict(x[k])) if line is not None else np.nan
            er = 100.0 * (points[m][1].value / 100.0 - predicted) if line is not None else np.nan
            iv = percentile_interval(er_star[:, k], evidence.bootstrap.confidence) if er_star is not None else None
            meta = df[df.model == m].iloc[0]
            rows.append({
                "shift": shift, "x": x_label, "model": m, "arch": meta.arch, "pooling": meta.pooling,
                "pair": label.get(m, ""), "acc_clean": points[m][0].value, "acc_shift": points[m][1].value,
                # None, not NaN, where there is no line: blank in the markdown as in the CSV
                "predicted": 100.0 * predicted if line is not None else None, "ER": er,
                "ER_lo": iv.lo if iv is not None else np.nan, "ER_hi": iv.hi if iv is not None else np.nan,
                "slope": line.slope if line is not None else None,
                "intercept": line.intercept if line is not None else None,
                "line": line.source if line is not None else
                f"none: a line needs at least {MIN_FIT_MODELS} models with this shift in the store",
            })
        results.append(ShiftResult(shift, models, rows, er_star, pairs))
    return results


def effective_robustness_table(
    df: pd.DataFrame, suites: Mapping[str, Any], *, evidence: Evidence | None = None,
    cards: Mapping[str, Mapping[str, Any]] | None = None, **_: Any,
) -> pd.DataFrame:
    """Per shift and model: clean and shifted accuracy (%), the line's prediction, ER (points) with its
    interval, the line (slope, intercept in logit space) and where it comes from."""
    evidence = evidence or Evidence(lambda model, suite: {})
    rows = [r for result in shift_results(df, suites, evidence, cards) for r in result.rows]
    return pd.DataFrame(rows, columns=ER_COLUMNS)


PAIRED_ER_COLUMNS = ["shift", "arch", "gap_model", "gcp_model", "seeds", "ER_gap", "ER_gcp", "ER_delta", "ER_delta_lo",
                     "ER_delta_hi", "ER_delta_p", "verdict", "basis"]


def paired_effective_robustness(
    df: pd.DataFrame, suites: Mapping[str, Any], *, evidence: Evidence | None = None,
    cards: Mapping[str, Mapping[str, Any]] | None = None, **_: Any,
) -> pd.DataFrame:
    """GAP vs GCP per shift and architecture: both ERs, ΔER = GCP − GAP with its interval, p and verdict.

    ΔER ≈ 0 means GCP's shifted accuracy moves exactly as its clean accuracy predicts. Like the paired
    table: with fewer than three seed pairs the paired image bootstrap (same weights for both models),
    with three or more the paired-by-seed t interval.
    """
    evidence = evidence or Evidence(lambda model, suite: {})
    boot = evidence.bootstrap
    rows = []
    for result in shift_results(df, suites, evidence, cards):
        er = {r["model"]: r["ER"] for r in result.rows}
        for arch, pairs in result.pairs.items():
            gap_v, gcp_v = [er[a] for a, _ in pairs], [er[b] for _, b in pairs]
            delta = float(np.mean(gcp_v) - np.mean(gap_v))
            lo = hi = p = np.nan
            if len(pairs) >= MIN_SEEDS_FOR_T:
                t = paired_t(gap_v, gcp_v, boot.confidence)
                lo, hi, p = t.lo, t.hi, t.p
                basis = f"seeds: paired t over {len(pairs)} seeds"
            else:
                basis = f"images: paired bootstrap, B = {boot.replicates}, seed = {boot.seed}"
                if result.star is not None:
                    col = {m: k for k, m in enumerate(result.models)}
                    star = np.mean([result.star[:, col[b]] - result.star[:, col[a]] for a, b in pairs], axis=0)
                    if np.isfinite(star).any():
                        iv = percentile_interval(star, boot.confidence)
                        lo, hi, p = iv.lo, iv.hi, bootstrap_p(star[np.isfinite(star)])
            rows.append({"shift": result.shift, "arch": arch, "gap_model": pairs[0][0], "gcp_model": pairs[0][1],
                         "seeds": len(pairs), "ER_gap": float(np.mean(gap_v)), "ER_gcp": float(np.mean(gcp_v)),
                         "ER_delta": delta, "ER_delta_lo": lo, "ER_delta_hi": hi, "ER_delta_p": p,
                         "verdict": verdict("ER", delta, p, 1.0 - boot.confidence), "basis": basis})
    return pd.DataFrame(rows, columns=PAIRED_ER_COLUMNS)


def _er_replicates(
    line: LogitLine | None, fitted: bool, models: list[str], points: Mapping[str, tuple[Accuracy, Accuracy]],
    reps: list[tuple[np.ndarray | None, np.ndarray | None]],
) -> np.ndarray | None:
    """``B × models`` replicates of ER (points); ``None`` without a line or, for a fitted one, when any model
    lacks per-image data (a model without them gets NaN under a published line)."""
    if line is None or not reps:
        return None
    missing = [xr is None or yr is None for xr, yr in reps]
    if fitted and any(missing):
        return None
    size = next(len(xr) for xr, yr in reps if xr is not None and yr is not None) if not all(missing) else 0
    if size == 0:
        return None
    xs = np.full((size, len(models)), np.nan)
    ys = np.full((size, len(models)), np.nan)
    for k, (m, (xr, yr)) in enumerate(zip(models, reps)):
        if xr is not None and yr is not None:
            xs[:, k] = clip_accuracy(xr, points[m][0].n)
            ys[:, k] = clip_accuracy(yr, points[m][1].n)
    if fitted:
        slope, intercept = fit_lines(xs, ys)
        predicted = expit(slope[:, None] * logit(xs) + intercept[:, None])
    else:
        predicted = line.predict(xs)
    return 100.0 * (ys - predicted)
