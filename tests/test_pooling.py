"""iSQRT-COV against its equations (REFERENCE.md §5.1) and the pooling-head registry."""

from __future__ import annotations

import pytest
import torch

from robench.models.isqrtcov import ISqrtCovPool, covariance, isqrt_cov, isqrt_cov_features, triu_vec
from robench.models.pooling import POOLINGS


def _features(b: int, c: int, h: int, w: int, *, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(b, c, h, w, generator=gen, dtype=dtype)


def reference_isqrt_cov(x: torch.Tensor, iter_n: int) -> torch.Tensor:
    """Written from the equations, one sample at a time, with Ī materialised."""
    out = []
    for sample in x.to(torch.float64):
        c = sample.shape[0]
        xm = sample.reshape(c, -1)
        m = xm.shape[1]
        i_bar = torch.eye(m, dtype=torch.float64) / m - torch.ones(m, m, dtype=torch.float64) / m**2
        sigma = xm @ i_bar @ xm.T
        eye = torch.eye(c, dtype=torch.float64)
        tr = (sigma * 3 * eye).sum() / 3
        a = sigma / tr
        if iter_n == 1:
            y_n = 0.5 * a @ (3 * eye - a)
        else:
            t = 0.5 * (3 * eye - a)
            y, z = a @ t, t
            for _ in range(2, iter_n):
                t = 0.5 * (3 * eye - z @ y)
                y, z = y @ t, t @ z
            y_n = 0.5 * y @ (3 * eye - z @ y)
        s = tr.sqrt() * y_n
        upper = torch.ones(c, c, dtype=torch.bool).triu()
        out.append(s[upper])  # boolean masks select in row-major order
    return torch.stack(out)


@pytest.mark.parametrize("iter_n", [1, 2, 3, 5])
@pytest.mark.parametrize(("c", "h", "w"), [(6, 4, 4), (16, 3, 5), (8, 2, 2)])
def test_matches_reference_equations(iter_n: int, c: int, h: int, w: int) -> None:
    x = _features(3, c, h, w, seed=c + iter_n)
    got = isqrt_cov(x, iter_n)
    want = reference_isqrt_cov(x, iter_n)
    assert got.shape == (3, c * (c + 1) // 2)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-12)


def test_default_is_five_iterations_and_256_channels_give_32896() -> None:
    x = _features(2, 256, 4, 4, dtype=torch.float32)
    pool = ISqrtCovPool()
    assert pool.iter_n == 5
    assert pool(x).shape == (2, 32896) == (2, isqrt_cov_features(256))
    torch.testing.assert_close(isqrt_cov(x.double()), reference_isqrt_cov(x, 5), rtol=1e-5, atol=1e-10)


def test_many_iterations_square_to_the_covariance() -> None:
    x = _features(2, 8, 10, 10, seed=1)  # M = 100 > C = 8: SPD covariance
    s = isqrt_cov(x, 40, vectorize=False)
    sigma = covariance(x)
    assert torch.linalg.eigvalsh(sigma).min() > 0
    torch.testing.assert_close(s @ s, sigma, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(s, s.transpose(-1, -2), rtol=0, atol=1e-9)


def test_covariance_is_centred_and_divided_by_m() -> None:
    x = _features(1, 3, 5, 7, seed=2)
    xm = x.reshape(3, -1)
    want = torch.cov(xm, correction=0)
    torch.testing.assert_close(covariance(x)[0], want)
    torch.testing.assert_close(covariance(x + 5.0), covariance(x))


def test_triu_order_is_row_major() -> None:
    s = torch.arange(16.0).reshape(1, 4, 4)
    assert triu_vec(s).tolist() == [[0, 1, 2, 3, 5, 6, 7, 10, 11, 15]]


@pytest.mark.parametrize("iter_n", [1, 3, 5])
def test_gradcheck_float64(iter_n: int) -> None:
    x = _features(2, 4, 3, 3, seed=3).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: isqrt_cov(t, iter_n), (x,))


def test_no_epsilon_constant_map_gives_nan() -> None:
    x = torch.ones(1, 4, 3, 3, dtype=torch.float64)
    assert torch.isnan(isqrt_cov(x)).all()


def test_batch_elements_are_independent() -> None:
    x = _features(4, 6, 3, 3, seed=4)
    full = isqrt_cov(x)
    for i in range(4):
        torch.testing.assert_close(isqrt_cov(x[i : i + 1])[0], full[i])


def test_float32_close_to_float64() -> None:
    x = _features(2, 32, 7, 7, seed=5)
    torch.testing.assert_close(isqrt_cov(x.float()).double(), isqrt_cov(x), rtol=1e-4, atol=1e-5)


def test_autocast_runs_in_float32() -> None:
    x = _features(2, 16, 4, 4, seed=6, dtype=torch.float32)
    plain = isqrt_cov(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under = isqrt_cov(x)
    assert under.dtype == torch.float32
    torch.testing.assert_close(under, plain, rtol=0, atol=0)
    assert isqrt_cov(x.to(torch.bfloat16)).dtype == torch.float32


def test_iter_n_must_be_positive() -> None:
    with pytest.raises(ValueError, match="iter_n"):
        isqrt_cov(_features(1, 2, 2, 2), 0)


@pytest.mark.parametrize("name", POOLINGS.names())
def test_pooling_registry_heads(name: str) -> None:
    pool = POOLINGS.get(name)
    module = pool.make()
    x = _features(2, 12, 5, 5, dtype=torch.float32)
    out = module(x)
    assert out.shape == (2, pool.features(12))
    assert not list(module.parameters())  # parameters live in the architectures' reduction blocks
    assert torch.isfinite(out).all()


def test_gap_is_the_mean() -> None:
    x = _features(2, 3, 4, 4, dtype=torch.float32)
    torch.testing.assert_close(POOLINGS.get("gap").make()(x), x.mean(dim=(2, 3)))


def test_single_channel_gives_the_standard_deviation() -> None:
    x = _features(3, 1, 4, 5, seed=7)
    torch.testing.assert_close(isqrt_cov(x)[:, 0], x.flatten(1).std(dim=1, correction=0))
