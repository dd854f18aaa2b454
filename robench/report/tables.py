"""Leaderboard tables computed from the store's raw counts.

Overall rows are assembled from *sections* (clean, corruption, …), one per cell kind,
registered in :data:`OVERALL_SECTIONS`; each turns one (model, suite)'s cells into columns.
Table kinds (overall, paired, corruptions, severities, cells) are registered in
:data:`LEADERBOARDS`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from robench._registry import Registry
from robench.corruptions.catalog import RELEASED_CORRUPTIONS
from robench.errors import UnknownNameError
from robench.metrics.corruption import corruption_error, relative_corruption_error
from robench.report.calibration import calibration_columns, reliability_table, severity_columns
from robench.report.comparisons import groups_table, paired, paired_corruptions_table
from robench.report.effective import effective_robustness_table, paired_effective_robustness
from robench.report.estimands import interval_columns, metric_estimates
from robench.report.estimands import suite_baseline as _baseline
from robench.report.evidence import ALL_LEVELS, Estimand, Evidence, store_outcomes
from robench.stats.binomial import wilson
from robench.stats.bootstrap import Bootstrap
from robench.store import Store

log = logging.getLogger(__name__)

RESULT_COLUMNS = ["model", "arch", "pooling", "suite", "kind", "item", "level", "n",
                  "top1_errors", "top5_errors", "err", "err5"]


def _open(store: str | Path | Store) -> tuple[Store, bool]:
    return (store, False) if isinstance(store, Store) else (Store(store, readonly=True), True)


def _in_suite(definition: Mapping[str, Any] | None, kind: str, item: str, level: int) -> bool:
    """Whether a stored cell is part of its suite's latest recorded definition."""
    if not definition or "items" not in definition:
        return True
    return any(k == kind and i == item and level in levels for k, i, levels in definition["items"])


def load_results(store: str | Path | Store, *, indices: bool = False) -> pd.DataFrame:
    """One row per stored cell: identity, raw counts and rates.

    Columns: model, arch, pooling, suite, kind, item, level, n; then the counts of each
    kind — top1_errors, top5_errors, err, err5 (percent) for clean/corruption cells;
    videos, flips, t5d_sum, pairs, fp (percent), t5d for perturbation cells; robust,
    clean_correct, forwards, backwards, eps, robust_acc (percent) for attack cells.

    Args:
        indices: Also return list-valued counts (``robust_idx``: the dataset indices that
            survived an attack), which the worst-case robust accuracy needs.
    """
    st, owned = _open(store)
    try:
        models = st.models()
        suites = st.suites()
        rows = []
        dropped = 0
        for rec in st.cells():
            k = rec.key
            if not _in_suite(suites.get(k.suite), k.kind, k.item, k.level):
                dropped += 1
                continue
            m = models.get(k.model)
            row: dict[str, Any] = {
                "model": k.model, "arch": m.arch if m else "", "pooling": m.pooling if m else "",
                "suite": k.suite, "kind": k.kind, "item": k.item, "level": k.level, "n": rec.n,
            }
            row.update({c: v for c, v in rec.counts.items() if c != "n" and (indices or not isinstance(v, list))})
            row["dataset"] = str(rec.provenance.get("dataset", "")).split(":")[0]
            protocol = rec.provenance.get("protocol")
            if isinstance(protocol, Mapping) and protocol.get("resolution", "official") != "official":
                row["protocol"] = str(protocol.get("key", ""))  # resolution = "model": the models' own sizes
            if k.kind == "attack":
                row["eps"] = suites.get(k.suite, {}).get("attacks", {}).get(k.item, {}).get("eps", [""] * k.level)[
                    k.level - 1
                ]
            rows.append(row)
    finally:
        if owned:
            st.close()
    if dropped:
        log.warning("%d stored cells belong to items no longer in their suite; they are left out of the reports "
                    "(rerun with --fresh or another --out to drop them)", dropped)
    df = pd.DataFrame(rows, columns=None if rows else RESULT_COLUMNS[:8])
    if "top1_errors" in df.columns:
        df["err"] = 100.0 * df["top1_errors"] / df["n"]
        df["err5"] = 100.0 * df["top5_errors"] / df["n"]
    if "pairs" in df.columns:
        df["fp"] = 100.0 * df["flips"] / df["pairs"]
        df["t5d"] = df["t5d_sum"] / df["pairs"]
    if "robust" in df.columns:
        df["robust_acc"] = 100.0 * df["robust"] / df["n"]
    first = [c for c in RESULT_COLUMNS if c in df.columns]
    return df[first + [c for c in df.columns if c not in first]].reset_index(drop=True)


# ---- overall sections -----------------------------------------------------------------------------------

Section = Callable[[pd.DataFrame, Mapping[str, Any], "pd.DataFrame | None"], dict[str, float]]
"""``section(cells, suite definition, baseline model's cells or None) -> columns``."""
OVERALL_SECTIONS: Registry[Section] = Registry("leaderboard section")


def _clean_error(cells: pd.DataFrame) -> float | None:
    clean = cells[cells.kind == "clean"]
    return float(clean.err.iloc[0]) if len(clean) else None


def corruption_errors(cells: pd.DataFrame, names: list[str]) -> dict[str, list[float]]:
    """corruption → per-severity error fractions (severity order) for the named corruptions."""
    corr = cells[(cells.kind == "corruption") & cells.item.isin(names)]
    return {c: (g.sort_values("level").err / 100.0).tolist() for c, g in corr.groupby("item", sort=True)}


@OVERALL_SECTIONS.register("data")
def _data_section(cells: pd.DataFrame, definition: Mapping[str, Any], ref: pd.DataFrame | None) -> dict[str, int]:
    """Unreadable images skipped under ``--on-bad-image skip`` (the most in any cell); absent when none."""
    if "skipped" not in cells.columns or not (cells.skipped.fillna(0) > 0).any():
        return {}
    return {"skipped": int(cells.skipped.max())}


@OVERALL_SECTIONS.register("clean")
def _clean_section(cells: pd.DataFrame, definition: Mapping[str, Any], ref: pd.DataFrame | None) -> dict[str, float]:
    clean = cells[cells.kind == "clean"]
    if clean.empty:
        return {}
    return {"clean_err": float(clean.err.iloc[0]), "clean_err5": float(clean.err5.iloc[0])}


@OVERALL_SECTIONS.register("corruption")
def _corruption_section(
    cells: pd.DataFrame, definition: Mapping[str, Any], ref: pd.DataFrame | None
) -> dict[str, float]:
    errors = corruption_errors(cells, list(definition.get("test_corruptions", [])))
    if not errors:
        return {}
    base = _baseline(definition)
    row: dict[str, float] = {}
    if base is not None and all(c in base.errors and len(e) == len(base.errors[c]) for c, e in errors.items()):
        row["mCE"] = sum(corruption_error(e, base.errors[c]) for c, e in errors.items()) / len(errors)
        clean = _clean_error(cells)
        if base.clean_error is not None and clean is not None:
            row["rel_mCE"] = sum(
                relative_corruption_error(e, clean / 100.0, base.errors[c], base.clean_error)
                for c, e in errors.items()
            ) / len(errors)
    else:
        # No baseline: mCE is the unnormalised mean top-1 error over corruptions and severities (percent).
        row["mCE"] = 100.0 * sum(sum(e) / len(e) for e in errors.values()) / len(errors)
    row["corruptions"] = len(errors)
    return row


def perturbation_rates(cells: pd.DataFrame, names: list[str], difficulty: int = 1) -> pd.DataFrame:
    """Per perturbation (index): flip probability ``fp`` (fraction) and top-5 distance ``t5d``."""
    p = cells[(cells.kind == "perturbation") & cells.item.isin(names) & (cells.level == difficulty)]
    rates = p.groupby("item", sort=True)[["flips", "t5d_sum", "pairs"]].sum()
    return pd.DataFrame({"fp": rates.flips / rates.pairs, "t5d": rates.t5d_sum / rates.pairs})


@OVERALL_SECTIONS.register("perturbation")
def _perturbation_section(
    cells: pd.DataFrame, definition: Mapping[str, Any], ref: pd.DataFrame | None
) -> dict[str, float]:
    """Raw mean FP (%) and T5D over the test perturbations (difficulty 1); with a baseline model in
    the store, mFR and mT5D (%) as Hendrycks: per-perturbation ratios to the baseline, averaged."""
    names = list(definition.get("test_perturbations", []))
    if "pairs" not in cells.columns or not names:
        return {}
    rates = perturbation_rates(cells, names)
    if rates.empty:
        return {}
    row = {"FP": 100.0 * float(rates.fp.mean()), "T5D": float(rates.t5d.mean()), "perturbations": len(rates)}
    if ref is not None and "pairs" in ref.columns:
        base = perturbation_rates(ref, names).reindex(rates.index)
        if base.notna().all().all():
            # A baseline with zero flips leaves the ratio undefined: NaN, never inf or silently skipped.
            ratios = (rates / base).replace([math.inf, -math.inf], math.nan)
            row["mFR"] = 100.0 * float(ratios.fp.mean(skipna=False))
            row["mT5D"] = 100.0 * float(ratios.t5d.mean(skipna=False))
    return row


@OVERALL_SECTIONS.register("attack")
def _attack_section(cells: pd.DataFrame, definition: Mapping[str, Any], ref: pd.DataFrame | None) -> dict[str, Any]:
    """Worst-case robust accuracy (%) per eps over the suite's attacks, and gradient-masking warnings."""
    from robench.attacks import AttackResult, Norm, clean_accuracy_errors, masking_warnings, parse_eps

    att = cells[cells.kind == "attack"]
    if att.empty:
        return {}
    attacks = definition.get("attacks", {})
    row: dict[str, Any] = {}
    results = [
        AttackResult.of(r.item, parse_eps(r.eps), r.robust_acc / 100, **attacks.get(r.item, {}).get("settings", {}))
        for r in att.itertuples()
    ]
    if definition.get("attack_cascade"):
        # Cascaded cells hold cumulative robust accuracies: comparing attacks with each other says nothing,
        # only the checks against clean accuracy and along eps apply (kind None).
        results = [dataclasses.replace(r, kind=None) for r in results]
    if "robust_idx" in att.columns:
        for eps_text, group in att.groupby("eps", sort=False):
            survivors = set.intersection(*(set(v) for v in group.robust_idx))
            worst = 100.0 * len(survivors) / int(group.n.iloc[0])
            row[f"RA@{eps_text}"] = worst
            norm = Norm(attacks.get(group.item.iloc[0], {}).get("norm", "linf"))
            results.append(AttackResult("worst-case", parse_eps(eps_text), worst / 100, norm))
    issues = masking_warnings(results, clean_accuracy=float((att.clean_correct / att.n).mean()), tolerance=0.005)
    clean = cells[cells.kind == "clean"]
    if len(clean) and int(clean.n.iloc[0]) == int(att.n.iloc[0]):
        paths = {f"{r.item}@{r.eps}": r.clean_correct / r.n for r in att.itertuples()}
        issues = clean_accuracy_errors(1 - float(clean.err.iloc[0]) / 100, paths, tolerance=1e-9) + issues
    row["warnings"] = "; ".join(issues)
    return row


OVERALL_COLUMNS = ["model", "arch", "pooling", "suite", "n", "skipped", "clean_err", "clean_err5", "ECE", "NLL",
                   "Brier", "mCE", "rel_mCE", "mECE", "mNLL", "mBrier", "corruptions", "FP", "mFR", "T5D", "mT5D",
                   "perturbations"]


def overall(
    df: pd.DataFrame, suites: Mapping[str, Any], *, baseline: str | None = None, evidence: Evidence | None = None,
    **_: Any,
) -> pd.DataFrame:
    """One row per (model, suite) with every section's aggregates and, per metric, its 95 % interval.

    Args:
        baseline: A model in the store whose results normalise FP and T5D (mFR, mT5D), e.g.
            torchvision AlexNet evaluated on the same suite.
        evidence: Per-image outcomes for the bootstrap intervals (``<metric>_lo`` / ``_hi``); without it
            only the Wilson intervals of the clean errors are filled.
    """
    if baseline is not None and not (df.model == baseline).any():
        raise UnknownNameError(
            f"Baseline model {baseline!r} has no results in this store; evaluate it on the same suite first "
            f"(stored models: {', '.join(sorted(df.model.unique())) or 'none'})."
        )
    evidence = evidence or Evidence(lambda model, suite: {})
    rows = []
    for (model, suite), cells in df.groupby(["model", "suite"], sort=True):
        row: dict[str, Any] = {"model": model, "arch": cells.arch.iloc[0], "pooling": cells.pooling.iloc[0],
                               "suite": suite, "n": int(cells.n.max())}
        ref = None if baseline is None else df[(df.model == baseline) & (df.suite == suite)]
        for _, section in OVERALL_SECTIONS.items():
            row.update(section(cells, suites.get(suite, {}), None if ref is None or ref.empty else ref))
        row.update(calibration_columns(evidence.outcomes(model, suite), cells, suites.get(suite, {})))
        estimates = metric_estimates(evidence, df, suites, model, suite, baseline, row)
        row.update(interval_columns(row, cells, estimates, evidence.bootstrap.confidence))
        rows.append(row)
    out = pd.DataFrame(rows)
    if out.empty:
        return pd.DataFrame(columns=OVERALL_COLUMNS[:6])
    order = [c for c in OVERALL_COLUMNS if c in out.columns] + [
        c for c in out.columns if c not in OVERALL_COLUMNS and not c.endswith(("_lo", "_hi"))]
    return out[[x for c in order for x in (c, f"{c}_lo", f"{c}_hi") if x in out.columns]]


def _with_intervals(
    rows: list[dict[str, Any]], df: pd.DataFrame, evidence: Evidence | None,
    estimands: list[tuple[int, str, Estimand]],
) -> None:
    """Fill ``<metric>_lo`` / ``_hi`` of ``rows[i]`` from ``(i, metric, estimand)``, resampling each suite once."""
    evidence = evidence or Evidence(lambda model, suite: {})
    by_suite: dict[str, list[tuple[int, str, Estimand]]] = {}
    for i, metric, est in estimands:
        by_suite.setdefault(rows[i]["suite"], []).append((i, metric, est))
    for suite, todo in by_suite.items():
        sample = evidence.sample(df, suite)
        evidence.prepare(sample, [e for _, _, e in todo])
        for i, metric, est in todo:
            found = evidence.estimate(sample, est, float(rows[i][metric]))
            rows[i][f"{metric}_lo"] = found.interval.lo if found else math.nan
            rows[i][f"{metric}_hi"] = found.interval.hi if found else math.nan


def perturbations_table(
    df: pd.DataFrame, suites: Mapping[str, Any], *, evidence: Evidence | None = None, **_: Any
) -> pd.DataFrame:
    """Per model, perturbation and difficulty: flip probability (%) and top-5 distance, with intervals."""
    p = df[df.kind == "perturbation"]
    if p.empty or "fp" not in p.columns:
        return pd.DataFrame(columns=["model", "pooling", "suite", "perturbation", "difficulty", "FP", "T5D"])
    rows, todo = [], []
    for r in p.itertuples(index=False):
        rows.append({"model": r.model, "pooling": r.pooling, "suite": r.suite, "perturbation": r.item,
                     "difficulty": r.level, "FP": r.fp, "T5D": r.t5d})
        for metric, measure, scale in (("FP", "fp", 100.0), ("T5D", "t5d", 1.0)):
            key = (r.model, "perturbation", r.item, int(r.level), measure)
            todo.append((len(rows) - 1, metric, Estimand((key,), (1.0,), scale=scale)))
    _with_intervals(rows, df, evidence, todo)
    out = pd.DataFrame(rows)
    return out[["model", "pooling", "suite", "perturbation", "difficulty", "FP", "FP_lo", "FP_hi", "T5D", "T5D_lo",
                "T5D_hi"]]


def attacks_table(
    df: pd.DataFrame, suites: Mapping[str, Any], *, evidence: Evidence | None = None, **_: Any
) -> pd.DataFrame:
    """Per model, attack and eps: robust accuracy (%) with its Wilson interval, forward/backward passes per image."""
    a = df[df.kind == "attack"]
    if a.empty or "robust" not in a.columns:
        return pd.DataFrame(columns=["model", "pooling", "suite", "attack", "eps", "robust_acc"])
    out = a[["model", "pooling", "suite", "item", "eps", "robust_acc"]].rename(columns={"item": "attack"})
    lo, hi = wilson(a.robust.to_numpy(), a.n.to_numpy(), evidence.bootstrap.confidence if evidence else 0.95)
    out = out.assign(robust_acc_lo=100.0 * lo, robust_acc_hi=100.0 * hi)
    out = out.assign(fwd_per_img=a.forwards / a.n, bwd_per_img=a.backwards / a.n,
                     cascade_gain=_cascade_gains(a, suites))
    return out.reset_index(drop=True)


def _cascade_gains(a: pd.DataFrame, suites: Mapping[str, Any]) -> pd.Series:
    """Per cell of a cascaded suite (:mod:`robench.attacks.cascade`), the attack's marginal gain: points of
    robust accuracy it removed after the cells before it in cascade order (the first: after clean accuracy).
    NaN for suites evaluated with ``cascade = false``, whose cells hold per-attack robust accuracies."""
    from robench.attacks import parse_eps

    gains = pd.Series(math.nan, index=a.index)
    for (_, suite), cells in a.groupby(["model", "suite"], sort=False):
        definition = suites.get(suite, {})
        if not definition.get("attack_cascade"):
            continue
        order = [name for kind, name, _ in definition.get("items", []) if kind == "attack"]  # suite order
        ranked = cells.assign(_eps=cells.eps.map(parse_eps), _pos=cells.item.map(order.index))
        ranked = ranked.sort_values(["_eps", "_pos"], kind="stable")
        before = 100.0 * ranked.clean_correct.iloc[0] / ranked.n.iloc[0]
        for idx, acc in zip(ranked.index, ranked.robust_acc):
            gains[idx] = before - acc
            before = acc
    return gains


def corruptions_table(
    df: pd.DataFrame, suites: Mapping[str, Any], *, evidence: Evidence | None = None, **_: Any
) -> pd.DataFrame:
    """Per model and corruption: mean error over severities and, with a baseline, the CE (percent), each with
    its image-bootstrap interval."""
    rows, todo = [], []
    for (model, suite), cells in df[df.kind == "corruption"].groupby(["model", "suite"], sort=True):
        base = _baseline(suites.get(suite, {}))
        for corruption, errs in corruption_errors(cells, sorted(cells.item.unique())).items():
            row = {"model": model, "pooling": cells.pooling.iloc[0], "suite": suite, "corruption": corruption,
                   "err": 100.0 * sum(errs) / len(errs)}
            key = ((model, "corruption", corruption, ALL_LEVELS, "err"),)
            rows.append(row)
            todo.append((len(rows) - 1, "err", Estimand(key, (1.0 / len(errs),))))
            if base is not None and corruption in base.errors and len(errs) == len(base.errors[corruption]):
                row["CE"] = corruption_error(errs, base.errors[corruption])
                todo.append((len(rows) - 1, "CE", Estimand(key, (1.0 / sum(base.errors[corruption]),))))
    _with_intervals(rows, df, evidence, todo)
    if not rows:
        return pd.DataFrame(columns=["model", "pooling", "suite", "corruption", "err"])
    out = pd.DataFrame(rows)
    first = ["model", "pooling", "suite", "corruption", "err", "err_lo", "err_hi"]
    return out[first + [c for c in ("CE", "CE_lo", "CE_hi") if c in out.columns]]


def severities_table(
    df: pd.DataFrame, suites: Mapping[str, Any], *, evidence: Evidence | None = None, **_: Any
) -> pd.DataFrame:
    """Per model, corruption and severity: the top-1 error (percent), severities as columns ``s<k>``; then,
    where the cells have calibration terms, ``ECE_s<k>`` (%), ``NLL_s<k>`` and ``Brier_s<k>``."""
    corr = df[df.kind == "corruption"]
    if corr.empty:
        return pd.DataFrame(columns=["model", "suite", "corruption"])
    wide = corr.pivot_table(index=["model", "suite", "item"], columns="level", values="err", aggfunc="first")
    wide.columns = [f"s{c}" for c in wide.columns]
    wide = wide.reset_index().rename(columns={"item": "corruption"})
    calibration = severity_columns(evidence, df)
    if len(calibration.columns) > 3:
        wide = wide.merge(calibration, on=["model", "suite", "corruption"], how="left")
    return wide


def cells_table(df: pd.DataFrame, suites: Mapping[str, Any], **_: Any) -> pd.DataFrame:
    return df



# Published card numbers (ImageNet-C/P, in %) and the leaderboard column each one is compared with.
PUBLISHED_METRICS = {"mce": "mCE", "relative_mce": "rel_mCE", "mfr": "mFR", "mt5d": "mT5D"}


def published_table(
    df: pd.DataFrame, suites: Mapping[str, Any], *, baseline: str | None = None,
    cards: Mapping[str, Mapping[str, Any]] | None = None, **_: Any,
) -> pd.DataFrame:
    """Measured values beside the numbers published on the model cards, with the difference.

    Clean error is compared with the card's accuracy on the same evaluation set (matched by
    dataset name, e.g. ``fashion-mnist-test-2k``; ``imagenet-val`` for ImageNet suites);
    mCE / relative mCE / mFR / mT5D only on suites with ImageNet parameters.
    """
    board = overall(df, suites, baseline=baseline)
    rows = []
    for r in board.itertuples(index=False):
        card = (cards or {}).get(r.model) or {}
        param_set = suites.get(r.suite, {}).get("param_set", "")
        datasets = df[(df.model == r.model) & (df.suite == r.suite)].dataset.unique()
        accuracy = card.get("accuracy") or {}
        # A generic image folder on an ImageNet suite is taken to be val; a named dataset (ImageNet-A, …) only
        # matches a card accuracy of its own name.
        val = param_set == "imagenet" and set(datasets) <= {"imagefolder"}
        keys = [d for d in datasets if d in accuracy] or (["imagenet-val"] if val else [])
        published: dict[str, float] = {}
        if keys and keys[0] in accuracy:
            published["clean_err"] = 100.0 - float(accuracy[keys[0]])
        pub = card.get("published") or {}
        # The cards' mCE is ImageNet-C's: not comparable with an mCE over released-only corruptions (3DCC).
        other_mce = any(c in RELEASED_CORRUPTIONS for c in suites.get(r.suite, {}).get("test_corruptions", []))
        if param_set == "imagenet":
            published |= {col: float(pub[key]) for key, col in PUBLISHED_METRICS.items()
                          if pub.get(key) is not None and not (other_mce and col in ("mCE", "rel_mCE"))}
        for metric, value in published.items():
            measured = getattr(r, metric, math.nan) if metric in board.columns else math.nan
            rows.append({"model": r.model, "suite": r.suite, "metric": metric, "measured": measured,
                         "published": value, "difference": measured - value,
                         "source": keys[0] if metric == "clean_err" else pub.get("reference", "")})
    return pd.DataFrame(rows, columns=["model", "suite", "metric", "measured", "published", "difference", "source"])


LEADERBOARDS: Registry[Callable[..., pd.DataFrame]] = Registry("leaderboard kind")
LEADERBOARDS.add("overall", overall)
LEADERBOARDS.add("paired", paired)
LEADERBOARDS.add("corruptions", corruptions_table)
LEADERBOARDS.add("perturbations", perturbations_table)
LEADERBOARDS.add("attacks", attacks_table)
LEADERBOARDS.add("published", published_table)
LEADERBOARDS.add("severities", severities_table)
LEADERBOARDS.add("cells", cells_table)
LEADERBOARDS.add("paired_corruptions", paired_corruptions_table)
LEADERBOARDS.add("groups", groups_table)
LEADERBOARDS.add("reliability", reliability_table)
LEADERBOARDS.add("effective_robustness", effective_robustness_table)
LEADERBOARDS.add("paired_effective_robustness", paired_effective_robustness)


def leaderboard(
    store: str | Path | Store, kind: str = "overall", *, baseline: str | None = None,
    bootstrap: Bootstrap | None = None, evidence: Evidence | None = None,
) -> pd.DataFrame:
    """A leaderboard DataFrame computed from the store's counts, with intervals from its per-image outcomes.

    Args:
        store: Path of a result store (or an open :class:`Store`).
        kind: A name registered in :data:`LEADERBOARDS`: ``overall`` (a row per model and suite),
            ``paired`` (GAP vs GCP per architecture), ``paired_corruptions``, ``groups``, ``corruptions``,
            ``severities``, ``perturbations``, ``attacks``, ``published``, ``reliability``,
            ``effective_robustness``, ``paired_effective_robustness`` or ``cells``.
        baseline: Model in the store that normalises FP / T5D into mFR / mT5D.
        bootstrap: Replicates, seed and level of the intervals (default: 2,000, seed 0, 95 %).
        evidence: Reuse the per-image outcomes and replicates of an earlier call on the same open store.
    """
    render = LEADERBOARDS.get(kind)
    st, owned = _open(store)
    try:
        cards = {name: rec.card for name, rec in st.models().items()}
        df = load_results(st, indices=kind in ("overall", "paired", "published", "groups"))
        evidence = evidence or Evidence(store_outcomes(st), bootstrap or Bootstrap())
        return render(df, st.suites(), baseline=baseline, cards=cards, evidence=evidence)
    finally:
        if owned:
            st.close()
