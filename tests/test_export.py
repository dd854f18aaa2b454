"""Per-image export: `robench export` and `robench.per_image`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import robench
from robench.cli import main
from robench.data.sources import open_dataset
from robench.evaluate import EvalConfig, run_eval
from robench.export import PER_IMAGE_COLUMNS
from robench.report import load_results
from robench.suites import Protocol

SUITE = ('name = "small"\ndataset = "fashion-mnist-demo"\nparam_set = "cifar"\n[clean]\n'
         '[corruptions]\nnames = ["fog", "gaussian_noise"]\nseverities = [1, 3]\n'
         '[perturbations]\nnames = ["translate"]\nlimit = 4\n')


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from tests.conftest import FakeModel, tiny_net

    tmp = tmp_path_factory.mktemp("export")
    (tmp / "small.toml").write_text(SUITE)
    models = [FakeModel("tiny-gap", "tiny", "gap", 10, "a" * 64, tiny_net(0)),
              FakeModel("tiny-gcp", "tiny", "gcp", 10, "b" * 64, tiny_net(1))]
    return run_eval(EvalConfig(suite=str(tmp / "small.toml"), out=tmp / "o", limit=30, batch_size=8),
                    models=models).store


def test_export_sums_to_the_stored_counts(store):
    table = robench.per_image(store)
    assert list(table.columns) == PER_IMAGE_COLUMNS
    assert set(table.kind) == {"clean", "corruption"}  # perturbation cells have no per-image classification
    cells = load_results(store)
    cells = cells[cells.kind.isin(["clean", "corruption"])]
    assert len(cells) == 2 * 5
    per_cell = table.groupby(["model", "kind", "item", "level"]).agg(
        n=("index", "size"), top1=("correct", lambda c: int((~c).sum())),
        top5=("correct5", lambda c: int((~c).sum())))
    for _, row in cells.iterrows():
        got = per_cell.loc[(row["model"], row["kind"], row["item"], row["level"])]
        assert (got["n"], got["top1"], got["top5"]) == (row["n"], row["top1_errors"], row["top5_errors"])
    assert (table.path == "fashion-mnist-test/" + table["index"].astype(str)).all()
    assert (table.correct == (table.pred == table.label)).all()
    # the 30 images are the balanced subset: 3 of each class in every cell
    per_class = table.groupby(["model", "item", "level"]).label.apply(lambda s: np.bincount(s, minlength=10).min())
    assert (per_class == 3).all()


def test_confidence_is_the_softmax_of_independently_computed_logits(store):
    from tests.conftest import tiny_net

    table = robench.per_image(store)
    clean = table[(table.kind == "clean") & (table.model == "tiny-gcp")]
    ds = open_dataset("fashion-mnist-demo", None, Protocol())
    for _, row in clean.iloc[[0, 7, 29]].iterrows():
        i = int(row["index"])
        x = ds.images[i : i + 1].float() / 255.0
        with torch.no_grad():
            p = torch.softmax(tiny_net(1)(x).double(), dim=1)[0]
        assert row["label"] == int(ds.labels[i])
        assert row["pred"] == int(p.argmax())
        assert row["confidence"] == pytest.approx(float(p.max()), abs=2e-6)


def test_cli_export_writes_the_same_table(store, tmp_path):
    out = tmp_path / "deep" / "per_image.csv"
    assert main(["export", "--store", str(store), "--out", str(out)]) == 0
    csv = pd.read_csv(out)
    table = robench.per_image(store)
    assert list(csv.columns) == PER_IMAGE_COLUMNS and len(csv) == len(table)
    assert (csv.correct.to_numpy() == table.correct.to_numpy()).all()
    np.testing.assert_array_equal(csv.confidence.to_numpy(np.float32), table.confidence.to_numpy())
    assert main(["export", "--store", str(store), "--out", str(tmp_path)]) == 2
    assert main(["export", "--store", str(tmp_path / "none.sqlite"), "--out", str(out)]) == 2
