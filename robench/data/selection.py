"""Which dataset images a run evaluates: everything, a class-balanced subset, or an explicit list.

**The balanced rule.** The candidates (every image, or those of a ``subset`` file) are put in a
*round-robin order*: the first image of every class (classes in label order, i.e. sorted folder
names), then the second image of every class, and so on, each class's images taken in dataset-index
order (sorted file names); a class that has run out is skipped. ``limit = N`` evaluates the first N
images of that order, so each of K classes gets ⌊N/K⌋ or ⌈N/K⌉ images (the first N mod K classes
one more) while every class has enough, the same images for every model and every run. A section's
smaller limit takes a shorter prefix of the same order, hence a balanced subset of the suite-level
selection. Selected images are always evaluated in ascending index order.

**Subset files** list relative image paths (``<class>/<file>``, e.g. RobustBench's 5,000-image
ImageNet list; ``fashion-mnist-test/<index>`` for the demo data), one per line; blank lines and
lines starting with ``#`` are ignored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robench.errors import InputError, MissingFileError

RULE = "round-robin-v1"
"""Name of the selection rule, part of every cell config that uses a subset (a new rule recomputes them)."""


def balanced_order(labels: np.ndarray, candidates: Sequence[int]) -> np.ndarray:
    """``candidates`` in round-robin order over classes (see the module docstring).

    Args:
        labels: Label of every dataset index.
        candidates: Dataset indices to order (any order; duplicates are not allowed).
    """
    idx = np.sort(np.asarray(candidates, dtype=np.int64))
    lab = np.asarray(labels, dtype=np.int64)[idx]
    by_class = np.argsort(lab, kind="stable")  # class by class, ascending index within a class
    sorted_lab = lab[by_class]
    starts = np.searchsorted(sorted_lab, sorted_lab, side="left")
    rank = np.empty(len(idx), dtype=np.int64)
    rank[by_class] = np.arange(len(idx)) - starts  # position of each image within its class
    return idx[np.lexsort((lab, rank))]  # by rank, then by class


@dataclass(frozen=True)
class Selection:
    """The images of a run, as a prefix-closed order.

    Attributes:
        order: Candidate indices in selection order (balanced round robin, or index order).
        size: Images the run evaluates (the suite-level ``limit``, or all candidates).
        dataset_size: Images in the dataset.
        source: What chose the candidates: ``""`` (the whole dataset) or the subset file's digest.
    """

    order: np.ndarray
    size: int
    dataset_size: int
    source: str = ""

    def indices(self, n: int | None = None) -> list[int]:
        """The first ``n`` (default: :attr:`size`) selected images, in ascending index order."""
        return self._sorted(n).tolist()

    def key(self, n: int | None = None) -> str | None:
        """What identifies the first ``n`` images in a cell config; ``None`` for the whole dataset."""
        n = self.size if n is None else min(n, self.size)
        if not self.source and n == self.dataset_size:
            return None
        digest = hashlib.sha256(self._sorted(n).astype("<i8").tobytes()).hexdigest()[:16]
        return f"{RULE}:{self.source}:{n}:{digest}"

    def _sorted(self, n: int | None) -> np.ndarray:
        n = self.size if n is None else min(n, self.size)
        return np.sort(self.order[:n])


def read_subset(path: Path) -> list[str]:
    """Relative image paths listed in a subset file (one per line; ``#`` comments and blank lines ignored).

    Raises:
        MissingFileError: the file does not exist.
        InputError: it lists nothing, or one path twice.
    """
    if not path.is_file():
        raise MissingFileError(f"Subset file {path} does not exist; pass a text file of relative image paths.")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"Cannot read subset file {path} ({e}); it must be a UTF-8 text file.") from None
    paths = [_relative(ln) for ln in lines if ln.strip() and not ln.strip().startswith("#")]
    if not paths:
        raise InputError(f"Subset file {path} lists no images; put one relative path (<class>/<file>) per line.")
    seen: set[str] = set()
    for p in paths:
        if p in seen:
            raise InputError(f"Subset file {path} lists {p} twice; remove the duplicate.")
        seen.add(p)
    return paths


def _relative(line: str) -> str:
    path = line.strip().replace("\\", "/")
    return path[2:] if path.startswith("./") else path


def select(
    labels: np.ndarray, paths: Sequence[str], *, limit: int | None = None, subset: Path | None = None,
    balanced: bool = True,
) -> Selection:
    """The images of a run: ``subset`` file's images (or all), then the first ``limit`` of the balanced order.

    Args:
        labels: Label of every dataset index.
        paths: Relative path of every dataset index (what subset files list).
        limit: At most this many images.
        subset: A subset file (see :func:`read_subset`).
        balanced: Round-robin over classes; ``False`` keeps index order (sources without classes).

    Raises:
        InputError: ``limit < 1``, or the subset file names images the dataset does not have.
    """
    if limit is not None and limit < 1:
        raise InputError(f"--limit must be a positive integer, got {limit}.")
    n_all = len(paths)
    source = ""
    if subset is None:
        candidates = np.arange(n_all, dtype=np.int64)
    else:
        wanted = read_subset(subset)
        where = {p: i for i, p in enumerate(paths)}
        missing = [p for p in wanted if p not in where]
        if missing:
            example = paths[0] if paths else "<class>/<file>"
            raise InputError(
                f"Subset file {subset}: {len(missing)} of {len(wanted)} images are not in the dataset, the first "
                f"is {missing[0]!r} (paths look like {example!r}); check the file and --data."
            )
        candidates = np.asarray([where[p] for p in wanted], dtype=np.int64)
        source = "subset-" + hashlib.sha256(np.sort(candidates).astype("<i8").tobytes()).hexdigest()[:12]
    order = balanced_order(labels, candidates) if balanced else np.sort(candidates)
    size = len(order) if limit is None else min(limit, len(order))
    return Selection(order, size, n_all, source)


def dataset_selection(ds: object, *, limit: int | None = None, subset: Path | None = None) -> Selection:
    """:func:`select` over a dataset source's ``targets`` and ``paths`` (index order if it has no labels)."""
    n = len(ds)  # type: ignore[arg-type]
    labels = getattr(ds, "targets", None)
    paths = getattr(ds, "paths", None)
    return select(np.zeros(n, np.int64) if labels is None else labels,
                  [str(i) for i in range(n)] if paths is None else paths,
                  limit=limit, subset=subset, balanced=labels is not None)
