"""Calibration under shift (ECE / NLL / Brier), its storage (schema 3) and effective robustness."""

from __future__ import annotations

import logging
import math
import os
import socket
import sqlite3

import numpy as np
import pandas as pd
import pytest
import torch
import torch.multiprocessing as mp

import robench
from robench.evaluate import EvalConfig, run_eval
from robench.export import write_per_image
from robench.metrics.calibration import (
    bin_of,
    brier_from_probabilities,
    ece,
    mean_term,
    nll_from_probabilities,
    per_image_terms,
)
from robench.metrics.counts import classification_outcomes
from robench.metrics.effective_robustness import PUBLISHED_LINES, expit, fit_lines, fitted_line, logit
from robench.report import leaderboard, write_reports
from robench.report.effective import effective_robustness_table, paired_effective_robustness
from robench.store import SCHEMA_VERSION, Store

SUITE = ('name = "calib"\ndataset = "fashion-mnist-demo"\nparam_set = "cifar"\n[clean]\n'
         '[corruptions]\nnames = ["fog", "gaussian_noise"]\nseverities = [1, 5]\n')

# Three images, three classes: confidences 0.70 (right), 0.72 (wrong), 0.50 (wrong).
P = np.array([[0.70, 0.20, 0.10], [0.72, 0.18, 0.10], [0.25, 0.50, 0.25]])
Y = np.array([0, 1, 0])


def test_ece_nll_brier_match_hand_computed_values():
    conf, correct = P.max(axis=1), P.argmax(axis=1) == Y
    # 0.70 and 0.72 share bin 10 (|1 − 1.42|), 0.50 is alone in bin 7 (|0 − 0.5|): (0.42 + 0.5) / 3
    assert ece(conf, correct) == pytest.approx(0.92 / 3, abs=1e-12)
    assert nll_from_probabilities(P, Y) == pytest.approx(-(math.log(0.70) + math.log(0.18) + math.log(0.25)) / 3)
    by_hand = [0.3**2 + 0.2**2 + 0.1**2, 0.72**2 + 0.82**2 + 0.1**2, 0.75**2 + 0.5**2 + 0.25**2]
    assert brier_from_probabilities(P, Y) == pytest.approx(sum(by_hand) / 3, abs=1e-12)
    # a perfectly confident, always-right model: every metric zero
    assert ece(np.ones(4), np.ones(4, bool)) == 0.0
    assert brier_from_probabilities(np.eye(3), np.arange(3)) == 0.0


def test_bins_are_left_closed_with_one_in_the_last_bin():
    assert bin_of(np.array([0.0, 0.5, 1.0, 14.5 / 15, 0.9999])).tolist() == [0, 7, 14, 14, 14]


def test_per_image_terms_of_logits_are_the_softmax_terms():
    logits = torch.log(torch.tensor(P, dtype=torch.float32))
    terms = per_image_terms(logits, torch.tensor(Y))
    assert terms["nll"].dtype == np.float32 and terms["brier"].dtype == np.float32
    assert mean_term(terms["nll"]) == pytest.approx(nll_from_probabilities(P, Y), rel=1e-6)
    assert mean_term(terms["brier"]) == pytest.approx(brier_from_probabilities(P, Y), rel=1e-6)
    out = classification_outcomes(logits, torch.tensor(Y), [4, 5, 6])
    right = out["correct"]
    # where the top-1 class is right, NLL is −log of the stored confidence (same softmax)
    assert np.allclose(out["nll"][right], -np.log(out["confidence"][right]), atol=1e-6)


def test_a_class_subset_uses_the_masked_softmax():
    """A suite that scores a class subset passes the sliced logits; calibration then follows that softmax."""
    logits = torch.tensor([[5.0, 0.0, 1.0, 0.0]])
    subset = [1, 2, 3]  # class 0 (largest logit) is outside the subset; label = position 1 (class 2)
    masked = classification_outcomes(logits[:, subset], torch.tensor([1]), [0])
    p = torch.softmax(logits[:, subset], dim=1)[0].numpy()
    assert masked["pred"][0] == 1 and masked["correct"][0]
    assert masked["nll"][0] == pytest.approx(-math.log(p[1]), rel=1e-6)


def _suite(tmp_path):
    path = tmp_path / "calib.toml"
    path.write_text(SUITE)
    return str(path)


def _terms(store) -> dict[tuple, tuple]:
    con = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT model, suite, kind, item, level, field, dtype, length, data FROM calibration")
        return {tuple(r[:6]): (r[6], r[7], bytes(r[8])) for r in rows}
    finally:
        con.close()


CALIBRATION_COLUMNS = ["ECE", "ECE_lo", "ECE_hi", "NLL", "NLL_lo", "NLL_hi", "Brier", "Brier_lo", "Brier_hi",
                       "mECE", "mECE_lo", "mECE_hi", "mNLL", "mNLL_lo", "mNLL_hi", "mBrier", "mBrier_lo", "mBrier_hi"]


def _calibration_of(out) -> str:
    board = pd.read_csv(out / "leaderboard.csv")
    sev = pd.read_csv(out / "severities.csv")
    return board[["model", *CALIBRATION_COLUMNS]].to_csv() + sev.to_csv()


def test_calibration_is_byte_identical_across_batch_sizes(tmp_path, fake_models):
    suite = _suite(tmp_path)
    texts, terms = [], []
    for batch in (1, 7, 64):
        out = tmp_path / f"bs{batch}"
        summary = run_eval(EvalConfig(suite=suite, out=out, limit=37, batch_size=batch), models=fake_models)
        write_reports(summary.store, out, figures=False, html=False)
        texts.append(_calibration_of(out))
        terms.append(_terms(summary.store))
    assert len(terms[0]) == 2 * 5 * 2  # two models × (clean + 4 corruption cells) × (nll, brier)
    assert terms[0] == terms[1] == terms[2]
    assert texts[0] == texts[1] == texts[2]
    board = pd.read_csv(tmp_path / "bs1" / "leaderboard.csv")
    assert board[CALIBRATION_COLUMNS].notna().all().all()
    assert (board.ECE_lo < board.ECE_hi).all() and (board.NLL_lo <= board.NLL).all()
    sev = pd.read_csv(tmp_path / "bs1" / "severities.csv")
    assert {"ECE_s1", "ECE_s5", "NLL_s1", "NLL_s5", "Brier_s1", "Brier_s5"} <= set(sev.columns)


def _worker(rank: int, world: int, port: int, out: str, suite: str) -> None:
    from tests.conftest import FakeModel, tiny_net

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    models = [FakeModel("tiny-gap", "tiny", "gap", 10, "a" * 64, tiny_net(0)),
              FakeModel("tiny-gcp", "tiny", "gcp", 10, "b" * 64, tiny_net(1))]
    run_eval(EvalConfig(suite=suite, out=out, limit=37, batch_size=7), models=models)
    import torch.distributed as dist

    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # ~25 s; test_distributed compares the leaderboard (calibration columns included) by default
def test_two_gloo_processes_give_the_one_process_calibration(tmp_path, fake_models):
    suite = _suite(tmp_path)
    single = tmp_path / "single"
    run_eval(EvalConfig(suite=suite, out=single, limit=37, batch_size=16), models=fake_models)
    multi = tmp_path / "multi"
    mp.spawn(_worker, args=(2, _free_port(), str(multi), suite), nprocs=2, join=True)
    for out in (single, multi):
        write_reports(out / "results.sqlite", out, figures=False, html=False)
    assert _terms(single / "results.sqlite") == _terms(multi / "results.sqlite")
    assert _calibration_of(single) == _calibration_of(multi)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from tests.conftest import FakeModel, tiny_net

    tmp = tmp_path_factory.mktemp("calib")
    (tmp / "calib.toml").write_text(SUITE)
    models = [FakeModel("tiny-gap", "tiny", "gap", 10, "a" * 64, tiny_net(0)),
              FakeModel("tiny-gcp", "tiny", "gcp", 10, "b" * 64, tiny_net(1))]
    return run_eval(EvalConfig(suite=str(tmp / "calib.toml"), out=tmp / "o", limit=40, batch_size=8),
                    models=models).store


def _ece_from_export(rows: pd.DataFrame) -> float:
    """ECE (%) recomputed independently: 15 equal-width bins over the exported confidences."""
    conf = rows.confidence.to_numpy(np.float32).astype(np.float64)
    right = rows.correct.to_numpy(bool)
    total = 0.0
    for b in range(15):
        inside = np.minimum(np.floor(conf * 15), 14) == b
        total += abs(right[inside].sum() - conf[inside].sum())
    return 100.0 * total / len(rows)


def test_export_has_nll_brier_and_recomputes_the_reported_calibration(store, tmp_path):
    out = tmp_path / "per_image.csv"
    write_per_image(store, out)
    table = pd.read_csv(out)
    assert {"nll", "brier"} <= set(table.columns) and table[["nll", "brier"]].notna().all().all()
    board = leaderboard(store)
    for model, rows in table.groupby("model"):
        row = board[board.model == model].iloc[0]
        clean = rows[rows.kind == "clean"]
        assert _ece_from_export(clean) == pytest.approx(row.ECE, abs=1e-9)
        assert clean.nll.mean() == pytest.approx(row.NLL, rel=1e-6)
        assert clean.brier.mean() == pytest.approx(row.Brier, rel=1e-6)
        corr = [g for _, g in rows[rows.kind == "corruption"].groupby(["item", "level"])]
        assert np.mean([_ece_from_export(g) for g in corr]) == pytest.approx(row.mECE, abs=1e-9)
        assert np.mean([g.nll.mean() for g in corr]) == pytest.approx(row.mNLL, rel=1e-6)


def test_paired_table_has_calibration_deltas_and_verdicts(store):
    paired = leaderboard(store, "paired")
    for m in ("ECE", "NLL", "Brier", "mECE", "mNLL", "mBrier"):
        row = paired.iloc[0]
        assert row[f"{m}_delta"] == pytest.approx(row[f"{m}_gcp"] - row[f"{m}_gap"])
        assert row[f"{m}_delta_lo"] <= row[f"{m}_delta_hi"]
        assert 0.0 < row[f"{m}_p"] <= 1.0
        assert row[f"{m}_verdict"] in ("gcp better", "gap better", "no significant difference")


def test_reliability_table_pools_the_most_severe_level(store):
    rel = leaderboard(store, "reliability")
    assert set(rel.condition) == {"clean", "severity 5"}
    counts = rel.groupby(["model", "condition"]).n.sum()
    assert (counts.xs("clean", level="condition") == 40).all()
    assert (counts.xs("severity 5", level="condition") == 2 * 40).all()  # fog and gaussian noise at 5, pooled


def _as_schema_2(path) -> None:
    """Turn a store into exactly what robench with store schema 2 wrote (no calibration table)."""
    con = sqlite3.connect(path)
    with con:
        con.execute("DROP TABLE calibration")
        con.execute("UPDATE meta SET value='2' WHERE key='schema_version'")
    con.close()


def test_a_schema_2_store_is_read_with_blank_calibration_and_migrated(tmp_path, fake_models, caplog):
    out = tmp_path / "o"
    summary = run_eval(EvalConfig(suite=_suite(tmp_path), out=out, limit=20, batch_size=8), models=fake_models)
    with Store(summary.store, readonly=True) as st:
        outcomes_before = {m.name: st.outcomes(m.name, "calib") for m in fake_models}
    _as_schema_2(summary.store)
    with Store(summary.store, readonly=True) as st:
        assert st.schema == 2 and st.calibration("tiny-gap", "calib") == {}
    board = leaderboard(summary.store)
    assert "ECE" not in board.columns and board.clean_err.notna().all()  # blanks, not errors
    assert robench.per_image(summary.store)[["nll", "brier"]].isna().all().all()
    write_reports(summary.store, tmp_path / "r", figures=False, html=False)
    with caplog.at_level(logging.INFO, logger="robench.store"), Store(summary.store) as st:
        assert st.schema == SCHEMA_VERSION == 3
        assert st.calibration("tiny-gap", "calib") == {}
        for m in fake_models:  # outcomes survive the migration unchanged
            after = st.outcomes(m.name, "calib")
            assert after.keys() == outcomes_before[m.name].keys()
            assert all(np.array_equal(after[c][f], outcomes_before[m.name][c][f]) for c in after for f in after[c])
    assert "migrated the result store from schema 2 to 3" in caplog.text
    with caplog.at_level(logging.INFO, logger="robench.evaluate"):
        reused = run_eval(EvalConfig(suite=_suite(tmp_path), out=out, limit=20, batch_size=8), models=fake_models)
    assert reused.computed == 0 and "10 stored cells have no calibration terms" in caplog.text
    assert "ECE" not in leaderboard(reused.store).columns
    again = run_eval(EvalConfig(suite=_suite(tmp_path), out=out, limit=20, batch_size=8, fresh=True),
                     models=fake_models)
    assert leaderboard(again.store)[["ECE", "NLL", "Brier"]].notna().all().all()


# ---- effective robustness ----------------------------------------------------------------------------------

def test_the_logit_fit_recovers_a_synthetic_line_and_the_offsets_above_it():
    x = np.array([0.55, 0.62, 0.70, 0.76, 0.81, 0.86])
    y = expit(0.9 * logit(x) - 0.5)
    line = fitted_line(x, y)
    assert line.slope == pytest.approx(0.9) and line.intercept == pytest.approx(-0.5)
    assert line.predict(np.array([0.7]))[0] == pytest.approx(expit(0.9 * logit(0.7) - 0.5))
    assert fitted_line(x[:2], y[:2]) is None  # two models always sit on their own line
    rows = np.stack([y, y + 0.01])
    slopes, intercepts = fit_lines(np.stack([x, x]), rows)  # one fit per row (bootstrap replicates)
    assert slopes[0] == pytest.approx(0.9) and intercepts[0] == pytest.approx(-0.5) and np.isfinite(slopes[1])


def test_published_lines_reproduce_resnet50s_effective_robustness():
    """SHIFTS.md §5: torchvision ResNet-50 sits 0.74 / 0.36 / 0.60 points below the V2 / Sketch / R lines."""
    for shift, (clean, shifted, er) in {"imagenetv2-matched-frequency": (76.13, 63.21, -0.74),
                                        "imagenet-sketch": (76.13, 24.09, -0.36),
                                        "imagenet-r": (92.12, 36.17, -0.60)}.items():
        line = PUBLISHED_LINES.get(shift).line
        assert shifted - 100 * float(line.predict(clean / 100)) == pytest.approx(er, abs=0.02)
    a = PUBLISHED_LINES.get("imagenet-a").line
    assert a.predict(0.90) == pytest.approx(expit(0.6894 * logit(0.90) - 5.1400))
    assert a.predict(0.95) == pytest.approx(expit(2.9560 * logit(0.95) - 10.2774))


def test_effective_robustness_on_synthetic_models():
    """Five models on a line (accuracy shifted as the line says) and one 3 points above it."""
    x = [60.0, 66.0, 71.0, 77.0, 82.0, 74.0]
    y = [float(100 * expit(0.8 * logit(v / 100) - 0.7)) for v in x]
    y[-1] += 3.0
    rows = []
    for k, (cx, cy) in enumerate(zip(x, y)):
        model = f"m{k}"
        pool = "gcp" if k == 5 else "gap"
        rows.append({"model": model, "arch": "a" if k in (3, 5) else f"z{k}", "pooling": pool, "suite": "s",
                     "kind": "clean", "item": "clean", "level": 0, "n": 10000, "err": 100 - cx})
        rows.append({"model": model, "arch": "a" if k in (3, 5) else f"z{k}", "pooling": pool, "suite": "s",
                     "kind": "corruption", "item": "fog", "level": 1, "n": 10000, "err": 100 - cy})
    table = effective_robustness_table(pd.DataFrame(rows), {"s": {"test_corruptions": ["fog"]}})
    assert len(table) == 6 and (table["shift"] == "s corruptions").all()
    assert table.line.iloc[0] == "fitted on 6 models in this store"
    er = table.set_index("model").ER
    assert er["m5"] > 2.0 and (er.drop("m5").abs() < 1.0).all()
    assert er.sum() == pytest.approx(0.0, abs=0.5)  # OLS in logit space: residuals roughly cancel
    assert (table.set_index("model").loc[["m3", "m5"], "pair"] == "m3 vs m5").all()
    assert table.ER_lo.isna().all()  # no per-image data: no interval, never a made-up one
    paired = paired_effective_robustness(pd.DataFrame(rows), {"s": {"test_corruptions": ["fog"]}})
    assert paired[["arch", "gap_model", "gcp_model"]].values.tolist() == [["a", "m3", "m5"]]
    assert paired.ER_delta.iloc[0] == pytest.approx(er["m5"] - er["m3"])


def test_reports_carry_calibration_and_effective_robustness_files(store, tmp_path):
    out = tmp_path / "r"
    write_reports(store, out)
    names = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert {"reliability.csv", "effective_robustness.csv", "paired_effective_robustness.csv",
            "figures/reliability.png", "figures/accuracy_on_the_line.svg"} <= names
    text = (out / "leaderboard.md").read_text()
    assert "ECE" in text and "mBrier" in text and "top-label expected calibration error" in text
    er = pd.read_csv(out / "effective_robustness.csv")
    assert set(er["shift"]) == {"calib corruptions"} and er.ER.isna().all()  # two models: no line to fit
    assert er.line.str.startswith("none: a line needs at least 3 models").all()
    html = (out / "index.html").read_text()
    assert "Effective robustness" in html and "id='fig-reliability'" in html
