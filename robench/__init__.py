"""robench: robustness evaluation of image classifiers (ImageNet-C/P, adversarial), GAP vs GCP.

The public API is re-exported here; see README.md for the command line.
"""

from __future__ import annotations

__version__ = "0.1.0"

from robench.corruptions import CORRUPTIONS, corrupt, jpeg_roundtrip
from robench.evaluate import EvalConfig, run_eval
from robench.export import per_image
from robench.metrics.corruption import mce, relative_mce
from robench.metrics.perturbation import flip_probability, top5_distance
from robench.models import create_model, load_model, resolve_model
from robench.perturbations import PERTURBATIONS, perturb
from robench.report import leaderboard, load_results, write_reports
from robench.suites import load_suite

__all__ = [
    "CORRUPTIONS",
    "PERTURBATIONS",
    "EvalConfig",
    "__version__",
    "corrupt",
    "create_model",
    "flip_probability",
    "jpeg_roundtrip",
    "leaderboard",
    "load_model",
    "load_results",
    "load_suite",
    "mce",
    "per_image",
    "perturb",
    "relative_mce",
    "resolve_model",
    "run_eval",
    "top5_distance",
    "write_reports",
]
