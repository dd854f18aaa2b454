"""Perturbation and attack cells through the whole pipeline (fake models, tiny suites)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from robench.evaluate import EvalConfig, run_eval
from robench.report import leaderboard, write_reports
from tests._helpers import assert_same_per_image

SUITE = """
name = "mixed"
dataset = "fashion-mnist-demo"
param_set = "cifar"

[clean]

[perturbations]
names = ["gaussian_noise", "translate", "rotate"]
difficulties = [1, 2]
limit = 6

[attacks]
norm = "linf"
eps = ["2/255", "8/255"]
names = ["fgsm", "pgd-linf", "random-noise-linf"]
limit = 12

[attacks.settings.pgd-linf]
steps = 3

[attacks.settings.random-noise-linf]
draws = 2
"""


@pytest.fixture
def suite_file(tmp_path):
    path = tmp_path / "mixed.toml"
    path.write_text(SUITE)
    return path


def _run(tmp_path, suite_file, models, name, **kw):
    cfg = EvalConfig(out=tmp_path / name, suite=str(suite_file), limit=12, **kw)
    summary = run_eval(cfg, models=models)
    write_reports(summary.store, cfg.out, figures=False, html=False)
    return summary, cfg.out


def test_perturbation_and_attack_cells_fill_the_leaderboard(tmp_path, suite_file, fake_models):
    summary, out = _run(tmp_path, suite_file, fake_models, "a", batch_size=5)
    assert summary.computed == 2 * (1 + 3 * 2 + 3 * 2)
    board = leaderboard(summary.store)
    for col in ("clean_err", "FP", "T5D", "RA@2/255", "RA@8/255", "warnings"):
        assert col in board.columns
    attacks = pd.read_csv(out / "attacks.csv")
    for model, row in board.set_index("model").iterrows():
        mine = attacks[attacks.model == model]
        for eps in ("2/255", "8/255"):
            assert row[f"RA@{eps}"] <= mine[mine.eps == eps].robust_acc.min() + 1e-3  # CSV keeps 4 decimals
        assert row["RA@8/255"] <= row["RA@2/255"]
    perts = pd.read_csv(out / "perturbations.csv")
    assert set(perts.perturbation) == {"gaussian_noise", "translate", "rotate"}
    assert ((perts.FP >= 0) & (perts.FP <= 100)).all()


def test_perturbation_and_attack_cells_do_not_depend_on_batch_size(tmp_path, suite_file, fake_models):
    outs = [_run(tmp_path, suite_file, fake_models, f"bs{b}", batch_size=b)[1] for b in (1, 7)]
    assert (outs[0] / "results.csv").read_bytes() == (outs[1] / "results.csv").read_bytes()
    assert (outs[0] / "leaderboard.csv").read_bytes() == (outs[1] / "leaderboard.csv").read_bytes()
    assert assert_same_per_image(outs[0] / "results.sqlite", outs[1] / "results.sqlite") == 2 * (6 + 3 * 2 * 4
                                                                                                   + 3 * 2 * 2)


def _pcells(model: str, rows: list[tuple[str, int, int, int]]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"model": model, "kind": "perturbation", "item": it, "level": 1, "flips": f, "t5d_sum": t, "pairs": n}
         for it, f, t, n in rows]
    )


def test_mfr_and_mt5d_are_mean_ratios_to_the_baseline():
    from robench.report.tables import OVERALL_SECTIONS

    section = OVERALL_SECTIONS.get("perturbation")
    definition = {"test_perturbations": ["translate", "rotate"]}
    model = _pcells("m", [("translate", 10, 30, 100), ("rotate", 5, 20, 100), ("shear", 50, 90, 100)])
    base = _pcells("b", [("translate", 20, 60, 100), ("rotate", 20, 10, 100), ("shear", 1, 1, 100)])
    row = section(model, definition, base)
    assert row["FP"] == pytest.approx(100 * (0.10 + 0.05) / 2)  # shear is not a test perturbation
    assert row["T5D"] == pytest.approx((0.30 + 0.20) / 2)
    assert row["mFR"] == pytest.approx(100 * (0.10 / 0.20 + 0.05 / 0.20) / 2)
    assert row["mT5D"] == pytest.approx(100 * (0.30 / 0.60 + 0.20 / 0.10) / 2)
    no_flip_base = _pcells("b", [("translate", 0, 60, 100), ("rotate", 20, 10, 100)])
    assert np.isnan(section(model, definition, no_flip_base)["mFR"])  # undefined, not silently skipped
    assert "mFR" not in section(model, definition, None)


def test_baseline_model_must_be_in_the_store(tmp_path, suite_file, fake_models):
    summary, _ = _run(tmp_path, suite_file, fake_models, "b", batch_size=6)
    assert "mFR" in leaderboard(summary.store, baseline="tiny-gap").columns
    with pytest.raises(KeyError, match="Baseline model 'alexnet' has no results"):
        leaderboard(summary.store, baseline="alexnet")
