"""Model cards: one TOML file per checkpoint in the zoo folder (``models/``).

A card says which architecture and pooling a checkpoint is, how its inputs are
preprocessed, where the weights come from and what accuracy and robustness were
reported for it. Example::

    name = "gcp-resnet50"
    arch = "resnet50"
    pooling = "gcp"
    num_classes = 1000
    input_size = 224
    resize = 256
    crop = 224
    mean = [0.485, 0.456, 0.406]
    std = [0.229, 0.224, 0.225]
    source = "manual:ResNet50_GCP_LRnorm.pth.tar"
    homepage = "https://github.com/ZhangLi-CS/GCP_Optimization"

    [accuracy]            # reported top-1 accuracy (%) per evaluation set
    imagenet-val = 78.56

    [published]           # published robustness numbers (%), REFERENCE.md §4.3
    mce = 70.7

Checkpoints trained several times with the same recipe declare the training ``seed`` and a ``group``
shared by all seeds of one recipe (same arch, pooling and training settings), e.g.
``group = "demo-gap"``, ``seed = 1``; reports then aggregate the group as mean ± sd over its seeds and
pair GAP and GCP groups seed by seed (STATISTICS.md §6).

``source`` is a path relative to the card's folder, an ``http(s)://`` URL, a
torchvision weights name (``torchvision:ResNet50_Weights.IMAGENET1K_V1``) or
``manual:FILE`` for files that must be downloaded by hand from ``homepage``. A card may also point
to a model source (``timm:resnet50.a1_in1k``, ``tv:resnet50.IMAGENET1K_V2``, ``hf-hub:ORG/NAME``,
see :mod:`robench.models.sources`): the library builds the model and resolves its preprocessing, and
``arch`` then names the library's architecture (it need not be one of ``ARCHS``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from robench._paths import zoo_dir
from robench._registry import Registry
from robench.errors import InputError, MissingFileError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SOURCE_SCHEMES = {"http://": "url", "https://": "url", "torchvision:": "torchvision", "manual:": "manual",
                  "timm:": "timm", "tv:": "tv", "hf-hub:": "hf-hub"}
"""Prefixes of ``source`` and the kind of source they name; anything else is a relative path."""
MODEL_SOURCE_SCHEMES = ("timm", "tv", "hf-hub")
"""Schemes whose library builds the model (:data:`robench.models.sources.SOURCES`)."""


@dataclass(frozen=True)
class Published:
    """Robustness numbers published for a model (all in %).

    Attributes:
        mce: ImageNet-C mean corruption error (AlexNet-normalised).
        relative_mce: ImageNet-C relative mCE.
        mfr: ImageNet-P mean flip rate (the GCP paper's "mFP").
        mt5d: ImageNet-P mean top-5 distance.
        top1: Clean top-1 accuracy quoted with them.
        reference: Where the numbers come from.
    """

    mce: float | None = None
    relative_mce: float | None = None
    mfr: float | None = None
    mt5d: float | None = None
    top1: float | None = None
    reference: str = ""


@dataclass(frozen=True)
class ModelCard:
    """One parsed, validated model card (see the module docstring for the TOML form).

    Attributes:
        name: Zoo name (the card's file stem).
        arch: Architecture name (``ARCHS``).
        pooling: Pooling head name (``POOLINGS``).
        num_classes: Classifier outputs.
        source: Where the weights are (relative path, URL, ``torchvision:…``, ``manual:…``).
        mean: Normalisation mean, applied inside the loaded model.
        std: Normalisation std.
        input_size: Side of the square network input.
        resize: Shorter side before the centre crop (``None``: images are used as they are).
        crop: Centre-crop side (``None``: no crop).
        sha256: Hex digest of the weights file (``None``: not pinned).
        accuracy: Reported top-1 accuracy (%) per evaluation set name.
        accuracy_top5: Reported top-5 accuracy (%) per evaluation set name.
        published: Published robustness numbers, if any.
        description: One line for listings.
        homepage: Where to get the weights by hand.
        seed: Training seed of this checkpoint (``None``: not declared).
        group: Recipe group shared by checkpoints that differ only in their seed.
        path: The card file.
    """

    name: str
    arch: str
    pooling: str
    num_classes: int
    source: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    input_size: int = 224
    resize: int | None = None
    crop: int | None = None
    sha256: str | None = None
    accuracy: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    accuracy_top5: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    published: Published | None = None
    description: str = ""
    homepage: str | None = None
    seed: int | None = None
    group: str | None = None
    path: Path | None = field(default=None, compare=False)

    @property
    def source_scheme(self) -> str:
        """``url``, ``torchvision``, ``manual``, a model source (``timm``, ``tv``, ``hf-hub``) or ``file``."""
        return next((k for p, k in SOURCE_SCHEMES.items() if self.source.startswith(p)), "file")

    def to_dict(self) -> dict[str, Any]:
        """The card as plain TOML-compatible data (what the file says, without ``path``)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "path" or value is None:
                continue
            if isinstance(value, Published):
                value = {k: v for k, v in dataclasses.asdict(value).items() if v not in (None, "")}
            elif isinstance(value, Mapping):
                if not value:
                    continue
                value = dict(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out


_CARD_KEYS = {f.name for f in dataclasses.fields(ModelCard)} - {"path"}
_PUBLISHED_KEYS = {f.name for f in dataclasses.fields(Published)}
_REQUIRED = ("arch", "pooling", "num_classes", "source", "mean", "std")


def _reject_unknown(raw: Mapping[str, Any], valid: set[str], where: str) -> None:
    unknown = sorted(set(raw) - valid)
    if unknown:
        raise InputError(f"{where}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(valid))}.")


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InputError(f"{where} must be a number, got {value!r}.")
    return float(value)


def _positive_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{where} must be a positive integer, got {value!r}.")
    return value


def _scores(raw: Any, where: str) -> Mapping[str, float]:
    if not isinstance(raw, Mapping):
        raise InputError(f"{where} must be a table of evaluation set = percent.")
    return MappingProxyType({str(k): _number(v, f"{where}.{k}") for k, v in raw.items()})


def card_from_dict(raw: Mapping[str, Any], *, path: Path | None = None) -> ModelCard:
    """Validate TOML data into a :class:`ModelCard`.

    Raises:
        InputError: Unknown keys (naming the valid ones), missing or ill-typed values,
            unknown architecture or pooling.
    """
    from robench.models.archs import ARCHS
    from robench.models.pooling import POOLINGS

    where = f"Model card {path}" if path is not None else "Model card"
    _reject_unknown(raw, _CARD_KEYS, where)
    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        raise InputError(f"{where}: missing key(s) {', '.join(missing)}.")
    name = raw.get("name", path.stem if path is not None else None)
    if not isinstance(name, str) or not name:
        raise InputError(f"{where}: needs a name.")
    if path is not None and name != path.stem:
        raise InputError(f"{where}: name {name!r} differs from the file name; rename one of them.")
    library_built = str(raw["source"]).partition(":")[0] in MODEL_SOURCE_SCHEMES
    for key, registry in (("arch", ARCHS), ("pooling", POOLINGS)):
        if raw[key] not in registry and not library_built:
            raise InputError(f"{where}: {registry.unknown_message(str(raw[key]))}")
    mean = tuple(_number(v, f"{where}: mean") for v in raw["mean"])
    std = tuple(_number(v, f"{where}: std") for v in raw["std"])
    if len(mean) != len(std) or not mean or min(std) <= 0:
        raise InputError(f"{where}: mean and std need the same length and std > 0.")
    published = None
    if "published" in raw:
        pub = raw["published"]
        if not isinstance(pub, Mapping):
            raise InputError(f"{where}: [published] must be a table.")
        _reject_unknown(pub, _PUBLISHED_KEYS, f"{where} [published]")
        published = Published(
            **{k: _number(v, f"{where}: published.{k}") for k, v in pub.items() if k != "reference"},
            reference=str(pub.get("reference", "")),
        )
    sha = raw.get("sha256")
    if sha is not None and (
        not isinstance(sha, str) or len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha)
    ):
        raise InputError(f"{where}: sha256 must be 64 lower-case hex digits, got {sha!r}.")
    optional_int = {k: _positive_int(raw[k], f"{where}: {k}") for k in ("resize", "crop") if k in raw}
    seed = raw.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise InputError(f"{where}: seed must be a non-negative integer, got {seed!r}.")
    group = raw.get("group")
    if group is not None and (not isinstance(group, str) or not group.strip()):
        raise InputError(f"{where}: group must be a non-empty string naming the recipe, got {group!r}.")
    return ModelCard(
        name=name,
        arch=raw["arch"],
        pooling=raw["pooling"],
        num_classes=_positive_int(raw["num_classes"], f"{where}: num_classes"),
        source=str(raw["source"]),
        mean=mean,
        std=std,
        input_size=_positive_int(raw.get("input_size", 224), f"{where}: input_size"),
        sha256=sha,
        accuracy=_scores(raw.get("accuracy", {}), f"{where}: accuracy"),
        accuracy_top5=_scores(raw.get("accuracy_top5", {}), f"{where}: accuracy_top5"),
        published=published,
        description=str(raw.get("description", "")),
        homepage=raw.get("homepage"),
        seed=seed,
        group=group,
        path=path,
        **optional_int,
    )


def read_card(path: Path | str) -> ModelCard:
    """Parse and validate one card file."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"Model card {path} not found; `robench list models` shows the zoo.")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"Model card {path} is not valid TOML: {e}") from None
    return card_from_dict(raw, path=path)


@functools.cache
def _zoo(folder: Path) -> Registry[ModelCard]:
    cards: Registry[ModelCard] = Registry("model")
    for path in sorted(folder.glob("*.toml")):
        card = read_card(path)
        cards.add(card.name, card)
    return cards


def zoo(folder: Path | None = None) -> Registry[ModelCard]:
    """The cards of ``folder`` (default: the zoo), read once per folder."""
    return _zoo(Path(folder or zoo_dir()).resolve())


def list_cards(folder: Path | None = None) -> list[ModelCard]:
    """All model cards of the zoo, sorted by name."""
    cards = zoo(folder)
    return [cards.get(name) for name in sorted(cards)]


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _toml_key(key: str) -> str:
    return key if key.replace("-", "").replace("_", "").isalnum() else _toml_value(key)


def dump_card(card: ModelCard, header: str = "") -> str:
    """The card as TOML text (scalars first, then one ``[table]`` per mapping)."""
    data = card.to_dict()
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    lines += [f"{k} = {_toml_value(v)}" for k, v in data.items() if k not in tables]
    for name, table in tables.items():
        lines += ["", f"[{name}]"] + [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"
