"""Issue #6's checks on the shipped demo models (not only on toy networks)."""

from __future__ import annotations

import pytest
import torch

from robench.attacks import ATTACKS, parse_eps, robust_mask
from robench.data.fashion_mnist import load_demo_subset, to_model_input
from robench.models import load_model

EPS = [parse_eps(e) for e in ("2/255", "4/255", "8/255")]
N = 120
PGD = {"steps": 20, "rel_stepsize": 0.25}
APGD = {"n_iter": 25}


@pytest.fixture(scope="module")
def data():
    images, labels = load_demo_subset()
    x = to_model_input(images[:N]).float() / 255
    return x, torch.as_tensor(labels[:N].astype("int64"))


@pytest.fixture(scope="module", params=["demo-gap", "demo-gcp"])
def model(request):
    return load_model(request.param)


def _ra(model, x, y, name, eps, **settings):
    """Per-image success (misclassified after the attack) of one attack on the whole batch."""
    return ATTACKS.get(name)(model, x, y, eps=eps, seed=0, indices=list(range(len(y))), **settings)


@pytest.mark.slow  # ~30 s per model; test_attacks.py checks ordering and monotonicity on a small case by default
def test_robust_accuracy_ordering_and_monotonicity(model, data):
    x, y = data
    curves = {"fgsm": [], "pgd": [], "apgd": []}
    for eps in EPS:
        fgsm = _ra(model, x, y, "fgsm", eps)
        pgd = _ra(model, x, y, "pgd-linf", eps, **PGD)
        apgd = robust_mask([_ra(model, x, y, "apgd-ce", eps, **APGD),
                            _ra(model, x, y, "apgd-t", eps, n_target_classes=3, **APGD)])
        curves["fgsm"].append(int((~fgsm).sum()))  # robust images (exact counts, not float means)
        curves["pgd"].append(int((~pgd).sum()))
        curves["apgd"].append(int(apgd.sum()))
    for name, ra in curves.items():
        assert ra == sorted(ra, reverse=True), f"{name} robust accuracy increases with eps: {ra}"
    for k in range(len(EPS)):
        assert curves["apgd"][k] <= curves["pgd"][k] <= curves["fgsm"][k], curves


def test_pgd_agrees_with_a_direct_foolbox_run(model, data):
    from robench.attacks._foolbox import foolbox

    fb = foolbox()
    x, y = data
    eps = EPS[1]
    ours = 1 - _ra(model, x, y, "pgd-linf", eps, **PGD).float().mean().item()
    torch.manual_seed(0)  # foolbox draws its random start from the global RNG
    fmodel = fb.PyTorchModel(model, bounds=(0, 1))
    attack = fb.attacks.LinfPGD(steps=PGD["steps"], abs_stepsize=eps * PGD["rel_stepsize"], random_start=True)
    _, _, success = attack(fmodel, x, y, epsilons=eps)
    theirs = 1 - success.float().mean().item()
    assert abs(ours - theirs) <= 0.01 + 1 / N, (ours, theirs)


def test_same_seed_same_result_for_batch_sizes_1_7_64(model, data):
    x, y = data
    x, y = x[:64], y[:64]
    results = []
    for bs in (1, 7, 64):
        parts = [ATTACKS.get("pgd-linf")(model, x[i : i + bs], y[i : i + bs], eps=EPS[1], seed=0,
                                         indices=list(range(i, min(i + bs, 64))), steps=5, rel_stepsize=0.25)
                 for i in range(0, 64, bs)]
        results.append(torch.cat(parts))
    assert torch.equal(results[0], results[1]) and torch.equal(results[1], results[2])
