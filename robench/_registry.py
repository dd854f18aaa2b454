"""A generic name → object registry with helpful errors.

One registry exists per kind of thing (corruptions, architectures, pooling heads,
dataset sources, checkpoint formats, …). Lookups of unknown names raise
:class:`robench.errors.UnknownNameError` with a did-you-mean suggestion.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from robench.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects of one kind.

    Args:
        kind: What the registry holds, used in error messages ("corruption").
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def add(self, name: str, item: T) -> T:
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._items[name] = item
        return item

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of :meth:`add`."""

        def deco(item: T) -> T:
            return self.add(name, item)

        return deco

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(name, list(self._items), n=3, cutoff=0.5)
        close += [k for k in self._items if k.startswith(name) and k not in close][:2]  # "pgd" → "pgd-linf"
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        return (
            f"Unknown {self.kind} {name!r}.{hint} "
            f"Known: {', '.join(sorted(self._items)) or '(none)'}."
        )

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def names(self) -> list[str]:
        return list(self._items)

    def items(self) -> list[tuple[str, T]]:
        return list(self._items.items())
