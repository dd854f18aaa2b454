"""Benchmark suites: TOML files naming the dataset, protocol and items to evaluate.

A suite lives in ``corruptions/<name>.toml`` (or any path). Example::

    name = "demo"
    dataset = "fashion-mnist-demo"
    param_set = "cifar"

    [protocol]
    quantize = true          # 8-bit truncation after corrupting, as the released datasets
    jpeg_quality = 0         # 85 reproduces ImageNet-C's JPEG round trip; 0 turns it off
    resolution = 224         # default: the suite's resize/crop for all; "model": each model's own

    [clean]

    [corruptions]
    names = ["gaussian_noise", "contrast"]   # or "test" (the 15) / "extra" (the 4) / "all"
    severities = [1, 2, 3, 4, 5]

    [baseline]               # optional: normalisers for CE / relative CE
    name = "alexnet"
    clean_error = 0.43478
    errors.gaussian_noise = [0.69528, 0.82542, 0.93554, 0.98138, 0.99452]

Unknown keys are rejected with the valid ones named, so a typo never silently changes a run.

``limit = N`` (top level, or in a section) evaluates a deterministic class-balanced subset of N
images, and ``subset = "FILE"`` (relative to the suite file) an explicit list of relative image
paths; see :mod:`robench.data.selection` for the rule.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from robench._paths import suites_dir
from robench._registry import Registry
from robench.corruptions import CORRUPTIONS, PARAM_SETS, SEVERITIES
from robench.corruptions.catalog import any_corruption
from robench.errors import InputError, MissingFileError, UnknownNameError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


RESOLUTIONS = ("official", "model")
"""``official``: the suite's fixed resize/crop for every model; ``model``: each model's own preprocessing
(see :mod:`robench.resolution`)."""


@dataclass(frozen=True)
class Protocol:
    """How images are prepared (resize, crop) and what happens to a transformed image before the model sees it.

    ``resolution = "model"`` in a suite replaces ``resize``/``crop``/``interpolation`` by the models' own
    values when a run starts (:func:`robench.resolution.at_model_resolution`).
    """

    quantize: bool = True
    jpeg_quality: int = 0
    resize: int = 0
    crop: int = 0
    interpolation: str = "bilinear"
    resolution: str = "official"

    def key(self) -> str:
        key = f"q{int(self.quantize)}-jpeg{self.jpeg_quality}-r{self.resize}-c{self.crop}"
        if self.interpolation != "bilinear":
            key += f"-{self.interpolation}"
        return key if self.resolution == "official" else f"{key}-res{self.resolution}"


@dataclass(frozen=True)
class Item:
    """One evaluated thing of a suite: a kind (clean, corruption, …), a name and its levels."""

    kind: str
    name: str
    levels: tuple[int, ...]
    settings: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Baseline:
    """Normalising model for CE and relative CE (e.g. AlexNet on ImageNet-C)."""

    name: str
    clean_error: float | None
    errors: Mapping[str, tuple[float, ...]]


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    dataset: str
    param_set: str
    seed: int
    protocol: Protocol
    items: tuple[Item, ...]
    baseline: Baseline | None = None
    limit: int | None = None
    source: str = ""
    subset: Path | None = None
    models: tuple[str, ...] = ()
    """Zoo names that ``robench eval`` runs when no ``--ckpt`` is given (empty: the two demo models)."""

    def test_corruptions(self) -> list[str]:
        known = any_corruption()
        return [i.name for i in self.items if i.kind == "corruption" and known.get(i.name).test]

    def test_perturbations(self) -> list[str]:
        from robench.perturbations import PERTURBATIONS

        return [i.name for i in self.items if i.kind == "perturbation" and PERTURBATIONS.get(i.name).test]


# ---- parsing -------------------------------------------------------------------------------------------

_TOP_KEYS = {"name", "description", "dataset", "param_set", "seed", "limit", "subset", "models", "protocol",
             "clean", "corruptions", "perturbations", "attacks", "baseline"}
_PROTOCOL_KEYS = {"quantize", "jpeg_quality", "resize", "crop", "resolution"}
_CORRUPTION_KEYS = {"names", "severities", "limit"}
_BASELINE_KEYS = {"name", "clean_error", "errors"}
_PERTURBATION_KEYS = {"names", "difficulties", "crop", "limit"}
_ATTACK_KEYS = {"names", "norm", "eps", "limit", "settings", "cascade", "autoattack"}

CORRUPTION_GROUPS: Mapping[str, Any] = {
    "test": lambda: [n for n, c in CORRUPTIONS.items() if c.test],
    "extra": lambda: [n for n, c in CORRUPTIONS.items() if not c.test],
    "all": lambda: CORRUPTIONS.names(),
}


def _check_keys(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise InputError(
            f"{where}: unknown key(s) {', '.join(unknown)}; valid keys are {', '.join(sorted(allowed))}."
        )


def _table(value: Any, where: str) -> Mapping[str, Any]:
    """A TOML table (``[section]`` or ``{…}``), not a scalar or a list."""
    if not isinstance(value, Mapping):
        raise InputError(f"{where} must be a table such as [section] with keys, got {value!r}.")
    return value


def _names(value: Any, where: str) -> list[str]:
    """A non-empty list of strings (the groups "test"/"extra"/"all" are resolved by the caller)."""
    if not isinstance(value, list) or not value or not all(isinstance(n, str) for n in value):
        raise InputError(f"{where} must be a non-empty list of name strings, got {value!r}.")
    return value


def _section_names(value: Any, groups: Mapping[str, Sequence[str]], registry: Registry[Any], where: str) -> list[str]:
    """A section's ``names``: a group name ("test", "extra", "all") or a list of registered names."""
    if isinstance(value, str):
        if value not in groups:
            raise InputError(f"{where} must be a list or one of {', '.join(groups)}.")
        value = list(groups[value])
    names = _names(value, where)
    for name in names:
        try:
            registry.get(name)
        except UnknownNameError as e:
            raise UnknownNameError(f"{where}: {e}") from None
    return names


def _non_negative(value: Any, where: str) -> int:
    value = _typed(value, int, where)
    if value < 0:
        raise InputError(f"{where} must be 0 (off) or a positive integer, got {value}.")
    return value


def _typed(value: Any, typ: type | tuple[type, ...], where: str) -> Any:
    if isinstance(value, bool) and typ is not bool and bool not in (typ if isinstance(typ, tuple) else (typ,)):
        raise InputError(f"{where} must be a number, got {value!r}.")
    if not isinstance(value, typ):
        raise InputError(f"{where} has the wrong type: {value!r}.")
    return value


def _parse_corruptions(table: Any, where: str) -> list[Item]:
    table = _table(table, f"{where}: [corruptions]")
    _check_keys(table, _CORRUPTION_KEYS, f"{where} [corruptions]")
    severities = table.get("severities", list(SEVERITIES))
    if not isinstance(severities, list) or not severities:
        raise InputError(f"{where}: corruptions.severities must be a non-empty list of integers 1..5.")
    for s in severities:
        if isinstance(s, bool) or not isinstance(s, int) or s not in SEVERITIES:
            raise InputError(f"{where}: severity {s!r} is out of range; use integers from 1 to 5.")
    groups = {g: make() for g, make in CORRUPTION_GROUPS.items()}
    names = _section_names(table.get("names", "test"), groups, any_corruption(), f"{where}: corruptions.names")
    settings = {"limit": _item_limit(table, "corruptions", where)} if "limit" in table else {}
    return [Item("corruption", n, tuple(sorted(set(severities))), settings) for n in names]


def _item_limit(table: Mapping[str, Any], section: str, where: str) -> int:
    """A section's ``limit``: at most this many images for its items (a prefix of the balanced order)."""
    limit = _typed(table["limit"], int, f"{where}: {section}.limit")
    if limit < 1:
        raise InputError(f"{where}: {section}.limit must be a positive integer.")
    return limit


def _parse_perturbations(table: Any, where: str) -> list[Item]:
    from robench.perturbations import PERTURBATIONS, TEST_PERTURBATIONS, VALIDATION_PERTURBATIONS

    table = _table(table, f"{where}: [perturbations]")
    _check_keys(table, _PERTURBATION_KEYS, f"{where} [perturbations]")
    groups = {"test": TEST_PERTURBATIONS, "extra": VALIDATION_PERTURBATIONS,
              "all": TEST_PERTURBATIONS + VALIDATION_PERTURBATIONS}
    names = _section_names(table.get("names", "test"), groups, PERTURBATIONS, f"{where}: perturbations.names")
    difficulties = table.get("difficulties", [1])
    if not isinstance(difficulties, list) or not difficulties or any(
        isinstance(d, bool) or not isinstance(d, int) or d not in (1, 2, 3) for d in difficulties
    ):
        raise InputError(f"{where}: perturbations.difficulties must be a non-empty list of 1, 2, 3.")
    settings: dict[str, Any] = {}
    if "crop" in table:
        settings["crop"] = _non_negative(table["crop"], f"{where}: perturbations.crop")
    if "limit" in table:
        settings["limit"] = _item_limit(table, "perturbations", where)
    return [Item("perturbation", n, tuple(sorted(set(difficulties))), settings) for n in names]


def _parse_attacks(table: Any, where: str) -> list[Item]:
    """One item per attack; its levels index the eps list (level k = k-th eps, 1-based).

    ``cascade = true`` (the default) marks the items for the worst-case cascade of
    :mod:`robench.attacks.cascade`; ``autoattack = "standard"`` names AutoAttack's four attacks.
    """
    from robench.attacks import ATTACKS, Norm, parse_eps

    table = _table(table, f"{where}: [attacks]")
    _check_keys(table, _ATTACK_KEYS, f"{where} [attacks]")
    try:
        norm = Norm(table.get("norm", "linf"))
    except ValueError:
        raise InputError(f"{where}: attacks.norm must be one of {', '.join(n.value for n in Norm)}.") from None
    eps_text = table.get("eps")
    if not isinstance(eps_text, list) or not eps_text:
        raise InputError(f"{where}: attacks.eps must be a non-empty list such as [\"2/255\", \"4/255\"].")
    try:
        eps = [parse_eps(e) for e in eps_text]
    except InputError as e:
        raise InputError(f"{where}: {e}") from None
    if norm is Norm.LINF and any(e > 1 for e in eps):
        big = next(t for t, e in zip(eps_text, eps) if e > 1)
        raise InputError(
            f"{where}: attacks.eps {big!r} exceeds 1, the whole [0, 1] pixel range, in the linf norm; "
            f"write it as a fraction such as \"{big}/255\"."
        )
    cascade = _typed(table.get("cascade", True), bool, f"{where}: attacks.cascade")
    if "autoattack" in table:
        from robench.attacks.cascade import autoattack_attacks

        if "names" in table or "settings" in table:
            raise InputError(f"{where}: attacks.autoattack fixes the attacks and their settings; "
                             "drop attacks.names and [attacks.settings], or drop autoattack to choose them.")
        try:
            all_settings = autoattack_attacks(table["autoattack"], norm)
        except InputError as e:
            raise InputError(f"{where}: {e}") from None
        names = list(all_settings)
    else:
        names = _names(table.get("names"), f"{where}: attacks.names")
        all_settings = _table(table.get("settings", {}), f"{where}: [attacks.settings]")
    for name, overrides in all_settings.items():
        _table(overrides, f"{where}: [attacks.settings.{name}]")
    unknown = sorted(set(all_settings) - set(names))
    if unknown:
        raise InputError(f"{where}: [attacks.settings] names attacks not in attacks.names: {', '.join(unknown)}.")
    limit = _item_limit(table, "attacks", where) if "limit" in table else None
    items = []
    for name in names:
        try:
            attack = ATTACKS.get(name)
        except UnknownNameError as e:
            raise UnknownNameError(f"{where}: {e}") from None
        overrides = dict(all_settings.get(name, {}))
        try:
            attack_norm = attack.norm_of(**overrides)
        except InputError as e:
            raise InputError(f"{where}: attacks.settings.{name}: {e}") from None
        if attack_norm != norm:
            raise InputError(
                f"{where}: attack {name} runs in the {attack_norm.value} norm but the suite's norm is {norm.value}; "
                f"set attacks.settings.{name}.norm or pick another attack."
            )
        settings: dict[str, Any] = {"norm": norm.value, "eps": eps, "eps_text": [str(e) for e in eps_text],
                                    "attack": overrides}
        if limit is not None:
            settings["limit"] = limit
        if cascade:  # only then, so that the cells of `cascade = false` suites keep their stored configs
            settings["cascade"] = True
        items.append(Item("attack", name, tuple(range(1, len(eps) + 1)), settings))
    return items


def _parse_baseline(table: Any, where: str) -> Baseline:
    table = _table(table, f"{where}: [baseline]")
    _check_keys(table, _BASELINE_KEYS, f"{where} [baseline]")
    errors = {}
    for name, values in _table(table.get("errors", {}), f"{where}: baseline.errors").items():
        try:
            any_corruption().get(name)
        except UnknownNameError as e:
            raise UnknownNameError(f"{where}: baseline.errors: {e}") from None
        if not isinstance(values, list) or len(values) != len(SEVERITIES) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1 for v in values
        ):
            raise InputError(f"{where}: baseline.errors.{name} must be five error fractions in [0, 1].")
        errors[name] = tuple(float(v) for v in values)
    clean = table.get("clean_error")
    if clean is not None and not 0 <= _typed(clean, (int, float), f"{where}: baseline.clean_error") <= 1:
        raise InputError(f"{where}: baseline.clean_error must be an error fraction in [0, 1], got {clean!r}.")
    return Baseline(str(table.get("name", "baseline")), None if clean is None else float(clean), errors)


def _resolution(value: Any, crop: int, where: str) -> str:
    """``"model"``, or ``"official"`` for ``"official"`` / the suite's own crop size (``224``)."""
    if isinstance(value, str) and value in RESOLUTIONS:
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        if crop and value != crop:
            raise InputError(
                f"{where}: protocol.resolution = {value} differs from protocol.crop = {crop}; write "
                f"resolution = {crop} (the official protocol) or \"model\" (each model's own preprocessing)."
            )
        return "official"
    raise InputError(f"{where}: protocol.resolution must be \"model\" or the official size such as 224, got {value!r}.")


def parse_suite(data: Mapping[str, Any], *, source: str = "<memory>") -> Suite:
    """Validate a suite's parsed TOML and build a :class:`Suite`.

    Raises:
        InputError: unknown keys, wrong types, out-of-range severities.
        UnknownNameError: an unknown corruption or parameter set.
    """
    where = f"suite {source}"
    _check_keys(data, _TOP_KEYS, where)
    param_set = data.get("param_set", "imagenet")
    if not isinstance(param_set, str) or param_set not in PARAM_SETS:
        raise UnknownNameError(f"{where}: unknown param_set {param_set!r}; use one of {', '.join(PARAM_SETS)}.")
    protocol_table = _table(data.get("protocol", {}), f"{where}: [protocol]")
    _check_keys(protocol_table, _PROTOCOL_KEYS, f"{where} [protocol]")
    protocol = Protocol(
        quantize=bool(_typed(protocol_table.get("quantize", True), bool, f"{where}: protocol.quantize")),
        jpeg_quality=int(_typed(protocol_table.get("jpeg_quality", 0), int, f"{where}: protocol.jpeg_quality")),
        resize=_non_negative(protocol_table.get("resize", 0), f"{where}: protocol.resize"),
        crop=_non_negative(protocol_table.get("crop", 0), f"{where}: protocol.crop"),
    )
    if not 0 <= protocol.jpeg_quality <= 100:
        raise InputError(f"{where}: protocol.jpeg_quality must be 0 (off) or 1..100.")
    if "resolution" in protocol_table:
        protocol = replace(protocol, resolution=_resolution(protocol_table["resolution"], protocol.crop, where))
    items: list[Item] = []
    if "clean" in data:
        _check_keys(_table(data["clean"], f"{where}: [clean]"), set(), f"{where} [clean]")
        items.append(Item("clean", "clean", (0,)))
    if "corruptions" in data:
        items.extend(_parse_corruptions(data["corruptions"], where))
    if "perturbations" in data:
        items.extend(_parse_perturbations(data["perturbations"], where))
    if "attacks" in data:
        items.extend(_parse_attacks(data["attacks"], where))
    if not items:
        raise InputError(f"{where}: nothing to evaluate; add [clean], [corruptions], [perturbations] or [attacks].")
    limit = data.get("limit")
    if limit is not None and (_typed(limit, int, f"{where}: limit") < 1):
        raise InputError(f"{where}: limit must be a positive integer.")
    baseline = _parse_baseline(data["baseline"], where) if "baseline" in data else None
    subset = None
    if "subset" in data:
        text = data["subset"]
        if not isinstance(text, str) or not text:
            raise InputError(f"{where}: subset must be the path of a file listing relative image paths.")
        subset = Path(text) if Path(text).is_absolute() or source.startswith("<") else Path(source).parent / text
    return Suite(
        name=str(data.get("name", Path(source).stem)),
        description=str(data.get("description", "")),
        dataset=str(data.get("dataset", "imagefolder")),
        param_set=param_set,
        seed=int(_typed(data.get("seed", 0), int, f"{where}: seed")),
        protocol=protocol,
        items=tuple(items),
        baseline=baseline,
        limit=limit,
        source=source,
        subset=subset,
        models=tuple(_names(data["models"], f"{where}: models")) if "models" in data else (),
    )


def builtin_suites() -> Registry[Path]:
    """Suites shipped with robench (``corruptions/*.toml``), by name."""
    registry: Registry[Path] = Registry("suite")
    for path in sorted(suites_dir().glob("*.toml")):
        registry.add(path.stem, path)
    return registry


def load_suite(name_or_path: str | Path) -> Suite:
    """Load a built-in suite by name, or a suite TOML file by path."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = builtin_suites().get(str(name_or_path))
    if not path.is_file():
        raise MissingFileError(f"Suite file {path} does not exist; pass a built-in suite name or a .toml path.")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"Suite file {path} is not valid TOML ({e}); fix the file.") from None
    return parse_suite(data, source=str(path))


def list_suites() -> list[Suite]:
    return [load_suite(p) for _, p in builtin_suites().items()]


__all__ = ["Baseline", "Item", "Protocol", "Suite", "list_suites", "load_suite", "parse_suite"]
