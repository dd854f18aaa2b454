"""Importing foolbox 3 without its side effects, and wrapping models for it.

foolbox imports GitPython (for its model zoo), which raises at import time when no
``git`` executable exists unless ``GIT_PYTHON_REFRESH=quiet`` is set; and foolbox
imports ``scipy.ndimage.filters``, whose deprecation warning turns into an error under
``python -W error`` / strict pytest runs. Both are handled here, once, on first use:
``import robench`` never imports foolbox.
"""

from __future__ import annotations

import functools
import os
import shutil
import warnings
from types import ModuleType
from typing import Any

from torch import nn

from robench.errors import RobenchError


class MissingDependencyError(RobenchError, ImportError):
    """An optional dependency needed by the requested attack is not installed."""


@functools.cache
def foolbox() -> ModuleType:
    """The ``foolbox`` module, imported quietly.

    Raises:
        MissingDependencyError: foolbox is not installed.
    """
    if shutil.which("git") is None:
        os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    try:
        with warnings.catch_warnings():
            # scipy.ndimage.filters (foolbox.attacks.blur) and similar import-time notices.
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            import foolbox as fb
    except ImportError as exc:
        raise MissingDependencyError(
            f"This attack needs foolbox 3 ({exc}); install it with `pip install 'robench[attacks]'`."
        ) from None
    return fb


def foolbox_model(model: nn.Module, device: Any) -> Any:
    """``model`` (inputs in ``[0, 1]``, normalisation inside) as a foolbox model."""
    return foolbox().PyTorchModel(model, bounds=(0.0, 1.0), device=device)
