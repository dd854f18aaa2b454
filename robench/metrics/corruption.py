"""Corruption metrics of Hendrycks & Dietterich (2019): CE, mCE, relative CE, relative mCE.

Errors are fractions in ``[0, 1]``; the aggregates are returned in percent, as published.
Baseline normalisers (AlexNet for ImageNet-C) are explicit inputs, carried by suite files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from statistics import fmean

from robench.errors import InputError, UnknownNameError
from robench.suites import Baseline, builtin_suites, load_suite

Errors = Mapping[str, Sequence[float]]


def baseline_by_name(name: str) -> Baseline:
    """The baseline called ``name`` in the built-in suites (e.g. ``"alexnet"`` from ``imagenet-c``)."""
    for _, path in builtin_suites().items():
        suite = load_suite(path)
        if suite.baseline is not None and suite.baseline.name == name:
            return suite.baseline
    raise UnknownNameError(f"No built-in suite carries a baseline named {name!r}; pass a Baseline instead.")


def _resolve(baseline: str | Baseline) -> Baseline:
    return baseline_by_name(baseline) if isinstance(baseline, str) else baseline


def _baseline_errors(base: Baseline, corruption: str) -> Sequence[float]:
    try:
        return base.errors[corruption]
    except KeyError:
        raise InputError(
            f"Baseline {base.name!r} has no errors for {corruption!r}; its corruptions are "
            f"{', '.join(base.errors)}."
        ) from None


def corruption_error(model_errors: Sequence[float], baseline_errors: Sequence[float]) -> float:
    """CE in percent: Σ_s E_model / Σ_s E_baseline over the same severities."""
    if len(model_errors) != len(baseline_errors) or not model_errors:
        raise InputError("CE needs the same, non-empty set of severities for model and baseline.")
    return 100.0 * sum(model_errors) / sum(baseline_errors)


def relative_corruption_error(
    model_errors: Sequence[float], model_clean: float, baseline_errors: Sequence[float], baseline_clean: float
) -> float:
    """Relative CE in percent: Σ_s (E_model − E_model,clean) / Σ_s (E_base − E_base,clean)."""
    num = sum(e - model_clean for e in model_errors)
    den = sum(e - baseline_clean for e in baseline_errors)
    return 100.0 * num / den


def mce(errors: Errors, baseline: str | Baseline = "alexnet") -> float:
    """Mean corruption error (percent) over the corruptions in ``errors``.

    Args:
        errors: corruption → five per-severity top-1 error fractions.
        baseline: A :class:`Baseline` or the name of one carried by a built-in suite.
    """
    base = _resolve(baseline)
    return fmean(corruption_error(e, _baseline_errors(base, c)) for c, e in errors.items())


def relative_mce(errors: Errors, clean_error: float, baseline: str | Baseline = "alexnet") -> float:
    """Relative mCE (percent); ``clean_error`` is the model's clean top-1 error fraction."""
    base = _resolve(baseline)
    if base.clean_error is None:
        raise InputError(f"Baseline {base.name!r} has no clean_error; relative mCE needs one.")
    return fmean(
        relative_corruption_error(e, clean_error, _baseline_errors(base, c), base.clean_error)
        for c, e in errors.items()
    )


def mean_error(errors: Errors) -> float:
    """Unnormalised mean corruption error in percent (used when a suite has no baseline)."""
    return 100.0 * fmean(fmean(e) for e in errors.values())
