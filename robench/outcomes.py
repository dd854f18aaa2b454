"""Per-image outcomes of a cell: what each image (or video) contributed to the cell's counts.

A cell's counts (``top1_errors``, ``flips``, …) are sums over its images. The store keeps the terms
of those sums as well, one aligned array per field sorted by dataset index, so that intervals,
paired tests and per-image exports can be formed without re-running a model. Each cell kind
declares its fields here (:data:`OUTCOMES`) with a check that the arrays add up to the counts
exactly; the store runs the check on every write and every read.

Fields by kind:

* ``clean`` / ``corruption``: ``index``, ``label``, ``pred`` (top-1 class), ``correct``,
  ``correct5`` (bool) and ``confidence`` (float32 softmax probability of ``pred``); optional calibration
  terms ``nll`` and ``brier`` (float32, :mod:`robench.metrics.calibration`), stored since store schema 3 in
  their own table beside the outcomes (cells of older stores have none: their calibration stays blank).
* ``perturbation``: per video ``index``, ``flips``, ``t5d`` (sum of the video's pair top-5
  distances) and ``pairs``.
* ``attack``: ``index`` (every evaluated image) and ``robust`` (bool).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from robench._registry import Registry

Arrays = dict[str, np.ndarray]
Check = Callable[[Mapping[str, np.ndarray], Mapping[str, Any]], "str | None"]


@dataclass(frozen=True)
class OutcomeSpec:
    """The per-image fields of one cell kind and how they must add up to its counts.

    Args:
        fields: Field name → numpy dtype string (the stored and returned dtype); ``index`` first.
        check: ``check(arrays, counts)`` → a description of the first mismatch, or ``None``.
        calibration: Optional per-image calibration terms (field → dtype), aligned with ``fields``; a cell
            has all of them or none.
    """

    fields: Mapping[str, str]
    check: Check
    calibration: Mapping[str, str] = field(default_factory=dict)


OUTCOMES: Registry[OutcomeSpec] = Registry("per-image outcome kind")


def _eq(what: str, got: int | float, want: Any) -> str | None:
    return None if got == want else f"{what} is {got} but the stored count is {want}"


def _check_classification(a: Mapping[str, np.ndarray], counts: Mapping[str, Any]) -> str | None:
    if not np.array_equal(a["correct"], a["pred"] == a["label"]):
        return "'correct' disagrees with pred == label"
    if np.any(a["correct"] & ~a["correct5"]):
        return "an image is top-1 correct but not top-5 correct"
    conf = a["confidence"]
    if not np.all(np.isfinite(conf)) or np.any((conf < 0) | (conf > 1)):
        return "a confidence lies outside [0, 1]"
    return (_eq("the number of images", len(a["index"]), counts.get("n"))
            or _eq("the sum of top-1 errors", int((~a["correct"]).sum()), counts.get("top1_errors"))
            or _eq("the sum of top-5 errors", int((~a["correct5"]).sum()), counts.get("top5_errors")))


def _check_perturbation(a: Mapping[str, np.ndarray], counts: Mapping[str, Any]) -> str | None:
    return (_eq("the number of videos", len(a["index"]), counts.get("videos"))
            or _eq("the sum of flips", int(a["flips"].sum()), counts.get("flips"))
            or _eq("the sum of top-5 distances", float(a["t5d"].sum()), counts.get("t5d_sum"))
            or _eq("the sum of frame pairs", int(a["pairs"].sum()), counts.get("pairs")))


def _check_attack(a: Mapping[str, np.ndarray], counts: Mapping[str, Any]) -> str | None:
    robust = a["index"][a["robust"]]
    stored = sorted(counts.get("robust_idx", []))
    return (_eq("the number of images", len(a["index"]), counts.get("n"))
            or _eq("the number of robust images", int(a["robust"].sum()), counts.get("robust"))
            or (None if robust.tolist() == stored else "the robust images differ from the stored robust_idx"))


CALIBRATION_FIELDS = {"nll": "<f4", "brier": "<f4"}
"""Per-image calibration terms of classification cells (:mod:`robench.metrics.calibration`)."""

_CLASSIFICATION = OutcomeSpec(
    {"index": "<i8", "label": "<i8", "pred": "<i8", "correct": "|b1", "correct5": "|b1", "confidence": "<f4"},
    _check_classification,
    CALIBRATION_FIELDS,
)
OUTCOMES.add("clean", _CLASSIFICATION)
OUTCOMES.add("corruption", _CLASSIFICATION)
OUTCOMES.add("perturbation", OutcomeSpec(
    {"index": "<i8", "flips": "<i8", "t5d": "<f8", "pairs": "<i8"}, _check_perturbation))
OUTCOMES.add("attack", OutcomeSpec({"index": "<i8", "robust": "|b1"}, _check_attack))

CLASSIFICATION_KINDS = ("clean", "corruption")


def mismatch(kind: str, arrays: Mapping[str, np.ndarray], counts: Mapping[str, Any]) -> str | None:
    """Why ``arrays`` are not a valid per-image breakdown of ``counts`` (``None`` when they are)."""
    spec = OUTCOMES.get(kind)
    if set(arrays) != set(spec.fields):
        return f"fields {sorted(arrays)} instead of {sorted(spec.fields)}"
    lengths = {len(v) for v in arrays.values()}
    if len(lengths) != 1:
        return f"fields of different lengths {sorted(lengths)}"
    index = arrays["index"]
    if len(index) > 1 and not np.all(np.diff(index) > 0):
        return "dataset indices not strictly ascending"
    return spec.check(arrays, counts)


def calibration_mismatch(kind: str, terms: Mapping[str, np.ndarray], length: int) -> str | None:
    """Why ``terms`` are not valid calibration terms of a cell of ``length`` images (``None`` when they are)."""
    spec = OUTCOMES.get(kind)
    if set(terms) != set(spec.calibration):
        return f"calibration fields {sorted(terms)} instead of {sorted(spec.calibration)}"
    for name, values in terms.items():
        v = np.asarray(values)
        if len(v) != length:
            return f"{len(v)} values of {name!r} for {length} images"
        if not np.all(np.isfinite(v)) or np.any(v < 0):
            return f"a value of {name!r} is negative or not finite"
    if "brier" in terms and np.any(np.asarray(terms["brier"]) > 2):
        return "a Brier term exceeds 2"
    return None


def split_calibration(kind: str, arrays: Mapping[str, Any]) -> dict[str, np.ndarray] | None:
    """The calibration terms of ``arrays`` in their declared dtypes (``None`` when it has none of them).

    Raises:
        ValueError: ``arrays`` has only some of the kind's calibration fields.
    """
    spec = OUTCOMES.get(kind)
    present = [k for k in spec.calibration if k in arrays]
    if not present:
        return None
    if len(present) != len(spec.calibration):
        raise ValueError(f"calibration fields {present} instead of {sorted(spec.calibration)}")
    return {k: np.ascontiguousarray(np.asarray(arrays[k]).astype(dt, copy=False)) for k, dt in spec.calibration.items()}


def concat(parts: Sequence[Mapping[str, np.ndarray]]) -> Arrays:
    """Join per-batch (or per-rank) outcomes and sort them by dataset index.

    Sorting makes the result independent of batch size, batch order and process count.
    """
    joined = {k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in parts[0]}
    order = np.argsort(joined["index"], kind="stable")
    return {k: v[order] for k, v in joined.items()}


def normalised(kind: str, arrays: Mapping[str, Any]) -> Arrays:
    """``arrays`` in the kind's declared dtypes and field order."""
    spec = OUTCOMES.get(kind)
    return {k: np.ascontiguousarray(np.asarray(arrays[k]).astype(dt, copy=False)) for k, dt in spec.fields.items()}


# ---- stored form ------------------------------------------------------------------------------------------

def pack(values: np.ndarray, dtype: str) -> bytes:
    """Compact, deterministic bytes of one field: bools as bits, everything zlib-compressed."""
    a = np.ascontiguousarray(values.astype(dtype, copy=False))
    raw = np.packbits(a).tobytes() if a.dtype == np.bool_ else a.tobytes()
    return zlib.compress(raw, 6)


def unpack(blob: bytes, dtype: str, length: int) -> np.ndarray:
    """The inverse of :func:`pack`."""
    raw = zlib.decompress(blob)
    if np.dtype(dtype) == np.bool_:
        return np.unpackbits(np.frombuffer(raw, np.uint8), count=length).astype(bool)
    out = np.frombuffer(raw, dtype=dtype).copy()
    if len(out) != length:
        raise ValueError(f"{len(out)} values instead of {length}")
    return out
