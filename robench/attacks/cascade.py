"""The attack cascade: each (attack, eps) cell attacks only the images still robust.

AutoAttack runs each attack only on the points that survived the attacks before it, since the
per-image worst case is all it reports. A suite with ``cascade = true`` (the default) does the
same over all its attack cells, in *cascade order*: eps ascending, then the suite's attack order.
A cell receives the images that survived the previous cell in that order and attacks only
those; an image broken earlier counts as broken. This is exact, not an approximation: an
adversarial example found within a smaller eps lies within every larger eps of the same norm,
and one found by an earlier attack at the same eps is an adversarial example at that eps.

A cascaded cell's robust images are therefore *cumulative*: those surviving every cell up to
and including it. The last attack's cell at an eps holds the worst case at that eps, and the
difference between consecutive cells is an attack's marginal gain (how many images it broke
first). ``cascade = false`` evaluates every attack on every image (per-attack robust
accuracies, needed e.g. by the gradient-masking checks that compare attacks).

``autoattack = "standard"`` selects AutoAttack's ``standard`` version (Linf and L2):
APGD-CE → APGD-T → FAB-T → Square with the reference's settings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from robench.attacks._base import Norm
from robench.errors import InputError


class _Item(Protocol):  # robench.suites.Item, without importing the suites here
    kind: str
    name: str
    levels: tuple[int, ...]
    settings: Mapping[str, Any]


def autoattack_attacks(version: Any, norm: Norm) -> dict[str, dict[str, Any]]:
    """Attack names (in AutoAttack's order) and settings of AutoAttack ``version`` in ``norm``.

    The settings are those ``AutoAttack._set_version`` applies (fra31/auto-attack): one restart,
    100 iterations, 9 target classes for APGD-T and FAB-T, 5,000 queries and ``p_init = 0.8``
    for Square.

    Raises:
        InputError: a version other than ``"standard"``.
    """
    if version != "standard":
        raise InputError(f"attacks.autoattack {version!r} is not supported; use \"standard\".")
    n = norm.value
    return {
        "apgd-ce": {"norm": n, "n_iter": 100, "restarts": 1},
        "apgd-t": {"norm": n, "n_iter": 100, "restarts": 1, "n_target_classes": 9},
        "fab-t": {"norm": n, "n_iter": 100, "restarts": 1, "n_target_classes": 9},
        "square": {"norm": n, "n_queries": 5000, "p_init": 0.8, "restarts": 1},
    }


def cascaded(item: _Item) -> bool:
    """Whether an item's cells take part in its suite's cascade."""
    return item.kind == "attack" and bool(item.settings.get("cascade"))


def cascade_order(items: Sequence[_Item]) -> list[tuple[_Item, int]]:
    """The cascaded attack cells of a suite, in cascade order: eps ascending, then suite order."""
    cells = [(item, level, pos) for pos, item in enumerate(items) if cascaded(item) for level in item.levels]
    cells.sort(key=lambda c: (c[0].settings["eps"][c[1] - 1], c[2]))
    return [(item, level) for item, level, _ in cells]


def previous_cell(items: Sequence[_Item], item: _Item, level: int) -> tuple[_Item, int] | None:
    """The cell before ``(item, level)`` in cascade order (``None`` for the first or a non-cascaded cell)."""
    if not cascaded(item):
        return None
    order = cascade_order(items)
    pos = next(k for k, (i, lv) in enumerate(order) if i is item and lv == level)
    return order[pos - 1] if pos else None


def chain(items: Sequence[_Item], item: _Item, level: int) -> list[list[Any]]:
    """What the cells before ``(item, level)`` in cascade order ran: ``[name, eps, settings]`` each.

    A cascaded cell's result depends on them, so they are part of its stored config.
    """
    if not cascaded(item):
        return []
    out = []
    for i, lv in cascade_order(items):
        if i is item and lv == level:
            return out
        out.append([i.name, i.settings["eps_text"][lv - 1], dict(i.settings["attack"])])
    return out
