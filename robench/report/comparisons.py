"""GAP-vs-GCP comparisons: the paired table with intervals and a verdict, per-cell McNemar tests, seed groups.

*Arms.* A model card may declare a ``group`` (same architecture, pooling and recipe) and a ``seed``; a
model without a group is an arm of its own. Per (architecture, suite) the GAP arm and the GCP arm (the
first of each pooling by name) are paired seed by seed (models without seeds: the arm's first model).

*Which variation a verdict reflects.* With one or two seed pairs the delta's interval and p-value come
from the paired image bootstrap (same image weights for both models: only test-set variation). With
three or more seed pairs they come from the paired-by-seed t interval over the per-seed deltas
(STATISTICS.md §6), i.e. the training-run variation of the recipe.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from robench.errors import InputError
from robench.report.evidence import Evidence
from robench.stats.bootstrap import percentile_interval
from robench.stats.paired import bootstrap_p, cohen_kappa, discordance, holm, mcnemar
from robench.stats.seeds import paired_t

COUNT_COLUMNS = ("model", "arch", "pooling", "suite", "n", "skipped", "corruptions", "perturbations", "dataset",
                 "warnings")
HIGHER_IS_BETTER_PREFIXES = ("RA@", "ER")
"""Metrics where a larger value is better (robust accuracy, effective robustness); every other metric is an error,
an instability or a calibration error."""
HEADLINE = ("mCE", "clean_err")
"""The metric a verdict is about: the first of these the suite has, else its first robust accuracy."""
PER_METRIC_VERDICTS = ("ECE", "NLL", "Brier", "mECE", "mNLL", "mBrier")
"""Metrics that get a verdict column of their own (``<m>_verdict``, lower is better) beside the headline one."""
MIN_SEEDS_FOR_T = 3
VERDICTS = ("gcp better", "gap better", "no significant difference")


def _no_outcomes(model: str, suite: str) -> dict:
    return {}


def card_field(cards: Mapping[str, Mapping[str, Any]] | None, model: str, key: str) -> Any:
    return ((cards or {}).get(model) or {}).get(key)


def metric_columns(board: pd.DataFrame) -> list[str]:
    return [c for c in board.columns if c not in COUNT_COLUMNS and not c.endswith(("_lo", "_hi"))]


def _arm(rows: pd.DataFrame, cards: Mapping[str, Mapping[str, Any]] | None) -> tuple[str, pd.DataFrame]:
    """The first arm (group, or lone model) of one pooling, by name, with its models."""
    groups = [card_field(cards, m, "group") or m for m in rows.model]
    first = sorted(groups)[0]
    return first, rows[[g == first for g in groups]].sort_values("model")


Row = dict[str, Any]


def seed_pairs(
    gap: pd.DataFrame, gcp: pd.DataFrame, cards: Mapping[str, Mapping[str, Any]] | None
) -> list[tuple[Row, Row]]:
    """``(gap_row, gcp_row)`` per seed both arms have (lowest seed first); else the two first models."""
    records = [arm.to_dict("records") for arm in (gap, gcp)]
    by_seed = [{card_field(cards, r["model"], "seed"): r for r in arm} for arm in records]
    common = sorted(s for s in by_seed[0].keys() & by_seed[1].keys() if s is not None)
    if common:
        return [(by_seed[0][s], by_seed[1][s]) for s in common]
    return [(records[0][0], records[1][0])]


def check_same_protocol(df: pd.DataFrame, suite: str, gap: str, gcp: str) -> None:
    """Two paired models must have seen the same images: cells of a ``resolution = "model"`` suite carry
    their protocol (column ``protocol``), cells of the official protocol do not.

    Raises:
        InputError: The two models' cells were computed under different protocols.
    """
    if "protocol" not in df.columns:
        return
    seen = {}
    for model in (gap, gcp):
        cells = df[(df.model == model) & (df.suite == suite)]
        seen[model] = ", ".join(sorted(set(cells.protocol.fillna("official").astype(str))))
    if seen[gap] != seen[gcp]:
        raise InputError(
            f"Suite {suite}: {gap} ({seen[gap]}) and {gcp} ({seen[gcp]}) were evaluated under different protocols, "
            "so they cannot be paired; rerun one of them with --fresh under the other's protocol "
            "(resolution = 224 gives both the official one)."
        )


def verdict(metric: str, delta: float, p: float, alpha: float) -> str:
    """``gcp better`` / ``gap better`` when ``p < alpha`` (direction from ``delta = gcp − gap``), else none."""
    if not np.isfinite(p) or not np.isfinite(delta):
        return ""
    if p >= alpha or delta == 0:
        return VERDICTS[2]
    lower_better = not metric.startswith(HIGHER_IS_BETTER_PREFIXES)
    return VERDICTS[0] if (delta < 0) == lower_better else VERDICTS[1]


def headline_metric(metrics: list[str], row: Mapping[str, Any]) -> str | None:
    present = [m for m in metrics if pd.notna(row.get(f"{m}_delta", np.nan))]
    for m in HEADLINE:
        if m in present:
            return m
    return next((m for m in present if m.startswith("RA@")), None)


def paired(
    df: pd.DataFrame, suites: Mapping[str, Any], *, baseline: str | None = None, evidence: Evidence | None = None,
    cards: Mapping[str, Mapping[str, Any]] | None = None, **_: Any,
) -> pd.DataFrame:
    """GAP vs GCP per (architecture, suite): both values, the GCP − GAP delta, its interval and p-value.

    Columns per metric: ``<m>_gap``, ``<m>_gcp`` (seed means for groups), ``<m>_delta``,
    ``<m>_delta_lo``, ``<m>_delta_hi``, ``<m>_p`` (and ``<m>_verdict`` for the calibration metrics
    :data:`PER_METRIC_VERDICTS`); then ``verdict`` on the headline metric (mCE where
    the suite has corruptions, else clean_err, else robust accuracy) at α = 1 − confidence, the
    ``headline`` metric's name and the ``basis`` of the test.
    """
    from robench.report.estimands import metric_estimates
    from robench.report.tables import overall

    evidence = evidence or Evidence(_no_outcomes)
    board = overall(df, suites, baseline=baseline, evidence=evidence)
    metrics = metric_columns(board)
    boot = evidence.bootstrap
    alpha = 1.0 - boot.confidence
    rows = []
    for (arch, suite), group in board.groupby(["arch", "suite"], sort=True):
        arms = {p: _arm(g, cards) for p, g in group.groupby("pooling")}
        if "gap" not in arms or "gcp" not in arms:
            continue
        pairs = seed_pairs(arms["gap"][1], arms["gcp"][1], cards)
        for a, b in pairs:
            check_same_protocol(df, suite, a["model"], b["model"])
        row: dict[str, Any] = {"arch": arch, "suite": suite, "gap_model": arms["gap"][0],
                               "gcp_model": arms["gcp"][0], "seeds": len(pairs)}
        by_seed = len(pairs) >= MIN_SEEDS_FOR_T
        for m in metrics:
            gap_v = [float(a[m]) for a, _ in pairs]
            gcp_v = [float(b[m]) for _, b in pairs]
            row[f"{m}_gap"], row[f"{m}_gcp"] = float(np.mean(gap_v)), float(np.mean(gcp_v))
            row[f"{m}_delta"] = row[f"{m}_gcp"] - row[f"{m}_gap"]
            lo = hi = p = np.nan
            if by_seed and np.isfinite(np.subtract(gcp_v, gap_v)).any():  # a metric some models lack: blank
                s = paired_t(gap_v, gcp_v, boot.confidence)
                lo, hi, p = s.lo, s.hi, s.p
            else:
                stars = []
                for a, b in pairs:
                    ea = metric_estimates(evidence, df, suites, a["model"], suite, baseline, a).get(m)
                    eb = metric_estimates(evidence, df, suites, b["model"], suite, baseline, b).get(m)
                    stars.append(None if ea is None or eb is None else eb.star - ea.star)
                if stars and all(s is not None for s in stars):
                    delta_star = np.mean(np.stack(stars), axis=0)
                    iv = percentile_interval(delta_star, boot.confidence)
                    lo, hi, p = iv.lo, iv.hi, bootstrap_p(delta_star)
            row[f"{m}_delta_lo"], row[f"{m}_delta_hi"], row[f"{m}_p"] = lo, hi, p
            if m in PER_METRIC_VERDICTS:
                row[f"{m}_verdict"] = verdict(m, row[f"{m}_delta"], p, alpha)
        headline = headline_metric(metrics, row)
        row["verdict"] = "" if headline is None else verdict(
            headline, row[f"{headline}_delta"], row[f"{headline}_p"], alpha)
        row["headline"] = headline or ""
        row["basis"] = (f"seeds: paired t over {len(pairs)} seeds" if by_seed else
                        f"images: paired bootstrap, B = {boot.replicates}, seed = {boot.seed}")
        rows.append(row)
    return pd.DataFrame(rows, columns=None if rows else ["arch", "suite", "gap_model", "gcp_model", "verdict"])


PAIRED_CELL_COLUMNS = ["arch", "suite", "gap_model", "gcp_model", "corruption", "severity", "n", "err_gap", "err_gcp",
                       "delta", "gcp_only_wrong", "gap_only_wrong", "p_exact", "p_mid", "p_holm", "kappa"]


def paired_corruptions_table(
    df: pd.DataFrame, suites: Mapping[str, Any], *, evidence: Evidence | None = None,
    cards: Mapping[str, Mapping[str, Any]] | None = None, **_: Any,
) -> pd.DataFrame:
    """Per (arch, suite, corruption, severity): both errors (%), delta = GCP − GAP, McNemar exact and mid-p,
    the Holm-adjusted mid-p across the suite's corruption cells, and Cohen's κ error consistency.

    Groups are compared through their lowest common seed. Cells without per-image data keep their errors
    from the stored counts and leave the test columns empty.
    """
    evidence = evidence or Evidence(_no_outcomes)
    corr = df[df.kind == "corruption"]
    rows = []
    for (arch, suite), cells in corr.groupby(["arch", "suite"], sort=True):
        models = cells.drop_duplicates("model")
        arms = {p: _arm(g, cards) for p, g in models.groupby("pooling")}
        if "gap" not in arms or "gcp" not in arms:
            continue
        gap, gcp = seed_pairs(arms["gap"][1], arms["gcp"][1], cards)[0]
        gap, gcp = gap["model"], gcp["model"]
        check_same_protocol(df, suite, gap, gcp)
        have = {m: evidence.outcomes(m, suite) for m in (gap, gcp)}
        family = []
        ga = cells[cells.model == gap].set_index(["item", "level"])
        gc = cells[cells.model == gcp].set_index(["item", "level"])
        for item, level in sorted(set(ga.index) & set(gc.index)):
            key = ("corruption", item, int(level))
            row = {"arch": arch, "suite": suite, "gap_model": gap, "gcp_model": gcp,
                   "corruption": item, "severity": int(level), "n": int(ga.loc[(item, level), "n"]),
                   "err_gap": float(ga.loc[(item, level), "err"]), "err_gcp": float(gc.loc[(item, level), "err"])}
            oa, ob = have[gap].get(key), have[gcp].get(key)
            if oa is not None and ob is not None:
                common, ia, ib = np.intersect1d(oa["index"], ob["index"], return_indices=True)
                a, b, c, d = discordance(np.asarray(oa["correct"])[ia], np.asarray(ob["correct"])[ib])
                test = mcnemar(b, c)
                row |= {"n": len(common), "err_gap": 100.0 * (c + d) / len(common),
                        "err_gcp": 100.0 * (b + d) / len(common), "gcp_only_wrong": b, "gap_only_wrong": c,
                        "p_exact": test.p_exact, "p_mid": test.p_mid, "kappa": cohen_kappa(a, b, c, d)}
            row["delta"] = row["err_gcp"] - row["err_gap"]
            family.append(row)
        adjusted = holm([r.get("p_mid", np.nan) for r in family])
        for r, p in zip(family, adjusted):
            r["p_holm"] = p
        rows += family
    out = pd.DataFrame(rows, columns=PAIRED_CELL_COLUMNS)
    return out.astype({"gcp_only_wrong": "Int64", "gap_only_wrong": "Int64"})


def groups_table(
    df: pd.DataFrame, suites: Mapping[str, Any], *, baseline: str | None = None,
    cards: Mapping[str, Mapping[str, Any]] | None = None, evidence: Evidence | None = None, **_: Any,
) -> pd.DataFrame:
    """Per seed group (models whose cards share a ``group``) and suite: each metric's mean and sd over seeds."""
    from robench.report.tables import overall

    board = overall(df, suites, baseline=baseline, evidence=evidence)
    board = board.assign(group=[card_field(cards, m, "group") for m in board.model])
    board = board[board.group.notna()]
    if board.empty:
        return pd.DataFrame(columns=["group", "suite", "arch", "pooling", "seeds", "models"])
    metrics = metric_columns(board.drop(columns="group"))
    rows = []
    for (name, suite), g in board.groupby(["group", "suite"], sort=True):
        row: dict[str, Any] = {"group": name, "suite": suite, "arch": g.arch.iloc[0], "pooling": g.pooling.iloc[0],
                               "seeds": len(g), "models": " ".join(sorted(g.model))}
        for m in metrics:
            values = pd.to_numeric(g[m], errors="coerce").dropna()
            row[f"{m}_mean"] = float(values.mean()) if len(values) else np.nan
            row[f"{m}_sd"] = float(values.std(ddof=1)) if len(values) > 1 else np.nan
        rows.append(row)
    return pd.DataFrame(rows)
