"""The released distribution-shift suites on tiny folders in each exact released layout.

Every image carries two class numbers painted as digits (top half: the class the fake model ranks first,
bottom half: the one it ranks second), so each test knows which prediction every image gets and can check
the labels, the 200-class mask and the ReaL label sets through the whole `robench eval` path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from robench.corruptions.catalog import RELEASED_CORRUPTIONS, released_names
from robench.data.imagenet_classes import imagenet_wnids, subset_indices, subset_wnids
from robench.data.sources import open_dataset
from robench.errors import InputError, RobenchError
from robench.evaluate import EvalConfig, run_eval
from robench.export import per_image
from robench.report import leaderboard, load_results
from robench.store import Store
from robench.suites import list_suites, load_suite
from tests._helpers import assert_same_per_image

WNIDS = imagenet_wnids()
A_IDX, R_IDX = subset_indices("imagenet-a"), subset_indices("imagenet-r")
OUTSIDE_A = 0  # tench: not an ImageNet-A class
SUITES = ("imagenet-a", "imagenet-r", "imagenet-sketch", "imagenetv2-matched-frequency", "imagenetv2-threshold0.7",
          "imagenetv2-top-images", "imagenet-real", "imagenet-c-bar", "imagenet-3dcc", "imagenet-val-a-classes",
          "imagenet-val-r-classes")


# ---- images and a model that reads them -------------------------------------------------------------------

def paint(first: int, second: int | None = None, size: int = 32) -> np.ndarray:
    """An image whose top half spells ``first`` and bottom half ``second`` (3 digits, one per channel)."""
    img = np.zeros((size, size, 3), dtype=np.uint8)
    for rows, k in ((slice(0, size // 2), first), (slice(size // 2, size), first if second is None else second)):
        img[rows] = [12 + 25 * int(d) for d in f"{k:03d}"]
    return img


def save(path: Path, first: int, second: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(paint(first, second)).save(path, quality=95)  # JPEG for .jpg/.jpeg/.JPEG names
    return path


class Digits(nn.Module):
    """Logits 5 on the top-half class, 4 on the bottom-half class, about -10 elsewhere (decreasing with the
    class index, so that no two logits tie), and 10 on ``outside``."""

    def __init__(self, outside: int | None = None) -> None:
        super().__init__()
        self.outside = outside

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape

        def read(row: int) -> torch.Tensor:
            d = ((x[:, :, row, w // 2] * 255 - 12) / 25).round().clamp(0, 9).long()
            return d[:, 0] * 100 + d[:, 1] * 10 + d[:, 2]

        logits = (-10.0 - 1e-3 * torch.arange(1000.0)).repeat(n, 1)
        logits.scatter_(1, read(h - 1 - h // 8)[:, None], 4.0)
        logits.scatter_(1, read(h // 8)[:, None], 5.0)
        if self.outside is not None:
            logits[:, self.outside] = 10.0
        return logits


@dataclass
class Model:
    name: str
    module: nn.Module
    arch: str = "digits"
    pooling: str = "gap"
    num_classes: int = 1000
    sha256: str = "d" * 64


def digits(outside: int | None = None) -> Model:
    return Model("digits", nn.Sequential(Digits(outside)))  # a container: its leaf stays one opaque call


def evaluate(tmp_path: Path, suite: str, data: Path, model: Model, **kw) -> Path:
    cfg = EvalConfig(suite=suite, data=data, out=tmp_path / "out", **kw)
    return run_eval(cfg, models=[model]).store


def one_line(exc: pytest.ExceptionInfo, *needles: str) -> str:
    text = str(exc.value)
    assert "\n" not in text and isinstance(exc.value, RobenchError), text
    for needle in needles:
        assert needle in text, text
    return text


# ---- the registry ------------------------------------------------------------------------------------------

def test_every_shift_suite_is_listed_with_licence_and_download_page():
    suites = {s.name: s for s in list_suites()}
    for name in SUITES:
        assert name in suites
        assert "https://" in suites[name].description
        assert any(lic in suites[name].description for lic in ("MIT", "Apache-2.0", "CC-BY-NC", "ImageNet terms"))
    from robench.cli import _list_corruptions, _list_datasets, _list_suites

    assert all(any(line.startswith(n + " ") for line in _list_suites()) for n in SUITES)
    assert all(any(line.startswith(n + " ") for line in _list_datasets()) for n in SUITES)
    assert any(line.startswith("fog_3d ") and "imagenet-3dcc" in line for line in _list_corruptions())


def test_shipped_class_lists():
    assert len(WNIDS) == 1000 and list(WNIDS) == sorted(WNIDS) and WNIDS[0] == "n01440764"
    for name, idx in (("imagenet-a", A_IDX), ("imagenet-r", R_IDX)):
        wnids = subset_wnids(name)
        assert len(wnids) == 200 and list(wnids) == sorted(wnids)
        assert [WNIDS[k] for k in idx] == list(wnids)
    assert (A_IDX[:3], A_IDX[-1], R_IDX[:3], R_IDX[-1]) == ((6, 11, 13), 988, (1, 2, 4), 988)  # SHIFTS.md §2
    assert len(set(A_IDX) & set(R_IDX)) == 86
    assert OUTSIDE_A not in A_IDX


# ---- ImageNetV2: integer class folders -----------------------------------------------------------------

def v2_tree(root: Path) -> Path:
    for folder in ("0", "1", "2", "10", "100", "999"):
        for k in range(2):
            save(root / folder / f"{k}a5f.jpeg", int(folder))
    return root


def test_imagenetv2_folder_10_is_class_10(tmp_path):
    root = v2_tree(tmp_path / "imagenetv2-matched-frequency-format-val")
    ds = open_dataset("imagenetv2-matched-frequency", root, load_suite("imagenetv2-matched-frequency").protocol)
    labels = dict(zip(ds.paths, ds.targets.tolist()))
    assert labels["10/0a5f.jpeg"] == 10 and labels["2/1a5f.jpeg"] == 2 and labels["999/0a5f.jpeg"] == 999
    assert len(ds.classes) == 1000
    store = evaluate(tmp_path, "imagenetv2-matched-frequency", root, digits())
    res = load_results(store)
    assert res.n.tolist() == [12] and res.top1_errors.tolist() == [0]
    rows = per_image(store)
    assert (rows.label == rows.path.str.split("/").str[0].astype(int)).all()
    # The trap the suite avoids: an ImageFolder (lexicographic) sort makes folder 10 class 3 here.
    suite = tmp_path / "folder.toml"
    suite.write_text('name = "folder"\ndataset = "imagefolder"\n[protocol]\nresize = 256\ncrop = 224\n[clean]\n')
    trap = load_results(evaluate(tmp_path / "trap", str(suite), root, digits()))
    assert trap.top1_errors.tolist() == [8]  # only folders 0 and 1 keep their labels


@pytest.mark.parametrize("variant", ["threshold0.7", "top-images"])
def test_other_imagenetv2_variants_read_the_same_layout(tmp_path, variant):
    root = v2_tree(tmp_path / f"imagenetv2-{variant}-format-val")
    res = load_results(evaluate(tmp_path, f"imagenetv2-{variant}", root, digits()))
    assert res.top1_errors.tolist() == [0] and res.suite.tolist() == [f"imagenetv2-{variant}"]


def test_imagenetv2_wnid_copy_and_bad_folders(tmp_path):
    root = tmp_path / "wnid-copy"
    for k in (3, 10):
        save(root / WNIDS[k] / "x.jpeg", k)
    ds = open_dataset("imagenetv2-top-images", root, load_suite("imagenetv2-top-images").protocol)
    assert dict(zip(ds.paths, ds.targets.tolist())) == {f"{WNIDS[3]}/x.jpeg": 3, f"{WNIDS[10]}/x.jpeg": 10}
    save(root / "7" / "x.jpeg", 7)
    with pytest.raises(InputError) as e:
        open_dataset("imagenetv2-top-images", root, load_suite("imagenetv2-top-images").protocol)
    one_line(e, "expected folders 0 … 999")
    big = tmp_path / "big"
    save(big / "1000" / "x.jpeg", 1)
    with pytest.raises(InputError) as e:
        open_dataset("imagenetv2-top-images", big, load_suite("imagenetv2-top-images").protocol)
    one_line(e, "0 … 999, not 1000")


# ---- ImageNet-A / -R: the 200-class mask -------------------------------------------------------------------

def a_tree(root: Path) -> tuple[Path, int]:
    """Three ImageNet-A classes, README.txt at the top; returns the root and the number of wrong images."""
    root.mkdir(parents=True)
    (root / "README.txt").write_text("wnid name\n")
    a0, a1, a2 = A_IDX[0], A_IDX[1], A_IDX[-1]
    save(root / WNIDS[a0] / "0.000348_chameleon _ box turtle_0.55540705.jpg", a0)  # right
    save(root / WNIDS[a0] / "0.1_x_0.2.jpg", a1, a0)  # wrong (a1), but right in the top 5
    save(root / WNIDS[a1] / "a.jpg", 5, a1)  # top class 5 is outside A: the mask leaves a1, right
    save(root / WNIDS[a2] / "b.jpg", a2)  # right
    return root, 1


def test_imagenet_a_scores_the_best_class_inside_the_subset(tmp_path):
    root, wrong = a_tree(tmp_path / "imagenet-a")
    model = digits(outside=OUTSIDE_A)  # its largest logit is always tench, outside the 200
    store = evaluate(tmp_path, "imagenet-a", root, model, batch_size=3)
    res = load_results(store)
    assert res.n.tolist() == [4] and res.top1_errors.tolist() == [wrong]
    rows = per_image(store)
    assert set(rows.pred) <= set(A_IDX) and OUTSIDE_A not in set(rows.pred)
    assert set(rows.label) == {A_IDX[0], A_IDX[1], A_IDX[-1]}  # ImageNet-1k indices, not 0…199
    # Confidence is the softmax over the 200 subset logits only (tench's 10 masked out).
    z = torch.tensor([5.0 if k == A_IDX[-1] else -10.0 - 1e-3 * k for k in A_IDX], dtype=torch.float64)
    right = rows[rows.path == f"{WNIDS[A_IDX[-1]]}/b.jpg"].iloc[0]
    assert right.confidence == pytest.approx(float(torch.softmax(z, 0)[-1]), rel=1e-5)
    assert rows.correct5.all()
    with Store(store, readonly=True) as st:
        provenance = next(iter(st.cells())).provenance
    assert provenance["scoring"] == "imagenet-a-200" and provenance["dataset"].startswith("imagenet-a:")


def test_masked_per_image_outcomes_do_not_depend_on_batch_size(tmp_path):
    root, _ = a_tree(tmp_path / "imagenet-a")
    stores = [evaluate(tmp_path / str(b), "imagenet-a", root, digits(outside=OUTSIDE_A), batch_size=b) for b in (1, 3)]
    assert assert_same_per_image(*stores) >= 6  # every per-image field of the one cell


def test_imagenet_r_mask_and_foreign_folders(tmp_path):
    root = tmp_path / "imagenet-r"
    r_only = next(k for k in R_IDX if k not in A_IDX)
    a_only = next(k for k in A_IDX if k not in R_IDX)
    save(root / WNIDS[r_only] / "cartoon_1.jpg", a_only, r_only)  # top class is an A-only class
    res = load_results(evaluate(tmp_path, "imagenet-r", root, digits(outside=0)))
    assert res.top1_errors.tolist() == [0]
    with pytest.raises(InputError) as e:  # the R folder passed to the A suite
        run_eval(EvalConfig(suite="imagenet-a", data=root, out=tmp_path / "o2"), models=[digits()])
    one_line(e, WNIDS[r_only], "not one of the 200 imagenet-a classes")


def test_imagenet_a_needs_an_imagenet_1k_model(tmp_path):
    root, _ = a_tree(tmp_path / "imagenet-a")
    small = Model("small", nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 200)), num_classes=200)
    with pytest.raises(InputError) as e:
        run_eval(EvalConfig(suite="imagenet-a", data=root, out=tmp_path / "o"), models=[small])
    one_line(e, "200 classes but the data has 1000")


@pytest.mark.parametrize(("suite", "subset"), [("imagenet-val-a-classes", A_IDX), ("imagenet-val-r-classes", R_IDX)])
def test_val_on_the_200_classes_is_the_matched_clean_baseline(tmp_path, suite, subset):
    val = tmp_path / "val"
    inside, outside = subset[3], next(k for k in range(1000) if k not in subset)
    save(val / WNIDS[inside] / "ILSVRC2012_val_00000001.JPEG", outside, inside)  # masked: `inside` wins
    save(val / WNIDS[inside] / "ILSVRC2012_val_00000002.JPEG", subset[4])  # wrong
    save(val / WNIDS[outside] / "ILSVRC2012_val_00000003.JPEG", outside)  # not one of the 200: skipped
    store = evaluate(tmp_path, suite, val, digits())
    res = load_results(store)
    assert res.n.tolist() == [2] and res.top1_errors.tolist() == [1]
    with Store(store, readonly=True) as st:
        assert next(iter(st.cells())).provenance["scoring"] == suite.replace("val-", "").replace("-classes", "-200")


# ---- ImageNet-Sketch ---------------------------------------------------------------------------------------

def test_imagenet_sketch_labels_are_imagenet_indices_even_for_a_partial_copy(tmp_path):
    root = tmp_path / "sketch"
    for k in (17, 500, 999):
        save(root / WNIDS[k] / "sketch_1.JPEG", k)
    save(root / WNIDS[500] / "sketch_2.JPEG", 3)  # wrong
    store = evaluate(tmp_path, "imagenet-sketch", root, digits())
    res = load_results(store)
    assert res.n.tolist() == [4] and res.top1_errors.tolist() == [1]
    assert sorted(set(per_image(store).label)) == [17, 500, 999]


# ---- ImageNet-ReaL -----------------------------------------------------------------------------------------

REAL = [[], [5, 7], [3], [9], [], [2, 4, 6], [8]]
"""Labels of ILSVRC2012_val_00000001 … 7 (the first and fifth have none)."""


def real_tree(root: Path) -> Path:
    """Val images in WNID folders; (top, second) class painted into each."""
    painted = {1: (1, 1), 2: (7, 0), 3: (4, 3), 4: (9, 9), 5: (5, 5), 6: (8, 6), 7: (2, 1)}
    for i, (top, second) in painted.items():
        save(root / WNIDS[i % 3] / f"ILSVRC2012_val_{i:08d}.JPEG", top, second)
    (root.parent / "real.json").write_text(json.dumps(REAL))
    return root


def test_imagenet_real_label_sets_and_exclusions(tmp_path):
    root = real_tree(tmp_path / "imagenet" / "val")
    store = evaluate(tmp_path, "imagenet-real", root, digits(), batch_size=2)
    res = load_results(store)
    # Scored: val 2 (7 ∈ {5,7}: right), 3 (4 ∉ {3}, 3 second), 4 (9: right), 6 (8 ∉ {2,4,6}, 6 second),
    # 7 (2 ∉ {8}, 1 second: wrong in the top 5 too). Val 1 and 5 have no ReaL label: excluded.
    assert res.n.tolist() == [5]
    assert res.top1_errors.tolist() == [3] and res.top5_errors.tolist() == [1]
    rows = per_image(store).set_index("path")
    assert not any(p.endswith(("00000001.JPEG", "00000005.JPEG")) for p in rows.index)
    by_val = {int(p[-13:-5]): r for p, r in rows.iterrows()}
    assert by_val[2].correct and by_val[2].label == 7 and by_val[4].correct
    assert not by_val[3].correct and by_val[3].correct5 and by_val[3].label == 3
    assert not by_val[6].correct and by_val[6].label == 6 and by_val[7].label == 8 and not by_val[7].correct5
    with Store(store, readonly=True) as st:
        assert next(iter(st.cells())).provenance["scoring"] == "real-label-sets"


def test_imagenet_real_results_do_not_depend_on_batch_size(tmp_path):
    root = real_tree(tmp_path / "imagenet" / "val")
    a = load_results(evaluate(tmp_path / "a", "imagenet-real", root, digits(), batch_size=1))
    b = load_results(evaluate(tmp_path / "b", "imagenet-real", root, digits(), batch_size=64))
    assert a[["n", "top1_errors", "top5_errors"]].equals(b[["n", "top1_errors", "top5_errors"]])


def test_imagenet_real_json_inside_val_and_its_errors(tmp_path):
    root = real_tree(tmp_path / "imagenet" / "val")
    (root.parent / "real.json").rename(root / "real.json")
    protocol = load_suite("imagenet-real").protocol
    assert len(open_dataset("imagenet-real", root, protocol)) == 5
    (root / "real.json").unlink()
    with pytest.raises(FileNotFoundError) as e:
        open_dataset("imagenet-real", root, protocol)
    one_line(e, "No real.json", "reassessed-imagenet", str(root.parent / "real.json"))
    (root / "real.json").write_text(json.dumps([[1], [1, 1000]]))
    with pytest.raises(InputError) as e:
        open_dataset("imagenet-real", root, protocol)
    one_line(e, "entry 1 is [1, 1000]")
    (root / "real.json").write_text(json.dumps(REAL[:3]))
    with pytest.raises(InputError) as e:
        open_dataset("imagenet-real", root, protocol)
    one_line(e, "keyed by the val file names ILSVRC2012_val_00000001 … 00000003", "rename or remove")


# ---- ImageNet-C-bar and ImageNet-3DCC ----------------------------------------------------------------------

def corruption_tree(root: Path, folders) -> tuple[Path, str]:
    """Two val images of two classes under every (corruption, severity folder) of a dataset; the image of
    class 3 is predicted wrong at severity 5 of the second corruption only (returned)."""
    names = released_names(root.name)
    for c_i, name in enumerate(names):
        for s_i, folder in enumerate(folders(name)):
            for k, file in ((3, "ILSVRC2012_val_00000293.JPEG"), (7, "ILSVRC2012_val_00002138.JPEG")):
                save(root / name / folder / WNIDS[k] / file, 8 if (c_i, s_i, k) == (1, 4, 3) else k)
    return root, names[1]


def test_imagenet_c_bar_per_corruption_cells_both_severity_layouts_no_mce(tmp_path):
    value_named = "caustic_refraction"  # the generator's layout: folders 2.35, 3.20, 4.90, 6.60, 9.15
    values = RELEASED_CORRUPTIONS.get(value_named).value_folders
    assert values == ("2.35", "3.20", "4.90", "6.60", "9.15")
    root, hit = corruption_tree(tmp_path / "imagenet-c-bar",
                                lambda c: values if c == value_named else ("1", "2", "3", "4", "5"))
    assert hit == "brownish_noise"
    store = evaluate(tmp_path, "imagenet-c-bar", root, digits(), batch_size=3)
    res = load_results(store)
    assert len(res) == 50 and set(res["item"]) == set(released_names("imagenet-c-bar")) and (res.n == 2).all()
    wrong = res[res.top1_errors > 0]
    assert wrong[["item", "level", "top1_errors"]].values.tolist() == [[hit, 5, 1]]
    table = leaderboard(store, "corruptions").set_index("corruption")
    assert table.loc[hit, "err"] == pytest.approx(10.0) and (table.drop(hit).err == 0).all()
    assert "CE" not in table.columns
    board = leaderboard(store, "overall")
    assert "mCE" not in board.columns  # no published normaliser for C-bar
    labels = per_image(store).groupby("path").label.first()
    assert labels.to_dict() == {f"{WNIDS[3]}/ILSVRC2012_val_00000293.JPEG": 3,
                                f"{WNIDS[7]}/ILSVRC2012_val_00002138.JPEG": 7}


def test_imagenet_3dcc_mce_uses_robustbench_alexnet(tmp_path):
    root, hit = corruption_tree(tmp_path / "imagenet-3dcc", lambda _: ("1", "2", "3", "4", "5"))
    assert hit == "far_focus"
    store = evaluate(tmp_path, "imagenet-3dcc", root, digits(), batch_size=4)
    res = load_results(store)
    assert len(res) == 60 and (res.n == 2).all() and res.top1_errors.sum() == 1
    base = load_suite("imagenet-3dcc").baseline
    assert base is not None and len(base.errors) == 12
    assert 1 - np.mean([e for errs in base.errors.values() for e in errs]) == pytest.approx(0.2847, abs=5e-5)
    expected = 100 * (0.5 / sum(base.errors[hit])) / 12  # one severity at 50 % error, every other cell 0
    assert leaderboard(store, "overall").mCE.iloc[0] == pytest.approx(expected)


def test_published_table_compares_only_like_with_like(tmp_path):
    from robench.models.cards import read_card

    card = tmp_path / "digits.toml"
    card.write_text('name = "digits"\narch = "resnet50"\npooling = "gap"\nnum_classes = 1000\nsource = "w.pt"\n'
                    "mean = [0.5, 0.5, 0.5]\nstd = [0.25, 0.25, 0.25]\n"
                    '[accuracy]\nimagenet-val = 76.0\nimagenet-sketch = 24.0\n[published]\nmce = 76.7\n')
    model = digits()
    model.card = read_card(card)
    sketch = tmp_path / "sketch"
    save(sketch / WNIDS[5] / "a.JPEG", 5)
    v2 = v2_tree(tmp_path / "v2")
    c3d, _ = corruption_tree(tmp_path / "imagenet-3dcc", lambda _: ("1", "2", "3", "4", "5"))
    for suite, data in (("imagenet-sketch", sketch), ("imagenetv2-top-images", v2), ("imagenet-3dcc", c3d)):
        store = evaluate(tmp_path, suite, data, model)
    pub = leaderboard(store, "published")
    # Sketch against the card's Sketch accuracy, ImageNetV2 not against the val accuracy, and the card's
    # ImageNet-C mCE never beside the 3DCC mCE.
    clean = pub[pub.metric == "clean_err"]
    assert clean[["suite", "source", "published"]].values.tolist() == [["imagenet-sketch", "imagenet-sketch", 76.0]]
    assert not ((pub.suite == "imagenet-3dcc") & (pub.metric == "mCE")).any()
    assert leaderboard(store, "overall").set_index("suite").loc["imagenet-3dcc", "mCE"] > 0


def test_released_only_corruptions_cannot_be_generated(tmp_path):
    suite = tmp_path / "gen.toml"
    suite.write_text('name = "gen"\ndataset = "imagefolder"\n[corruptions]\nnames = ["fog_3d"]\nseverities = [1]\n')
    val = tmp_path / "val"
    save(val / WNIDS[0] / "x.JPEG", 0)
    with pytest.raises(InputError) as e:
        run_eval(EvalConfig(suite=str(suite), data=val, out=tmp_path / "o"), models=[digits()])
    one_line(e, "fog_3d exists only as released images (imagenet-3dcc)")


# ---- one-line errors for missing and mis-laid folders ------------------------------------------------------

@pytest.mark.parametrize("suite", SUITES)
def test_missing_data_is_one_line(tmp_path, suite):
    with pytest.raises(RobenchError) as e:
        run_eval(EvalConfig(suite=suite, data=None, out=tmp_path / "o"), models=[digits()])
    one_line(e, "pass --data", "https://")
    with pytest.raises(FileNotFoundError) as e:
        run_eval(EvalConfig(suite=suite, data=tmp_path / "nowhere", out=tmp_path / "o"), models=[digits()])
    one_line(e, str(tmp_path / "nowhere"))


@pytest.mark.parametrize(("suite", "top", "build"), [
    ("imagenet-a", "imagenet-a", lambda r: a_tree(r)),
    ("imagenetv2-matched-frequency", "imagenetv2-matched-frequency-format-val", v2_tree),
    ("imagenet-real", "val", real_tree),
    ("imagenet-c-bar", "ImageNet-C-bar",
     lambda r: save(r / "sparkles" / "1" / WNIDS[0] / "ILSVRC2012_val_00000001.JPEG", 0)),
])
def test_a_folder_one_level_too_high_names_the_right_one(tmp_path, suite, top, build):
    build(tmp_path / "download" / top)
    with pytest.raises(InputError) as e:
        run_eval(EvalConfig(suite=suite, data=tmp_path / "download", out=tmp_path / "o"), models=[digits()])
    one_line(e, "is not the", f"pass --data {tmp_path / 'download' / top}")


def test_wrong_folders_and_missing_cells_are_one_line(tmp_path):
    other = tmp_path / "other"
    save(other / "cats" / "x.jpg", 0)
    with pytest.raises(InputError) as e:
        run_eval(EvalConfig(suite="imagenet-sketch", data=other, out=tmp_path / "o"), models=[digits()])
    one_line(e, "expected ROOT/<wnid>/<image>.JPEG")
    imagenet_c = tmp_path / "ImageNet-C"
    save(imagenet_c / "fog" / "1" / WNIDS[0] / "x.JPEG", 0)
    with pytest.raises(InputError) as e:
        run_eval(EvalConfig(suite="imagenet-3dcc", data=imagenet_c, out=tmp_path / "o"), models=[digits()])
    one_line(e, "near_focus", "fog_3d")
    partial = tmp_path / "ImageNet-3DCC"
    save(partial / "near_focus" / "1" / WNIDS[0] / "x.JPEG", 0)
    with pytest.raises(FileNotFoundError) as e:
        run_eval(EvalConfig(suite="imagenet-3dcc", data=partial, out=tmp_path / "o"), models=[digits()])
    one_line(e, str(partial / "near_focus" / "2"), "incomplete")


# ---- the command line, end to end with a model card -------------------------------------------------------

def test_cli_eval_imagenet_a_with_a_model_card(tmp_path, capsys):
    from safetensors.torch import save_file

    from robench.models import create_model

    root, _ = a_tree(tmp_path / "imagenet-a")
    torch.manual_seed(0)
    net = create_model("resnet_demo", "gap", num_classes=1000)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, tmp_path / "w.safetensors")
    card = tmp_path / "tiny-in1k.toml"
    card.write_text('name = "tiny-in1k"\narch = "resnet_demo"\npooling = "gap"\nnum_classes = 1000\n'
                    'source = "w.safetensors"\nmean = [0.5, 0.5, 0.5]\nstd = [0.25, 0.25, 0.25]\n')
    from robench.cli import main

    args = ["eval", "--suite", "imagenet-a", "--ckpt", str(card)]
    assert main([*args, "--data", str(root), "--out", str(tmp_path / "out")]) == 0
    assert "imagenet-a" in capsys.readouterr().out
    rows = per_image(tmp_path / "out" / "results.sqlite")
    assert len(rows) == 4 and set(rows.pred) <= set(A_IDX)  # predictions only ever among the 200
    # A user mistake: one line on stderr and exit code 2, as `robench` prints it.
    assert main([*args, "--data", str(tmp_path), "--out", str(tmp_path / "out2")]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("robench: error:"), lines
    assert f"pass --data {root}" in lines[0]
