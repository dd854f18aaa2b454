"""Synthetic result tables with per-image outcomes, for tests, benchmarks and examples of the statistics.

:func:`synthetic_results` draws per-image outcomes of models with known error rates and returns them in
the shapes the reports read: the cell table of :func:`robench.report.tables.load_results`, suite
definitions, an outcome reader with the ``Store.outcomes`` contract and model cards.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from robench.report.evidence import OutcomeReader


@dataclass(frozen=True)
class SyntheticModel:
    """A model of known behaviour.

    Attributes:
        name: Model name.
        pooling: ``gap`` or ``gcp``.
        error: Probability of a top-1 error on a clean image; a corruption of severity s adds ``0.05·s``.
        copy_of: Give exactly the outcomes of this (earlier) model — the same checkpoint under two names.
        card: Model card fields (``group``, ``seed``).
    """

    name: str
    pooling: str
    error: float
    copy_of: str | None = None
    card: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SyntheticResults:
    cells: pd.DataFrame
    suites: dict[str, dict[str, Any]]
    outcomes: dict[tuple[str, str], dict[tuple[str, str, int], dict[str, np.ndarray]]]
    cards: dict[str, dict[str, Any]]

    @property
    def reader(self) -> OutcomeReader:
        return lambda model, suite: self.outcomes.get((model, suite), {})


def synthetic_results(
    models: Sequence[SyntheticModel], *, n: int = 500, suite: str = "synthetic", seed: int = 0,
    corruptions: Sequence[str] = ("gaussian_noise", "fog"), severities: Sequence[int] = (1, 2, 3),
    perturbations: Sequence[str] = ("gaussian_noise", "translate"), videos: int | None = None, frames: int = 10,
    attacks: Sequence[str] = (), eps: Sequence[str] = ("2/255",), arch: str = "tiny",
) -> SyntheticResults:
    """Cells and per-image outcomes of ``models`` on one suite of ``n`` images (dataset indices 0 … n − 1).

    Image difficulty is shared between models (a per-image latent), so their errors are correlated as
    real models' are. Perturbation videos are the first ``videos`` images (default all).
    """
    rng = np.random.default_rng(seed)
    videos = n if videos is None else videos
    difficulty = rng.normal(size=n)
    pairs_per_video = frames - 1
    rows: list[dict[str, Any]] = []
    outcomes: dict[tuple[str, str], dict[tuple[str, str, int], dict[str, np.ndarray]]] = {}
    by_name: dict[str, dict[tuple[str, str, int], dict[str, np.ndarray]]] = {}
    index = np.arange(n, dtype=np.int64)
    for m in models:
        if m.copy_of is not None:
            mine = {k: {f: a.copy() for f, a in v.items()} for k, v in by_name[m.copy_of].items()}
        else:
            mine = {}
            classification = [("clean", "clean", 0, m.error)] + [
                ("corruption", c, s, min(0.95, m.error + 0.05 * s)) for c in corruptions for s in severities]
            for kind, item, level, p in classification:
                # Wrong when a logistic mix of the shared difficulty and private noise crosses the p-quantile.
                score = 0.8 * difficulty + 0.6 * rng.normal(size=n)
                wrong = score > np.quantile(0.8 * rng.normal(size=200_000) + 0.6 * rng.normal(size=200_000), 1 - p)
                wrong5 = wrong & (rng.random(n) < 0.2)
                mine[(kind, item, level)] = {
                    "index": index.copy(), "label": np.zeros(n, np.int64), "pred": wrong.astype(np.int64),
                    "correct": ~wrong, "correct5": ~wrong5, "confidence": rng.random(n).astype(np.float32)}
            for item in perturbations:
                flips = rng.binomial(pairs_per_video, min(0.9, m.error / 2), size=videos).astype(np.int64)
                mine[("perturbation", item, 1)] = {
                    "index": index[:videos].copy(), "flips": flips,
                    "t5d": (flips * 3 + rng.integers(0, 4, size=videos)).astype(np.float64),
                    "pairs": np.full(videos, pairs_per_video, np.int64)}
            for level, _ in enumerate(eps, start=1):
                for attack in attacks:
                    robust = rng.random(n) > min(0.95, m.error + 0.3 * level)
                    mine[("attack", attack, level)] = {"index": index.copy(), "robust": robust}
        by_name[m.name] = mine
        outcomes[(m.name, suite)] = mine
        for (kind, item, level), o in mine.items():
            row: dict[str, Any] = {"model": m.name, "arch": arch, "pooling": m.pooling, "suite": suite, "kind": kind,
                                   "item": item, "level": level, "dataset": "synthetic"}
            if kind in ("clean", "corruption"):
                row |= {"n": n, "top1_errors": int((~o["correct"]).sum()), "top5_errors": int((~o["correct5"]).sum())}
            elif kind == "perturbation":
                row |= {"n": videos, "videos": videos, "flips": int(o["flips"].sum()),
                        "t5d_sum": int(o["t5d"].sum()), "pairs": int(o["pairs"].sum())}
            else:
                robust_idx = o["index"][o["robust"]].tolist()
                row |= {"n": n, "robust": len(robust_idx), "robust_idx": robust_idx,
                        "clean_correct": int((~mine[("clean", "clean", 0)]["correct"]).size
                                             - (~mine[("clean", "clean", 0)]["correct"]).sum()),
                        "forwards": n, "backwards": n, "eps": eps[level - 1]}
            rows.append(row)
    df = pd.DataFrame(rows)
    df["err"] = 100.0 * df["top1_errors"] / df["n"]
    df["err5"] = 100.0 * df["top5_errors"] / df["n"]
    if perturbations:
        df["fp"] = 100.0 * df["flips"] / df["pairs"]
        df["t5d"] = df["t5d_sum"] / df["pairs"]
    if attacks:
        df["robust_acc"] = 100.0 * df["robust"] / df["n"]
    definition = {"test_corruptions": list(corruptions), "test_perturbations": list(perturbations),
                  "attacks": {a: {"eps": list(eps), "norm": "linf"} for a in attacks}}
    cards = {m.name: dict(m.card) for m in models}
    return SyntheticResults(df, {suite: definition}, outcomes, cards)
