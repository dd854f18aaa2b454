"""Reading checkpoint files safely and mapping their keys onto our module names.

Files are read with ``torch.load(weights_only=True)`` (or as safetensors): a pickle
that references anything but tensors and plain containers is refused before any of
its code can run. The loaded object is then recognised by the first matching entry of
:data:`FORMATS` (the official layouts of REFERENCE.md §5.3) and converted into a
state_dict with our names; wrapper prefixes (``module.``, ``_orig_mod.``) are stripped
in every format.
"""

from __future__ import annotations

import logging
import pickle
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open

from robench._registry import Registry
from robench.errors import CheckpointError, InputError, MissingFileError

log = logging.getLogger(__name__)

StateDict = dict[str, torch.Tensor]

WRAPPER_PREFIXES = ("module.", "_orig_mod.")
"""Prefixes of DataParallel/DistributedDataParallel and ``torch.compile`` wrappers."""

FMC_RESNET_FEATURES = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
"""fast-MPN-COV training wraps a ResNet's children in ``features = Sequential(...)`` in this order."""
FMC_RENAMES = (
    ("representation.conv_dr_block.0.", "layer_reduce."),
    ("representation.conv_dr_block.1.", "layer_reduce_bn."),
    ("classifier.", "fc."),
)

# numpy scalars appear in some training checkpoints (e.g. a best accuracy); rebuilding
# them from bytes runs no code, so they are allowed alongside tensors.
_NUMPY_SAFE: list[Any] = [np.dtype]
try:  # numpy >= 2
    from numpy._core.multiarray import scalar as _np_scalar
except ImportError:  # pragma: no cover
    from numpy.core.multiarray import scalar as _np_scalar
_NUMPY_SAFE.append(_np_scalar)
_NUMPY_SAFE += [type(np.dtype(t)) for t in ("float16", "float32", "float64", "int32", "int64", "bool")]


@dataclass(frozen=True)
class RawCheckpoint:
    """A file as read from disk, before its layout is recognised.

    Attributes:
        path: The file.
        container: ``"safetensors"`` or ``"torch"``.
        obj: What was loaded (a mapping for every supported layout).
        metadata: safetensors' string metadata (empty for torch files).
    """

    path: Path
    container: str
    obj: Any
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckpointFormat:
    """One registered checkpoint layout.

    Attributes:
        name: Registry name.
        description: Which files have this layout.
        detect: Whether a raw checkpoint has this layout (formats are tried in order).
        convert: The state_dict with our module names.
    """

    name: str
    description: str
    detect: Callable[[RawCheckpoint], bool]
    convert: Callable[[RawCheckpoint], StateDict]


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint converted to our names.

    Attributes:
        path: The file.
        format: Name of the recognised :class:`CheckpointFormat`.
        state_dict: Tensors under our module names.
        info: What the file says about itself (safetensors metadata, a training
            checkpoint's ``arch``/``epoch``), as strings.
    """

    path: Path
    format: str
    state_dict: StateDict
    info: Mapping[str, str] = field(default_factory=dict)


def strip_prefixes(state: Mapping[str, Any], prefixes: tuple[str, ...] = WRAPPER_PREFIXES) -> StateDict:
    """Remove leading wrapper prefixes (repeatedly, e.g. ``module._orig_mod.``) from every key."""
    out: StateDict = {}
    for key, value in state.items():
        stripped = key
        while stripped.startswith(prefixes):
            stripped = stripped.split(".", 1)[1]
        if stripped in out:
            raise CheckpointError(f"Key {stripped!r} occurs twice after removing wrapper prefixes.")
        out[stripped] = value
    return out


def _tensors_only(state: Mapping[str, Any], path: Path) -> StateDict:
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{path}: {len(bad)} entries are not tensors (e.g. {bad[0]!r}); expected a state_dict.")
    return dict(state)


def _is_tensor_mapping(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and bool(obj)
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def _wrapped_state(raw: RawCheckpoint) -> StateDict | None:
    obj = raw.obj
    if raw.container == "torch" and isinstance(obj, Mapping) and _is_tensor_mapping(obj.get("state_dict")):
        return strip_prefixes(obj["state_dict"])
    return None


def _is_fmc_training(raw: RawCheckpoint) -> bool:
    state = _wrapped_state(raw)
    return state is not None and any(k.startswith(("features.module.", "representation.")) for k in state)


_FMC_FEATURE_KEY = re.compile(r"^features\.(?:module\.)?(\d+)\.(.*)$")


def _convert_fmc_training(raw: RawCheckpoint) -> StateDict:
    out: StateDict = {}
    for key, value in (_wrapped_state(raw) or {}).items():
        new = key
        match = _FMC_FEATURE_KEY.match(key)
        if match and int(match[1]) < len(FMC_RESNET_FEATURES):
            new = f"{FMC_RESNET_FEATURES[int(match[1])]}.{match[2]}"
        for old, ours in FMC_RENAMES:
            if new.startswith(old):
                new = ours + new[len(old) :]
        out[new] = value
    return out


FORMATS: Registry[CheckpointFormat] = Registry("checkpoint format")
FORMATS.add(
    "safetensors",
    CheckpointFormat(
        "safetensors",
        "safetensors file of a state_dict (our names; wrapper prefixes allowed)",
        detect=lambda raw: raw.container == "safetensors",
        convert=lambda raw: strip_prefixes(raw.obj),
    ),
)
FORMATS.add(
    "fmc-training",
    CheckpointFormat(
        "fmc-training",
        "fast-MPN-COV training checkpoint: {'state_dict': …} with features.module.N / "
        "representation.conv_dr_block / classifier keys",
        detect=_is_fmc_training,
        convert=_convert_fmc_training,
    ),
)
FORMATS.add(
    "gcp-optimization",
    CheckpointFormat(
        "gcp-optimization",
        "GCP_Optimization release (and PyTorch ImageNet-example checkpoints): {'state_dict': …} with module. keys",
        detect=lambda raw: _wrapped_state(raw) is not None,
        convert=lambda raw: _wrapped_state(raw) or {},
    ),
)
FORMATS.add(
    "state-dict",
    CheckpointFormat(
        "state-dict",
        "plain state_dict: torchvision weights, fast-MPN-COV released models, torch.save(model.state_dict())",
        detect=lambda raw: raw.container == "torch" and _is_tensor_mapping(raw.obj),
        convert=lambda raw: strip_prefixes(raw.obj),
    ),
)


def _is_safetensors(path: Path) -> bool:
    """safetensors files start with an 8-byte header length followed by a JSON object."""
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < (1 << 32)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _refusal(path: Path, e: pickle.UnpicklingError) -> CheckpointError:
    """The safe unpickler stopped: at a global (a pickle of Python objects) or at an opcode it does not accept."""
    found = re.search(r"GLOBAL ([\w.]+)", str(e))
    if found:
        return CheckpointError(
            f"Refusing to load {path}: it references the Python object {found[1]}, and unpickling it could run code. "
            "Re-save the weights as a state_dict (torch.save(model.state_dict(), …)) or as safetensors."
        )
    opcode = re.search(r"Unsupported operand[^\n]*", str(e))
    return CheckpointError(
        f"Refusing to load {path}: it is not a tensor-only PyTorch checkpoint"
        f"{f' ({opcode[0].strip()})' if opcode else ''}; it may be a pickle of Python objects, which could run code, "
        "or not a checkpoint at all. Re-save the weights as a state_dict (torch.save(model.state_dict(), …)) "
        "or as safetensors."
    )


def read_raw(path: Path | str) -> RawCheckpoint:
    """Read a checkpoint file without executing anything in it.

    Raises:
        MissingFileError: The path does not exist.
        CheckpointError: Unreadable, truncated, or a pickle of non-tensor objects.
    """
    path = Path(path)
    if not path.exists():
        raise MissingFileError(
            f"Checkpoint {path} not found; pass an existing file or a zoo name (`robench list models`)."
        )
    if path.is_dir():
        raise InputError(f"Checkpoint {path} is a folder; pass the weights file inside it.")
    if _is_safetensors(path):
        try:
            with safe_open(str(path), framework="pt") as f:
                tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118  (not a dict)
                return RawCheckpoint(path, "safetensors", tensors, dict(f.metadata() or {}))
        except Exception as e:  # reading runs no code: any failure (SafetensorError, OSError, …) means damage
            raise CheckpointError(f"{path} is not a readable safetensors file ({_first_line(e)}).") from None
    try:
        with torch.serialization.safe_globals(_NUMPY_SAFE), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # e.g. "Detected pickle protocol 4"
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise _refusal(path, e) from None
    except Exception as e:  # the safe unpickler runs no code: any failure means a damaged file
        raise CheckpointError(
            f"{path} is not a readable PyTorch checkpoint ({_first_line(e)}); it may be truncated — download it again."
        ) from None
    return RawCheckpoint(path, "torch", obj)


def _info(raw: RawCheckpoint) -> dict[str, str]:
    if raw.container == "safetensors":
        return dict(raw.metadata)
    obj = raw.obj
    if isinstance(obj, Mapping) and "state_dict" in obj:
        return {k: str(obj[k]) for k in ("arch", "epoch") if k in obj}
    return {}


def read_checkpoint(path: Path | str) -> Checkpoint:
    """Read a file and convert it to our key names.

    Raises:
        MissingFileError: The path does not exist.
        CheckpointError: Unreadable, refused (pickled code), or no known layout.
    """
    raw = read_raw(path)
    for name, fmt in FORMATS.items():
        if fmt.detect(raw):
            state = _tensors_only(fmt.convert(raw), raw.path)
            log.debug("%s: %s format, %d tensors", raw.path, name, len(state))
            return Checkpoint(raw.path, name, state, _info(raw))
    kind = type(raw.obj).__name__
    keys = f" with keys {', '.join(map(str, list(raw.obj)[:5]))}" if isinstance(raw.obj, Mapping) else ""
    raise CheckpointError(
        f"{raw.path} holds a {kind}{keys}, not a state_dict in a known layout ({', '.join(FORMATS.names())})."
    )


def _preview(keys: list[str], n: int = 4) -> str:
    more = f", … (+{len(keys) - n})" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


@dataclass(frozen=True)
class KeyReport:
    """How a state_dict differs from a model's."""

    missing: list[str]
    unexpected: list[str]
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]]

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    @property
    def size(self) -> int:
        return len(self.missing) + len(self.unexpected) + len(self.mismatched)

    def describe(self) -> str:
        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} missing key(s): {_preview(self.missing)}")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected key(s): {_preview(self.unexpected)}")
        if self.mismatched:
            shown = [f"{k} file {list(a)} vs model {list(b)}" for k, a, b in self.mismatched]
            parts.append(f"{len(self.mismatched)} shape mismatch(es): {_preview(shown, 3)}")
        return "; ".join(parts)


def compare_keys(state: Mapping[str, torch.Tensor], expected: Mapping[str, tuple[int, ...]]) -> KeyReport:
    """Compare a state_dict with a model's ``{key: shape}``.

    BatchNorm's ``num_batches_tracked`` counters may be absent (files saved before
    PyTorch 0.4.1 lack them); they do not affect evaluation.
    """
    missing = [k for k in expected if k not in state and not k.endswith(".num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        (k, tuple(v.shape), expected[k]) for k, v in state.items() if k in expected and tuple(v.shape) != expected[k]
    ]
    return KeyReport(missing, unexpected, mismatched)
