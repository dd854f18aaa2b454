"""Perturbation budgets as written in suite files: ``"4/255"``, ``"0.5"``, ``0.25``."""

from __future__ import annotations

import math
from fractions import Fraction

from robench.errors import InputError


def parse_eps(value: str | float | int) -> float:
    """A budget from a number or a string holding a number or a fraction.

    Args:
        value: ``8/255``-style fraction, decimal string (``"0.5"``, ``"1e-2"``) or number.

    Returns:
        The budget as a float ``>= 0``.

    Raises:
        InputError: not a number or fraction, zero denominator, negative, NaN or infinite.
    """
    hint = "expected a number >= 0 or a fraction such as '4/255'"
    if isinstance(value, bool):
        raise InputError(f"Bad eps {value!r}: {hint}.")
    if isinstance(value, (int, float)):
        eps = float(value)
    elif isinstance(value, str):
        try:
            # Fraction() alone rejects a decimal numerator ("0.5/255"); parse each side separately.
            num, _, den = value.replace(" ", "").partition("/")
            if "/" in den:
                raise ValueError(value)
            eps = float(Fraction(num) / Fraction(den or "1"))
        except (ValueError, ZeroDivisionError):
            raise InputError(f"Bad eps {value!r}: {hint}.") from None
    else:
        raise InputError(f"Bad eps {value!r} of type {type(value).__name__}: {hint}.")
    if not math.isfinite(eps) or eps < 0:
        raise InputError(f"Bad eps {value!r}: {hint}.")
    return eps
