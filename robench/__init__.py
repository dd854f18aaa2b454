"""robench: robustness evaluation of image classifiers (ImageNet-C/P, adversarial), GAP vs GCP."""

from __future__ import annotations

__version__ = "0.1.0"
