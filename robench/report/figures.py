"""Figures (matplotlib, PNG + SVG) with a colour-blind-safe palette (Okabe & Ito)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from robench._registry import Registry
from robench.corruptions import CORRUPTIONS

OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
STYLE = {"svg.hashsalt": "robench", "font.size": 9, "axes.spines.top": False, "axes.spines.right": False}

FigureMaker = Callable[[pd.DataFrame, Mapping[str, pd.DataFrame]], Figure | None]
FIGURES: Registry[FigureMaker] = Registry("figure")


def _colours(models: list[str]) -> dict[str, str]:
    return {m: OKABE_ITO[i % len(OKABE_ITO)] for i, m in enumerate(models)}


def _yerr(table: pd.DataFrame, value: str) -> list[list[float]] | None:
    """Asymmetric error bars ``[value − lo, hi − value]`` from ``<value>_lo`` / ``_hi`` (None when absent)."""
    lo, hi = f"{value}_lo", f"{value}_hi"
    if lo not in table.columns or hi not in table.columns or table[[lo, hi]].isna().all().all():
        return None
    return [(table[value] - table[lo]).fillna(0.0).clip(lower=0).tolist(),
            (table[hi] - table[value]).fillna(0.0).clip(lower=0).tolist()]


ERROR_BARS = {"elinewidth": 0.8, "capsize": 2, "ecolor": "#333333"}


def _label(df: pd.DataFrame, model: str) -> str:
    pooling = df.loc[df.model == model, "pooling"]
    return f"{model} ({pooling.iloc[0].upper()})" if len(pooling) and pooling.iloc[0] else model


@FIGURES.register("corruption_bars")
def corruption_bars(cells: pd.DataFrame, boards: Mapping[str, pd.DataFrame]) -> Figure | None:
    """Per-corruption error (mean over severities; CE when the suite has a baseline), models side by side,
    with 95 % image-bootstrap error bars."""
    table = boards["corruptions"]
    if table.empty:
        return None
    value = "CE" if "CE" in table.columns and table["CE"].notna().all() else "err"
    suites = sorted(table.suite.unique())
    fig, axes = plt.subplots(len(suites), 1, figsize=(9, 3.2 * len(suites)), squeeze=False)
    for ax, suite in zip(axes[:, 0], suites):
        t = table[table.suite == suite]
        models = sorted(t.model.unique())
        names = sorted(t.corruption.unique())
        width = 0.8 / len(models)
        colours = _colours(models)
        for k, m in enumerate(models):
            mine = t[t.model == m].set_index("corruption").reindex(names)
            xs = [i + (k - (len(models) - 1) / 2) * width for i in range(len(names))]
            ax.bar(xs, mine[value].values, width, label=_label(t, m), color=colours[m],
                   yerr=_yerr(mine, value), error_kw=ERROR_BARS)
        ax.set_xticks(range(len(names)), [n.replace("_", " ") for n in names], rotation=30, ha="right")
        ax.set_ylabel("corruption error CE (%)" if value == "CE" else "top-1 error, mean over severities (%)")
        ax.set_title(f"{suite}: error per corruption")
        ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


@FIGURES.register("severity_families")
def severity_families(cells: pd.DataFrame, boards: Mapping[str, pd.DataFrame]) -> Figure | None:
    """Top-1 error vs severity, averaged over the corruptions of each family, one line per model."""
    corr = cells[cells.kind == "corruption"].copy()
    if corr.empty:
        return None
    corr["family"] = [CORRUPTIONS.get(c).family.value if c in CORRUPTIONS else "other" for c in corr.item]
    families = sorted(corr.family.unique())
    models = sorted(corr.model.unique())
    colours = _colours(models)
    fig, axes = plt.subplots(1, len(families), figsize=(3.0 * len(families) + 1, 3.0), squeeze=False, sharey=True)
    for ax, fam in zip(axes[0], families):
        sub = corr[corr.family == fam]
        for m in models:
            curve = sub[sub.model == m].groupby("level").err.mean()
            ax.plot(curve.index, curve.values, marker="o", label=_label(corr, m), color=colours[m])
        ax.set_title(fam)
        ax.set_xlabel("severity")
        ax.set_xticks(sorted(sub.level.unique()))
    axes[0, 0].set_ylabel("top-1 error (%)")
    axes[0, -1].legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


@FIGURES.register("flip_probability")
def flip_probability_bars(cells: pd.DataFrame, boards: Mapping[str, pd.DataFrame]) -> Figure | None:
    """Flip probability per perturbation (difficulty 1), models side by side, with 95 % bootstrap error bars."""
    table = boards.get("perturbations")
    if table is None or table.empty:
        return None
    table = table[table.difficulty == 1]
    models = sorted(table.model.unique())
    names = sorted(table.perturbation.unique())
    colours = _colours(models)
    width = 0.8 / len(models)
    fig, ax = plt.subplots(figsize=(9, 3.4))
    for k, m in enumerate(models):
        mine = table[table.model == m].drop_duplicates("perturbation").set_index("perturbation").reindex(names)
        xs = [i + (k - (len(models) - 1) / 2) * width for i in range(len(names))]
        ax.bar(xs, mine.FP.values, width, label=_label(table, m), color=colours[m], yerr=_yerr(mine, "FP"),
               error_kw=ERROR_BARS)
    ax.set_xticks(range(len(names)), [n.replace("_", " ") for n in names], rotation=30, ha="right")
    ax.set_ylabel("flip probability (%)")
    ax.set_title("Flip probability per perturbation (difficulty 1)")
    ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


@FIGURES.register("robust_accuracy")
def robust_accuracy_curves(cells: pd.DataFrame, boards: Mapping[str, pd.DataFrame]) -> Figure | None:
    """Robust accuracy vs eps: the per-image worst case (solid) and each attack (thin), per model."""
    table = boards.get("attacks")
    overall = boards.get("overall")
    if table is None or table.empty:
        return None
    from robench.attacks import parse_eps

    models = sorted(table.model.unique())
    colours = _colours(models)
    # Linf budgets read best in 1/255 steps; L2 budgets are shown as they are.
    scale = 255.0 if table.eps.map(parse_eps).max() < 0.1 else 1.0
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for m in models:
        mine = table[table.model == m].assign(eps_value=lambda t: t.eps.map(parse_eps))
        for _, attack in mine.groupby("attack"):
            attack = attack.sort_values("eps_value")
            ax.plot(attack.eps_value * scale, attack.robust_acc, color=colours[m], lw=0.8, alpha=0.45)
        if overall is not None and not overall.empty:
            row = overall[overall.model == m].iloc[0]
            cols = sorted((parse_eps(c[3:]), c) for c in overall.columns
                          if c.startswith("RA@") and not c.endswith(("_lo", "_hi")))
            values = [row[c] for _, c in cols]
            bounds = [(row.get(f"{c}_lo", math.nan), row.get(f"{c}_hi", math.nan)) for _, c in cols]
            yerr = None if all(pd.isna(lo) for lo, _ in bounds) else [
                [max(0.0, v - lo) if pd.notna(lo) else 0.0 for v, (lo, _) in zip(values, bounds)],
                [max(0.0, hi - v) if pd.notna(hi) else 0.0 for v, (_, hi) in zip(values, bounds)]]
            ax.errorbar([e * scale for e, _ in cols], values, yerr=yerr, marker="o", color=colours[m],
                        label=f"{_label(table, m)} worst case", elinewidth=0.8, capsize=2)
    ax.set_xlabel("eps (× 1/255)" if scale == 255.0 else "eps")
    ax.set_ylabel("robust accuracy (%)")
    ax.set_title("Robust accuracy vs eps (thin lines: single attacks)")
    ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


@FIGURES.register("reliability")
def reliability_diagram(cells: pd.DataFrame, boards: Mapping[str, pd.DataFrame]) -> Figure | None:
    """Accuracy vs mean confidence per confidence bin (15 equal-width bins), clean vs the most severe
    corruption level (its cells pooled); one panel per model and suite, ECE in the legend, marker area
    growing with the bin's share of the images."""
    table = boards.get("reliability")
    if table is None or table.empty:
        return None
    panels = sorted({(r.suite, r.model) for r in table.itertuples(index=False)})
    cols = min(len(panels), 3)
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 3.3 * rows), squeeze=False)
    styles = {0: (OKABE_ITO[0], "o", "-"), 1: (OKABE_ITO[5], "s", "--")}
    for ax, (suite, model) in zip(axes.flat, panels):
        mine = table[(table.suite == suite) & (table.model == model)]
        ax.plot([0, 1], [0, 1], color="#999999", lw=0.8, ls=":", label="perfect calibration")
        for k, (condition, g) in enumerate(mine.groupby("condition", sort=False)):
            g = g[g.n > 0]
            colour, marker, line = styles[k % 2]
            ax.plot(g.confidence, g.accuracy / 100.0, ls=line, color=colour, lw=1.0,
                    label=f"{condition} (ECE {g.ECE.iloc[0]:.2f} %)")
            # marker area ∝ the bin's share of the images: nearly empty bins do not look like evidence
            ax.scatter(g.confidence, g.accuracy / 100.0, s=4 + 120 * (g.n / g.n.sum()) ** 0.5, marker=marker,
                       color=colour, zorder=3)
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("mean confidence in bin")
        ax.set_ylabel("accuracy in bin")
        ax.set_title(f"{suite}: {_label(mine, model)}", fontsize=9)
        ax.legend(frameon=False, fontsize=7, loc="upper left")
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def _logit_ticks(ax: plt.Axes, low: float, high: float, axis: str) -> None:
    """Percent tick labels (about five, at round values) on a logit-scaled axis spanning ``low``–``high``."""
    from matplotlib.ticker import MaxNLocator

    from robench.metrics.effective_robustness import logit

    ticks = [t for t in MaxNLocator(5).tick_values(100 * low, 100 * high)
             if 100 * low <= t <= 100 * high and 0 < t < 100]
    where = [float(logit(t / 100)) for t in ticks]
    (ax.set_xticks if axis == "x" else ax.set_yticks)(where, [f"{t:g}" for t in ticks])


@FIGURES.register("accuracy_on_the_line")
def accuracy_on_the_line(cells: pd.DataFrame, boards: Mapping[str, pd.DataFrame]) -> Figure | None:
    """Shifted vs clean accuracy in logit coordinates (tick labels in %), one panel per shift: the models,
    the line (published or fitted), y = x, and each architecture's GAP and GCP points joined."""
    import numpy as np

    from robench.metrics.effective_robustness import clip_accuracy, logit

    table = boards.get("effective_robustness")
    if table is None or table.empty:
        return None
    shifts = sorted(table["shift"].unique())
    fig, axes = plt.subplots(1, len(shifts), figsize=(4.2 * len(shifts), 3.8), squeeze=False)
    colours = {"gap": OKABE_ITO[0], "gcp": OKABE_ITO[5]}
    for ax, shift in zip(axes[0], shifts):
        t = table[table["shift"] == shift]
        x = clip_accuracy(t.acc_clean / 100.0, 10**6)
        y = clip_accuracy(t.acc_shift / 100.0, 10**6)
        lo = float(min(x.min(), y.min()))
        hi = float(max(x.max(), y.max()))
        pad = 0.15 * (float(logit(hi)) - float(logit(lo))) + 0.05
        grid = np.linspace(float(logit(lo)) - pad, float(logit(hi)) + pad, 50)
        ax.plot(grid, grid, color="#999999", lw=0.8, ls=":", label="y = x")
        if t.slope.notna().any():
            s, b = float(t.slope.iloc[0]), float(t.intercept.iloc[0])
            source = str(t.line.iloc[0])
            label = "published line" if source.startswith("published") else source.replace("fitted", "line fitted")
            ax.plot(grid, s * grid + b, color="#333333", lw=1.0, label=label)
        for _, g in t[t.pair != ""].groupby("pair", sort=True):
            ax.plot(logit(clip_accuracy(g.acc_clean / 100.0, 10**6)),
                    logit(clip_accuracy(g.acc_shift / 100.0, 10**6)), color="#777777", lw=0.8)
        for pooling, g in t.groupby("pooling", sort=True):
            ax.scatter(logit(clip_accuracy(g.acc_clean / 100.0, 10**6)),
                       logit(clip_accuracy(g.acc_shift / 100.0, 10**6)),
                       color=colours.get(pooling, OKABE_ITO[2]), s=18, zorder=3, label=pooling.upper() or "other")
        low, high = float(1 / (1 + np.exp(-grid[0]))), float(1 / (1 + np.exp(-grid[-1])))
        _logit_ticks(ax, low, high, "x")
        _logit_ticks(ax, low, high, "y")
        ax.set_xlim(grid[0], grid[-1])
        ax.set_ylim(grid[0], grid[-1])
        ax.set_xlabel(f"clean accuracy, {t.x.iloc[0]} (%)")
        ax.set_ylabel("shifted accuracy (%)")
        ax.set_title(shift, fontsize=9)
        ax.legend(frameon=False, fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def write_figures(cells: pd.DataFrame, boards: Mapping[str, pd.DataFrame], folder: Path) -> list[tuple[Path, Path]]:
    """Render every registered figure that has data; returns (png, svg) paths."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    with plt.rc_context(STYLE):
        for name, make in FIGURES.items():
            fig = make(cells, boards)
            if fig is None:
                continue
            png, svg = folder / f"{name}.png", folder / f"{name}.svg"
            fig.savefig(png, dpi=120, metadata={"Software": None})
            fig.savefig(svg, metadata={"Date": None, "Creator": None})
            plt.close(fig)
            written.append((png, svg))
    return written
