"""Gradient-masking checks over robust accuracies (pure functions).

A robust-accuracy number is only credible if the attacks behave as attacks should.
These checks flag the usual symptoms of gradient masking (Athalye et al., 2018;
Carlini et al., 2019): robust accuracy that rises with eps, an iterative attack that is
weaker than FGSM, random noise that hurts more than the attack; and a clean accuracy
that differs between the attack path and the plain evaluation path (an error: the two
paths do not evaluate the same model or data).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from robench.attacks._base import ATTACKS, Kind, Norm


@dataclass(frozen=True)
class AttackResult:
    """Robust accuracy of one (attack, eps) cell.

    Attributes:
        attack: Name (``"pgd-linf"``) or a label such as ``"worst-case"``.
        eps: Budget.
        robust_accuracy: In ``[0, 1]``.
        norm: Threat model.
        kind: What the attack is (``None`` for aggregates such as the worst case, which
            are only checked for monotonicity).
    """

    attack: str
    eps: float
    robust_accuracy: float
    norm: Norm
    kind: Kind | None = None

    @classmethod
    def of(cls, attack: str, eps: float, robust_accuracy: float, **settings: Any) -> AttackResult:
        """A result of the registered ``attack`` run with ``settings`` (norm and kind looked up)."""
        registered = ATTACKS.get(attack)
        return cls(attack, eps, robust_accuracy, registered.norm_of(**settings), registered.kind)


def masking_warnings(results: Iterable[AttackResult], *, clean_accuracy: float, tolerance: float = 0.0) -> list[str]:
    """Warnings about symptoms of gradient masking.

    Args:
        results: Robust accuracies per (attack, eps), any order.
        clean_accuracy: Clean accuracy of the model on the same samples.
        tolerance: Differences up to this (absolute, in accuracy) are not flagged.

    Returns:
        One message per symptom, empty when none.
    """
    results = list(results)
    return [
        *_above_clean(results, clean_accuracy, tolerance),
        *_increasing_in_eps(results, tolerance),
        *_weaker_than(results, Kind.SINGLE_STEP, Kind.ITERATIVE, "weaker than FGSM-type", tolerance),
        *_weaker_than(results, Kind.RANDOM, None, "weaker than random noise", tolerance),
    ]


def clean_accuracy_errors(
    eval_accuracy: float, attack_path: Mapping[str, float], *, tolerance: float = 0.0
) -> list[str]:
    """Errors for each attack cell whose clean accuracy differs from the plain evaluation.

    Args:
        eval_accuracy: Clean accuracy from the plain evaluation path.
        attack_path: Per cell label, the clean accuracy seen by the attack
            (:attr:`AttackStats.clean_accuracy`) on the same samples.
        tolerance: Allowed absolute difference (0: exact).
    """
    return [
        f"clean accuracy mismatch: {label} saw {acc:.4%} but the plain evaluation {eval_accuracy:.4%}"
        for label, acc in attack_path.items()
        if abs(acc - eval_accuracy) > tolerance
    ]


def _above_clean(results: Sequence[AttackResult], clean: float, tol: float) -> list[str]:
    return [
        f"{r.attack} at eps={r.eps:g}: robust accuracy {r.robust_accuracy:.2%} above clean {clean:.2%}"
        for r in results
        if r.robust_accuracy > clean + tol
    ]


def _increasing_in_eps(results: Sequence[AttackResult], tol: float) -> list[str]:
    warnings = []
    key = lambda r: (r.attack, r.norm.value)  # noqa: E731
    for (attack, _), group in itertools.groupby(sorted(results, key=key), key=key):
        ordered = sorted(group, key=lambda r: r.eps)
        for lo, hi in itertools.pairwise(ordered):
            if hi.eps > lo.eps and hi.robust_accuracy > lo.robust_accuracy + tol:
                warnings.append(
                    f"{attack}: robust accuracy increases with eps ({lo.robust_accuracy:.2%} at "
                    f"eps={lo.eps:g} < {hi.robust_accuracy:.2%} at eps={hi.eps:g})"
                )
    return warnings


def _weaker_than(
    results: Sequence[AttackResult], reference: Kind, stronger: Kind | None, what: str, tol: float
) -> list[str]:
    """Attacks of kind ``stronger`` (any gradient attack when None) whose robust accuracy is
    above that of a ``reference``-kind attack at the same norm and eps."""
    gradient_kinds = {Kind.SINGLE_STEP, Kind.ITERATIVE, Kind.MINIMAL}
    candidates = {stronger} if stronger is not None else gradient_kinds
    return [
        f"{a.attack} at eps={a.eps:g} is {what} {b.attack}: robust accuracy "
        f"{a.robust_accuracy:.2%} > {b.robust_accuracy:.2%} (possible gradient masking)"
        for b in results
        if b.kind is reference
        for a in results
        if a.kind in candidates and a.norm is b.norm and a.eps == b.eps and a.robust_accuracy > b.robust_accuracy + tol
    ]
