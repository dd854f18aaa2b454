"""Finding weights in the local caches of the Hugging Face hub and of ``torch.hub``, without any network.

robench never downloads a timm, torchvision or hub model itself: it reads the files that timm,
torchvision or ``hf download`` left in their caches, and when one is missing it says in one line
which file it looked for and which command (run online) puts it there.

Hugging Face layout (``huggingface_hub``'s cache): ``$HF_HUB_CACHE`` or ``$HF_HOME/hub`` (default
``~/.cache/huggingface/hub``) holds ``models--ORG--NAME/refs/main`` (the revision) and
``models--ORG--NAME/snapshots/<revision>/<files>``.
"""

from __future__ import annotations

import os
from pathlib import Path

from robench.errors import InputError, MissingFileError

HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
"""Weights of a timm-format hub repository, in the order timm prefers them."""


def hf_hub_cache() -> Path:
    """The hub cache folder: ``$HF_HUB_CACHE``, ``$HF_HOME/hub`` or ``~/.cache/huggingface/hub``."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface"
    return Path(home) / "hub"


def check_repo_id(repo_id: str) -> tuple[str, str | None]:
    """``(ORG/NAME, revision or None)`` of ``ORG/NAME[@REVISION]``.

    Raises:
        InputError: Not of the form ``ORG/NAME``.
    """
    repo, _, revision = repo_id.partition("@")
    parts = repo.split("/")
    if len(parts) != 2 or not all(parts) or any(c in repo for c in " \\:"):
        raise InputError(f"Hub repository {repo_id!r} is not of the form ORG/NAME (e.g. hf-hub:timm/resnet18.a1_in1k).")
    return repo, revision or None


def hf_repo_dir(repo: str) -> Path:
    """``models--ORG--NAME`` inside the hub cache."""
    return hf_hub_cache() / ("models--" + repo.replace("/", "--"))


def _fill_hint(repo: str, files: tuple[str, ...]) -> str:
    return f"fill it online with `hf download {repo} {' '.join(files)}` (huggingface_hub) and run again"


def hf_snapshot(repo: str, revision: str | None = None) -> Path:
    """The cached snapshot folder of ``repo`` at ``revision`` (default: what ``refs/main`` names).

    Raises:
        MissingFileError: The repository or revision is not cached (one line naming the folder and the
            command that fills it).
    """
    base = hf_repo_dir(repo)
    hint = _fill_hint(repo, ("config.json", HF_WEIGHT_FILES[0]))
    if not base.is_dir():
        raise MissingFileError(f"Hub repository {repo} is not in the local Hugging Face cache ({base}); {hint}.")
    if revision is None:
        ref = base / "refs" / "main"
        if not ref.is_file():
            raise MissingFileError(f"Hub repository {repo} has no cached main revision ({ref}); {hint}.")
        revision = ref.read_text(encoding="utf-8").strip()
    snapshot = base / "snapshots" / revision
    if not snapshot.is_dir():
        raise MissingFileError(f"Hub repository {repo} revision {revision} is not cached ({snapshot}); {hint}.")
    return snapshot


def hf_file(repo: str, names: tuple[str, ...], revision: str | None = None) -> Path:
    """The first of ``names`` present in the cached snapshot of ``repo``.

    Raises:
        MissingFileError: None of them is cached (one line, naming the files, the folder and the command).
    """
    snapshot = hf_snapshot(repo, revision)
    for name in names:
        if (snapshot / name).is_file():
            return snapshot / name
    raise MissingFileError(
        f"Hub repository {repo}: none of {', '.join(names)} is in the local cache ({snapshot}); "
        f"{_fill_hint(repo, names[:1])}."
    )


def torch_hub_checkpoints() -> Path:
    """``torch.hub``'s download folder: ``$TORCH_HOME/hub/checkpoints`` (default ``~/.cache/torch/…``)."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def torch_hub_file(url: str, command: str) -> Path:
    """The file ``torch.hub.load_state_dict_from_url(url)`` would have saved.

    Raises:
        MissingFileError: Absent (one line naming the path and ``command``, which fills it online).
    """
    path = torch_hub_checkpoints() / url.rsplit("/", 1)[-1].split("?", 1)[0]
    if not path.is_file():
        raise MissingFileError(
            f"Weights {path.name} are not in the torch hub cache ({path}); fill it online with `{command}` "
            "and run again, or pass --weights FILE."
        )
    return path
