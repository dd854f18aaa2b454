"""The nightly regression job: a cheap subset on every model whose weights are at hand, the leaderboard
rendered into ``reports/``, and a drift check against the last published values.

The same entry point (``robench nightly``) runs in CI on the demo models, so the path cannot rot.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from robench.errors import MissingFileError
from robench.evaluate import DEMO_MODELS, EvalConfig, run_eval
from robench.report import leaderboard, write_reports

log = logging.getLogger(__name__)

KEY_COLUMNS = ("model", "suite")
CHECKED_PREFIXES = ("clean_err", "mCE", "rel_mCE", "FP", "T5D", "mFR", "mT5D", "RA@")


@dataclass(frozen=True)
class NightlyConfig:
    out: Path = Path("reports/nightly")
    reference: Path | None = None
    tolerance: float = 0.5
    models: tuple[str, ...] = DEMO_MODELS
    imagenet: Path | None = None
    imagenet_models: tuple[str, ...] = ()
    update_reference: bool = False
    device: str = "cpu"
    batch_size: int = 256


@dataclass
class NightlyResult:
    board: pd.DataFrame
    drifts: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def checked_metrics(board: pd.DataFrame) -> list[str]:
    return [c for c in board.columns if c.startswith(CHECKED_PREFIXES) and not c.endswith(("_lo", "_hi"))]


def drift(board: pd.DataFrame, reference: pd.DataFrame, tolerance: float) -> list[str]:
    """Metrics (percentage points) that moved more than ``tolerance`` from the reference, and rows
    that disappeared. New models or metrics are not drift."""
    out = []
    measured = board.set_index(list(KEY_COLUMNS))
    for _, ref in reference.iterrows():
        key = tuple(ref[c] for c in KEY_COLUMNS)
        if key not in measured.index:
            out.append(f"{key[0]} / {key[1]}: missing from tonight's results")
            continue
        row = measured.loc[key]
        for metric in checked_metrics(reference):
            want, got = ref[metric], row.get(metric, math.nan)
            if pd.isna(want):
                continue
            if pd.isna(got) or abs(float(got) - float(want)) > tolerance:
                out.append(f"{key[0]} / {key[1]}: {metric} {got:.2f} vs published {want:.2f} (tolerance {tolerance})")
    return out


def run_nightly(cfg: NightlyConfig) -> NightlyResult:
    """Evaluate the nightly suites, write the reports into ``cfg.out`` and compare with the reference."""
    store = cfg.out / "results.sqlite"
    jobs = [("nightly", cfg.models, None)]
    if cfg.imagenet is not None:
        jobs.append(("nightly-imagenet", cfg.imagenet_models, cfg.imagenet))
    skipped = []
    for suite, models, data in jobs:
        for model in models:
            try:
                run_eval(EvalConfig(ckpts=(model,), suite=suite, data=data, out=cfg.out, device=cfg.device,
                                    batch_size=cfg.batch_size))
            except MissingFileError as e:  # weights not available here: report, do not fail the night
                log.warning("skipping %s: %s", model, e)
                skipped.append(model)
    write_reports(store, cfg.out)
    board = leaderboard(store)
    reference_path = cfg.reference or cfg.out / "reference.csv"
    drifts: list[str] = []
    if cfg.update_reference:
        board.to_csv(reference_path, index=False, float_format="%.4f")
        log.info("wrote the new reference %s", reference_path)
    elif reference_path.is_file():
        drifts = drift(board, pd.read_csv(reference_path), cfg.tolerance)
    else:
        raise MissingFileError(
            f"No reference {reference_path}; run `robench nightly --update-reference` once to publish one."
        )
    return NightlyResult(board, drifts, skipped)
