"""Adversarial attacks on wrapped models (inputs in [0, 1], normalisation inside).

Every attack is registered in :data:`ATTACKS` and called the same way::

    success = ATTACKS.get("pgd-linf")(model, x, y, eps=parse_eps("4/255"), seed=0,
                                      indices=idx, stats=stats, steps=100)

``success`` is a bool tensor (True = misclassified at the end, clean errors included);
``stats`` (an :class:`AttackStats`) accumulates passes per image and clean accuracy.
Random starts use per-sample streams, so results do not depend on the batch size.
"""

from __future__ import annotations

from robench.attacks import apgd, fab, gradient, minimal, noise, square  # noqa: F401  (register)
from robench.attacks._base import ATTACKS, Attack, AttackStats, Draws, Kind, Norm, register_attack
from robench.attacks._foolbox import MissingDependencyError
from robench.attacks.eps import parse_eps
from robench.attacks.masking import AttackResult, clean_accuracy_errors, masking_warnings
from robench.attacks.robust import robust_accuracy, robust_mask

__all__ = [
    "ATTACKS",
    "Attack",
    "AttackResult",
    "AttackStats",
    "Draws",
    "Kind",
    "MissingDependencyError",
    "Norm",
    "clean_accuracy_errors",
    "masking_warnings",
    "parse_eps",
    "register_attack",
    "robust_accuracy",
    "robust_mask",
]
