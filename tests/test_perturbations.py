"""ImageNet-P / CIFAR-10-P perturbation sequences: registry, shapes, determinism, semantics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robench._rng import SampleRNG
from robench.corruptions import quantize_uint8
from robench.errors import InputError, UnknownNameError
from robench.perturbations import (
    PERTURBATIONS,
    TEST_PERTURBATIONS,
    VALIDATION_PERTURBATIONS,
    perturb,
)
from robench.perturbations._geometry import (
    cv_warp_perspective,
    pil_affine,
    pil_affine_matrix,
    shift,
    tilt_matrix,
)
from robench.perturbations.weather import convolve_columns

NAMES = PERTURBATIONS.names()
GEOMETRIC = ("translate", "rotate", "tilt", "scale", "shear")
NOISE = ("gaussian_noise", "shot_noise", "speckle_noise")


def smooth_images(n: int, c: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """8-bit images with structure at several scales (random noise would hide smoothness)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, c, max(2, h // 8), max(2, w // 8), generator=g)
    x = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    return quantize_uint8(0.8 * x + 0.2 * torch.rand(n, c, h, w, generator=g))


# ---------------------------------------------------------------- registry


def test_registry_holds_the_fourteen_perturbations():
    assert sorted(NAMES) == sorted(TEST_PERTURBATIONS + VALIDATION_PERTURBATIONS)
    assert [n for n in NAMES if PERTURBATIONS.get(n).test] == [n for n in NAMES if n in TEST_PERTURBATIONS]
    for name in NAMES:
        assert PERTURBATIONS.get(name).noise == ("noise" in name)
    with pytest.raises(UnknownNameError, match="Did you mean: rotate"):
        PERTURBATIONS.get("rotat")


@pytest.mark.parametrize("name", NAMES)
def test_frame_counts(name):
    p = PERTURBATIONS.get(name)
    expected_imagenet = 41 if name == "translate" else 31
    expected_cifar = {"translate": 16, "motion_blur": 21}.get(name, 31)
    assert p.num_frames("imagenet") == expected_imagenet
    assert p.num_frames("cifar") == expected_cifar


def test_parameter_schedules():
    mb = PERTURBATIONS.get("motion_blur")
    assert [mb.param("imagenet").angle(i) for i in (0, 30)] == [-120, 0]
    assert [mb.param("cifar").angle(i) for i in (0, 20)] == [-180, 0]
    assert [PERTURBATIONS.get("scale").param("imagenet").value(i) for i in (0, 30)] == [0.40, 1.15]
    assert [PERTURBATIONS.get("scale").param("cifar").value(i) for i in (0, 30)] == [0.70, 1.30]
    assert [PERTURBATIONS.get("tilt").param("cifar").value(i) for i in (0, 30)] == [-11.25, 11.25]
    assert [PERTURBATIONS.get("brightness").param("imagenet").delta(i) for i in (0, 30)] == [-0.3, 0.3]
    assert [PERTURBATIONS.get("gaussian_noise").param("imagenet", d).level for d in (1, 2, 3)] == [
        0.03,
        0.05,
        0.08,
    ]
    assert [PERTURBATIONS.get("shot_noise").param("cifar", d).level for d in (1, 2, 3)] == [700, 400, 200]
    assert PERTURBATIONS.get("rotate").param("imagenet", 3) == PERTURBATIONS.get("rotate").param("imagenet", 1)


# ---------------------------------------------------------------- contract of every sequence


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("c", "h", "w"), [(3, 16, 20), (1, 9, 7), (3, 1, 1)])
def test_shape_range_and_levels(name, c, h, w):
    x = smooth_images(2, c, h, w)
    y = perturb(x, name, param_set="cifar")
    assert y.shape == (2, PERTURBATIONS.get(name).num_frames("cifar"), c, h, w)
    assert y.dtype == x.dtype
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    assert torch.equal(quantize_uint8(y), y)


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_and_independent_of_the_batch(name):
    x = smooth_images(3, 3, 24, 24, seed=1)
    a = perturb(x, name, seed=5, param_set="cifar", indices=[10, 11, 12])
    b = perturb(x, name, seed=5, param_set="cifar", indices=[10, 11, 12])
    assert torch.equal(a, b)
    alone = perturb(x[1:2], name, seed=5, param_set="cifar", indices=[11])
    assert torch.equal(alone[0], a[1])


def test_streaming_matches_perturb():
    x = smooth_images(2, 3, 20, 20)
    p = PERTURBATIONS.get("snow")
    rng = SampleRNG([0, 1], seed=0, key="cifar/p/snow/1")
    frames = list(p.frames(x, rng=rng, param_set="cifar"))
    assert torch.equal(torch.stack(frames, dim=1), perturb(x, "snow", param_set="cifar"))


@pytest.mark.parametrize("name", NOISE)
@pytest.mark.parametrize("difficulty", [1, 2, 3])
def test_noise_frame_zero_is_the_clean_image(name, difficulty):
    x = torch.rand(2, 3, 12, 12)
    y = perturb(x, name, difficulty=difficulty, param_set="imagenet")
    assert torch.equal(y[:, 0], quantize_uint8(x))
    assert not torch.equal(y[:, 1], y[:, 2])  # fresh noise every frame


def test_noise_difficulty_increases_noise():
    x = torch.full((1, 3, 32, 32), 0.5)
    spread = [float((perturb(x, "gaussian_noise", difficulty=d)[:, 1:] - 0.5).std()) for d in (1, 2, 3)]
    assert spread[0] < spread[1] < spread[2]
    assert spread[0] == pytest.approx(0.03, rel=0.1)


def test_difficulty_is_only_a_stride_for_the_others():
    x = smooth_images(1, 3, 16, 16)
    assert torch.equal(perturb(x, "snow", difficulty=1), perturb(x, "snow", difficulty=1))
    assert torch.equal(perturb(x, "rotate", difficulty=1), perturb(x, "rotate", difficulty=3))


@pytest.mark.parametrize("name", (*GEOMETRIC, "brightness", "zoom_blur", "gaussian_blur", "motion_blur"))
@pytest.mark.parametrize("param_set", ["imagenet", "cifar"])
def test_sequences_change_smoothly(name, param_set):
    x = smooth_images(2, 3, 32, 32, seed=2)
    y = perturb(x, name, param_set=param_set)
    steps = (y[:, 1:] - y[:, :-1]).abs().mean()
    span = (y[:, -1] - y[:, 0]).abs().mean()
    assert float(span) > 0
    assert float(steps) < 0.25 * float(span)


def test_translate_shifts_whole_pixels_with_black_fill():
    x = smooth_images(1, 3, 8, 50)
    y = perturb(x, "translate")  # −20 … +20 px
    assert y.shape[1] == 41
    assert torch.equal(y[:, 20], x)
    assert torch.equal(y[0, 25, :, :, 5:], x[0, :, :, :-5])
    assert float(y[0, 25, :, :, :5].abs().max()) == 0.0
    assert torch.equal(y[0, 0, :, :, :-20], x[0, :, :, 20:])


def test_crop_follows_imagenet_p():
    """Geometric perturbations warp the whole image, then crop; the others crop first."""
    x = smooth_images(1, 3, 40, 52)
    crop = 32
    top, left = 4, 10
    y = perturb(x, "translate", crop=crop)
    assert y.shape[-2:] == (crop, crop)
    assert torch.equal(y[0, 30], shift(x, 10)[0, :, top : top + crop, left : left + crop])
    b = perturb(x, "brightness", crop=crop)
    assert torch.equal(b, perturb(x[..., top : top + crop, left : left + crop], "brightness"))
    with pytest.raises(InputError):
        perturb(x, "rotate", crop=64)


def test_zoom_blur_is_a_running_mean():
    x = smooth_images(1, 3, 24, 24)
    y = perturb(x, "zoom_blur")
    assert torch.equal(y[:, 0], x)
    z1 = quantize_uint8(pil_affine(x, pil_affine_matrix(24, 24, scale=1.004)))
    assert torch.equal(y[:, 1], quantize_uint8((x + z1) / 2))


def test_snow_layer_is_drawn_once():
    """The flakes move but stay the same flakes: consecutive frames of a sample correlate,
    frames of two samples (two layers) do not."""
    x = torch.zeros(2, 1, 32, 32)
    y = perturb(x, "snow", param_set="cifar").flatten(2)
    flakes = y - y.amin(dim=2, keepdim=True)

    def corr(a: torch.Tensor, b: torch.Tensor) -> float:
        return float(torch.corrcoef(torch.stack([a, b]))[0, 1])

    assert min(corr(flakes[0, i], flakes[0, i + 1]) for i in range(30)) > 0.6
    assert abs(corr(flakes[0, 0], flakes[1, 0])) < 0.3


def test_invalid_arguments():
    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(InputError):
        perturb(x, "rotate", difficulty=4)
    with pytest.raises(InputError):
        perturb(x, "rotate", param_set="tinyimagenet")
    with pytest.raises(InputError):
        perturb(torch.rand(1, 2, 8, 8), "rotate")


# ---------------------------------------------------------------- library semantics


def test_pil_affine_matches_pillow():
    from PIL import Image

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (29, 37, 3), dtype=np.uint8)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    for kwargs in (dict(angle=-13), dict(shear=9), dict(angle=4, scale=0.6)):
        m = pil_affine_matrix(37, 29, **kwargs)
        ref = np.asarray(Image.fromarray(img).transform((37, 29), Image.AFFINE, m, Image.BILINEAR))
        out = (quantize_uint8(pil_affine(x, m)) * 255).round()[0].permute(1, 2, 0).numpy()
        assert (out != ref).mean() < 0.002  # float32 truncation ties only
    for dx in (-20, -3, 7):
        m = pil_affine_matrix(37, 29, translate=(dx, 0))
        ref = np.asarray(Image.fromarray(img).transform((37, 29), Image.AFFINE, m, Image.NEAREST))
        assert np.array_equal((shift(x, dx) * 255).round()[0].permute(1, 2, 0).numpy(), ref)
        assert np.array_equal((pil_affine(x, m, nearest=True) * 255).round()[0].permute(1, 2, 0).numpy(), ref)


def test_warp_perspective_matches_opencv_fixed_point():
    """OpenCV ≤ 4.10's warpPerspective = inverse map rounded to 1/32 px + fixed-point remap."""
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (26, 35, 3), dtype=np.uint8)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    for angle in (-15.0, 0.0, 7.5):
        forward = tilt_matrix(35, 26, angle, angle)
        inv = np.linalg.inv(forward.numpy())
        ys, xs = np.mgrid[0:26, 0:35].astype(np.float64)
        den = inv[2, 0] * xs + inv[2, 1] * ys + inv[2, 2]
        mx = ((inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]) / den).astype(np.float32)
        my = ((inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]) / den).astype(np.float32)
        m1, m2 = cv2.convertMaps(mx, my, cv2.CV_16SC2)
        ref = cv2.remap(img, m1, m2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        out = (cv_warp_perspective(x, forward) * 255).round()[0].permute(1, 2, 0).numpy()
        assert np.array_equal(out, ref)


def test_column_convolution_matches_numpy():
    rng = np.random.default_rng(2)
    layer = rng.random((2, 9, 4))
    for kernel in ((0.05, 0.1, 0.15, 0.7), (0.2, 0.8)):
        ref = np.stack(
            [np.apply_along_axis(lambda col, k=kernel: np.convolve(col, k, mode="same"), 0, m) for m in layer]
        )
        out = convolve_columns(torch.from_numpy(layer), kernel).numpy()
        np.testing.assert_allclose(out, ref, rtol=0, atol=1e-15)
