"""Models: GAP/GCP architectures, iSQRT-COV, checkpoint loading and the model zoo.

Every loaded model takes ``N×C×H×W`` images in ``[0, 1]`` and normalises them inside.
"""

from __future__ import annotations

from robench.models.archs import ARCHS, Arch, create_model
from robench.models.cards import ModelCard, Published, list_cards, read_card
from robench.models.checkpoints import FORMATS, Checkpoint, CheckpointFormat, read_checkpoint
from robench.models.download import cache_dir, fetch_weights
from robench.models.isqrtcov import ISqrtCovPool, isqrt_cov
from robench.models.loading import ResolvedModel, load_model, resolve_model
from robench.models.pooling import POOLINGS, Pooling
from robench.models.preprocess import Preprocessing
from robench.models.sources import SOURCES, ModelSource
from robench.models.wrap import Normalized

__all__ = [
    "ARCHS",
    "FORMATS",
    "POOLINGS",
    "SOURCES",
    "Arch",
    "Checkpoint",
    "CheckpointFormat",
    "ISqrtCovPool",
    "ModelCard",
    "ModelSource",
    "Normalized",
    "Pooling",
    "Preprocessing",
    "Published",
    "ResolvedModel",
    "cache_dir",
    "create_model",
    "fetch_weights",
    "isqrt_cov",
    "list_cards",
    "load_model",
    "read_card",
    "read_checkpoint",
    "resolve_model",
]
