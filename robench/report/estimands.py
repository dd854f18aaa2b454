"""Which cells each leaderboard metric reads and how it combines their rates (for the intervals).

One maker per leaderboard section, registered in :data:`ESTIMANDS` under the section's name; each returns
``metric → Estimand`` for one model and suite. The formulas mirror the sections of
:mod:`robench.report.tables`, written as functions of cell rates so that they can be evaluated on every
bootstrap replicate at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from robench._registry import Registry
from robench.report.evidence import ALL_LEVELS, WORST_CASE, Estimand, Estimate, Evidence
from robench.stats.binomial import wilson
from robench.suites import Baseline

EstimandMaker = Callable[[str, pd.DataFrame, Mapping[str, Any], "str | None"], dict[str, Estimand]]
"""``maker(model, the model's cells in one suite, suite definition, baseline model or None)``."""
ESTIMANDS: Registry[EstimandMaker] = Registry("leaderboard estimand")
TERM_ESTIMANDS: Registry[EstimandMaker] = Registry("per-image-term estimand")
"""Estimands of metrics that only per-image terms give, not the stored counts (calibration: ECE, NLL, Brier);
kept apart from :data:`ESTIMANDS`, whose metrics all follow from the counts."""

WILSON_METRICS = {"clean_err": "top1_errors", "clean_err5": "top5_errors"}
"""Single error rates: Wilson intervals from the stored counts (no per-image data needed)."""


def suite_baseline(definition: Mapping[str, Any]) -> Baseline | None:
    """The AlexNet-style baseline recorded with a suite, if any."""
    b = definition.get("baseline")
    if not b:
        return None
    return Baseline(b["name"], b["clean_error"], {k: tuple(v) for k, v in b["errors"].items()})


@ESTIMANDS.register("clean")
def _clean(model: str, cells: pd.DataFrame, definition: Mapping[str, Any], baseline: str | None) -> dict[str, Estimand]:
    clean = cells[cells.kind == "clean"]
    if clean.empty:
        return {}
    r = clean.iloc[0]
    return {metric: Estimand(((model, "clean", r["item"], int(r["level"]), measure),), (1.0,))
            for metric, measure in (("clean_err", "err"), ("clean_err5", "err5"))}


def _severities(cells: pd.DataFrame, names: list[str]) -> dict[str, list[int]]:
    corr = cells[(cells.kind == "corruption") & cells.item.isin(names)]
    return {c: sorted(int(v) for v in g.level) for c, g in corr.groupby("item", sort=True)}


@ESTIMANDS.register("corruption")
def _corruption(
    model: str, cells: pd.DataFrame, definition: Mapping[str, Any], baseline: str | None
) -> dict[str, Estimand]:
    """mCE (AlexNet-normalised or the plain mean) and relative mCE: both linear in the cell errors, so both
    read one summed cell per corruption (its errors over all severities)."""
    levels = _severities(cells, list(definition.get("test_corruptions", [])))
    if not levels:
        return {}
    count = len(levels)
    keys = tuple((model, "corruption", c, ALL_LEVELS, "err") for c in levels)
    base = suite_baseline(definition)
    if base is None or not all(c in base.errors and len(ls) == len(base.errors[c]) for c, ls in levels.items()):
        return {"mCE": Estimand(keys, tuple(1.0 / (count * len(ls)) for ls in levels.values()))}
    out = {"mCE": Estimand(keys, tuple(1.0 / (count * sum(base.errors[c])) for c in levels))}
    clean = cells[cells.kind == "clean"]
    if base.clean_error is not None and len(clean):
        dens = {c: sum(base.errors[c]) - len(ls) * base.clean_error for c, ls in levels.items()}
        clean_weight = -sum(len(ls) / (count * dens[c]) for c, ls in levels.items())
        r = clean.iloc[0]
        out["rel_mCE"] = Estimand((*keys, (model, "clean", r["item"], int(r["level"]), "err")),
                                  (*(1.0 / (count * dens[c]) for c in levels), clean_weight))
    return out


@ESTIMANDS.register("perturbation")
def _perturbation(
    model: str, cells: pd.DataFrame, definition: Mapping[str, Any], baseline: str | None
) -> dict[str, Estimand]:
    """FP and T5D (means over the test perturbations at difficulty 1); mFR / mT5D against ``baseline``."""
    names = list(definition.get("test_perturbations", []))
    p = cells[(cells.kind == "perturbation") & cells.item.isin(names) & (cells.level == 1)]
    items = sorted(p.item.unique())
    if not items:
        return {}
    w = tuple(1.0 / len(items) for _ in items)
    out = {}
    for metric, ratio, measure, scale in (("FP", "mFR", "fp", 100.0), ("T5D", "mT5D", "t5d", 1.0)):
        keys = tuple((model, "perturbation", i, 1, measure) for i in items)
        out[metric] = Estimand(keys, w, scale=scale)
        if baseline is not None:
            out[ratio] = Estimand(keys, base=tuple((baseline, "perturbation", i, 1, measure) for i in items))
    return out


@ESTIMANDS.register("attack")
def _attack(
    model: str, cells: pd.DataFrame, definition: Mapping[str, Any], baseline: str | None
) -> dict[str, Estimand]:
    """Worst-case robust accuracy per eps: the per-image AND over the suite's attacks."""
    att = cells[cells.kind == "attack"]
    if att.empty or "eps" not in att.columns:
        return {}
    return {f"RA@{eps}": Estimand(((model, WORST_CASE, str(eps), 0, "robust"),), (1.0,))
            for eps in att.eps.astype(str).unique()}


def suite_estimands(
    df: pd.DataFrame, suites: Mapping[str, Any], model: str, suite: str, baseline: str | None,
    registry: Registry[EstimandMaker] = ESTIMANDS,
) -> dict[str, Estimand]:
    """Every metric's estimand of ``registry`` for one model and suite."""
    cells = df[(df.model == model) & (df.suite == suite)]
    has_base = baseline is not None and ((df.model == baseline) & (df.suite == suite)).any()
    out: dict[str, Estimand] = {}
    for _, maker in registry.items():
        out.update(maker(model, cells, suites.get(suite, {}), baseline if has_base else None))
    return out


def _all_estimands(
    df: pd.DataFrame, suites: Mapping[str, Any], model: str, suite: str, baseline: str | None
) -> dict[str, Estimand]:
    return {**suite_estimands(df, suites, model, suite, baseline),
            **suite_estimands(df, suites, model, suite, baseline, TERM_ESTIMANDS)}


def metric_estimates(
    evidence: Evidence, df: pd.DataFrame, suites: Mapping[str, Any], model: str, suite: str,
    baseline: str | None, points: Mapping[str, Any],
) -> dict[str, Estimate | None]:
    """Bootstrap estimate of every metric in ``points`` (the model's leaderboard row), cached per store."""
    key = (model, suite, baseline)
    cache = evidence._metrics
    if key not in cache:
        sample = evidence.sample(df, suite)
        if (suite, baseline) not in evidence._prepared:  # first model of the suite: resample all models at once
            models = sorted(df[df.suite == suite].model.unique())
            every = [_all_estimands(df, suites, m, suite, baseline) for m in models]
            evidence.prepare(sample, [e for metrics in every for e in metrics.values()])
            evidence._prepared.add((suite, baseline))
        estimands = _all_estimands(df, suites, model, suite, baseline)
        cache[key] = {m: evidence.estimate(sample, e, float(points[m])) for m, e in estimands.items()
                      if m in points and pd.notna(points[m])}
    return cache[key]


def interval_columns(
    row: Mapping[str, Any], cells: pd.DataFrame, estimates: Mapping[str, Estimate | None], confidence: float
) -> dict[str, float]:
    """``<metric>_lo`` / ``<metric>_hi`` for every metric of a leaderboard row (NaN when unavailable)."""
    out: dict[str, float] = {}
    clean = cells[cells.kind == "clean"]
    for metric in [m for m in row if m in WILSON_METRICS or m in estimates or m.startswith("RA@")]:
        if metric in WILSON_METRICS and len(clean):
            lo, hi = wilson(int(clean[WILSON_METRICS[metric]].iloc[0]), int(clean.n.iloc[0]), confidence)
            out[f"{metric}_lo"], out[f"{metric}_hi"] = 100.0 * float(lo), 100.0 * float(hi)
            continue
        est = estimates.get(metric)
        out[f"{metric}_lo"] = est.interval.lo if est is not None else np.nan
        out[f"{metric}_hi"] = est.interval.hi if est is not None else np.nan
    return out
