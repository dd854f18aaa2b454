"""Model sources named by a prefix: ``timm:NAME``, ``tv:NAME[.WEIGHTS]``, ``hf-hub:ORG/NAME``.

A source builds a network the way its library does and resolves the preprocessing the weights
were trained with (:class:`~robench.models.preprocess.Preprocessing`):

- ``timm:NAME`` — ``timm.create_model(NAME, pretrained=False)`` and timm's data config for it
  (``timm.data.resolve_model_data_config``: input size, crop_pct, interpolation, mean/std). Weights
  from ``--weights FILE``, else from the files timm itself downloads (the Hugging Face cache for
  ``hf_hub_id`` weights, torch hub's cache for ``url`` weights).
- ``tv:NAME[.WEIGHTS]`` — ``torchvision.models.get_model(NAME)`` with the weights enum member
  ``WEIGHTS`` (default ``DEFAULT``), whose ``transforms()`` give the preprocessing; weights from
  ``--weights FILE`` or torch hub's cache (checked against the hash in torchvision's file name).
- ``hf-hub:ORG/NAME[@REVISION]`` — a timm-format hub repository (``config.json`` with
  ``architecture``/``num_classes``/``pretrained_cfg``, plus ``model.safetensors`` or
  ``pytorch_model.bin``) read from the local hub cache.

Nothing is downloaded: the weights are read with :func:`~robench.models.checkpoints.read_checkpoint`
(safetensors, or ``torch.load(weights_only=True)``) and loaded with every key and shape checked. A
missing file is one line naming where it was looked for and the command that fills the cache.
timm is an optional dependency (``pip install 'robench[timm]'``), imported only when needed.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from robench._registry import Registry
from robench.errors import CheckpointError, InputError, MissingFileError, UnknownNameError
from robench.models.checkpoints import Checkpoint, _preview, compare_keys, read_checkpoint
from robench.models.download import cache_dir, sha256_file
from robench.models.hub_cache import (
    HF_WEIGHT_FILES,
    check_repo_id,
    hf_file,
    hf_repo_dir,
    torch_hub_checkpoints,
)
from robench.models.preprocess import Preprocessing, from_crop_pct

TIMM_POOLINGS = {"avg": "gap", "fast": "gap", "avgmax": "avgmax", "max": "max", "catavgmax": "catavgmax"}
"""timm's ``global_pool`` types by the pooling names robench reports (``gap`` pairs with ``gcp``)."""


@dataclass(frozen=True)
class SourceModel:
    """A network built and loaded by a source, before the normaliser is put in front of it.

    Attributes:
        net: The network (expects normalised inputs), weights loaded.
        preprocessing: What its weights expect.
        path: The weights file.
        sha256: Hex sha256 of the weights file.
        arch: The library and its architecture name (``timm:resnet50``, ``tv:resnet50``), so that reports
            never pair a library model with one of robench's own architectures by accident.
        pooling: ``gap`` for global average pooling, else the library's pooling name.
        num_classes: Classifier outputs.
        format: The checkpoint layout of the weights file (``FORMATS``).
    """

    net: nn.Module
    preprocessing: Preprocessing
    path: Path
    sha256: str
    arch: str
    pooling: str
    num_classes: int
    format: str


@dataclass(frozen=True)
class ModelSource:
    """One registered prefix of ``--ckpt PREFIX:SPEC``.

    Attributes:
        prefix: What precedes the colon.
        description: One line for listings.
        example: A spec as users write it.
        load: ``load(spec, weights_file_or_None) -> SourceModel``.
    """

    prefix: str
    description: str
    example: str
    load: Callable[[str, Path | None], SourceModel]


SOURCES: Registry[ModelSource] = Registry("model source")


def split_source(ckpt: str | Path) -> tuple[ModelSource, str] | None:
    """``(source, spec)`` for ``PREFIX:SPEC`` with a registered prefix, else ``None`` (a file or zoo name)."""
    prefix, sep, spec = str(ckpt).partition(":")
    if not sep or prefix not in SOURCES:
        return None
    if not spec:
        source = SOURCES.get(prefix)
        raise InputError(f"--ckpt {ckpt!r} names no model; write it as {source.example}.")
    return SOURCES.get(prefix), spec


def import_timm() -> ModuleType:
    """timm, or one line saying how to install it."""
    try:
        import timm
    except ImportError:
        raise InputError(
            "timm is not installed; `pip install 'robench[timm]'` to load timm: and hf-hub: models."
        ) from None
    return timm


def _unknown(what: str, name: str, known: list[str]) -> UnknownNameError:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return UnknownNameError(f"Unknown {what} {name!r}.{hint}")


def load_weights(net: nn.Module, ckpt: Checkpoint | Path, what: str) -> str:
    """Load a checkpoint into ``net`` (every key and shape checked, finite values); returns its format.

    Raises:
        CheckpointError: Unsafe/unreadable file, missing/unexpected/mis-shaped keys, NaN/inf values.
    """
    ckpt = ckpt if isinstance(ckpt, Checkpoint) else read_checkpoint(ckpt)
    path = ckpt.path
    own = net.state_dict()
    report = compare_keys(ckpt.state_dict, {k: tuple(v.shape) for k, v in own.items()})
    if not report.ok:
        raise CheckpointError(
            f"{path} ({ckpt.format} format) does not fit {what}: {report.describe()}. "
            "Pass the weights of this very model (or its matching --ckpt name)."
        )
    bad = [k for k, v in ckpt.state_dict.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(
            f"{path} holds NaN/inf values in {len(bad)} tensor(s): {_preview(bad)}; use other weights."
        )
    state = dict(ckpt.state_dict)
    for key, value in own.items():  # BN counters absent from some files
        state.setdefault(key, value)
    net.load_state_dict(state, strict=True)
    return ckpt.format


def _hf_blob_digest(path: Path, digest: str) -> None:
    """Hub snapshot files link to ``blobs/<sha256>`` (large files): a different digest means damage."""
    if not path.is_symlink():
        return
    blob = os.path.basename(os.readlink(path))
    if re.fullmatch(r"[0-9a-f]{64}", blob) and blob != digest:
        raise CheckpointError(
            f"{path} has sha256 {digest[:16]}… but the hub cache names it {blob[:16]}…; the file is damaged. "
            "Delete it from the cache and download it again."
        )


# ---- timm -------------------------------------------------------------------------------------------------


def timm_preprocessing(net: nn.Module, origin: str) -> Preprocessing:
    """timm's evaluation preprocessing of ``net`` (``resolve_model_data_config``, the train-size config).

    Raises:
        InputError: A non-square input or a crop mode other than ``center`` (not supported).
    """
    timm = import_timm()
    cfg = timm.data.resolve_model_data_config(net)
    _, h, w = cfg["input_size"]
    mode = cfg.get("crop_mode") or "center"
    if h != w or mode != "center":
        raise InputError(
            f"{origin}: input {h}×{w} with crop_mode {mode!r} is not supported (square inputs with centre crops only)."
        )
    return from_crop_pct(int(h), float(cfg["crop_pct"]), str(cfg["interpolation"]), tuple(cfg["mean"]),
                         tuple(cfg["std"]), origin)


def _timm_pooling(net: nn.Module) -> str:
    pool = getattr(net, "global_pool", None)
    kind = str(getattr(pool, "pool_type", pool) or "")
    return TIMM_POOLINGS.get(kind, kind or "none")


def _classifier_outputs(state: dict[str, torch.Tensor], classifier: str | None) -> int | None:
    weight = state.get(f"{classifier}.weight") if classifier else None
    return int(weight.shape[0]) if weight is not None and weight.dim() == 2 else None


def _timm_cached_weights(name: str, cfg: dict[str, Any]) -> Path:
    """Where timm would have downloaded ``name``'s pretrained weights (hub cache, then torch hub cache)."""
    looked = []
    hub_id = cfg.get("hf_hub_id")
    if hub_id:
        repo, revision = check_repo_id(hub_id)
        names = (cfg["hf_hub_filename"],) if cfg.get("hf_hub_filename") else HF_WEIGHT_FILES
        try:
            return hf_file(repo, names, revision)
        except MissingFileError:
            looked.append(str(hf_repo_dir(repo)))
    url = cfg.get("url")
    if url:
        base = url.rsplit("/", 1)[-1].split("?", 1)[0]
        path = torch_hub_checkpoints() / base
        if path.is_file():
            return path
        looked.append(str(path))
    command = f"python -c \"import timm; timm.create_model('{name}', pretrained=True)\""
    where = " or ".join(looked) or "no download location in timm's config"
    raise MissingFileError(
        f"Weights of timm:{name} are not in the local cache ({where}); fill it online with `{command}`, "
        "or pass --weights FILE."
    )


def load_timm(spec: str, weights: Path | None) -> SourceModel:
    """``timm:NAME`` (``NAME`` may carry a pretrained tag, ``resnet50.a1_in1k``)."""
    timm = import_timm()
    arch = spec.split(".", 1)[0]
    if not timm.is_model(arch):
        raise _unknown("timm model", arch, timm.list_models()) from None
    if "." in spec and spec not in (tags := timm.list_pretrained(f"{arch}.*")):
        raise InputError(f"timm has no pretrained tag {spec!r}; available: {', '.join(tags) or '(none)'}.")
    net = timm.create_model(spec, pretrained=False)
    path = weights if weights is not None else _timm_cached_weights(spec, dict(net.pretrained_cfg))
    ckpt = read_checkpoint(path)
    num_classes = _classifier_outputs(ckpt.state_dict, net.pretrained_cfg.get("classifier"))
    if num_classes is not None and num_classes != getattr(net, "num_classes", num_classes):
        net = timm.create_model(spec, pretrained=False, num_classes=num_classes)
    fmt = load_weights(net, ckpt, f"timm:{spec}")
    return SourceModel(net, timm_preprocessing(net, "timm pretrained_cfg"), path, sha256_file(path), f"timm:{arch}",
                       _timm_pooling(net), int(getattr(net, "num_classes", num_classes or 0)), fmt)


# ---- Hugging Face hub (timm format) -----------------------------------------------------------------------


def load_hf_hub(spec: str, weights: Path | None) -> SourceModel:
    """``hf-hub:ORG/NAME[@REVISION]``: a timm-format repository from the local hub cache."""
    repo, revision = check_repo_id(spec)
    config_path = hf_file(repo, ("config.json",), revision)
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(
            f"{config_path} is not valid JSON ({e}); delete it and download the repository again."
        ) from None
    arch = config.get("architecture") if isinstance(config, dict) else None
    if not isinstance(arch, str):
        raise InputError(
            f"hf-hub:{repo} is not a timm-format repository ({config_path} has no 'architecture'); "
            "only timm models can be loaded from the hub."
        )
    timm = import_timm()
    if not timm.is_model(arch):
        raise _unknown(f"timm architecture (in {config_path})", arch, timm.list_models())
    pretrained_cfg = dict(config.get("pretrained_cfg") or {})
    pretrained_cfg["hf_hub_id"], pretrained_cfg["source"] = repo, "hf-hub"
    kwargs = dict(config.get("model_args") or {})
    if "num_classes" in config:  # as timm's load_model_config_from_hf
        pretrained_cfg["num_classes"] = kwargs["num_classes"] = int(config["num_classes"])
    try:
        net = timm.create_model(arch, pretrained=False, pretrained_cfg=pretrained_cfg, **kwargs)
    except TypeError as e:
        raise InputError(f"{config_path} does not build {arch} ({e}); is it a timm config?") from None
    path = weights if weights is not None else hf_file(repo, HF_WEIGHT_FILES, revision)
    fmt = load_weights(net, path, f"hf-hub:{repo} ({arch})")
    digest = sha256_file(path)
    _hf_blob_digest(path, digest)
    return SourceModel(net, timm_preprocessing(net, f"hf-hub {repo} config.json pretrained_cfg"), path, digest,
                       f"timm:{arch}", _timm_pooling(net), int(getattr(net, "num_classes", 0)), fmt)


# ---- torchvision ------------------------------------------------------------------------------------------


def _tv_weights(name: str, member: str) -> Any:
    from torchvision import models

    if name not in models.list_models():
        raise _unknown("torchvision model", name, models.list_models())
    enum = models.get_model_weights(name)
    try:
        return enum[member]
    except KeyError:
        raise InputError(
            f"torchvision {name} has no weights {member!r}; use one of {', '.join(enum.__members__)}."
        ) from None


def tv_preprocessing(weights: Any) -> Preprocessing:
    """The preprocessing of a torchvision weights enum member (its ``transforms()``)."""
    t = weights.transforms()
    size = lambda v: int(v[0]) if isinstance(v, list | tuple) else int(v)  # noqa: E731
    crop, resize = size(t.crop_size), size(t.resize_size)
    return Preprocessing(crop, resize, crop, t.interpolation.value, tuple(t.mean), tuple(t.std),
                         origin=f"torchvision {type(weights).__name__}.{weights.name} transforms")


def _tv_cached(weights: Any, name: str) -> Path:
    base = weights.url.rsplit("/", 1)[-1]
    path = torch_hub_checkpoints() / base
    for candidate in (path, cache_dir() / base):  # the cache of torchvision: model cards
        if candidate.is_file():
            return candidate
    command = f"python -c \"import torchvision; torchvision.models.get_model('{name}', weights='{weights.name}')\""
    raise MissingFileError(
        f"Weights {base} of tv:{name}.{weights.name} are not in the torch hub cache ({path}); fill it online with "
        f"`{command}`, or pass --weights FILE."
    )


def load_tv(spec: str, weights: Path | None) -> SourceModel:
    """``tv:NAME[.WEIGHTS]`` (``WEIGHTS`` a member of the model's weights enum, default ``DEFAULT``)."""
    from torchvision import models

    name, _, member = spec.partition(".")
    enum_member = _tv_weights(name, member or "DEFAULT")
    path = weights if weights is not None else _tv_cached(enum_member, name)
    digest = sha256_file(path)
    found = re.search(r"-([0-9a-f]{6,})\.", path.name)
    if weights is None and found and not digest.startswith(found[1]):
        raise CheckpointError(
            f"{path} has sha256 {digest[:16]}…, which does not match the hash in its file name ({found[1]}): the file "
            "is damaged or another version. Delete it and download it again."
        )
    num_classes = len(enum_member.meta.get("categories") or []) or 1000
    net = models.get_model(name, weights=None, num_classes=num_classes)
    fmt = load_weights(net, path, f"tv:{name}.{enum_member.name}")
    pooling = "gap" if any(isinstance(m, nn.AdaptiveAvgPool2d) for m in net.modules()) else "none"
    return SourceModel(net, tv_preprocessing(enum_member), path, digest, f"tv:{name}", pooling, num_classes, fmt)


SOURCES.add("timm", ModelSource("timm", "a timm model with timm's pretrained config", "timm:resnet50.a1_in1k",
                                load_timm))
SOURCES.add("tv", ModelSource("tv", "a torchvision model with a weights enum and its transforms",
                              "tv:resnet50.IMAGENET1K_V2", load_tv))
SOURCES.add("hf-hub", ModelSource("hf-hub", "a timm-format Hugging Face hub repository from the local cache",
                                  "hf-hub:timm/resnet18.a1_in1k", load_hf_hub))
