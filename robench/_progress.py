"""The one progress-bar helper: tqdm on stderr, silent when not a TTY or when quiet."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")

_quiet = False


def set_quiet(quiet: bool) -> None:
    """Silence (or re-enable) every progress bar of this process."""
    global _quiet
    _quiet = quiet


def progress(
    iterable: Iterable[T] | None = None, *, total: int | None = None, desc: str = "", unit: str = "it",
    disable: bool = False,
) -> tqdm:
    """Wrap ``iterable`` (or a manual counter when ``None``) in a progress bar."""
    disable = disable or _quiet or not sys.stderr.isatty()
    return tqdm(
        iterable, total=total, desc=desc, unit=unit, disable=disable, leave=False, dynamic_ncols=True
    )


def track(iterable: Iterable[T], **kwargs: object) -> Iterator[T]:
    yield from progress(iterable, **kwargs)  # type: ignore[arg-type]
