from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from robench.nightly import drift

ROOT = Path(__file__).resolve().parents[1]


def _board(**metrics):
    return pd.DataFrame([{"model": "demo-gap", "suite": "nightly", **metrics}])


def test_drift_flags_moves_beyond_tolerance_and_missing_rows():
    ref = _board(clean_err=8.0, mCE=30.0, **{"RA@4/255": 10.0})
    assert drift(_board(clean_err=8.4, mCE=29.6, **{"RA@4/255": 10.5}), ref, 0.5) == []
    moved = drift(_board(clean_err=8.0, mCE=31.0, **{"RA@4/255": 10.0}), ref, 0.5)
    assert len(moved) == 1 and "mCE 31.00 vs published 30.00" in moved[0]
    assert "missing" in drift(_board(clean_err=8.0).assign(model="other"), ref, 0.5)[0]
    assert drift(_board(clean_err=8.0, mCE=float("nan"), **{"RA@4/255": 10.0}), ref, 0.5)  # NaN is drift


def test_new_metrics_or_models_are_not_drift():
    ref = _board(clean_err=8.0)
    now = pd.concat([_board(clean_err=8.0, mCE=12.0), _board(clean_err=3.0).assign(model="new")])
    assert drift(now, ref, 0.5) == []


def test_workflow_is_scheduled_and_calls_the_ci_entry_point():
    wf = yaml.safe_load((ROOT / ".github/workflows/nightly.yml").read_text())
    triggers = wf.get("on", wf.get(True))  # YAML 1.1 reads a bare `on` key as True
    assert triggers["schedule"][0]["cron"]
    steps = wf["jobs"]["nightly"]["steps"]
    assert any("robench nightly" in s.get("run", "") for s in steps)
    assert "robench nightly" in (ROOT / ".ci/run").read_text()


def test_published_reference_has_the_checked_columns():
    ref = pd.read_csv(ROOT / "reports/nightly/reference.csv")
    assert {"demo-gap", "demo-gcp"} <= set(ref.model)
    assert {"clean_err", "mCE", "FP", "RA@4/255"} <= set(ref.columns)
