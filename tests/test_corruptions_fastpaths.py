"""The OpenCV (CPU) fast paths agree with the batched torch code used on other devices."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robench.corruptions import _filters

pytest.importorskip("cv2")

SIZES = [(1, 1), (1, 7), (2, 3), (5, 4), (9, 31), (40, 33)]


def _both(monkeypatch: pytest.MonkeyPatch, fn, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    fast = fn(x)
    with monkeypatch.context() as m:
        m.setattr(_filters, "use_cv2", lambda t: False)
        slow = fn(x)
    return fast, slow


@pytest.mark.parametrize(("h", "w"), SIZES)
@pytest.mark.parametrize("mode", sorted(_filters.CV2_BORDER))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cv2_filters_match_torch(monkeypatch: pytest.MonkeyPatch, h: int, w: int, mode: str, dtype) -> None:
    g = torch.Generator().manual_seed(h * 100 + w)
    x = torch.rand(2, 3, h, w, generator=g, dtype=dtype)
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    for radius in (1, 4, 12, 40):
        k1 = _filters.gaussian_kernel1d(radius / 2.5, radius)
        fast, slow = _both(monkeypatch, lambda t, k1=k1: _filters.separable_filter(t, k1, mode), x)
        torch.testing.assert_close(fast, slow, atol=tol, rtol=0)
    for side in (3, 9, 17):
        k2 = torch.rand(side, side, generator=g, dtype=torch.float64)
        k2 /= k2.sum()
        fast, slow = _both(monkeypatch, lambda t, k2=k2: _filters.filter2d(t, k2, mode), x)
        torch.testing.assert_close(fast, slow, atol=tol, rtol=0)


def test_water_mask_cv2_matches_torch() -> None:
    from skimage.filters import gaussian

    from robench.corruptions import weather

    rs = np.random.RandomState(3)
    liquid = np.stack([gaussian(rs.normal(0.65, 0.3, (40, 52)), sigma=s) for s in (1, 2, 3, 4)])
    liquid[liquid < 0.68] = 0
    t = torch.from_numpy(liquid)
    l8 = torch.remainder(torch.floor(t * 255.0).clamp_min(0), 256)
    torch.testing.assert_close(weather._water_distance_cv2(l8), weather._water_distance_torch(l8), atol=0, rtol=0)


@pytest.mark.parametrize(("rate_x", "scale"), [(100 / 255, 12), (1.0, 60), (0.3, 3), (0.77, 500), (0.0, 12)])
def test_poisson_sampler_is_poisson(rate_x: float, scale: float) -> None:
    from scipy import stats

    from robench._rng import SampleRNG
    from robench.corruptions import noise

    x = torch.full((2, 1, 300, 300), rate_x)
    k = noise.poisson_unit(x, scale, SampleRNG(range(2), seed=1)).flatten().numpy()
    lam = rate_x * scale
    assert np.array_equal(k, np.round(k)) and k.min() >= 0
    if lam == 0:
        assert k.max() == 0
        return
    # chi-square goodness of fit on the bins holding ≥ 50 expected counts
    hi = int(stats.poisson.ppf(1 - 1e-4, lam))
    lo = int(stats.poisson.ppf(1e-4, lam))
    edges = np.arange(lo, hi + 1)
    observed = np.array([(k < lo).sum()] + [(k == e).sum() for e in edges] + [(k > hi).sum()])
    p = np.concatenate([[stats.poisson.cdf(lo - 1, lam)], stats.poisson.pmf(edges, lam), [stats.poisson.sf(hi, lam)]])
    expected = p * k.size
    keep = expected >= 50
    chi2 = (((observed - expected)[keep] ** 2) / expected[keep]).sum()
    assert stats.chi2.sf(chi2, keep.sum() - 1) > 1e-4


def test_poisson_off_grid_rates() -> None:
    from robench._rng import SampleRNG
    from robench.corruptions import noise

    x = torch.full((2, 1, 300, 300), 0.5 / 255 + 0.3)  # half a level off the 8-bit grid
    k = noise.poisson_unit(x, 60, SampleRNG(range(2), seed=2)).flatten()
    lam = float(x[0, 0, 0, 0]) * 60
    assert abs(float(k.mean()) - lam) < 4 * (lam / k.numel()) ** 0.5
    assert abs(float(k.var()) - lam) < 0.05 * lam


@pytest.mark.parametrize("scale", [500, 60, 3, 0.5])
def test_grid_poisson_is_the_inverse_cdf_of_its_row(scale: float) -> None:
    """The guided binary search returns min{k : F_j(k) > u}, found here by a plain search per row."""
    from robench.corruptions import noise

    g = torch.Generator().manual_seed(5)
    level = torch.randint(0, noise.LEVELS + 1, (4000,), generator=g)
    u = torch.rand(4000, generator=g, dtype=torch.float64)
    u[:8] = torch.tensor([0.0, 1 - 2**-53, 1023 / 1024, 1 / 1024, 0.5, 1 - 1e-12, 1e-12, 0.999])
    cdf, _, width = noise._poisson_tables(float(scale))
    rows = cdf.view(noise.LEVELS + 1, width)
    expected = torch.searchsorted(rows[level], u[:, None], right=True).squeeze(1)
    assert torch.equal(noise._grid_poisson(level, u, float(scale)), expected)


def test_shot_noise_draws_do_not_depend_on_the_batch() -> None:
    """Each image's counts come from its own stream, on- and off-grid images mixed in one batch."""
    from robench._rng import SampleRNG
    from robench.corruptions import noise

    g = torch.Generator().manual_seed(6)
    x = torch.randint(0, 256, (5, 3, 8, 8), generator=g).float() / 255
    x[1] = torch.rand(3, 8, 8, generator=g)  # off the 8-bit grid
    x[3, 0, 0, 0] = 0.5 / 255
    idx = [11, 3, 7, 40, 2]
    whole = noise.poisson_unit(x, 500, SampleRNG(idx, seed=4, key="s"))
    for i in range(5):
        alone = noise.poisson_unit(x[i : i + 1], 500, SampleRNG(idx[i : i + 1], seed=4, key="s"))
        assert torch.equal(alone[0], whole[i])
    reordered = noise.poisson_unit(x.flip(0), 500, SampleRNG(idx[::-1], seed=4, key="s"))
    assert torch.equal(reordered.flip(0), whole)


@pytest.mark.parametrize(("h", "w"), [(224, 224), (32, 32), (64, 64), (5, 17), (1, 1), (13, 40)])
@pytest.mark.parametrize("factor", [0.95, 0.6, 0.25])
def test_pixelate_fast_path_equals_generic(h: int, w: int, factor: float) -> None:
    from robench.corruptions import digital

    x = torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(h + w))
    sh, sw = max(1, int(h * factor)), max(1, int(w * factor))
    for inp in (x, x.double(), x.contiguous(memory_format=torch.channels_last)):
        ref = digital.pil_box_resize_u8(digital.pil_box_resize_u8(torch.round(inp * 255), sh, sw), h, w)
        y = digital.pixelate(inp, factor, None)
        assert y.dtype == inp.dtype and y.shape == inp.shape
        torch.testing.assert_close(y * 255, ref.to(y.dtype), atol=1e-4, rtol=0)  # exactly the same levels
