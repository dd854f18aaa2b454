"""Figures of a landscape report, registered by name (matplotlib, Agg): GAP red, GCP blue as in the paper."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from robench._registry import Registry
from robench.landscape.tables import Tables
from robench.report.figures import STYLE

POOL_COLOURS = {"gap": "#D55E00", "gcp": "#0072B2"}
"""Okabe–Ito vermillion and blue: the paper's red GAP / blue GCP, colour-blind safe."""
OTHER = "#555555"

FigureMaker = Callable[[Tables], Figure | None]
FIGURES: Registry[FigureMaker] = Registry("landscape figure")


def _colour(pool: str) -> str:
    return POOL_COLOURS.get(pool, OTHER)


def _band(ax: Axes, steps: pd.Series, lo: pd.Series, hi: pd.Series, colour: str, label: str) -> None:
    if len(steps) > 1:
        ax.fill_between(steps, lo, hi, color=colour, alpha=0.4, lw=0, label=label)
    else:  # one probe (a checkpoint): a vertical min–max bar
        ax.errorbar(steps, (lo + hi) / 2, yerr=(hi - lo) / 2, fmt="none", ecolor=colour, elinewidth=6, alpha=0.6,
                    label=label)


def _legend(ax: Axes) -> None:
    handles, labels = ax.get_legend_handles_labels()
    seen = dict(zip(labels, handles))
    ax.legend(seen.values(), seen.keys(), frameon=False, fontsize=8)


@FIGURES.register("landscape_bands")
def landscape_bands(t: Tables) -> Figure | None:
    """Loss landscape and gradient predictiveness: min–max over the step grid at every probe step."""
    if t.probes.empty:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for model, p in t.probes.groupby("model", sort=False):
        p = p.sort_values("step")
        pool = p.pooling.iloc[0]
        label = pool.upper() if t.probes.seed.nunique() > 1 else f"{model} ({pool.upper()})"
        _band(axes[0], p.step, p.loss_min, p.loss_max, _colour(pool), label)
        _band(axes[1], p.step, p.grad_diff_min, p.grad_diff_max, _colour(pool), label)
    axes[0].set_title("Loss landscape: L(y + η·g) over the step grid")
    axes[1].set_title("Gradient predictiveness: ‖∇L(y + η·g) − g‖")
    for ax in axes:
        ax.set_xlabel("training step" if t.probes.lr.notna().any() else "minibatch")
        _legend(ax)
    axes[0].set_ylabel("loss")
    axes[1].set_ylabel("gradient change (Frobenius)")
    fig.tight_layout()
    return fig


@FIGURES.register("beta_eff")
def beta_eff(t: Tables) -> Figure | None:
    """Effective β-smoothness max_k d_k/(η_k‖g‖) and ‖g‖ at every probe step."""
    if t.probes.empty:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    for _, p in t.probes.groupby("model", sort=False):
        p = p.sort_values("step")
        pool = p.pooling.iloc[0]
        axes[0].plot(p.step, p.beta_eff, marker="o", ms=3, color=_colour(pool), label=pool.upper(), alpha=0.8)
        axes[1].plot(p.step, p.grad_norm, marker="o", ms=3, color=_colour(pool), label=pool.upper(), alpha=0.8)
    axes[0].set_title("Effective smoothness β_eff = max_k d_k / (η_k‖g‖)")
    axes[1].set_title("Gradient norm ‖g‖ at the stem output")
    axes[1].set_yscale("log")
    for ax in axes:
        ax.set_xlabel("training step" if t.probes.lr.notna().any() else "minibatch")
        _legend(ax)
    fig.tight_layout()
    return fig


@FIGURES.register("loss_vs_eta")
def loss_vs_eta(t: Tables) -> Figure | None:
    """ℓ(η) and d(η) along the grid at the first and the last probe step of each model."""
    if t.landscape.empty:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    for _model, rows in t.landscape.groupby("model", sort=False):
        pool = rows.pooling.iloc[0]
        steps = sorted(rows.step.unique())
        for step, style in ((steps[0], ":"), (steps[-1], "-")):
            r = rows[rows.step == step]
            label = f"{pool.upper()} step {step}"
            axes[0].plot(r.eta, r.loss, style, color=_colour(pool), label=label, alpha=0.8)
            axes[1].plot(r.eta, r.grad_diff, style, color=_colour(pool), label=label, alpha=0.8)
    axes[0].set_ylabel("loss L(y + η·g)")
    axes[1].set_ylabel("‖∇L(y + η·g) − g‖")
    for ax in axes:
        ax.set_xlabel("η")
        _legend(ax)
    axes[0].set_title("Along the gradient, first (dotted) and last (solid) probe")
    fig.tight_layout()
    return fig


@FIGURES.register("curvature")
def curvature(t: Tables) -> Figure | None:
    """Top Hessian eigenvalue and Hutchinson trace (± standard error) over steps."""
    if t.curvature.empty:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    for _, c in t.curvature.groupby("model", sort=False):
        c = c.sort_values("step")
        pool = c.pooling.iloc[0]
        axes[0].plot(c.step, c.hessian_top, marker="o", color=_colour(pool), label=pool.upper(), alpha=0.8)
        axes[1].errorbar(c.step, c.hessian_trace, yerr=c.get("trace_stderr"), marker="o", capsize=3,
                         color=_colour(pool), label=pool.upper(), alpha=0.8)
    axes[0].set_title("Top Hessian eigenvalue (power iteration)")
    axes[1].set_title("Hessian trace (Hutchinson, ± s.e.)")
    for ax in axes:
        ax.set_xlabel("training step" if t.probes.empty or t.probes.lr.notna().any() else "minibatch")
        _legend(ax)
    fig.tight_layout()
    return fig


@FIGURES.register("convergence")
def convergence(t: Tables) -> Figure | None:
    """Test top-1 and training loss per demo epoch, one column per schedule; dashed: GAP-LRnorm's final top-1."""
    conv = t.convergence
    if conv.empty:
        return None
    schedules = list(dict.fromkeys(conv.schedule))
    fig, axes = plt.subplots(2, len(schedules), figsize=(3.6 * len(schedules) + 1, 5.6), squeeze=False,
                             sharey="row")
    ref = conv[(conv.pooling == "gap") & (conv.schedule == "lrnorm")]
    target = ref[ref.epoch == ref.epoch.max()].test_top1.mean() if len(ref) else None
    for col, schedule in enumerate(schedules):
        runs = conv[conv.schedule == schedule]
        for _, run in runs.groupby("model", sort=False):
            pool = run.pooling.iloc[0]
            axes[0, col].plot(run.epoch, run.test_top1, color=_colour(pool), label=pool.upper(), alpha=0.8)
            axes[1, col].plot(run.epoch, run.train_loss, color=_colour(pool), label=pool.upper(), alpha=0.8)
        if target is not None:
            axes[0, col].axhline(target, ls="--", lw=0.8, color=OTHER, label="GAP-LRnorm final")
        scale = f" (1 = {t.scale} paper epochs)" if t.scale and t.scale > 1 else ""
        axes[0, col].set_title(schedule)
        axes[1, col].set_xlabel(f"demo epoch{scale}")
    axes[0, 0].set_ylabel("test top-1 (%)")
    axes[1, 0].set_ylabel("train loss")
    _legend(axes[0, -1])
    fig.tight_layout()
    return fig


def write_figures(t: Tables, folder: Path) -> list[Path]:
    """Render every registered figure that has data as PNG; returns the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    with plt.rc_context(STYLE):
        for name, make in FIGURES.items():
            fig = make(t)
            if fig is None:
                continue
            path = folder / f"{name}.png"
            fig.savefig(path, dpi=90, metadata={"Software": None})
            plt.close(fig)
            written.append(path)
    return written
