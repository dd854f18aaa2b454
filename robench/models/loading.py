"""From a zoo name or a file to an evaluation-ready model (``[0, 1]`` inputs, eval mode)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import torch
from torch import nn

from robench.errors import CheckpointError, InputError, MissingFileError, UnknownNameError
from robench.models.archs import ARCHS, create_model
from robench.models.cards import ModelCard, read_card, zoo
from robench.models.checkpoints import Checkpoint, _preview, compare_keys, read_checkpoint
from robench.models.download import fetch_weights, sha256_file, verify
from robench.models.pooling import POOLINGS
from robench.models.preprocess import Preprocessing
from robench.models.sources import SOURCES, ModelSource, split_source
from robench.models.wrap import Normalized

log = logging.getLogger(__name__)

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".tar", ".bin", ".ckpt", ".safetensors", ".toml")


@dataclass(frozen=True)
class ResolvedModel:
    """A loaded model and what is known about it.

    Attributes:
        name: Zoo name, or the file name for a bare checkpoint.
        arch: Architecture name.
        pooling: Pooling head name.
        num_classes: Classifier outputs.
        sha256: Hex sha256 of the weights file.
        card: The model card, ``None`` for a bare checkpoint.
        module: :class:`~robench.models.wrap.Normalized` network in eval mode, taking
            ``N×C×H×W`` images in ``[0, 1]``.
        path: The weights file.
        format: The recognised checkpoint layout (``FORMATS``).
        preprocessing: What the weights expect (resize, crop, interpolation, mean/std, native size).
        source: The model source prefix (``timm``, ``tv``, ``hf-hub``), empty for zoo models and files.
    """

    name: str
    arch: str
    pooling: str
    num_classes: int
    sha256: str
    card: ModelCard | None
    module: nn.Module
    path: Path
    format: str
    preprocessing: Preprocessing | None = None
    source: str = ""


def card_preprocessing(card: ModelCard) -> Preprocessing:
    """What a card says about its inputs (resize with PIL bilinear, as the ImageNet-C protocol)."""
    return Preprocessing(card.input_size, card.resize, card.crop, "bilinear", card.mean, card.std,
                         origin="model card")


def arch_preprocessing(arch: str) -> Preprocessing:
    """An architecture's defaults, for checkpoints without a card."""
    spec = ARCHS.get(arch)
    return Preprocessing(spec.input_size, spec.resize, spec.input_size if spec.resize else None, "bilinear",
                         spec.mean, spec.std, origin=f"{arch} defaults")


@functools.cache
def expected_shapes(arch: str, pool: str, num_classes: int) -> Mapping[str, tuple[int, ...]]:
    """``{state_dict key: shape}`` of a model, built on the meta device (no memory, no init cost)."""
    with torch.device("meta"):
        model = create_model(arch, pool, num_classes)
    return MappingProxyType({k: tuple(v.shape) for k, v in model.state_dict().items()})


def _num_classes(state: dict[str, torch.Tensor], arch: str) -> int | None:
    weight = state.get(ARCHS.get(arch).classifier)
    return int(weight.shape[0]) if weight is not None and weight.dim() == 2 else None


def infer_architecture(
    ckpt: Checkpoint, arch: str | None = None, pool: str | None = None, num_classes: int | None = None
) -> tuple[str, str, int]:
    """``(arch, pool, num_classes)`` whose keys and shapes match ``ckpt`` exactly.

    ``arch``/``pool``/``num_classes`` restrict the search when given.

    Raises:
        CheckpointError: No candidate fits (the closest is described), or several do.
    """
    archs = [arch] if arch is not None else ARCHS.names()
    pools = [pool] if pool is not None else POOLINGS.names()
    fits, near = [], []
    for a in archs:
        nc = num_classes or _num_classes(ckpt.state_dict, a)
        if nc is None:
            continue
        for p in (p for p in pools if ARCHS.get(a).supports(p)):
            report = compare_keys(ckpt.state_dict, expected_shapes(a, p, nc))
            (fits if report.ok else near).append((report.size, a, p, nc, report))
    if len(fits) == 1:
        _, a, p, nc, _ = fits[0]
        log.info("%s: inferred architecture %s, pooling %s, %d classes", ckpt.path, a, p, nc)
        return a, p, nc
    if fits:
        names = ", ".join(f"{a}/{p}" for _, a, p, _, _ in fits)
        raise CheckpointError(f"{ckpt.path} fits several architectures ({names}); pass --arch and --pool.")
    hint = ""
    if near:
        _, a, p, nc, report = min(near, key=lambda t: t[0])
        hint = f" Closest: {a}/{p} with {nc} classes ({report.describe()})."
    raise CheckpointError(
        f"Cannot tell the architecture of {ckpt.path} ({ckpt.format} format, {len(ckpt.state_dict)} tensors): "
        f"it matches no registered architecture/pooling.{hint} Pass --arch and --pool "
        f"(architectures: {', '.join(ARCHS.names())})."
    )


def build_from_checkpoint(ckpt: Checkpoint, arch: str, pool: str, num_classes: int) -> nn.Module:
    """Create the network and load ``ckpt`` into it, all keys and shapes checked.

    Raises:
        CheckpointError: Missing, unexpected or mis-shaped keys (first few of each, with counts), or NaN/inf
            values.
    """
    model = create_model(arch, pool, num_classes)
    own = model.state_dict()
    report = compare_keys(ckpt.state_dict, {k: tuple(v.shape) for k, v in own.items()})
    if not report.ok:
        raise CheckpointError(
            f"{ckpt.path} ({ckpt.format} format) does not fit {arch}/{pool} with {num_classes} classes: "
            f"{report.describe()}. Check --arch/--pool (or the model card)."
        )
    bad = [k for k, v in ckpt.state_dict.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(
            f"{ckpt.path} holds NaN/inf values in {len(bad)} tensor(s): {_preview(bad)}; the weights are damaged "
            "(a diverged training run?). Use another checkpoint."
        )
    state = dict(ckpt.state_dict)
    for key, value in own.items():  # BN counters absent from old files
        state.setdefault(key, value)
    model.load_state_dict(state, strict=True)
    return model


def _pick(option: str | None, from_card: str, what: str, card: ModelCard) -> str:
    if option is not None and option != from_card:
        raise InputError(
            f"Model {card.name!r} is {what} {from_card!r} according to its card, not {option!r}; "
            f"drop --{what} or pass the checkpoint file instead of the zoo name."
        )
    return from_card


def _locate(ckpt: str | Path, zoo_folder: Path | None) -> tuple[ModelCard | None, Path]:
    """``(card, card file)`` for a zoo name or card file, ``(None, file)`` for a bare checkpoint."""
    path = Path(ckpt)
    if path.is_file():
        return (read_card(path), path) if path.suffix == ".toml" else (None, path)
    cards = zoo(zoo_folder)
    name = str(ckpt)
    if name in cards:
        card = cards.get(name)
        return card, card.path or path
    if path.is_dir():
        raise InputError(f"Checkpoint {path} is a folder; pass the weights file inside it.")
    if path.suffix in CHECKPOINT_SUFFIXES or len(path.parts) > 1:
        raise MissingFileError(
            f"Checkpoint {ckpt} not found; pass an existing file or a zoo name (`robench list models`)."
        )
    raise UnknownNameError(cards.unknown_message(name) + " Or pass a checkpoint file path.")


def _from_source(
    source: ModelSource, spec: str, name: str, weights: Path | None, device: str | torch.device,
    card: ModelCard | None = None,
) -> ResolvedModel:
    """A model built by a registered source (``timm:``, ``tv:``, ``hf-hub:``), normaliser inside."""
    loaded = source.load(spec, weights)
    if card is not None and (card.num_classes, card.arch) != (loaded.num_classes, loaded.arch.split(":", 1)[-1]):
        raise InputError(
            f"Model {card.name!r} is {card.arch} with {card.num_classes} classes by its card but "
            f"{source.prefix}:{spec} is {loaded.arch} with {loaded.num_classes}; fix the card."
        )
    pre = loaded.preprocessing
    module = Normalized(loaded.net, pre.mean, pre.std).eval().to(device)
    return ResolvedModel(name=name, arch=loaded.arch, pooling=loaded.pooling, num_classes=loaded.num_classes,
                         sha256=loaded.sha256, card=card, module=module, path=loaded.path, format=loaded.format,
                         preprocessing=pre, source=source.prefix)


def resolve_model(
    ckpt: str | Path,
    arch: str | None = None,
    pool: str | None = None,
    *,
    num_classes: int | None = None,
    device: str | torch.device = "cpu",
    download: bool = True,
    zoo_folder: Path | None = None,
    weights: Path | str | None = None,
) -> ResolvedModel:
    """Load a zoo model or a checkpoint file, with its normaliser, in eval mode.

    Args:
        ckpt: Zoo name (``robench list models``), a card file (``.toml``), a
            checkpoint file (torch or safetensors, any layout of ``FORMATS``) or a model
            source ``timm:NAME``, ``tv:NAME[.WEIGHTS]``, ``hf-hub:ORG/NAME`` (``SOURCES``).
        arch: Architecture; for a file it is inferred from the keys when omitted.
        pool: Pooling head (``gap``/``gcp``); inferred like ``arch``.
        num_classes: Classifier outputs; default from the card or the file.
        device: Where the model goes.
        download: Whether a card's weights may be downloaded into the cache.
        zoo_folder: Folder of cards (default: the installed zoo).
        weights: Weights file for a model source (instead of its library's cache).

    Raises:
        MissingFileError: No such file, or a card's weights are unavailable (the message
            says where to get them).
        UnknownNameError: Not a file and not a zoo name (with did-you-mean).
        CheckpointError: Unsafe, unreadable or ill-fitting checkpoint.
        InputError: Options contradicting the card.
    """
    weights = None if weights is None else Path(weights)
    source = None if Path(ckpt).is_file() else split_source(ckpt)
    if source is not None:
        if arch is not None or pool is not None or num_classes is not None:
            raise InputError(f"--arch/--pool do not apply to {ckpt}: its library builds the model; drop them.")
        return _from_source(*source, str(ckpt), weights, device)
    if arch is not None:
        ARCHS.get(arch)  # unknown names fail before a large file is read
    if pool is not None:
        POOLINGS.get(pool)
    card, path = _locate(ckpt, zoo_folder)
    if card is not None and card.source_scheme in SOURCES:
        _pick(arch, card.arch, "arch", card), _pick(pool, card.pooling, "pool", card)
        return _from_source(SOURCES.get(card.source_scheme), card.source.split(":", 1)[1], card.name, weights, device,
                            card)
    if weights is not None:
        raise InputError(
            f"--weights applies to {', '.join(p + ':' for p in SOURCES.names())} models (and their zoo cards) only; "
            f"pass the file itself as --ckpt FILE instead."
        )
    if card is not None:
        arch = _pick(arch, card.arch, "arch", card)
        pool = _pick(pool, card.pooling, "pool", card)
        if num_classes is not None and num_classes != card.num_classes:
            raise InputError(f"Model {card.name!r} has {card.num_classes} classes, not {num_classes}.")
        num_classes = card.num_classes
        path = fetch_weights(card, download=download)
        digest = verify(path, card)
    else:
        digest = sha256_file(path)
    checkpoint = read_checkpoint(path)
    if arch is None or pool is None:
        arch, pool, num_classes = infer_architecture(checkpoint, arch, pool, num_classes)
    spec = ARCHS.get(arch)
    if num_classes is None:
        num_classes = _num_classes(checkpoint.state_dict, arch) or spec.default_classes
    net = build_from_checkpoint(checkpoint, arch, pool, num_classes)
    mean, std = (card.mean, card.std) if card is not None else (spec.mean, spec.std)
    module = Normalized(net, mean, std).eval().to(device)
    return ResolvedModel(
        name=card.name if card is not None else path.name,
        arch=arch,
        pooling=pool,
        num_classes=num_classes,
        sha256=digest,
        card=card,
        module=module,
        path=path,
        format=checkpoint.format,
        preprocessing=card_preprocessing(card) if card is not None else arch_preprocessing(arch),
    )


def load_model(
    ckpt: str | Path,
    arch: str | None = None,
    pool: str | None = None,
    *,
    num_classes: int | None = None,
    device: str | torch.device = "cpu",
    weights: Path | str | None = None,
) -> nn.Module:
    """The module of :func:`resolve_model`: eval mode, normaliser inside, ``[0, 1]`` inputs."""
    return resolve_model(ckpt, arch, pool, num_classes=num_classes, device=device, weights=weights).module
