"""Class-balanced subsets (`limit`) and explicit subset files (`subset`, `--subset`)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from PIL import Image

from robench.data.selection import balanced_order, dataset_selection, select
from robench.data.sources import ImageFolderSource, open_dataset
from robench.errors import InputError, MissingFileError
from robench.evaluate import EvalConfig, run_eval
from robench.export import per_image
from robench.store import Store
from robench.suites import Protocol, load_suite

SIZES = {"cat": 7, "dog": 2, "eel": 5, "fox": 4}  # class-sorted folders of unequal size


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "val"
    for cls, count in SIZES.items():
        (root / cls).mkdir(parents=True)
        for k in range(count):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / cls / f"img{k:02d}.png")
    return root


def _classes(ds, indices):
    return Counter(ds.classes[ds.targets[i]] for i in indices)


def test_limit_takes_a_balanced_subset_of_a_class_sorted_folder(folder):
    ds = ImageFolderSource(folder, Protocol())
    assert ds.paths[:2] == ["cat/img00.png", "cat/img01.png"] and len(ds) == 18
    picked = dataset_selection(ds, limit=8).indices()
    assert _classes(ds, picked) == {"cat": 2, "dog": 2, "eel": 2, "fox": 2}  # not the first 8 (all cats)
    assert picked == sorted(picked)
    assert [ds.paths[i] for i in picked if ds.paths[i].startswith("eel")] == ["eel/img00.png", "eel/img01.png"]
    # 10 = 2·4 + 2: the first 10 mod 4 classes (sorted) get one more, dog has only two
    assert _classes(ds, dataset_selection(ds, limit=10).indices()) == {"cat": 3, "dog": 2, "eel": 3, "fox": 2}
    # a run out class is skipped, the rest keep alternating
    assert _classes(ds, dataset_selection(ds, limit=14).indices()) == {"cat": 4, "dog": 2, "eel": 4, "fox": 4}
    assert dataset_selection(ds).indices() == list(range(18))
    assert dataset_selection(ds, limit=100).indices() == list(range(18))


@pytest.mark.parametrize("seed", range(5))
def test_balanced_order_counts_and_prefixes(seed):
    rng = np.random.default_rng(seed)
    labels = np.sort(rng.integers(0, 7, 300))  # class-sorted like an ImageFolder
    order = balanced_order(labels, range(300))
    assert sorted(order.tolist()) == list(range(300))
    counts = np.bincount(labels, minlength=7)
    for n in (1, 7, 20, 64, 150, 299):
        per_class = np.bincount(labels[order[:n]], minlength=7)
        # round robin: every class has m or m − 1 images (m the most any class has), or all of its own
        m = per_class.max()
        assert (per_class >= np.minimum(counts, m - 1)).all() and per_class.sum() == n
    # a smaller limit is a subset of a larger one (item limits inside the suite limit)
    assert set(order[:50].tolist()) <= set(order[:120].tolist())


def test_selection_key_identifies_the_images(folder):
    ds = ImageFolderSource(folder, Protocol())
    full, some = dataset_selection(ds), dataset_selection(ds, limit=8)
    assert full.key() is None  # the whole dataset keeps the configs of earlier robench versions
    assert some.key() != dataset_selection(ds, limit=9).key()
    assert some.key(4) != some.key() and some.key(4).startswith("round-robin-v1:")
    assert some.indices(4) == sorted(some.order[:4].tolist())


def test_subset_file_selects_listed_paths(folder, tmp_path):
    ds = ImageFolderSource(folder, Protocol())
    listing = tmp_path / "ids.txt"
    listing.write_text("# RobustBench-style list\nfox/img03.png\n\ncat/img05.png\n./dog/img00.png\neel/img01.png\n")
    chosen = dataset_selection(ds, subset=listing)
    assert [ds.paths[i] for i in chosen.indices()] == ["cat/img05.png", "dog/img00.png", "eel/img01.png",
                                                       "fox/img03.png"]
    assert chosen.key() is not None and chosen.key() != dataset_selection(ds, limit=4).key()
    assert len(dataset_selection(ds, subset=listing, limit=2).indices()) == 2
    listing.write_text("cat/img00.png\ncat/nope.png\ndog/gone.png\n")
    with pytest.raises(InputError, match=r"2 of 3 images are not in the dataset, the first is 'cat/nope.png'"):
        dataset_selection(ds, subset=listing)
    listing.write_text("cat/img00.png\ncat/img00.png\n")
    with pytest.raises(InputError, match="twice"):
        dataset_selection(ds, subset=listing)
    with pytest.raises(MissingFileError, match="does not exist"):
        dataset_selection(ds, subset=tmp_path / "none.txt")
    with pytest.raises(InputError, match="positive"):
        select(ds.targets, ds.paths, limit=0)


def test_demo_data_is_balanced_and_named_by_test_index():
    ds = open_dataset("fashion-mnist-demo", None, Protocol())
    assert ds.paths[:2] == ["fashion-mnist-test/0", "fashion-mnist-test/1"]
    picked = dataset_selection(ds, limit=200).indices()
    assert (np.bincount(ds.targets[picked], minlength=10) == 20).all()


def _suite(tmp_path, extra: str) -> str:
    path = tmp_path / "sub" / "s.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(f'name = "s"\ndataset = "imagefolder"\nparam_set = "imagenet"\n{extra}\n[clean]\n'
                    '[corruptions]\nnames = ["contrast"]\nseverities = [1]\nlimit = 4\n')
    return str(path)


def test_eval_uses_balanced_limits_and_subset_files(folder, tmp_path, fake_models):
    suite = _suite(tmp_path, "limit = 8")
    summary = run_eval(EvalConfig(suite=suite, data=folder, out=tmp_path / "a", batch_size=3), models=fake_models)
    ds = ImageFolderSource(folder, Protocol())
    with Store(summary.store, readonly=True) as st:
        got = st.outcomes("tiny-gap", "s")
    clean, corr = got[("clean", "clean", 0)]["index"], got[("corruption", "contrast", 1)]["index"]
    assert _classes(ds, clean) == {"cat": 2, "dog": 2, "eel": 2, "fox": 2}
    assert _classes(ds, corr) == {"cat": 1, "dog": 1, "eel": 1, "fox": 1} and set(corr) <= set(clean)
    (tmp_path / "sub" / "ids.txt").write_text("dog/img01.png\nfox/img00.png\ncat/img06.png\n")
    listed = _suite(tmp_path, 'subset = "ids.txt"')  # relative to the suite file
    assert load_suite(listed).subset == tmp_path / "sub" / "ids.txt"
    summary = run_eval(EvalConfig(suite=listed, data=folder, out=tmp_path / "b"), models=fake_models)
    with Store(summary.store, readonly=True) as st:
        clean = st.outcomes("tiny-gcp", "s")[("clean", "clean", 0)]["index"]
    assert [ds.paths[i] for i in clean] == ["cat/img06.png", "dog/img01.png", "fox/img00.png"]
    exported = per_image(summary.store)
    assert list(exported[exported.kind == "clean"].path.unique()) == ["cat/img06.png", "dog/img01.png",
                                                                     "fox/img00.png"]
    (tmp_path / "other.txt").write_text("eel/img04.png\n")  # --subset overrides the suite's file
    again = run_eval(EvalConfig(suite=listed, data=folder, out=tmp_path / "b", subset=tmp_path / "other.txt"),
                     models=fake_models)
    assert again.reused == 0 and again.stale == 4
