"""Per-image ratio cells over one image domain, with their bootstrap replicates computed in one pass.

A *cell* here is any ratio of per-image sums ``Σ_i x_i / Σ_i m_i`` over the images of a domain (the
dataset indices of a suite): an error rate (x = wrong, m = 1 on the evaluated images), a flip probability
(x = flips, m = frame pairs of the image's video), a worst-case robust accuracy. Registering every cell of
every model of a suite first and resampling once gives each cell its replicates under the *same*
image weights — the pairing that differences between models and aggregates over cells rely on.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

from robench.errors import InputError
from robench.stats.bootstrap import Bootstrap


class RatioSample:
    """Cells over a fixed image domain; replicate sums are computed once, on first use.

    Args:
        domain: The image ids (e.g. dataset indices) that are resampled, any order, no duplicates.
        bootstrap: Replicates, seed and level.
    """

    def __init__(self, domain: np.ndarray, bootstrap: Bootstrap) -> None:
        self.domain = np.unique(np.asarray(domain, dtype=np.int64))
        self.bootstrap = bootstrap
        self._columns: list[np.ndarray] = []
        self._column_ids: dict[bytes, int] = {}
        self._cells: dict[Hashable, tuple[int, int]] = {}
        self._sums: np.ndarray | None = None
        self._totals: np.ndarray | None = None

    @property
    def n(self) -> int:
        return int(self.domain.size)

    def _column(self, values: np.ndarray) -> int:
        key = values.tobytes()
        if key not in self._column_ids:
            if self._sums is not None:
                raise InputError("Cells must be registered before the first replicate is read.")
            self._column_ids[key] = len(self._columns)
            self._columns.append(values)
        return self._column_ids[key]

    def spread(self, index: np.ndarray, values: np.ndarray | float) -> np.ndarray:
        """Values given at image ids ``index`` placed on the domain (0 elsewhere)."""
        index = np.asarray(index, dtype=np.int64)
        pos = np.searchsorted(self.domain, index)
        if index.size and (pos.max() >= self.n or np.any(self.domain[np.minimum(pos, self.n - 1)] != index)):
            raise InputError("Per-image outcomes name images outside the resampled domain.")
        out = np.zeros(self.n, dtype=np.float64)
        out[pos] = values
        return out

    def add(self, key: Hashable, index: np.ndarray, numerator: np.ndarray,
            denominator: np.ndarray | float = 1.0) -> None:
        """Register cell ``key`` = Σ numerator / Σ denominator over the images ``index``."""
        num = self.spread(index, np.asarray(numerator, dtype=np.float64))
        den = self.spread(index, np.broadcast_to(np.asarray(denominator, dtype=np.float64), np.shape(index)))
        self._cells[key] = (self._column(num), self._column(den))

    def __contains__(self, key: object) -> bool:
        return key in self._cells

    def _ensure(self) -> None:
        if self._sums is None:
            z = np.stack(self._columns, axis=1) if self._columns else np.zeros((self.n, 0))
            self._totals = z.sum(axis=0)
            self._sums = self.bootstrap.sums(z)

    def _ids(self, keys: Sequence[Hashable]) -> tuple[np.ndarray, np.ndarray]:
        missing = [k for k in keys if k not in self._cells]
        if missing:
            raise KeyError(missing[0])
        pairs = np.array([self._cells[k] for k in keys], dtype=np.int64).reshape(-1, 2)
        return pairs[:, 0], pairs[:, 1]

    def point(self, keys: Sequence[Hashable]) -> np.ndarray:
        """The cells' rates on the sample itself (every image once)."""
        self._ensure()
        num, den = self._ids(keys)
        with np.errstate(invalid="ignore", divide="ignore"):
            return self._totals[num] / self._totals[den]

    def replicates(self, keys: Sequence[Hashable]) -> np.ndarray:
        """``B × len(keys)`` bootstrap rates (NaN where a replicate drew none of a cell's images)."""
        self._ensure()
        num, den = self._ids(keys)
        with np.errstate(invalid="ignore", divide="ignore"):
            return self._sums[:, num] / self._sums[:, den]

    def jackknife(self, keys: Sequence[Hashable]) -> np.ndarray:
        """``n × len(keys)`` leave-one-image-out rates (for the BCa acceleration)."""
        self._ensure()
        num, den = self._ids(keys)
        cols = np.stack(self._columns, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return (self._totals[num] - cols[:, num]) / (self._totals[den] - cols[:, den])
