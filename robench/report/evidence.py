"""Per-image evidence behind the leaderboard numbers: the bootstrap replicates of every metric.

:class:`Evidence` reads a store's per-image outcomes (``Store.outcomes``), builds one
:class:`~robench.stats.sample.RatioSample` per suite holding every cell of every model (so all of them share
the image weights of each replicate), and turns a metric's :class:`Estimand` — which cells it reads and
how it combines their rates — into bootstrap replicates and an interval. Metrics that lack per-image data
(cells migrated from an older store) get no replicates: their intervals stay empty.

Interval methods (STATISTICS.md §8): every leaderboard metric except the clean error rates is a weighted
mean of cell rates (mCE, relative mCE, FP, T5D, worst-case robust accuracy), nearly symmetric at the
sample sizes robench runs, and gets the **percentile** interval; mFR and mT5D are means of ratios to a
baseline model measured on the same images and get **BCa**. Clean errors get Wilson (no resampling).

Calibration (:mod:`robench.report.calibration`): NLL and Brier are means of per-image terms (ratio cells with
denominator 1; percentile); ECE is ``Σ_b |rate_b|`` over 15 bin cells per cell (:class:`BinnedEstimand`; BCa,
for the clean cell and for the mean over corruption cells). Their cells are registered only when a metric asks
for them, to keep memory proportional to what is reported.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from robench.metrics.calibration import BINS, bin_of
from robench.stats.bootstrap import Bootstrap, Interval, bca_interval, percentile_interval
from robench.stats.sample import RatioSample
from robench.store import Store

Outcomes = Mapping[tuple[str, str, int], Mapping[str, np.ndarray]]
OutcomeReader = Callable[[str, str], Outcomes]

# What each cell kind contributes: measure → (numerator, denominator) built from its per-image arrays.
_MEASURES: dict[str, dict[str, Callable[[Mapping[str, np.ndarray]], tuple[np.ndarray, Any]]]] = {
    "clean": {"err": lambda o: (~np.asarray(o["correct"], bool), 1.0),
              "err5": lambda o: (~np.asarray(o["correct5"], bool), 1.0)},
    "perturbation": {"fp": lambda o: (o["flips"], o["pairs"]), "t5d": lambda o: (o["t5d"], o["pairs"])},
    "attack": {"robust": lambda o: (np.asarray(o["robust"], bool), 1.0)},
}
_MEASURES["corruption"] = _MEASURES["clean"]

CALIBRATED_KINDS = ("clean", "corruption")
"""Cell kinds whose per-image outcomes may carry calibration terms."""
FIXED_POINT = {"nll": 2.0**20, "brier": 2.0**24, "ece": 2.0**24}
"""Calibration terms enter the bootstrap as integers (term × scale, rounded): replicate sums of integers are
exact in float64 whatever order BLAS adds them in, which keeps the intervals byte-identical (rounding moves a
term by at most 2⁻²¹ nats / 2⁻²⁵)."""


def ece_measure(b: int) -> str:
    return f"ece{b:02d}"


def calibration_measures(o: Mapping[str, np.ndarray]) -> dict[str, tuple[np.ndarray, float]]:
    """Bootstrap cells of one calibrated cell: ``nll``, ``brier`` and the ECE bins (fixed-point numerators).

    Bin b's numerator is ``Σ_{i∈b} (a_i − c_i)`` over all images of the cell, so ``ECE = Σ_b |rate_b|``.
    """
    conf = np.asarray(o["confidence"], dtype=np.float64)
    gap = np.asarray(o["correct"], bool) * FIXED_POINT["ece"] - np.round(conf * FIXED_POINT["ece"])
    bins = bin_of(conf)
    out = {m: (np.round(np.asarray(o[m], dtype=np.float64) * FIXED_POINT[m]), 1.0) for m in ("nll", "brier")}
    for b in range(BINS):
        out[ece_measure(b)] = (np.where(bins == b, gap, 0.0), 1.0)
    return out


WORST_CASE = "attack-worst"
"""Kind of the derived cells holding the per-image worst case over a suite's attacks at one eps."""
ALL_LEVELS = -1
"""Level of the derived cells that sum a corruption's errors over all its stored severities."""


def store_outcomes(store: Store) -> OutcomeReader:
    """The store's per-image outcome reader, calibration terms (``nll``, ``brier``) merged into the cells
    that have them (cells migrated from schema 1 have no outcomes: no intervals; from schema 2 no terms)."""

    def read(model: str, suite: str) -> Outcomes:
        terms = store.calibration(model, suite)
        return {cell: {**arrays, **terms.get(cell, {})} for cell, arrays in store.outcomes(model, suite).items()}

    return read


@dataclass(frozen=True)
class Estimand:
    """A metric as a function of cell rates.

    ``kind="linear"``: ``scale · Σ_k weights_k · rate_k``; ``kind="ratio"``: ``scale · mean_k(rate_k /
    rate_{base_k})`` with ``keys`` the model's cells and ``base`` the baseline model's (mFR, mT5D).
    """

    keys: tuple[Hashable, ...]
    weights: tuple[float, ...] = ()
    base: tuple[Hashable, ...] = ()
    scale: float = 100.0

    @property
    def method(self) -> str:
        return "bca" if self.base else "percentile"

    def cells(self) -> list[Hashable]:
        return list(self.keys) + list(self.base)

    def jackknife(self, sample: RatioSample) -> np.ndarray:
        """The metric with each image of the sample left out in turn (BCa acceleration)."""
        return self.evaluate(sample.jackknife(self.cells()))

    def evaluate(self, rates: np.ndarray) -> np.ndarray:
        """The metric of each row of ``rates`` (``R × len(cells())``), summed in a fixed order."""
        k = len(self.keys)
        if self.base:
            with np.errstate(invalid="ignore", divide="ignore"):
                ratio = rates[:, :k] / rates[:, k:]
            ratio[~np.isfinite(ratio)] = np.nan
            return self.scale * ratio.mean(axis=1)
        return self.scale * np.sum(rates * np.asarray(self.weights), axis=1)


@dataclass(frozen=True)
class BinnedEstimand(Estimand):
    """A mean over cells of a calibration error: ``scale · Σ_c weights_c · Σ_b |rate_{c,b}|``.

    ``keys`` hold each cell's ``bins`` bin cells in a row (cell-major); ``weights`` one weight per cell.
    Always BCa (STATISTICS.md §8: ECE is skewed, and its plug-in value is biased upward — the absolute value
    of noisy bin sums — which resampling doubles; BCa's bias correction accounts for it, so the interval
    may lie mostly below the plug-in value).
    """

    bins: int = 15

    @property
    def method(self) -> str:
        return "bca"

    def evaluate(self, rates: np.ndarray) -> np.ndarray:
        per_bin = np.abs(rates.reshape(rates.shape[0], -1, self.bins))
        return self.scale * np.sum(per_bin.sum(axis=2) * np.asarray(self.weights), axis=1)

    def jackknife(self, sample: RatioSample) -> np.ndarray:
        """Leave-one-image-out values, one cell at a time (memory ``n × bins``, not ``n × cells × bins``)."""
        keys = self.cells()
        total = np.zeros(sample.n)
        for c, w in enumerate(self.weights):
            loo = np.abs(sample.jackknife(keys[c * self.bins:(c + 1) * self.bins])).sum(axis=1)
            total += w * loo
        return self.scale * total


@dataclass(frozen=True)
class Estimate:
    """Bootstrap replicates of one metric and its interval."""

    star: np.ndarray
    interval: Interval


@dataclass
class Evidence:
    """Per-image outcomes of one store and the bootstrap built on them (one resample per suite).

    Args:
        read: ``(model, suite) → {(kind, item, level): arrays}``, normally ``Store.outcomes``.
        bootstrap: Replicates, seed and confidence level.
    """

    read: OutcomeReader
    bootstrap: Bootstrap = field(default_factory=Bootstrap)
    _outcomes: dict[tuple[str, str], Outcomes] = field(default_factory=dict, repr=False)
    _samples: dict[str, RatioSample] = field(default_factory=dict, repr=False)
    _metrics: dict[tuple, dict[str, Estimate | None]] = field(default_factory=dict, repr=False)
    _prepared: set[tuple[str, str | None]] = field(default_factory=set, repr=False)
    _deferred: dict[str, dict[tuple, Mapping[str, np.ndarray]]] = field(default_factory=dict, repr=False)

    def outcomes(self, model: str, suite: str) -> Outcomes:
        if (model, suite) not in self._outcomes:
            self._outcomes[(model, suite)] = self.read(model, suite) or {}
        return self._outcomes[(model, suite)]

    def sample(self, df: pd.DataFrame, suite: str) -> RatioSample:
        """Every cell of ``suite`` in ``df`` that has per-image outcomes, over the union of their images."""
        if suite not in self._samples:
            cells = df[df.suite == suite]
            found = []
            for model in sorted(cells.model.unique()):
                have = self.outcomes(model, suite)
                for r in cells[cells.model == model].itertuples(index=False):
                    key = (r.kind, r.item, int(r.level))
                    if r.kind in _MEASURES and key in have:
                        found.append((model, r, have[key]))
            domain = np.unique(np.concatenate([np.asarray(o["index"], np.int64) for *_, o in found] or [[]]))
            sample = RatioSample(domain, self.bootstrap)
            levels: dict[tuple[str, str], list[int]] = {}
            deferred = self._deferred.setdefault(suite, {})
            for model, r, o in found:
                if r.kind in CALIBRATED_KINDS and "nll" in o:  # registered when first asked for (memory)
                    deferred[(model, r.kind, r.item, int(r.level))] = o
                for measure, split in _MEASURES[r.kind].items():
                    num, den = split(o)
                    sample.add((model, r.kind, r.item, int(r.level), measure), o["index"], num, den)
                if r.kind == "corruption":
                    levels.setdefault((model, r.item), []).append(int(r.level))
            stored = cells[cells.kind == "corruption"].groupby(["model", "item"])["level"].nunique().to_dict()
            for (model, item), ls in levels.items():
                if len(ls) == stored.get((model, item)):  # only when every severity has per-image data
                    sample.add_sum((model, "corruption", item, ALL_LEVELS, "err"),
                                   [(model, "corruption", item, lv, "err") for lv in sorted(ls)])
            _add_worst_cases(sample, cells, found)
            self._samples[suite] = sample
        return self._samples[suite]

    def _register(self, sample: RatioSample, keys: Sequence[Hashable]) -> None:
        """Register the deferred calibration cells among ``keys`` (all measures of their cell at once)."""
        for suite, deferred in self._deferred.items():
            if self._samples.get(suite) is not sample:
                continue
            for key in keys:
                if key in sample or not isinstance(key, tuple) or key[:4] not in deferred:
                    continue
                model, kind, item, level = key[:4]
                o = deferred.pop(key[:4])
                for measure, (num, den) in calibration_measures(o).items():
                    sample.add((model, kind, item, level, measure), o["index"], num, den)

    def prepare(self, sample: RatioSample, estimands: Sequence[Estimand]) -> None:
        """Resample the cells of all ``estimands`` in one pass (those with per-image data)."""
        self._register(sample, [c for e in estimands for c in e.cells()])
        sample.request([c for e in estimands if all(k in sample for k in e.cells()) for c in e.cells()])

    def estimate(self, sample: RatioSample, estimand: Estimand, point: float) -> Estimate | None:
        """Replicates and interval of ``estimand``; ``None`` when a cell it reads has no per-image data."""
        cells = estimand.cells()
        self._register(sample, cells)
        if not cells or any(c not in sample for c in cells):
            return None
        star = estimand.evaluate(sample.replicates(cells))
        level = self.bootstrap.confidence
        if estimand.method == "bca":
            jack = estimand.jackknife(sample)
            return Estimate(star, bca_interval(star, point, jack, level))
        return Estimate(star, percentile_interval(star, level))


def _add_worst_cases(sample: RatioSample, cells: pd.DataFrame, found: Sequence[tuple]) -> None:
    """Per model and eps, the images that survive every attack of the suite at that eps."""
    attacks = [(model, r, o) for model, r, o in found if r.kind == "attack"]
    if not attacks or "eps" not in cells.columns:
        return
    groups: dict[tuple[str, str], list] = {}
    for model, r, o in attacks:
        groups.setdefault((model, str(r.eps)), []).append((r, o))
    for (model, eps), members in groups.items():
        expected = cells[(cells.model == model) & (cells.kind == "attack") & (cells.eps.astype(str) == eps)]
        if len(members) != len(expected):
            continue  # an attack at this eps lacks per-image data: no worst case
        index = np.asarray(members[0][1]["index"], np.int64)
        survive = np.ones(index.size, dtype=bool)
        for _, o in members:
            # An image this attack did not evaluate does not count as surviving it.
            survive &= np.isin(index, np.asarray(o["index"], np.int64)[np.asarray(o["robust"], bool)])
        sample.add((model, WORST_CASE, eps, 0, "robust"), index, survive, 1.0)
