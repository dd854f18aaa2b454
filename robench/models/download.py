"""Where a card's weights come from: the zoo folder, a URL (cached), torchvision, or by hand.

Downloads go to ``$ROBENCH_CACHE/checkpoints`` (default ``~/.cache/robench``), are
written to a temporary file, verified against the card's sha256 and only then moved
into place, so an interrupted download never leaves a file that looks complete.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from robench._progress import progress
from robench.errors import CheckpointError, InputError, MissingFileError
from robench.models.cards import ModelCard

log = logging.getLogger(__name__)

TIMEOUT_S = 30.0
_CHUNK = 1 << 20


def cache_dir() -> Path:
    """Folder of downloaded checkpoints: ``$ROBENCH_CACHE/checkpoints`` or ``~/.cache/robench/checkpoints``."""
    root = (
        os.environ.get("ROBENCH_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "robench"
    )
    return Path(root) / "checkpoints"


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(path: Path, card: ModelCard, digest: str | None = None) -> str:
    """Check ``path`` against the card's sha256 (or, for torchvision files, the hash in the name).

    Returns:
        The file's sha256.

    Raises:
        CheckpointError: The digest differs.
    """
    digest = digest or sha256_file(path)
    expected, what = card.sha256, "the card's sha256"
    if expected is None and card.source_scheme == "torchvision":
        # torchvision names files <name>-<first hex digits of the sha256>.pth
        found = re.search(r"-([0-9a-f]{6,})\.", path.name)
        expected, what = (found[1], "the hash in its file name") if found else (None, "")
    if expected is not None and not digest.startswith(expected):
        raise CheckpointError(
            f"{path} has sha256 {digest[:16]}…, which does not match {what} ({expected[:16]}…) of model "
            f"{card.name!r}: the file is corrupt or a different version. Delete it and download it again."
        )
    return digest


def download(url: str, dest: Path, *, sha256: str | None = None, timeout: float = TIMEOUT_S) -> Path:
    """Download ``url`` to ``dest`` atomically, checking ``sha256`` when given.

    Raises:
        MissingFileError: The download failed (offline, HTTP error); the message says
            what to do instead.
        CheckpointError: The downloaded bytes do not match ``sha256``.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + f".part{os.getpid()}")
    h = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(part, "wb") as out:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with progress(total=total, desc=f"download {dest.name}", unit="B") as bar:
                for chunk in iter(lambda: resp.read(_CHUNK), b""):
                    out.write(chunk)
                    h.update(chunk)
                    bar.update(len(chunk))
    except (TimeoutError, urllib.error.URLError, OSError) as e:
        part.unlink(missing_ok=True)
        reason = getattr(e, "reason", None) or e
        raise MissingFileError(
            f"Could not download {url} ({reason}). Download it by hand, then pass --ckpt PATH (or save it as {dest})."
        ) from None
    digest = h.hexdigest()
    if sha256 is not None and digest != sha256:
        part.unlink(missing_ok=True)
        raise CheckpointError(
            f"Download of {url} has sha256 {digest[:16]}…, expected {sha256[:16]}…; the server sent a "
            "different file. Nothing was kept."
        )
    os.replace(part, dest)
    log.info("downloaded %s to %s", url, dest)
    return dest


def _cached_or_download(card: ModelCard, url: str, download_ok: bool, extra: tuple[Path, ...] = ()) -> Path:
    name = url.rsplit("/", 1)[-1].split("?", 1)[0]
    dest = cache_dir() / name
    for candidate in (dest, *(d / name for d in extra)):
        if candidate.is_file():
            return candidate
    if not download_ok:
        raise MissingFileError(
            f"Weights of {card.name!r} are not in the cache ({dest}) and downloads are off. "
            f"Get them from {url} and pass --ckpt PATH."
        )
    return download(url, dest, sha256=card.sha256)


def _from_zoo(card: ModelCard, download_ok: bool) -> Path:
    base = card.path.parent if card.path is not None else Path.cwd()
    path = (base / card.source).resolve()
    if not path.is_file():
        raise MissingFileError(
            f"Weights {path} of model {card.name!r} are missing; restore the file (it ships with robench) "
            "or pass --ckpt PATH."
        )
    return path


def _from_url(card: ModelCard, download_ok: bool) -> Path:
    return _cached_or_download(card, card.source, download_ok)


def _from_torchvision(card: ModelCard, download_ok: bool) -> Path:
    import torch.hub
    from torchvision.models import get_weight

    weights = get_weight(card.source.removeprefix("torchvision:"))
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    return _cached_or_download(card, weights.url, download_ok, extra=(hub,))


def _by_hand(card: ModelCard, download_ok: bool) -> Path:
    name = card.source.removeprefix("manual:")
    path = cache_dir() / name
    if path.is_file():
        return path
    where = card.homepage or "the model's homepage"
    raise MissingFileError(
        f"Weights of {card.name!r} ({name}) cannot be downloaded automatically; get them from {where}, "
        f"then pass --ckpt PATH (with --arch {card.arch} --pool {card.pooling}) or save the file as {path}."
    )


FETCHERS: dict[str, Callable[[ModelCard, bool], Path]] = {
    "file": _from_zoo,
    "url": _from_url,
    "torchvision": _from_torchvision,
    "manual": _by_hand,
}
"""Source scheme (``ModelCard.source_scheme``) → how to obtain the file."""


def fetch_weights(card: ModelCard, *, download: bool = True) -> Path:
    """The local weights file of ``card``, downloading it into the cache when needed.

    Raises:
        MissingFileError: The file is absent and cannot be downloaded (offline, by hand);
            the message says where to get it and to pass ``--ckpt PATH``.
        CheckpointError: The file does not match the card's sha256.
    """
    fetch = FETCHERS.get(card.source_scheme)
    if fetch is None:  # timm:/tv:/hf-hub: cards: their library builds the model (robench.models.sources)
        raise InputError(f"Model {card.name!r} comes from {card.source}; load it with --ckpt {card.name}.")
    return fetch(card, download)
