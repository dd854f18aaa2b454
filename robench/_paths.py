"""Where the benchmark's content (model zoo, suites, demo data) lives.

In a checkout (and an editable install) the content is in the repository's top-level
``models/`` and ``corruptions/`` folders. A wheel carries the same folders inside the
package as ``robench/_zoo`` and ``robench/_suites`` (see ``pyproject.toml``).
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _content_dir(packaged: str, checkout: str) -> Path:
    inside = _PACKAGE / packaged
    return inside if inside.is_dir() else _PACKAGE.parent / checkout


def zoo_dir() -> Path:
    """Folder of model cards (``*.toml``) and demo checkpoints."""
    return _content_dir("_zoo", "models")


def suites_dir() -> Path:
    """Folder of benchmark suites (``*.toml``)."""
    return _content_dir("_suites", "corruptions")


def data_dir() -> Path:
    """Folder of the small datasets shipped with the package."""
    return _PACKAGE / "data" / "files"
