"""Hypothesis fuzz over every registered corruption and perturbation (DESIGN.md: any size >= 1x1, 1 or 3 channels,
never outside [0, 1]).

Each example draws an image size, channel count, content, level and parameter set; the function must keep the shape,
stay finite and in range, and repeat itself exactly for the same seed. The default run keeps sizes up to 64 px and a
few examples per function; ``-m slow`` goes up to 300x300.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from robench.corruptions import CORRUPTIONS, PARAM_SETS, SEVERITIES, corrupt
from robench.perturbations import DIFFICULTIES, PERTURBATIONS, perturbation_rng
from robench.perturbations import PARAM_SETS as P_PARAM_SETS

CORRUPTION_NAMES = CORRUPTIONS.names()
PERTURBATION_NAMES = PERTURBATIONS.names()

FAST = settings(max_examples=6, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FULL = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def images(draw: st.DrawFn, max_side: int, tiny: bool = True) -> torch.Tensor:
    """One image of any size up to ``max_side``: random, flat (0, 0.5, 1), binary or a gradient.

    ``tiny`` mixes in 1–4 px sides (degenerate kernels, crops and zooms); the full-range variant leaves them to
    :func:`test_corruption_tiny_images_every_level` and draws mostly large images.
    """
    side = st.one_of(st.integers(1, 4), st.integers(1, max_side)) if tiny else st.integers(max_side // 4, max_side)
    h = draw(side)
    w = draw(st.one_of(st.just(h), side))
    c = draw(st.sampled_from([1, 3]))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    kind = draw(st.sampled_from(["uniform", "flat", "binary", "gradient"]))
    x = torch.rand(1, c, h, w, generator=g)
    if kind == "flat":
        x = torch.full_like(x, draw(st.sampled_from([0.0, 0.5, 1.0])))
    elif kind == "binary":
        x = (x > 0.5).float()
    elif kind == "gradient":
        x = torch.linspace(0, 1, h * w).reshape(1, 1, h, w).expand(1, c, h, w).contiguous()
    return x


def check_corruption(name: str, x: torch.Tensor, severity: int, param_set: str, seed: int) -> None:
    y = corrupt(x, name, severity, seed=seed, param_set=param_set, indices=[7])
    where = f"{name} severity {severity} {param_set} on {tuple(x.shape)}"
    assert y.shape == x.shape and y.dtype == x.dtype, where
    assert not torch.isnan(y).any(), f"{where}: NaN"
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0, f"{where}: outside [0, 1]"
    again = corrupt(x, name, severity, seed=seed, param_set=param_set, indices=[7])
    assert torch.equal(y, again), f"{where}: not deterministic"


def check_perturbation(name: str, x: torch.Tensor, difficulty: int, param_set: str, seed: int,
                       crop: int | None) -> None:
    pert = PERTURBATIONS.get(name)
    where = f"{name} difficulty {difficulty} {param_set} crop {crop} on {tuple(x.shape)}"

    def frames() -> list[torch.Tensor]:
        rng = perturbation_rng([7], name=name, difficulty=difficulty, seed=seed, param_set=param_set)
        return list(pert.frames(x, difficulty=difficulty, rng=rng, param_set=param_set, crop=crop))

    first = frames()
    h, w = x.shape[-2:] if crop is None else (crop, crop)
    assert len(first) == pert.num_frames(param_set), where
    for t, f in enumerate(first):
        assert f.shape == (1, x.shape[1], h, w) and f.dtype == x.dtype, f"{where} frame {t}: {tuple(f.shape)}"
        assert not torch.isnan(f).any(), f"{where} frame {t}: NaN"
        assert float(f.min()) >= 0.0 and float(f.max()) <= 1.0, f"{where} frame {t}: outside [0, 1]"
    assert all(torch.equal(a, b) for a, b in zip(first, frames())), f"{where}: not deterministic"


def _corruption_case(max_side: int, tiny: bool = True):
    return dict(x=images(max_side, tiny), severity=st.sampled_from(SEVERITIES), param_set=st.sampled_from(PARAM_SETS),
                seed=st.integers(0, 2**31 - 1))


def _perturbation_case(max_side: int, tiny: bool = True):
    return dict(x=images(max_side, tiny), difficulty=st.sampled_from(DIFFICULTIES),
                param_set=st.sampled_from(P_PARAM_SETS), seed=st.integers(0, 2**31 - 1),
                crop_frac=st.one_of(st.none(), st.floats(0.0, 1.0)))


def _crop(x: torch.Tensor, frac: float | None) -> int | None:
    if frac is None:
        return None
    side = min(x.shape[-2:])
    return max(1, round(frac * side))


@pytest.mark.parametrize("name", CORRUPTION_NAMES)
@FAST
@given(**_corruption_case(64))
def test_corruption_fuzz(name, x, severity, param_set, seed):
    check_corruption(name, x, severity, param_set, seed)


@pytest.mark.parametrize("name", PERTURBATION_NAMES)
@FAST
@given(**_perturbation_case(48))
def test_perturbation_fuzz(name, x, difficulty, param_set, seed, crop_frac):
    check_perturbation(name, x, difficulty, param_set, seed, _crop(x, crop_frac))


@pytest.mark.slow
@pytest.mark.parametrize("name", CORRUPTION_NAMES)
@FULL
@given(**_corruption_case(300, tiny=False))
def test_corruption_fuzz_full_range(name, x, severity, param_set, seed):
    check_corruption(name, x, severity, param_set, seed)


@pytest.mark.slow
@pytest.mark.parametrize("name", PERTURBATION_NAMES)
@FULL
@given(**_perturbation_case(300, tiny=False))
def test_perturbation_fuzz_full_range(name, x, difficulty, param_set, seed, crop_frac):
    check_perturbation(name, x, difficulty, param_set, seed, _crop(x, crop_frac))


@pytest.mark.parametrize("name", CORRUPTION_NAMES)
@pytest.mark.parametrize("side", [1, 2, 3])
def test_corruption_tiny_images_every_level(name, side):
    """The smallest images at every severity and parameter set (hypothesis may not reach these corners)."""
    for c in (1, 3):
        x = torch.rand(1, c, side, side + 1, generator=torch.Generator().manual_seed(side))
        for param_set in PARAM_SETS:
            for severity in SEVERITIES:
                check_corruption(name, x, severity, param_set, seed=1)


@pytest.mark.slow
@pytest.mark.parametrize("name", CORRUPTION_NAMES)
def test_corruption_largest_images_every_level(name):
    """300x300 and a non-square 299x257 at every severity and parameter set."""
    for c, h, w in ((3, 300, 300), (1, 299, 257)):
        x = torch.rand(1, c, h, w, generator=torch.Generator().manual_seed(h))
        for param_set in PARAM_SETS:
            for severity in SEVERITIES:
                check_corruption(name, x, severity, param_set, seed=2)


@pytest.mark.slow
@pytest.mark.parametrize("name", PERTURBATION_NAMES)
def test_perturbation_largest_images_every_difficulty(name):
    """A 300x300 and a non-square 299x257 sequence at every difficulty and parameter set (crop 224 on the first)."""
    for c, h, w, crop in ((3, 300, 300, 224), (1, 299, 257, None)):
        x = torch.rand(1, c, h, w, generator=torch.Generator().manual_seed(h))
        for param_set in P_PARAM_SETS:
            for difficulty in DIFFICULTIES:
                check_perturbation(name, x, difficulty, param_set, seed=2, crop=crop)
