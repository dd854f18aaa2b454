"""Pure parts of the attack library: eps parsing, worst case, gradient-masking checks,
and importing foolbox under strict warnings / without git."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from robench.attacks import (
    AttackResult,
    Kind,
    Norm,
    clean_accuracy_errors,
    masking_warnings,
    parse_eps,
    robust_accuracy,
    robust_mask,
)
from robench.errors import InputError


@pytest.mark.parametrize(
    ("text", "value"),
    [("4/255", 4 / 255), ("8 / 255", 8 / 255), ("0.5", 0.5), ("1e-2", 0.01), ("0", 0.0), (0.25, 0.25), (3, 3.0)],
)
def test_parse_eps(text: str | float, value: float) -> None:
    assert parse_eps(text) == pytest.approx(value, rel=1e-15)


@pytest.mark.parametrize("bad", ["4/0", "-1/255", "abc", "", "nan", "inf", "1/2/3", -0.1, float("nan"), True, None])
def test_parse_eps_rejects(bad: object) -> None:
    with pytest.raises(InputError, match="Bad eps"):
        parse_eps(bad)  # type: ignore[arg-type]


def test_robust_mask_is_and_of_robust_masks() -> None:
    a = torch.tensor([True, False, False, False])
    b = torch.tensor([False, True, False, False])
    assert robust_mask({"a": a, "b": b}).tolist() == [False, False, True, True]
    assert robust_accuracy([a, b]) == 0.5
    assert robust_accuracy(a) == 0.75
    with pytest.raises(InputError):
        robust_mask([])
    with pytest.raises(InputError, match="different shapes"):
        robust_mask([a, b[:2]])


def _r(attack: str, eps: float, ra: float, kind: Kind | None = Kind.ITERATIVE, norm: Norm = Norm.LINF) -> AttackResult:
    return AttackResult(attack, eps, ra, norm, kind)


def test_no_warnings_for_a_healthy_evaluation() -> None:
    results = [
        _r("fgsm", 2, 0.6, Kind.SINGLE_STEP),
        _r("fgsm", 4, 0.4, Kind.SINGLE_STEP),
        _r("pgd-linf", 2, 0.5),
        _r("pgd-linf", 4, 0.3),
        _r("random-noise-linf", 2, 0.85, Kind.RANDOM),
        _r("random-noise-linf", 4, 0.8, Kind.RANDOM),
        _r("worst-case", 2, 0.45, None),
        _r("worst-case", 4, 0.3, None),
    ]
    assert masking_warnings(results, clean_accuracy=0.9) == []


def test_masking_symptoms_are_flagged() -> None:
    results = [
        _r("fgsm", 2, 0.4, Kind.SINGLE_STEP),
        _r("pgd-linf", 2, 0.5),  # weaker than FGSM
        _r("pgd-linf", 4, 0.6),  # increases with eps
        _r("random-noise-linf", 4, 0.55, Kind.RANDOM),  # noise beats PGD at 4
        _r("pgd-l2", 4, 0.95, norm=Norm.L2),  # other norm: not compared with linf noise, but above clean
    ]
    warnings = masking_warnings(results, clean_accuracy=0.9)
    assert len(warnings) == 4, warnings
    joined = "\n".join(warnings)
    assert "pgd-linf: robust accuracy increases with eps" in joined
    assert "weaker than FGSM-type fgsm" in joined
    assert "weaker than random noise random-noise-linf" in joined
    assert "pgd-l2 at eps=4: robust accuracy 95.00% above clean" in joined
    assert masking_warnings(results, clean_accuracy=1.0, tolerance=0.2) == []


def test_attack_result_of_looks_up_norm_and_kind() -> None:
    r = AttackResult.of("apgd-t", 0.5, 0.3, norm="l2")
    assert (r.norm, r.kind) == (Norm.L2, Kind.ITERATIVE)
    assert AttackResult.of("fgsm", 0.1, 0.3).kind is Kind.SINGLE_STEP


def test_clean_accuracy_mismatch_is_an_error() -> None:
    assert clean_accuracy_errors(0.9, {"pgd-linf@4/255": 0.9, "fgsm@4/255": 0.9}) == []
    errors = clean_accuracy_errors(0.9, {"pgd-linf@4/255": 0.9, "fgsm@4/255": 0.85})
    assert errors == ["clean accuracy mismatch: fgsm@4/255 saw 85.0000% but the plain evaluation 90.0000%"]


def _python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "error", "-c", code], env=env, capture_output=True, text=True, timeout=120
    )


def test_foolbox_imports_without_git_and_under_strict_warnings(tmp_path) -> None:
    pytest.importorskip("foolbox")
    env = {k: v for k, v in os.environ.items() if k != "GIT_PYTHON_REFRESH"}
    env["PATH"] = str(tmp_path)  # an empty directory: no git executable
    code = (
        "import shutil; assert shutil.which('git') is None\n"
        "from robench.attacks._foolbox import foolbox\n"
        "fb = foolbox(); assert fb.attacks.LinfPGD\n"
        "import robench.attacks, sys; print('ok')\n"
    )
    result = _python(code, env)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_importing_robench_attacks_does_not_import_foolbox() -> None:
    result = _python("import sys, robench.attacks; print('foolbox' in sys.modules)", dict(os.environ))
    assert result.returncode == 0 and result.stdout.strip() == "False", result.stderr
