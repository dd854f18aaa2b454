"""The attack registry and the template every attack follows.

An attack is called as ``attack(model, x, y, *, eps, seed, indices, **settings)`` and
returns a bool tensor: per sample, True when the model misclassifies the sample at the
end of the attack (a clean error counts as a success, as in foolbox 3 and AutoAttack).

The template (:meth:`Attack.__call__`) validates the inputs and the settings, counts the
model's forward and backward passes, classifies the clean batch, hands only the
correctly classified samples to the subclass's :meth:`Attack.run`, checks that the
returned points lie in the threat model and classifies them once more. Subclasses only
implement ``run`` (and declare their settings as a frozen dataclass).

Every random draw an attack makes comes from :class:`Draws`, i.e. from per-sample
streams keyed by the dataset index, so a sample's result does not depend on the batch
it was attacked in, nor on which other samples of the batch were still robust.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

import torch
from torch import nn

from robench._registry import Registry
from robench._rng import SampleRNG
from robench.errors import InputError


class Norm(str, enum.Enum):
    """The threat model: the norm that bounds the perturbation."""

    LINF = "linf"
    L2 = "l2"

    def size(self, delta: torch.Tensor) -> torch.Tensor:
        """Per-sample norm of ``delta`` (``N×…``)."""
        flat = delta.flatten(1)
        return flat.abs().amax(1) if self is Norm.LINF else flat.norm(dim=1)


class Kind(str, enum.Enum):
    """What an attack is, as the gradient-masking checks need to know."""

    SINGLE_STEP = "single-step"  # FGSM
    ITERATIVE = "iterative"  # PGD, APGD: expected to be at least as strong as FGSM
    MINIMAL = "minimal"  # DeepFool, C&W: minimal-perturbation attacks clipped to eps
    RANDOM = "random"  # random-noise baselines
    SEARCH = "search"  # score-based black-box search (Square): strong, uses no gradients


@dataclass
class AttackStats:
    """Counts of one or more attack calls, to be read by the evaluator.

    Passes are counted in images: a forward pass of a batch of 64 adds 64. The clean
    forward pass and the final check of the template are included.

    Attributes:
        images: Samples attacked (clean errors included).
        clean_correct: Samples the model classified correctly before the attack.
        successes: Samples misclassified at the end (clean errors included).
        forwards: Images passed forward through the model.
        backwards: Images whose gradient was propagated back through the model.
    """

    images: int = 0
    clean_correct: int = 0
    successes: int = 0
    forwards: int = 0
    backwards: int = 0

    @property
    def forwards_per_image(self) -> float:
        return self.forwards / self.images if self.images else 0.0

    @property
    def backwards_per_image(self) -> float:
        return self.backwards / self.images if self.images else 0.0

    @property
    def clean_accuracy(self) -> float:
        return self.clean_correct / self.images if self.images else float("nan")

    @property
    def robust_accuracy(self) -> float:
        return 1.0 - self.successes / self.images if self.images else float("nan")

    def merge(self, other: AttackStats) -> AttackStats:
        """The sum of two counts (e.g. of two shards)."""
        return AttackStats(*(a + b for a, b in zip(dataclasses.astuple(self), dataclasses.astuple(other))))


class PassCounter(nn.Module):
    """Wraps a model and counts the images passed forward and backward through it.

    A backward pass is counted when a gradient reaches the model's output, which works
    for any caller (``backward``, ``autograd.grad``, foolbox/eagerpy).
    """

    def __init__(self, model: nn.Module, stats: AttackStats) -> None:
        super().__init__()
        self.model = model
        self.stats = stats
        self.training = model.training  # foolbox and the checks read it

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        n = int(x.shape[0])
        self.stats.forwards += n
        if out.requires_grad:
            out.register_hook(self._backward_hook(n))
        return out

    def _backward_hook(self, n: int) -> Callable[[torch.Tensor], None]:
        def hook(grad: torch.Tensor) -> None:
            self.stats.backwards += n

        return hook


class Draws:
    """Per-sample random streams of one attack call.

    Args:
        attack: The attack's name (part of every stream key).
        seed: The run's seed.
        indices: Dataset indices of the samples handed to :meth:`Attack.run`.
    """

    def __init__(self, attack: str, seed: int, indices: Sequence[int]) -> None:
        self.attack = attack
        self.seed = seed
        self.indices = [int(i) for i in indices]

    def rng(self, key: str, subset: torch.Tensor | None = None) -> SampleRNG:
        """Streams for ``key`` and the samples ``subset`` (positions; default all)."""
        idx = self.indices if subset is None else [self.indices[int(i)] for i in subset.tolist()]
        return SampleRNG(idx, seed=self.seed, key=f"attack/{self.attack}/{key}")


S = TypeVar("S")


class Attack(ABC, Generic[S]):
    """Base class of every attack: owns validation, counting and the success check.

    Subclasses set :attr:`name`, :attr:`kind`, :attr:`settings_type` (a frozen
    dataclass whose defaults are the literature's) and implement :meth:`run`; attacks
    whose norm is a setting override :meth:`norm`.
    """

    name: ClassVar[str]
    kind: ClassVar[Kind]
    settings_type: ClassVar[type]
    fixed_norm: ClassVar[Norm | None] = None

    def settings(self, **overrides: Any) -> S:
        """The default settings with ``overrides`` applied.

        Raises:
            InputError: an unknown setting or a value of the wrong type.
        """
        fields = {f.name: f for f in dataclasses.fields(self.settings_type)}
        for key, value in overrides.items():
            if key not in fields:
                close = difflib.get_close_matches(key, list(fields), n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                known = ", ".join(fields) or "(none)"
                raise InputError(f"Unknown setting {key!r} for attack {self.name!r}.{hint} Known: {known}.")
            _check_type(self.name, key, value, fields[key].default)
        coerced = {
            k: float(v) if isinstance(fields[k].default, float) and isinstance(v, int) else v
            for k, v in overrides.items()
        }
        try:
            return self.settings_type(**coerced)
        except ValueError as exc:
            raise InputError(f"Bad settings for attack {self.name!r}: {exc}") from None

    def norm(self, settings: S) -> Norm:
        """The threat model of a run with ``settings``."""
        assert self.fixed_norm is not None, f"{type(self).__name__} must set fixed_norm or override norm()"
        return self.fixed_norm

    def norm_of(self, **overrides: Any) -> Norm:
        """The threat model of a run with these setting overrides (for the evaluator)."""
        return self.norm(self.settings(**overrides))

    def __call__(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        eps: float,
        seed: int,
        indices: Sequence[int],
        stats: AttackStats | None = None,
        skip: torch.Tensor | None = None,
        **settings: Any,
    ) -> torch.Tensor:
        """Attack a batch.

        Args:
            model: Classifier in eval mode taking ``N×C×H×W`` inputs in ``[0, 1]``
                (normalisation inside) and returning logits.
            x: Clean images in ``[0, 1]``.
            y: Labels, shape ``N``.
            eps: Perturbation budget in the attack's norm (``0`` = clean evaluation).
            seed: The run's seed.
            indices: Dataset indices of the samples; sample ``i``'s random draws depend
                only on ``(seed, attack, settings-independent key, indices[i])``.
            stats: Optional counts to add this call's passes and outcomes to.
            skip: Optional bool mask (N) of samples already known to be broken (earlier in a
                cascade): they are classified (clean accuracy) but not attacked, and count as
                successes.
            **settings: Overrides of the attack's settings (steps, step size, restarts…).

        Returns:
            Bool tensor of shape ``N`` on ``x``'s device: True where the sample is
            misclassified at the end (clean errors count as successes).

        Raises:
            InputError: bad tensors, eps, indices or settings; model in training mode;
                non-finite logits.
        """
        cfg = self.settings(**settings)
        _check_inputs(self.name, model, x, y, eps, indices)
        if skip is not None and tuple(skip.shape) != (x.shape[0],):
            raise InputError(f"Attack {self.name!r}: skip must be a mask of {x.shape[0]} samples, "
                             f"got {_describe(skip)}.")
        stats = AttackStats() if stats is None else stats
        counted = PassCounter(model, stats)
        with torch.no_grad():
            logits = counted(x)
        if not torch.isfinite(logits).all():
            raise InputError(f"The model returned non-finite logits on clean inputs (attack {self.name!r}).")
        correct = logits.argmax(1) == y
        success = ~correct if skip is None else ~correct | skip.to(device=y.device, dtype=torch.bool)
        todo = (~success).nonzero().flatten()
        if todo.numel() and eps > 0:
            x0, y0 = x[todo], y[todo]
            draws = Draws(self.name, seed, [indices[int(i)] for i in todo.tolist()])
            x_adv = self.run(counted, x0, y0, eps=float(eps), draws=draws, settings=cfg).detach()
            self._check_threat_model(x0, x_adv, float(eps), cfg)
            with torch.no_grad():
                success[todo] = counted(x_adv).argmax(1) != y0
        stats.images += int(x.shape[0])
        stats.clean_correct += int(correct.sum())
        stats.successes += int(success.sum())
        return success

    @abstractmethod
    def run(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, draws: Draws, settings: S
    ) -> torch.Tensor:
        """Adversarial points for correctly classified samples ``x`` (``eps > 0``).

        Returns:
            Points in ``[0, 1]`` within ``eps`` of ``x`` in :meth:`norm`, shaped like ``x``.
        """

    def _check_threat_model(self, x: torch.Tensor, x_adv: torch.Tensor, eps: float, settings: S) -> None:
        # A violation is a bug in an attack, never a user error.
        size = self.norm(settings).size(x_adv - x).max().item() if x.numel() else 0.0
        in_box = bool(((x_adv >= 0) & (x_adv <= 1)).all())
        if not in_box or size > eps * (1 + 1e-5) + 1e-6:
            raise RuntimeError(
                f"attack {self.name!r} left the threat model (size {size:.6g} > eps {eps:.6g} "
                f"or values outside [0, 1]: {not in_box})"
            )


T = TypeVar("T")


def first_success(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attempts: Sequence[T],
    attempt: Callable[[T, torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """Run ``attempt(item, positions)`` for each item on the samples still robust.

    The restart loop of PGD/APGD/noise baselines: each attempt gets the positions of the
    samples not yet fooled and returns candidate points for them; a sample keeps the
    first candidate that fools the model (else the last one). The last attempt is not
    checked here because the template checks every returned point anyway.
    """
    x_adv = x.clone()
    robust = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
    for n, item in enumerate(attempts):
        todo = robust.nonzero().flatten()
        if not todo.numel():
            break
        candidate = attempt(item, todo).detach()
        x_adv[todo] = candidate
        if n < len(attempts) - 1:
            with torch.no_grad():
                fooled = model(candidate).argmax(1) != y[todo]
            robust[todo[fooled]] = False
    return x_adv


ATTACKS: Registry[Attack[Any]] = Registry("attack")
"""Registered attacks by name (``fgsm``, ``pgd-linf``, ``apgd-t``, …)."""

A = TypeVar("A", bound=type)


def register_attack(cls: A) -> A:
    """Class decorator: instantiate the attack and register it under ``cls.name``."""
    ATTACKS.add(cls.name, cls())
    return cls


def _check_type(attack: str, key: str, value: Any, default: Any) -> None:
    if not _type_ok(value, default):
        raise InputError(f"Setting {key!r} of attack {attack!r} must be {type(default).__name__}, got {value!r}.")


def _type_ok(value: Any, default: Any) -> bool:
    # bool is an int subclass: test it first, and never accept it for a number.
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(value, bool):
        return default is None
    if isinstance(default, int):
        return isinstance(value, int)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    if isinstance(default, str):
        return isinstance(value, str)
    return True


def _check_inputs(
    attack: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, indices: Sequence[int]
) -> None:
    if model.training:
        raise InputError(f"Attack {attack!r}: the model is in training mode; call model.eval() first.")
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
        raise InputError(f"Attack {attack!r}: expected a float N×C×H×W tensor, got {_describe(x)}.")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise InputError(f"Attack {attack!r}: inputs must lie in [0, 1] (normalisation belongs in the model).")
    if not isinstance(y, torch.Tensor) or y.shape != (x.shape[0],):
        raise InputError(f"Attack {attack!r}: expected {x.shape[0]} labels, got {_describe(y)}.")
    if len(indices) != x.shape[0]:
        raise InputError(f"Attack {attack!r}: {len(indices)} indices for {x.shape[0]} samples.")
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps < 0:
        raise InputError(f"Attack {attack!r}: eps must be a finite number >= 0, got {eps!r}.")


def _describe(t: object) -> str:
    return f"{t.dtype} tensor of shape {tuple(t.shape)}" if isinstance(t, torch.Tensor) else type(t).__name__
