"""Per-image ratio cells over one image domain, with their bootstrap replicates computed in few passes.

A *cell* here is any ratio of per-image sums ``Σ_i x_i / Σ_i m_i`` over the images of a domain (the
dataset indices of a suite): an error rate (x = wrong, m = 1 on the evaluated images), a flip probability
(x = flips, m = frame pairs of the image's video), a worst-case robust accuracy. Cells are registered
cheaply; the replicate sums of the cells actually asked for are computed together, under the *same*
image weights for every cell and every model — the pairing that differences between models and
aggregates over cells rely on. A *summed* cell adds the numerators of cells with identical denominators
(e.g. one corruption's five severities): aggregates that are linear in such cells then need one column
per group instead of one per cell, which is what keeps 50,000 images × 76 cells fast.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence

import numpy as np

from robench.errors import InputError
from robench.stats.bootstrap import Bootstrap


class RatioSample:
    """Cells over a fixed image domain; replicate sums are computed on demand, each column once.

    Args:
        domain: The image ids (e.g. dataset indices) that are resampled, any order, no duplicates.
        bootstrap: Replicates, seed and level.
    """

    def __init__(self, domain: np.ndarray, bootstrap: Bootstrap) -> None:
        self.domain = np.unique(np.asarray(domain, dtype=np.int64))
        self.bootstrap = bootstrap
        self._sources: dict[Hashable, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._cells: dict[Hashable, tuple[int, int]] = {}
        self._columns: list[np.ndarray] = []
        self._column_ids: dict[bytes, int] = {}
        self._sums = np.zeros((bootstrap.replicates, 0))
        self._totals = np.zeros(0)

    @property
    def n(self) -> int:
        return int(self.domain.size)

    def positions(self, index: np.ndarray) -> np.ndarray:
        """Positions in the domain of the image ids ``index``."""
        index = np.asarray(index, dtype=np.int64)
        pos = np.searchsorted(self.domain, index)
        if index.size and (pos.max() >= self.n or np.any(self.domain[np.minimum(pos, self.n - 1)] != index)):
            raise InputError("Per-image outcomes name images outside the resampled domain.")
        return pos

    def add(self, key: Hashable, index: np.ndarray, numerator: np.ndarray,
            denominator: np.ndarray | float = 1.0) -> None:
        """Register cell ``key`` = Σ numerator / Σ denominator over the images ``index``."""
        pos = self.positions(index)
        num = np.asarray(numerator, dtype=np.float64).reshape(-1)
        den = np.broadcast_to(np.asarray(denominator, dtype=np.float64), pos.shape).copy()
        if num.shape != pos.shape:
            raise InputError(f"Cell {key!r}: {num.size} per-image values for {pos.size} images.")
        self._sources[key] = (pos, num, den)

    def add_sum(self, key: Hashable, members: Sequence[Hashable]) -> bool:
        """Register ``key`` as the sum of the members' numerators over their common denominator.

        Returns whether it could: every member must exist and have the same images and denominators.
        """
        if not members or any(m not in self._sources for m in members):
            return False
        pos, num, den = self._sources[members[0]]
        total = num.copy()
        for m in members[1:]:
            p, x, d = self._sources[m]
            if not (np.array_equal(p, pos) and np.array_equal(d, den)):
                return False
            total += x
        self._sources[key] = (pos, total, den)
        return True

    def __contains__(self, key: object) -> bool:
        return key in self._sources

    def _column(self, pos: np.ndarray, values: np.ndarray) -> int:
        col = np.zeros(self.n, dtype=np.float64)
        col[pos] = values
        digest = col.tobytes()
        if digest not in self._column_ids:
            self._column_ids[digest] = len(self._columns)
            self._columns.append(col)
        return self._column_ids[digest]

    def request(self, keys: Iterable[Hashable]) -> None:
        """Compute the replicate sums of every cell of ``keys`` not computed yet, in one pass."""
        for key in keys:
            if key not in self._cells:
                if key not in self._sources:
                    raise KeyError(key)
                pos, num, den = self._sources[key]
                self._cells[key] = (self._column(pos, num), self._column(pos, den))
        done = self._sums.shape[1]
        if len(self._columns) > done:
            new = np.stack(self._columns[done:], axis=1)
            self._sums = np.concatenate([self._sums, self.bootstrap.sums(new)], axis=1)
            self._totals = np.concatenate([self._totals, new.sum(axis=0)])

    def _ids(self, keys: Sequence[Hashable]) -> tuple[np.ndarray, np.ndarray]:
        self.request(keys)
        pairs = np.array([self._cells[k] for k in keys], dtype=np.int64).reshape(-1, 2)
        return pairs[:, 0], pairs[:, 1]

    def point(self, keys: Sequence[Hashable]) -> np.ndarray:
        """The cells' rates on the sample itself (every image once)."""
        num, den = self._ids(keys)
        with np.errstate(invalid="ignore", divide="ignore"):
            return self._totals[num] / self._totals[den]

    def replicates(self, keys: Sequence[Hashable]) -> np.ndarray:
        """``B × len(keys)`` bootstrap rates (NaN where a replicate drew none of a cell's images)."""
        num, den = self._ids(keys)
        with np.errstate(invalid="ignore", divide="ignore"):
            return self._sums[:, num] / self._sums[:, den]

    def jackknife(self, keys: Sequence[Hashable]) -> np.ndarray:
        """``n × len(keys)`` leave-one-image-out rates (for the BCa acceleration)."""
        num, den = self._ids(keys)
        x = np.stack([self._columns[i] for i in num], axis=1)
        m = np.stack([self._columns[i] for i in den], axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return (self._totals[num] - x) / (self._totals[den] - m)
