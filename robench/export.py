"""Per-image outcomes of a result store as one table (``robench export``, :func:`per_image`)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from robench.errors import InputError
from robench.outcomes import CLASSIFICATION_KINDS
from robench.store import Store

PER_IMAGE_COLUMNS = ["model", "suite", "kind", "item", "level", "index", "path", "label", "pred", "correct",
                     "correct5", "confidence", "nll", "brier"]


def per_image(store: str | Path | Store) -> pd.DataFrame:
    """One row per image of every clean and corruption cell that has per-image outcomes.

    Columns: model, suite, kind, item, level, index (dataset index), path (relative image path:
    ``<class>/<file>`` for image folders and released data, ``fashion-mnist-test/<index>`` for the demo
    data), label, pred (top-1 class), correct, correct5 (top-1 / top-5 correct) and confidence (softmax
    probability of ``pred``), nll (−log of the true class's probability) and brier (Σ_k (p_k − 1[k = label])²)
    of the same softmax (:mod:`robench.metrics.calibration`; empty for cells stored before store schema 3).
    Rows are sorted by model, suite, kind, item, level and index. Cells stored by a schema-1 robench (no
    per-image outcomes) are left out.

    Raises:
        InputError: a cell's per-image data does not add up to its stored counts.
    """
    st = store if isinstance(store, Store) else Store(store, readonly=True)
    try:
        datasets = {}
        for rec in st.cells():
            if rec.key.kind in CLASSIFICATION_KINDS:
                datasets[(rec.key.model, rec.key.suite, rec.key.kind, rec.key.item, rec.key.level)] = str(
                    rec.provenance.get("dataset", ""))
        pairs = sorted({(m, s) for m, s, *_ in datasets})
        paths_of: dict[str, list[str] | None] = {}
        frames = []
        for model, suite in pairs:
            terms = st.calibration(model, suite)
            for (kind, item, level), arrays in sorted(st.outcomes(model, suite).items()):
                if kind not in CLASSIFICATION_KINDS:
                    continue
                fingerprint = datasets[(model, suite, kind, item, level)]
                if fingerprint not in paths_of:
                    paths_of[fingerprint] = st.dataset_paths(fingerprint)
                frames.append(_frame(model, suite, kind, item, level, {**arrays, **terms.get((kind, item, level), {})},
                                     paths_of[fingerprint]))
    finally:
        if not isinstance(store, Store):
            st.close()
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in PER_IMAGE_COLUMNS})
    return pd.concat(frames, ignore_index=True)[PER_IMAGE_COLUMNS]


def _frame(model: str, suite: str, kind: str, item: str, level: int, arrays: dict[str, np.ndarray],
           paths: list[str] | None) -> pd.DataFrame:
    index = arrays["index"]
    n = len(index)
    if paths is not None and (n == 0 or int(index[-1]) < len(paths)):
        path = np.asarray(paths, dtype=object)[index]
    else:  # the dataset's paths were not recorded (or do not cover the indices): leave them empty
        path = np.full(n, None, dtype=object)
    frame = pd.DataFrame({"model": model, "suite": suite, "kind": kind, "item": item, "level": level},
                         index=pd.RangeIndex(n))
    frame["index"] = index
    frame["path"] = path
    for field in ("label", "pred", "correct", "correct5", "confidence"):
        frame[field] = arrays[field]
    for field in ("nll", "brier"):  # absent for cells stored before schema 3: blank, not an error
        frame[field] = arrays[field] if field in arrays else np.full(n, np.nan, dtype=np.float32)
    return frame


def write_per_image(store: str | Path, out: str | Path) -> tuple[Path, int]:
    """Write :func:`per_image` of ``store`` as CSV to ``out`` (atomically); returns the path and row count.

    Raises:
        InputError: ``out`` is a folder, or its folder cannot be written.
    """
    out = Path(out)
    if out.is_dir():
        raise InputError(f"--out {out} is a folder; pass a file name such as {out / 'per_image.csv'}.")
    table = per_image(store)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    table.to_csv(tmp, index=False)
    os.replace(tmp, out)
    return out, len(table)
