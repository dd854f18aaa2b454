from __future__ import annotations

import pandas as pd
import pytest
import torch
from torch import nn

from robench.errors import InputError
from robench.evaluate import EvalConfig, run_eval
from robench.report import leaderboard, load_results, write_reports
from robench.store import Store
from robench.suites import load_suite
from tests._helpers import assert_same_per_image


def _levels(kinds: tuple[str, ...] = ("clean", "corruption", "perturbation")) -> int:
    """Cells per model of the demo suite, counting only the given kinds."""
    return sum(len(i.levels) for i in load_suite("demo").items if i.kind in kinds)


def _run(tmp_path, models, name="out", **kw):
    cfg = EvalConfig(out=tmp_path / name, limit=kw.pop("limit", 40), **kw)
    summary = run_eval(cfg, models=models)
    write_reports(summary.store, cfg.out)
    return summary, cfg.out


def test_results_do_not_depend_on_batch_size(tmp_path, fake_models):
    outs = [_run(tmp_path, fake_models, name=f"bs{b}", batch_size=b)[1] for b in (1, 7, 64)]
    tables = [(o / "results.csv").read_bytes() for o in outs]
    assert tables[0] == tables[1] == tables[2]
    assert (outs[0] / "leaderboard.csv").read_bytes() == (outs[2] / "leaderboard.csv").read_bytes()
    for other in outs[1:]:
        fields = 6 * _levels(("clean", "corruption")) + 4 * _levels(("perturbation",))
        assert assert_same_per_image(outs[0] / "results.sqlite", other / "results.sqlite") == 2 * fields


def test_rerun_reuses_cells_and_fresh_recomputes(tmp_path, fake_models):
    first, _ = _run(tmp_path, fake_models)
    n_cells = 2 * _levels()
    assert first.computed == n_cells and first.reused == 0
    again, _ = _run(tmp_path, fake_models)
    assert again.computed == 0 and again.reused == n_cells
    fresh, _ = _run(tmp_path, fake_models, fresh=True)
    assert fresh.computed == n_cells


def test_changed_seed_or_limit_makes_cells_stale(tmp_path, fake_models):
    _run(tmp_path, fake_models)
    other_seed, _ = _run(tmp_path, fake_models, seed=5)
    random_cells = 2 * _levels(("corruption", "perturbation"))  # clean cells do not depend on the seed
    assert other_seed.stale == random_cells
    assert other_seed.computed == random_cells
    other_limit, _ = _run(tmp_path, fake_models, seed=5, limit=41)
    assert other_limit.computed == 2 * _levels()


def test_new_corruption_revision_recomputes_only_its_cells(tmp_path, fake_models, monkeypatch):
    import dataclasses

    from robench.corruptions import CORRUPTIONS

    _run(tmp_path, fake_models)
    fog = CORRUPTIONS.get("fog")
    monkeypatch.setitem(CORRUPTIONS._items, "fog", dataclasses.replace(fog, revision=fog.revision + 1))
    again, _ = _run(tmp_path, fake_models)
    fog_cells = 2 * sum(len(i.levels) for i in load_suite("demo").items if i.name == "fog")
    assert fog_cells > 0 and again.stale == again.computed == fog_cells


def test_leaderboard_equals_recomputation_from_results_csv(tmp_path, fake_models):
    _, out = _run(tmp_path, fake_models)
    cells = pd.read_csv(out / "results.csv")
    board = pd.read_csv(out / "leaderboard.csv")
    for _, row in board.iterrows():
        mine = cells[cells.model == row.model]
        clean = mine[mine.kind == "clean"]
        assert row.clean_err == pytest.approx(100 * clean.top1_errors.sum() / clean.n.sum(), abs=1e-4)
        corr = mine[mine.kind == "corruption"]
        per_corruption = corr.groupby("item").apply(lambda g: (g.top1_errors / g.n).mean(), include_groups=False)
        assert row.mCE == pytest.approx(100 * per_corruption.mean(), abs=1e-4)


def test_leaderboard_rerenders_from_store_alone(tmp_path, fake_models):
    summary, _ = _run(tmp_path, fake_models)
    board = leaderboard(summary.store)
    assert list(board.model) == ["tiny-gap", "tiny-gcp"]
    assert set(board.pooling) == {"gap", "gcp"}
    tidy = load_results(summary.store)
    assert len(tidy) == 2 * _levels() and {"model", "suite", "item", "level", "n", "err"} <= set(tidy.columns)


class NaNNet(nn.Module):
    def forward(self, x):
        out = torch.zeros(x.shape[0], 10)
        out[0] = float("nan")
        return out


def test_nan_logits_are_an_error_and_finished_cells_are_kept(tmp_path, fake_models):
    bad = type(fake_models[0])("nan-model", "tiny", "gap", 10, "c" * 64, NaNNet())
    with pytest.raises(InputError, match="model nan-model produced NaN/inf logits"):
        _run(tmp_path, [bad])
    # the good models' cells of an earlier run stay untouched in the same store
    _run(tmp_path, fake_models)
    with pytest.raises(InputError):
        _run(tmp_path, [*fake_models, bad])
    with Store(tmp_path / "out" / "results.sqlite", readonly=True) as st:
        assert {c.key.model for c in st.cells()} == {"tiny-gap", "tiny-gcp"}


def test_bad_options_are_user_errors(tmp_path, fake_models):
    with pytest.raises(InputError, match="batch-size"):
        _run(tmp_path, fake_models, batch_size=0)
    with pytest.raises(InputError, match="limit"):
        _run(tmp_path, fake_models, limit=0)


def test_eval_on_a_schema_1_store_says_how_to_recompute_per_image_outcomes(tmp_path, fake_models, caplog):
    import logging
    import sqlite3

    suite = tmp_path / "small.toml"
    suite.write_text('name = "small"\ndataset = "fashion-mnist-demo"\nparam_set = "cifar"\n[clean]\n'
                     '[corruptions]\nnames = ["fog"]\nseverities = [1, 2]\n')
    first = run_eval(EvalConfig(out=tmp_path / "o", suite=str(suite), limit=20), models=fake_models)
    con = sqlite3.connect(first.store)  # turn it into the store an older robench would have left
    with con:
        con.executescript("DROP TABLE per_image; DROP TABLE datasets; UPDATE meta SET value='1';")
    con.close()
    with caplog.at_level(logging.INFO, logger="robench"):
        again = run_eval(EvalConfig(out=tmp_path / "o", suite=str(suite), limit=20), models=fake_models)
    assert again.reused == 6 and again.computed == 0
    assert "6 stored cells have no per-image outcomes" in caplog.text and "--fresh" in caplog.text
    with Store(first.store, readonly=True) as st:
        assert st.outcomes("tiny-gap", "small") == {}
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="robench"):
        run_eval(EvalConfig(out=tmp_path / "o", suite=str(suite), limit=20, fresh=True), models=fake_models)
    assert "no per-image outcomes" not in caplog.text
    with Store(first.store, readonly=True) as st:
        assert len(st.outcomes("tiny-gap", "small")) == 3
