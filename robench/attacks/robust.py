"""Per-example worst case over several attacks, as RobustBench/AutoAttack report it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch

from robench.errors import InputError


def robust_mask(successes: Mapping[str, torch.Tensor] | Iterable[torch.Tensor]) -> torch.Tensor:
    """Samples that survive every attack: the AND of the per-attack robust masks.

    Args:
        successes: Per attack, the bool success tensor (N) an attack call returned;
            clean errors are successes, so a robust sample is also clean-correct.

    Returns:
        Bool tensor N: True where no attack succeeded.

    Raises:
        InputError: no attacks, or tensors of different shapes.
    """
    tensors = list(successes.values() if isinstance(successes, Mapping) else successes)
    if not tensors:
        raise InputError("robust_mask needs the results of at least one attack.")
    shape = tensors[0].shape
    if any(t.shape != shape or t.ndim != 1 for t in tensors):
        raise InputError(f"Attack results have different shapes: {[tuple(t.shape) for t in tensors]}.")
    return ~torch.stack([t.bool() for t in tensors]).any(0)


def robust_accuracy(successes: Mapping[str, torch.Tensor] | Iterable[torch.Tensor] | torch.Tensor) -> float:
    """Fraction of samples that survive every attack (one success tensor or several)."""
    mask = robust_mask([successes] if isinstance(successes, torch.Tensor) else successes)
    return float(mask.float().mean()) if mask.numel() else float("nan")
