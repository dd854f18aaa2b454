"""Resolution-aware protocols: ``resolution = "model"`` prepares images with the model's own preprocessing,
picks the parameter set by the documented rule, records both, and refuses to pair different protocols."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from robench.errors import InputError
from robench.evaluate import EvalConfig, run_eval
from robench.models.preprocess import Preprocessing
from robench.report.comparisons import paired
from robench.report.tables import load_results
from robench.resolution import RULE, at_model_resolution, nearest_param_set
from robench.store import Store
from robench.suites import Protocol, parse_suite
from tests.conftest import FakeModel, tiny_net

SUITE = """
name = "res"
dataset = "imagefolder"
param_set = "imagenet"
[protocol]
resize = 256
crop = 224
quantize = true
{resolution}
[clean]
[corruptions]
names = ["gaussian_noise"]
severities = [2]
"""


@dataclasses.dataclass
class SizedModel(FakeModel):
    preprocessing: Preprocessing | None = None


def _pre(resize: int, crop: int, interpolation: str = "bilinear") -> Preprocessing:
    return Preprocessing(crop, resize, crop, interpolation, origin="test")


@pytest.fixture
def folder(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    for k in range(8):
        d = root / f"c{k % 2}"
        d.mkdir(parents=True, exist_ok=True)
        h, w = 48 + 3 * k, 56 - 2 * k
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(d / f"{k}.png")
    return root


def _suite_file(tmp_path: Path, resolution: str) -> Path:
    path = tmp_path / f"res-{abs(hash(resolution))}.toml"
    path.write_text(SUITE.format(resolution=resolution))
    return path


def test_parsing_resolution():
    base = {"dataset": "imagefolder", "clean": {}}
    assert parse_suite({**base, "protocol": {"crop": 224}}).protocol.resolution == "official"
    assert parse_suite({**base, "protocol": {"crop": 224, "resolution": 224}}).protocol.resolution == "official"
    assert parse_suite({**base, "protocol": {"crop": 224, "resolution": "model"}}).protocol.resolution == "model"
    with pytest.raises(InputError, match=r"differs from protocol\.crop = 224"):
        parse_suite({**base, "protocol": {"crop": 224, "resolution": 288}})
    with pytest.raises(InputError, match="resolution must be"):
        parse_suite({**base, "protocol": {"resolution": "native"}})
    # official keys are those of earlier versions, so stored cells stay valid
    assert Protocol(resize=256, crop=224).key() == "q1-jpeg0-r256-c224"
    assert Protocol(resize=303, crop=288, interpolation="bicubic", resolution="model").key() == (
        "q1-jpeg0-r303-c288-bicubic-resmodel")


@pytest.mark.parametrize(("size", "expected"), [(32, "cifar"), (40, "cifar"), (64, "tinyimagenet"),
                                                (100, "tinyimagenet"), (128, "imagenet"), (176, "imagenet"),
                                                (288, "imagenet"), (448, "imagenet")])
def test_nearest_published_parameter_set(size, expected):
    assert nearest_param_set(size) == expected


def test_models_that_prepare_images_differently_cannot_share_a_run():
    suite = parse_suite(json.loads(json.dumps({"dataset": "imagefolder", "clean": {},
                                               "protocol": {"resize": 256, "crop": 224, "resolution": "model"}})))
    a = SizedModel("a", "x", "gap", 10, "a" * 64, tiny_net(0), _pre(303, 288, "bicubic"))
    b = SizedModel("b", "x", "gcp", 10, "b" * 64, tiny_net(1), _pre(256, 224))
    resolved = at_model_resolution(suite, [a])
    assert (resolved.protocol.resize, resolved.protocol.crop, resolved.protocol.interpolation) == (303, 288, "bicubic")
    assert resolved.param_set == "imagenet"
    with pytest.raises(InputError, match="prepare images differently"):
        at_model_resolution(suite, [a, b])
    official = parse_suite({"dataset": "imagefolder", "clean": {}, "protocol": {"resize": 256, "crop": 224}})
    assert at_model_resolution(official, [a, b]) is official


def _provenance(store: Path) -> list[dict]:
    con = sqlite3.connect(store)
    try:
        return [json.loads(p) for (p,) in con.execute("SELECT provenance FROM cells ORDER BY kind")]
    finally:
        con.close()


def test_model_resolution_prepares_images_with_the_models_preprocessing(tmp_path, folder):
    gap = SizedModel("tiny-gap", "tiny", "gap", 10, "a" * 64, tiny_net(0), _pre(36, 32, "bicubic"))
    out = tmp_path / "model"
    run_eval(EvalConfig(suite=str(_suite_file(tmp_path, 'resolution = "model"')), data=folder, out=out),
             models=[gap])
    records = _provenance(out / "results.sqlite")
    assert len(records) == 2
    for rec in records:
        assert rec["preprocessing"]["resize"] == 36 and rec["preprocessing"]["interpolation"] == "bicubic"
        assert {k: rec["protocol"][k] for k in ("resolution", "resize", "crop", "interpolation", "param_set")} == {
            "resolution": "model", "resize": 36, "crop": 32, "interpolation": "bicubic", "param_set": "cifar"}
        assert rec["protocol"]["param_set_rule"] == RULE
    # the stored clean error is that of the model on the images its own preprocessing gives
    from robench.data.sources import ImageFolderSource

    ds = ImageFolderSource(folder, Protocol(resize=36, crop=32, interpolation="bicubic"))
    x = torch.stack([ds[i][0] for i in range(len(ds))]).float() / 255
    with torch.no_grad():
        wrong = int((gap.module(x).argmax(1) != torch.as_tensor(ds.targets)).sum())
    board = load_results(out / "results.sqlite")
    assert int(board[board.kind == "clean"].top1_errors.iloc[0]) == wrong
    assert set(board.protocol) == {"q1-jpeg0-r36-c32-bicubic-resmodel"}


def test_paired_models_under_different_protocols_are_refused(tmp_path, folder):
    out = tmp_path / "store"
    model_suite = _suite_file(tmp_path, 'resolution = "model"')
    gap = SizedModel("tiny-gap", "tiny", "gap", 10, "a" * 64, tiny_net(0), _pre(40, 32))
    gcp = SizedModel("tiny-gcp", "tiny", "gcp", 10, "b" * 64, tiny_net(1), _pre(36, 32))
    run_eval(EvalConfig(suite=str(model_suite), data=folder, out=out), models=[gap])
    run_eval(EvalConfig(suite=str(model_suite), data=folder, out=out), models=[gcp])
    with Store(out / "results.sqlite", readonly=True) as st:
        suites = st.suites()
    df = load_results(out / "results.sqlite")
    with pytest.raises(InputError, match="different protocols"):
        paired(df, suites)
    # the same preprocessing for both: paired as usual
    same = tmp_path / "same"
    for m in (gap, dataclasses.replace(gcp, preprocessing=_pre(40, 32))):
        run_eval(EvalConfig(suite=str(model_suite), data=folder, out=same), models=[m])
    with Store(same / "results.sqlite", readonly=True) as st:
        table = paired(load_results(same / "results.sqlite"), st.suites())
    assert list(table.gap_model) == ["tiny-gap"] and list(table.gcp_model) == ["tiny-gcp"]


def test_a_suite_that_crops_after_transforming_keeps_that_order_at_the_models_sizes():
    suite = parse_suite({"dataset": "imagefolder", "param_set": "imagenet",
                         "protocol": {"resize": 256, "resolution": "model"},
                         "perturbations": {"names": ["gaussian_noise", "translate"], "crop": 224}})
    model = SizedModel("a", "x", "gap", 10, "a" * 64, tiny_net(0), _pre(64, 56))
    resolved = at_model_resolution(suite, [model])
    assert (resolved.protocol.resize, resolved.protocol.crop) == (64, 0)
    assert {i.settings["crop"] for i in resolved.items} == {56}
    assert resolved.param_set == "tinyimagenet"
