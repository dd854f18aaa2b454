from __future__ import annotations

import pytest

from robench.evaluate import EvalConfig, run_eval
from robench.report import leaderboard, write_reports


@pytest.fixture
def store(tmp_path, fake_models):
    return run_eval(EvalConfig(out=tmp_path / "o", limit=30, batch_size=30), models=fake_models).store


def test_paired_table_has_one_row_per_architecture_with_correct_deltas(store):
    board = leaderboard(store).set_index("pooling")
    paired = leaderboard(store, "paired")
    assert len(paired) == 1
    row = paired.iloc[0]
    assert (row.arch, row.gap_model, row.gcp_model) == ("tiny", "tiny-gap", "tiny-gcp")
    for metric in ("clean_err", "mCE", "FP", "T5D"):
        assert row[f"{metric}_gap"] == board.loc["gap", metric]
        assert row[f"{metric}_gcp"] == board.loc["gcp", metric]
        assert row[f"{metric}_delta"] == pytest.approx(board.loc["gcp", metric] - board.loc["gap", metric])


def test_unpaired_models_give_an_empty_paired_table(tmp_path, fake_models):
    s = run_eval(EvalConfig(out=tmp_path / "one", limit=10), models=fake_models[:1])
    assert leaderboard(s.store, "paired").empty


def test_published_numbers_sit_beside_measured_ones(tmp_path, fake_models, store):
    from robench.models import list_cards

    demo = {c.name: c for c in list_cards()}["demo-gap"]
    model = fake_models[0]
    model.name, model.card = "demo-gap", demo  # a fake network carrying the real card
    s = run_eval(EvalConfig(out=tmp_path / "pub", limit=30), models=[model])
    pub = leaderboard(s.store, "published")
    row = pub.set_index("metric").loc["clean_err"]
    assert row.published == pytest.approx(100 - demo.accuracy["fashion-mnist-test-2k"])
    assert row.difference == pytest.approx(row.measured - row.published)
    assert set(pub.metric) == {"clean_err"}  # ImageNet-C/P numbers only apply to ImageNet suites


def test_every_report_file_is_written(store, tmp_path):
    names = {p.relative_to(tmp_path / "r").as_posix() for p in write_reports(store, tmp_path / "r")}
    assert {"leaderboard.md", "leaderboard.csv", "results.csv", "paired.md", "published.csv", "index.html",
            "figures/corruption_bars.png", "figures/severity_families.svg", "figures/flip_probability.png"} <= names
