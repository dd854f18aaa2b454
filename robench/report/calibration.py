"""Calibration in the reports: leaderboard columns, their bootstrap estimands, per-severity values, reliability.

Every number derives from the per-image terms in the store (:mod:`robench.metrics.calibration`): ``ECE``
(top-label, 15 equal-width bins, in %), ``NLL`` (nats) and ``Brier`` (multi-class, ∈ [0, 2]) of the clean
cell, and ``mECE`` / ``mNLL`` / ``mBrier``, their means over the suite's corruption cells (the test
corruptions at every stored severity; every corruption cell when the suite has no test corruptions).
A cell without calibration terms (stored before store schema 3) leaves its columns blank.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from robench.metrics.calibration import BINS, Reliability, mean_term, reliability
from robench.report.estimands import TERM_ESTIMANDS
from robench.report.evidence import FIXED_POINT, BinnedEstimand, Estimand, Evidence, Outcomes, ece_measure

CLEAN_METRICS = ("ECE", "NLL", "Brier")
CORRUPTION_METRICS = ("mECE", "mNLL", "mBrier")
CALIBRATION_METRICS = CLEAN_METRICS + CORRUPTION_METRICS
_SCALES = {"ECE": 100.0 / FIXED_POINT["ece"], "NLL": 1.0 / FIXED_POINT["nll"], "Brier": 1.0 / FIXED_POINT["brier"]}
_TERMS = {"NLL": "nll", "Brier": "brier"}


def cell_calibration(o: Mapping[str, np.ndarray] | None) -> dict[str, float] | None:
    """``ECE`` (%), ``NLL`` and ``Brier`` of one cell's per-image outcomes (``None`` without calibration terms)."""
    if o is None or "nll" not in o or len(o["index"]) == 0:
        return None
    return {"ECE": 100.0 * reliability(o["confidence"], o["correct"]).ece(),
            "NLL": mean_term(o["nll"]), "Brier": mean_term(o["brier"])}


def _clean_cell(cells: pd.DataFrame) -> tuple[str, str, int] | None:
    clean = cells[cells.kind == "clean"]
    return None if clean.empty else ("clean", str(clean.item.iloc[0]), int(clean.level.iloc[0]))


def corruption_cells(cells: pd.DataFrame, definition: Mapping[str, Any]) -> list[tuple[str, str, int]]:
    """The corruption cells whose calibration is averaged: the test corruptions' (all of them when none is)."""
    corr = cells[cells.kind == "corruption"]
    names = set(definition.get("test_corruptions", []))
    chosen = corr[corr.item.isin(names)] if corr.item.isin(names).any() else corr
    return sorted(("corruption", str(r.item), int(r.level)) for r in chosen.itertuples(index=False))


def calibration_columns(outcomes: Outcomes, cells: pd.DataFrame, definition: Mapping[str, Any]) -> dict[str, float]:
    """The calibration columns of one leaderboard row (absent when the cells have no calibration terms)."""
    row: dict[str, float] = {}
    clean = _clean_cell(cells)
    found = cell_calibration(outcomes.get(clean)) if clean is not None else None
    if found is not None:
        row.update(found)
    per_cell = [cell_calibration(outcomes.get(c)) for c in corruption_cells(cells, definition)]
    if per_cell and all(v is not None for v in per_cell):  # a mean over only some of the cells is left blank
        for metric, name in zip(CLEAN_METRICS, CORRUPTION_METRICS):
            row[name] = math.fsum(v[metric] for v in per_cell) / len(per_cell)
    return row


def _estimands(model: str, cells_: list[tuple[str, str, int]], prefix: str) -> dict[str, Estimand]:
    w = tuple(1.0 / len(cells_) for _ in cells_)
    out: dict[str, Estimand] = {
        f"{prefix}ECE": BinnedEstimand(tuple((model, *c, ece_measure(b)) for c in cells_ for b in range(BINS)), w,
                                       scale=_SCALES["ECE"], bins=BINS)}
    for metric, term in _TERMS.items():
        out[f"{prefix}{metric}"] = Estimand(tuple((model, *c, term) for c in cells_), w, scale=_SCALES[metric])
    return out


@TERM_ESTIMANDS.register("calibration")
def _calibration(
    model: str, cells: pd.DataFrame, definition: Mapping[str, Any], baseline: str | None
) -> dict[str, Estimand]:
    """ECE / NLL / Brier of the clean cell and their means over the corruption cells."""
    out: dict[str, Estimand] = {}
    clean = _clean_cell(cells)
    if clean is not None:
        out.update(_estimands(model, [clean], ""))
    corr = corruption_cells(cells, definition)
    if corr:
        out.update(_estimands(model, corr, "m"))
    return out


def severity_columns(evidence: Evidence | None, df: pd.DataFrame) -> pd.DataFrame:
    """Per model, suite and corruption: ``ECE_s<k>``, ``NLL_s<k>``, ``Brier_s<k>`` (empty without terms)."""
    rows = []
    if evidence is not None:
        for (model, suite), cells in df[df.kind == "corruption"].groupby(["model", "suite"], sort=True):
            have = evidence.outcomes(model, suite)
            by_item: dict[str, dict[str, float]] = {}
            for r in cells.itertuples(index=False):
                found = cell_calibration(have.get(("corruption", r.item, int(r.level))))
                if found is not None:
                    by_item.setdefault(r.item, {}).update({f"{m}_s{int(r.level)}": v for m, v in found.items()})
            rows += [{"model": model, "suite": suite, "corruption": item, **values} for item, values in by_item.items()]
    if not rows:
        return pd.DataFrame(columns=["model", "suite", "corruption"])
    out = pd.DataFrame(rows)
    levels = sorted({int(c.rsplit("_s", 1)[1]) for c in out.columns if "_s" in c})
    order = [f"{m}_s{k}" for m in CLEAN_METRICS for k in levels if f"{m}_s{k}" in out.columns]
    return out[["model", "suite", "corruption", *order]]


RELIABILITY_COLUMNS = ["model", "pooling", "suite", "condition", "bin", "bin_lo", "bin_hi", "n", "confidence",
                       "accuracy", "ECE"]


def _pooled(parts: list[Mapping[str, np.ndarray]]) -> Reliability:
    conf = np.concatenate([np.asarray(o["confidence"]) for o in parts])
    ok = np.concatenate([np.asarray(o["correct"], bool) for o in parts])
    return reliability(conf, ok)


def reliability_table(
    df: pd.DataFrame, suites: Mapping[str, Any], *, evidence: Evidence | None = None, **_: Any
) -> pd.DataFrame:
    """Reliability diagram data per model and suite: the clean cell and the most severe corruption level
    (its cells pooled): per confidence bin the images, mean confidence and accuracy (%), and the pool's ECE (%)."""
    rows = []
    for (model, suite), cells in df[df.kind.isin(["clean", "corruption"])].groupby(["model", "suite"], sort=True):
        have = {} if evidence is None else evidence.outcomes(model, suite)
        conditions: list[tuple[str, list[Mapping[str, np.ndarray]]]] = []
        clean = _clean_cell(cells)
        if clean is not None and clean in have:
            conditions.append(("clean", [have[clean]]))
        corr = corruption_cells(cells, suites.get(suite, {}))
        if corr:
            top = max(lv for _, _, lv in corr)
            parts = [have.get(c) for c in corr if c[2] == top]
            if parts and all(p is not None for p in parts):
                conditions.append((f"severity {top}", parts))
        for condition, parts in conditions:
            rel = _pooled(parts)
            ece = 100.0 * rel.ece()
            for b in range(BINS):
                n = int(rel.count[b])
                rows.append({"model": model, "pooling": cells.pooling.iloc[0], "suite": suite, "condition": condition,
                             "bin": b, "bin_lo": b / BINS, "bin_hi": (b + 1) / BINS, "n": n,
                             "confidence": rel.confidence_sum[b] / n if n else math.nan,
                             "accuracy": 100.0 * rel.correct[b] / n if n else math.nan, "ECE": ece})
    return pd.DataFrame(rows, columns=RELIABILITY_COLUMNS)
