"""From protocol rows to tables: the CSV files, per-model summaries, GAP-vs-GCP pairs and matching epochs."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from robench.landscape.train import ProtocolResult

LANDSCAPE_COLUMNS = ("model", "pooling", "step", "eta", "loss", "grad_diff", "grad_norm", "beta_eff")
CURVATURE_COLUMNS = ("model", "pooling", "step", "hessian_top", "hessian_trace")
CONVERGENCE_COLUMNS = ("model", "pooling", "schedule", "epoch", "lr", "train_loss", "test_top1")
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}
"""Two-sided 95 % Student t quantiles by degrees of freedom (STATISTICS.md §6)."""


@dataclass(frozen=True)
class Tables:
    """Every table of a landscape report.

    Attributes:
        landscape: ``landscape.csv`` (one row per model × probe step × η).
        probes: ``probes.csv`` (one row per probe: bands, L(y), ‖g‖, ‖y‖, β_eff, lr, seed).
        curvature: ``curvature.csv`` (plus the trace's standard error and the power iterations used).
        convergence: ``convergence.csv``.
        scale: Paper epochs per demo epoch (``None``: no convergence runs).
    """

    landscape: pd.DataFrame
    probes: pd.DataFrame
    curvature: pd.DataFrame
    convergence: pd.DataFrame
    scale: int | None = None


def _frame(rows: list[dict], columns: tuple[str, ...]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=list(columns))
    return df[[*columns, *[c for c in df.columns if c not in columns]]]


def tables(result: ProtocolResult, scale: int | None = None) -> Tables:
    return Tables(
        landscape=_frame(result.landscape, LANDSCAPE_COLUMNS),
        probes=_frame(result.probes, ("model", "pooling", "seed", "step")),
        curvature=_frame(result.curvature, CURVATURE_COLUMNS),
        convergence=_frame(result.convergence, CONVERGENCE_COLUMNS),
        scale=scale,
    )


def _seed(model: str) -> int | None:
    tail = model.rsplit("-s", 1)
    return int(tail[1]) if len(tail) == 2 and tail[1].isdigit() else None


def matching(conv: pd.DataFrame, scale: int | None) -> pd.DataFrame:
    """First epoch (from 1) at which each run's test top-1 reaches its seed's GAP-LRnorm final top-1.

    The poster's "matching epoch" (LANDSCAPE.md §4, an inference from its numbers): GCP with
    LRadju against GAP with LRnorm. Every other run is listed too (GAP-LRadju is the
    control). ``NaN``: never reached.
    """
    if conv.empty:
        return pd.DataFrame()
    conv = conv.assign(seed=conv.model.map(_seed))
    rows = []
    for seed, runs in conv.groupby("seed", dropna=False):
        ref = runs[(runs.pooling == "gap") & (runs.schedule == "lrnorm")]
        if ref.empty:
            continue
        target = float(ref.sort_values("epoch").test_top1.iloc[-1])
        ref_epochs = int(ref.epoch.max())
        for (pool, schedule), run in runs.groupby(["pooling", "schedule"]):
            run = run.sort_values("epoch")
            hit = run[run.test_top1 >= target]
            epoch = int(hit.epoch.iloc[0]) if len(hit) else math.nan
            rows.append({
                "seed": seed, "pooling": pool, "schedule": schedule, "target_top1": target,
                "final_top1": float(run.test_top1.iloc[-1]), "epochs": int(run.epoch.max()),
                "matching_epoch": epoch, "reference_epochs": ref_epochs,
                "matching_paper_epoch": epoch * scale if scale and not math.isnan(epoch) else math.nan,
            })
    return pd.DataFrame(rows)


def summary(t: Tables) -> pd.DataFrame:
    """One row per probed model: mean over its probes (bands, β_eff) and Hessian points, final top-1."""
    rows = []
    models = list(dict.fromkeys([*t.probes.get("model", []), *t.convergence.get("model", [])]))
    for model in models:
        p = t.probes[t.probes.model == model] if not t.probes.empty else t.probes
        c = t.curvature[t.curvature.model == model] if not t.curvature.empty else t.curvature
        v = t.convergence[t.convergence.model == model] if not t.convergence.empty else t.convergence
        pool = (p if len(p) else v).pooling.iloc[0]
        row = {"model": model, "pooling": pool, "seed": _seed(model), "probes": len(p)}
        if len(p):
            row |= {
                "loss_band": float((p.loss_max - p.loss_min).mean()),
                "loss_max": float(p.loss_max.mean()),
                "grad_diff_max": float(p.grad_diff_max.mean()),
                "beta_eff": float(p.beta_eff.mean()),
                "beta_eff_max": float(p.beta_eff.max()),
                "grad_norm": float(p.grad_norm.mean()),
            }
        if len(c):
            row |= {"hessian_top": float(c.hessian_top.mean()), "hessian_top_last": float(c.hessian_top.iloc[-1]),
                    "hessian_trace": float(c.hessian_trace.mean())}
        for schedule, run in v.groupby("schedule") if len(v) else []:
            row[f"top1_{schedule}"] = float(run.sort_values("epoch").test_top1.iloc[-1])
        rows.append(row)
    return pd.DataFrame(rows)


def paired(summ: pd.DataFrame, match: pd.DataFrame) -> pd.DataFrame:
    """GAP vs GCP per metric: each arm's mean ± sd over seeds, the paired difference and its 95 % t interval."""
    if summ.empty or not {"gap", "gcp"} <= set(summ.pooling):
        return pd.DataFrame()
    metrics = [c for c in summ.columns if c not in ("model", "pooling", "seed", "probes")]
    wide = summ.pivot_table(index="seed", columns="pooling", values=metrics, dropna=False)
    if not match.empty:
        m = match[match.schedule == "lradju"].pivot_table(index="seed", columns="pooling", values="matching_epoch",
                                                          dropna=False)
        for pool in m.columns:
            wide[("matching_epoch_lradju", pool)] = m[pool]
        metrics.append("matching_epoch_lradju")
    rows = []
    for metric in metrics:
        if (metric, "gap") not in wide or (metric, "gcp") not in wide:
            continue
        gap, gcp = wide[(metric, "gap")], wide[(metric, "gcp")]
        d = (gcp - gap).dropna()
        n = len(d)
        half = T_975.get(n - 1, 1.96) * d.std(ddof=1) / math.sqrt(n) if n >= 2 else math.nan
        rows.append({
            "metric": metric, "seeds": n, "gap_mean": gap.mean(), "gap_sd": gap.std(ddof=1),
            "gcp_mean": gcp.mean(), "gcp_sd": gcp.std(ddof=1), "delta": d.mean() if n else math.nan,
            "delta_lo": d.mean() - half if n >= 2 else math.nan, "delta_hi": d.mean() + half if n >= 2 else math.nan,
        })
    return pd.DataFrame(rows)
