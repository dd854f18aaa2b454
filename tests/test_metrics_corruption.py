from __future__ import annotations

import pytest

from robench.metrics.corruption import corruption_error, mce, relative_corruption_error, relative_mce
from robench.suites import Baseline

# bethgelab game-of-noise, torchvision ResNet-50 on full ImageNet-C (REFERENCE.md §4.3): per-corruption CE (%)
# and the implied mean error (CE · mean AlexNet error).
RESNET50_CE = {
    "gaussian_noise": 81.88, "shot_noise": 80.62, "impulse_noise": 83.41, "defocus_blur": 71.75,
    "glass_blur": 91.53, "motion_blur": 76.64, "zoom_blur": 77.60, "snow": 76.79, "frost": 73.72,
    "fog": 68.18, "brightness": 57.29, "contrast": 72.52, "elastic_transform": 86.58, "pixelate": 75.64,
    "jpeg_compression": 75.10,
}
RESNET50_MEAN_ERR = {
    "gaussian_noise": 72.58, "shot_noise": 72.11, "impulse_noise": 76.96, "defocus_blur": 58.83,
    "glass_blur": 75.63, "motion_blur": 60.24, "zoom_blur": 61.95, "snow": 66.56, "frost": 60.93,
    "fog": 55.86, "brightness": 32.35, "contrast": 61.87, "elastic_transform": 55.94, "pixelate": 54.30,
    "jpeg_compression": 45.55,
}


def test_mce_of_published_resnet50_numbers_is_76_6():
    # Five equal per-severity errors have the published mean; CE only depends on the sum.
    errors = {c: [e / 100] * 5 for c, e in RESNET50_MEAN_ERR.items()}
    assert mce(errors, baseline="alexnet") == pytest.approx(76.6, abs=0.1)


def test_relative_mce_of_published_resnet50_numbers():
    errors = {c: [e / 100] * 5 for c, e in RESNET50_MEAN_ERR.items()}
    # 104.7 is what the published CEs and clean error 23.87 % imply (REFERENCE.md §4.3).
    assert relative_mce(errors, 0.2387, baseline="alexnet") == pytest.approx(104.7, abs=0.3)


def test_ce_is_ratio_of_sums_not_mean_of_ratios():
    assert corruption_error([0.1, 0.5], [0.2, 0.8]) == pytest.approx(100 * 0.6 / 1.0)
    assert relative_corruption_error([0.3, 0.5], 0.1, [0.6, 0.8], 0.2) == pytest.approx(100 * 0.6 / 1.0)


def test_explicit_baseline_and_missing_corruption():
    base = Baseline("toy", 0.1, {"fog": (0.5,) * 5})
    assert mce({"fog": [0.25] * 5}, baseline=base) == pytest.approx(50.0)
    with pytest.raises(Exception, match="no errors for 'snow'"):
        mce({"snow": [0.25] * 5}, baseline=base)
