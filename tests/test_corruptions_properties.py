"""Property tests over every registered corruption: shape, range, determinism, batch independence."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import robench.corruptions as C
from robench.errors import InputError, UnknownNameError

NAMES = sorted(C.CORRUPTIONS._items)

SETTINGS = settings(
    max_examples=15, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


@st.composite
def batches(draw: st.DrawFn) -> torch.Tensor:
    h = draw(st.integers(1, 64))
    w = draw(st.integers(1, 64))
    c = draw(st.sampled_from([1, 3]))
    seed = draw(st.integers(0, 2**16))
    g = torch.Generator().manual_seed(seed)
    kind = draw(st.sampled_from(["uniform", "flat", "binary"]))
    x = torch.rand(2, c, h, w, generator=g)
    if kind == "flat":
        x = torch.full_like(x, draw(st.sampled_from([0.0, 0.5, 1.0])))
    elif kind == "binary":
        x = (x > 0.5).float()
    return x


def test_all_nineteen_registered() -> None:
    assert len(NAMES) == 19
    test = [n for n in NAMES if C.CORRUPTIONS.get(n).test]
    assert len(test) == 15
    assert {n for n in NAMES if n not in test} == {"speckle_noise", "gaussian_blur", "spatter", "saturate"}


@pytest.mark.parametrize("name", NAMES)
@SETTINGS
@given(x=batches(), severity=st.integers(1, 5), param_set=st.sampled_from(C.PARAM_SETS))
def test_shape_range_determinism(name: str, x: torch.Tensor, severity: int, param_set: str) -> None:
    y = C.corrupt(x, name, severity, seed=3, param_set=param_set, indices=[10, 11])
    assert y.shape == x.shape and y.dtype == x.dtype
    assert torch.isfinite(y).all()
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    again = C.corrupt(x, name, severity, seed=3, param_set=param_set, indices=[10, 11])
    assert torch.equal(y, again)
    # sample 1 alone, under the same dataset index, equals sample 1 in the batch
    alone = C.corrupt(x[1:], name, severity, seed=3, param_set=param_set, indices=[11])
    torch.testing.assert_close(alone[0], y[1], atol=1e-5, rtol=0)  # batched BLAS/FFT round-off


@pytest.mark.parametrize("name", NAMES)
def test_every_severity_every_param_set_native_size(name: str) -> None:
    sizes = {"imagenet": 48, "tinyimagenet": 64, "cifar": 32}  # imagenet kept small for speed
    g = torch.Generator().manual_seed(0)
    for param_set, side in sizes.items():
        x = torch.rand(1, 3, side, side, generator=g)
        prev = None
        for severity in C.SEVERITIES:
            y = C.corrupt(x, name, severity, param_set=param_set)
            assert y.shape == x.shape and float(y.min()) >= 0 and float(y.max()) <= 1
            prev = y
        assert prev is not None


def test_seed_changes_random_draws() -> None:
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    a = C.corrupt(x, "fog", 3, seed=0, param_set="cifar")
    b = C.corrupt(x, "fog", 3, seed=1, param_set="cifar")
    assert not torch.equal(a, b)


def test_bad_inputs() -> None:
    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(UnknownNameError, match="fog"):
        C.corrupt(x, "fgo", 1)
    with pytest.raises(InputError):
        C.corrupt(x, "fog", 6)
    with pytest.raises(InputError):
        C.corrupt(x, "fog", 1, param_set="mnist")
    with pytest.raises(InputError):
        C.corrupt(torch.rand(1, 2, 8, 8), "fog", 1)
