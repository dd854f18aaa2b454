"""Intervals, paired verdicts, per-cell tests and seed groups in the reports, on synthetic per-image outcomes."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from robench.errors import InputError
from robench.models.cards import card_from_dict, dump_card
from robench.report.comparisons import groups_table, paired, paired_corruptions_table, verdict
from robench.report.display import readable
from robench.report.estimands import suite_estimands
from robench.report.evidence import Evidence
from robench.report.synthetic import SyntheticModel, synthetic_results
from robench.report.tables import corruptions_table, overall
from robench.stats import Bootstrap, mcnemar, paired_t, wilson

BOOT = Bootstrap(replicates=300, seed=0)
ALEXNET = {"name": "alexnet", "clean_error": 0.4,
           "errors": {"gaussian_noise": [0.7, 0.8, 0.9], "fog": [0.5, 0.6, 0.7]}}


def _evidence(data, boot=BOOT):
    return Evidence(data.reader, boot)


@pytest.fixture(scope="module")
def twins():
    """The same checkpoint under two names, plus a clearly worse GCP model of another architecture."""
    return synthetic_results([SyntheticModel("same-gap", "gap", 0.1), SyntheticModel("same-gcp", "gcp", 0.1,
                                                                                     copy_of="same-gap")],
                             n=400, attacks=("fgsm", "pgd-linf"))


def test_every_metric_has_an_interval_holding_its_point(twins):
    board = overall(twins.cells, twins.suites, evidence=_evidence(twins))
    metrics = ["clean_err", "clean_err5", "mCE", "FP", "T5D", "RA@2/255"]
    for m in metrics:
        assert (board[f"{m}_lo"] <= board[m]).all() and (board[m] <= board[f"{m}_hi"]).all(), m
        assert (board[f"{m}_hi"] > board[f"{m}_lo"]).all(), m
    row = board.iloc[0]
    clean = twins.cells[(twins.cells.model == "same-gap") & (twins.cells.kind == "clean")].iloc[0]
    lo, hi = wilson(int(clean.top1_errors), int(clean.n))
    assert (row.clean_err_lo, row.clean_err_hi) == pytest.approx((100 * lo, 100 * hi))
    columns = list(board.columns)
    assert columns.index("mCE_lo") == columns.index("mCE") + 1 and columns.index("mCE_hi") == columns.index("mCE") + 2


def test_the_same_checkpoint_under_two_names_is_no_difference(twins):
    ev = _evidence(twins)
    row = paired(twins.cells, twins.suites, evidence=ev, cards=twins.cards).iloc[0]
    for m in ("clean_err", "clean_err5", "mCE", "FP", "T5D", "RA@2/255"):
        assert row[f"{m}_delta"] == 0.0
        assert (row[f"{m}_delta_lo"], row[f"{m}_delta_hi"], row[f"{m}_p"]) == (0.0, 0.0, 1.0)
    assert (row.verdict, row.headline) == ("no significant difference", "mCE")
    cells = paired_corruptions_table(twins.cells, twins.suites, evidence=ev, cards=twins.cards)
    assert len(cells) == 6 and (cells.delta == 0).all()
    assert (cells.p_mid == 1).all() and (cells.p_exact == 1).all() and (cells.p_holm == 1).all()
    assert (cells.kappa == 1).all()


@pytest.mark.parametrize(("gap_error", "gcp_error", "expected"), [(0.10, 0.25, "gap better"),
                                                                   (0.25, 0.10, "gcp better")])
def test_a_real_difference_gets_the_right_verdict(gap_error, gcp_error, expected):
    data = synthetic_results([SyntheticModel("m-gap", "gap", gap_error), SyntheticModel("m-gcp", "gcp", gcp_error)],
                             n=600)
    ev = _evidence(data)
    row = paired(data.cells, data.suites, evidence=ev, cards=data.cards).iloc[0]
    assert row.verdict == expected and row.mCE_p < 0.05
    assert row.mCE_delta_lo <= row.mCE_delta <= row.mCE_delta_hi and not row.mCE_delta_lo <= 0 <= row.mCE_delta_hi
    cells = paired_corruptions_table(data.cells, data.suites, evidence=ev, cards=data.cards)
    gap = data.outcomes[("m-gap", "synthetic")][("corruption", "fog", 2)]["correct"]
    gcp = data.outcomes[("m-gcp", "synthetic")][("corruption", "fog", 2)]["correct"]
    b, c = int(np.sum(gap & ~gcp)), int(np.sum(~gap & gcp))
    got = cells.set_index(["corruption", "severity"]).loc[("fog", 2)]
    assert (got.gcp_only_wrong, got.gap_only_wrong) == (b, c)
    assert got.p_mid == pytest.approx(mcnemar(b, c).p_mid)
    assert (cells.p_holm >= cells.p_mid).all() and (cells.kappa < 1).all()
    assert got.delta == pytest.approx(100 * (c - b) / len(gap) * -1)


def test_verdict_direction_follows_the_metric():
    assert verdict("mCE", -1.0, 0.01, 0.05) == "gcp better"
    assert verdict("RA@2/255", -1.0, 0.01, 0.05) == "gap better"
    assert verdict("RA@2/255", 2.0, 0.2, 0.05) == "no significant difference"
    assert verdict("mCE", 1.0, float("nan"), 0.05) == ""


def test_reports_are_identical_for_the_same_outcomes_and_change_with_the_seed(twins):
    data = synthetic_results([SyntheticModel("m-gap", "gap", 0.1), SyntheticModel("m-gcp", "gcp", 0.12)], n=300)

    def render(boot):
        ev = _evidence(data, boot)
        return (overall(data.cells, data.suites, evidence=ev).to_csv(float_format="%.17g")
                + paired(data.cells, data.suites, evidence=ev, cards=data.cards).to_csv(float_format="%.17g"))

    first = render(BOOT)
    assert render(Bootstrap(300, seed=0)) == first
    assert render(Bootstrap(300, seed=1)) != first


def test_linear_formulas_reproduce_the_leaderboard_values():
    data = synthetic_results([SyntheticModel("m-gap", "gap", 0.1)], n=300)
    suites = {"synthetic": dict(data.suites["synthetic"], baseline=ALEXNET)}
    ev = _evidence(data)
    board = overall(data.cells, suites, evidence=ev).iloc[0]
    sample = ev.sample(data.cells, "synthetic")
    for metric, est in suite_estimands(data.cells, suites, "m-gap", "synthetic", None).items():
        value = est.evaluate(sample.point(est.cells())[None, :])[0]
        assert value == pytest.approx(board[metric], rel=1e-12), metric
    assert board.rel_mCE_lo <= board.rel_mCE <= board.rel_mCE_hi
    table = corruptions_table(data.cells, suites, evidence=ev)
    assert (table.CE_lo <= table.CE).all() and (table.CE_hi >= table.CE).all()


def test_mfr_against_a_baseline_model_gets_a_bca_interval():
    data = synthetic_results([SyntheticModel("base", "gap", 0.3), SyntheticModel("m-gcp", "gcp", 0.1)], n=300,
                             arch="other")
    board = overall(data.cells, data.suites, baseline="base", evidence=_evidence(data)).set_index("model")
    row = board.loc["m-gcp"]
    assert row.mFR_lo <= row.mFR <= row.mFR_hi and row.mT5D_lo <= row.mT5D <= row.mT5D_hi
    assert board.loc["base", "mFR"] == pytest.approx(100.0)


def test_cells_without_per_image_data_keep_points_and_lose_intervals(twins):
    ev = Evidence(lambda model, suite: {} if model == "same-gcp" else twins.reader(model, suite), BOOT)
    board = overall(twins.cells, twins.suites, evidence=ev).set_index("model")
    assert np.isnan(board.loc["same-gcp", "mCE_lo"]) and not np.isnan(board.loc["same-gap", "mCE_lo"])
    assert not np.isnan(board.loc["same-gcp", "clean_err_lo"])  # Wilson needs only the counts
    row = paired(twins.cells, twins.suites, evidence=ev, cards=twins.cards).iloc[0]
    assert np.isnan(row.mCE_delta_lo) and np.isnan(row.mCE_p) and row.verdict == "" and row.mCE_delta == 0
    text = readable(board.reset_index())
    assert text.mCE.iloc[1].endswith("[—]") and re.fullmatch(r"\d+\.\d\d \[\d+\.\d\d, \d+\.\d\d\]", text.mCE.iloc[0])


def _seeded(seeds: int, gcp_shift: float) -> tuple:
    models = []
    for s in range(seeds):
        models.append(SyntheticModel(f"g-gap-s{s}", "gap", 0.10 + 0.01 * s, card={"group": "g-gap", "seed": s}))
        models.append(SyntheticModel(f"g-gcp-s{s}", "gcp", 0.10 + 0.01 * s + gcp_shift,
                                     card={"group": "g-gcp", "seed": s}))
    return synthetic_results(models, n=300)


def test_groups_report_mean_and_sd_over_seeds():
    data = _seeded(3, 0.05)
    ev = _evidence(data)
    groups = groups_table(data.cells, data.suites, cards=data.cards).set_index("group")
    board = overall(data.cells, data.suites, evidence=ev).set_index("model")
    gap = board.loc[[f"g-gap-s{s}" for s in range(3)], "mCE"]
    assert groups.loc["g-gap", "seeds"] == 3
    assert groups.loc["g-gap", "mCE_mean"] == pytest.approx(gap.mean())
    assert groups.loc["g-gap", "mCE_sd"] == pytest.approx(gap.std(ddof=1))
    assert readable(groups.reset_index()).mCE.iloc[0].count("±") == 1


def test_three_seed_pairs_give_a_seed_level_verdict():
    data = _seeded(3, 0.05)
    ev = _evidence(data)
    row = paired(data.cells, data.suites, evidence=ev, cards=data.cards).iloc[0]
    board = overall(data.cells, data.suites, evidence=ev).set_index("model")
    t = paired_t([board.loc[f"g-gap-s{s}", "mCE"] for s in range(3)],
                 [board.loc[f"g-gcp-s{s}", "mCE"] for s in range(3)])
    assert (row.gap_model, row.gcp_model, row.seeds) == ("g-gap", "g-gcp", 3)
    assert (row.mCE_delta, row.mCE_delta_lo, row.mCE_delta_hi, row.mCE_p) == pytest.approx((t.mean, t.lo, t.hi, t.p))
    assert row.basis.startswith("seeds") and row.verdict in ("gap better", "no significant difference")


def test_two_seed_pairs_fall_back_to_the_image_bootstrap_of_the_seed_means():
    data = _seeded(2, 0.0)
    row = paired(data.cells, data.suites, evidence=_evidence(data), cards=data.cards).iloc[0]
    assert row.seeds == 2 and row.basis.startswith("images")
    assert row.mCE_delta_lo <= row.mCE_delta <= row.mCE_delta_hi


def test_cards_declare_seed_and_group():
    raw = {"name": "x", "arch": "resnet_demo", "pooling": "gap", "num_classes": 10, "source": "x.safetensors",
           "mean": [0.5], "std": [0.5], "seed": 2, "group": "demo-gap"}
    card = card_from_dict(raw)
    assert (card.seed, card.group) == (2, "demo-gap")
    assert 'group = "demo-gap"' in dump_card(card) and "seed = 2" in dump_card(card)
    for bad in ({"seed": -1}, {"seed": "1"}, {"group": ""}, {"group": 3}):
        with pytest.raises(InputError):
            card_from_dict(raw | bad)


def test_paired_table_without_pairs_keeps_its_columns():
    data = synthetic_results([SyntheticModel("only-gap", "gap", 0.1)], n=50)
    assert paired(data.cells, data.suites, evidence=_evidence(data)).empty
    assert isinstance(paired_corruptions_table(data.cells, data.suites), pd.DataFrame)


def test_the_same_checkpoint_evaluated_under_two_names_end_to_end(tmp_path, fake_models):
    from robench.evaluate import EvalConfig, run_eval
    from robench.report import write_reports

    twin = fake_models[0]
    copy = type(twin)("tiny-gcp", twin.arch, "gcp", twin.num_classes, "c" * 64, twin.module)
    store = run_eval(EvalConfig(out=tmp_path / "o", limit=24, batch_size=24), models=[twin, copy]).store
    out = write_reports(store, tmp_path / "r", figures=False, html=False, bootstrap=Bootstrap(200))
    row = pd.read_csv(tmp_path / "r" / "paired.csv").iloc[0]
    for m in ("clean_err", "mCE", "FP", "T5D"):
        assert (row[f"{m}_delta"], row[f"{m}_delta_lo"], row[f"{m}_delta_hi"], row[f"{m}_p"]) == (0, 0, 0, 1)
    assert row.verdict == "no significant difference"
    cells = pd.read_csv(tmp_path / "r" / "paired_corruptions.csv")
    assert len(cells) and (cells.p_mid == 1).all() and (cells.kappa == 1).all()
    board = pd.read_csv(tmp_path / "r" / "leaderboard.csv")
    for m in ("clean_err", "mCE", "FP", "T5D"):
        assert (board[f"{m}_lo"] <= board[m]).all() and (board[m] <= board[f"{m}_hi"]).all()
    # Same store, same files, byte for byte.
    again = write_reports(store, tmp_path / "r2", figures=False, html=False, bootstrap=Bootstrap(200))
    for a, b in zip(sorted(out), sorted(again)):
        assert a.name == b.name and a.read_bytes() == b.read_bytes(), a.name


def test_empty_tables_render_to_markdown():
    from robench.report.render import to_markdown

    empty = pd.DataFrame({"model": pd.Series([], dtype=object), "metric": pd.Series([], dtype=object)})
    assert "| model" in to_markdown(empty)
