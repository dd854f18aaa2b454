"""Attacks on a tiny trained CNN: strength ordering, agreement with foolbox and
pyautoattack, per-sample determinism, counting and input validation."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
import torch
from torch import nn

from robench.attacks import ATTACKS, AttackStats, Norm, parse_eps, robust_accuracy, robust_mask
from robench.attacks._base import Draws
from robench.attacks._foolbox import foolbox
from robench.attacks.apgd import apgd_single_run, ce_loss, random_start, targeted_dlr_loss
from robench.errors import InputError, UnknownNameError

CLASSES, SIZE = 10, 8

# Cheap settings per attack for the registry-wide tests (the defaults are the literature's).
FAST = {
    "fgsm": {},
    "pgd-linf": {"steps": 5},
    "pgd-l2": {"steps": 5},
    "apgd-ce": {"n_iter": 5},
    "apgd-dlr": {"n_iter": 5},
    "apgd-t": {"n_iter": 5, "n_target_classes": 2},
    "fab-t": {"n_iter": 5, "n_target_classes": 2},
    "square": {"n_queries": 20},
    "deepfool": {"steps": 5},
    "cw-l2": {"binary_search_steps": 2, "steps": 5},
    "random-noise-linf": {"draws": 2},
    "random-noise-l2": {"draws": 2},
}
EPS = {Norm.LINF: 8 / 255, Norm.L2: 0.5}


class Normalize(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.full((1, 3, 1, 1), 0.5))
        self.register_buffer("std", torch.full((1, 3, 1, 1), 0.25))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def make_data(n: int, *, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy copies of 10 fixed random class templates (learnable, not separable)."""
    templates = torch.rand(CLASSES, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1234)) - 0.5
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, CLASSES, (n,), generator=g)
    x = 0.5 + 0.3 * templates[y] + 0.3 * torch.randn(n, 3, SIZE, SIZE, generator=g)
    return x.clamp(0, 1), y


@pytest.fixture(scope="module")
def model() -> nn.Module:
    """A small CNN trained for about a second (clean accuracy ≈ 0.92), normaliser inside."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = nn.Sequential(
            Normalize(),
            nn.Conv2d(3, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1, stride=2),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(32 * (SIZE // 2) ** 2, CLASSES),
        )
        x, y = make_data(2048, seed=1)
        opt = torch.optim.Adam(net.parameters(), 3e-3)
        for _ in range(400):
            idx = torch.randint(0, len(x), (128,))
            loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, torch.Tensor]:
    return make_data(1000, seed=2)


def clean_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


# --- registry-wide contract ---------------------------------------------------------------


def test_registry_has_the_issue_attacks() -> None:
    assert set(FAST) == set(ATTACKS)
    with pytest.raises(UnknownNameError, match="Did you mean: pgd-linf"):
        ATTACKS.get("pgd-lnf")


@pytest.mark.parametrize("name", list(FAST))
def test_contract(name: str, model: nn.Module, data: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = data[0][:48], data[1][:48]
    attack = ATTACKS.get(name)
    eps = EPS[attack.norm_of(**FAST[name])]
    stats = AttackStats()
    success = attack(model, x, y, eps=eps, seed=0, indices=range(48), stats=stats, **FAST[name])
    assert success.dtype == torch.bool and success.shape == (48,)
    with torch.no_grad():
        clean_wrong = model(x).argmax(1) != y
    assert bool(success[clean_wrong].all()), "clean errors count as successes"
    assert stats.images == 48 and stats.clean_correct == int((~clean_wrong).sum())
    assert stats.successes == int(success.sum())
    assert stats.forwards_per_image >= 1.0
    # eps = 0 is the clean evaluation and costs one forward pass per image
    zero = AttackStats()
    assert torch.equal(attack(model, x, y, eps=0.0, seed=0, indices=range(48), stats=zero), clean_wrong)
    assert (zero.forwards, zero.backwards) == (48, 0)


def test_defaults_are_documented_and_overridable() -> None:
    pgd = ATTACKS.get("pgd-linf")
    assert (pgd.settings().steps, pgd.settings().rel_stepsize, pgd.settings().restarts) == (20, 0.25, 1)
    apgd = ATTACKS.get("apgd-t").settings()
    assert (apgd.n_iter, apgd.n_target_classes, apgd.rho, apgd.restarts) == (100, 9, 0.75, 1)
    assert pgd.settings(steps=7, abs_stepsize=1).abs_stepsize == 1.0
    assert ATTACKS.get("apgd-ce").norm_of(norm="l2") is Norm.L2
    assert ATTACKS.get("deepfool").norm_of() is Norm.L2


@pytest.mark.parametrize(
    ("name", "settings", "message"),
    [
        ("pgd-linf", {"stpes": 3}, "Did you mean 'steps'"),
        ("pgd-linf", {"steps": 0}, "steps and restarts must be >= 1"),
        ("pgd-linf", {"steps": 2.5}, "must be int"),
        ("pgd-linf", {"random_start": 1}, "must be bool"),
        ("apgd-ce", {"norm": "l1"}, "norm must be 'linf' or 'l2'"),
        ("random-noise-l2", {"draws": 0}, "draws must be >= 1"),
    ],
)
def test_bad_settings(name: str, settings: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        ATTACKS.get(name).settings(**settings)


def test_bad_inputs(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = data[0][:4], data[1][:4]
    fgsm = ATTACKS.get("fgsm")
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        fgsm(model, x * 2 + 0.1, y, eps=0.1, seed=0, indices=range(4))
    with pytest.raises(InputError, match="indices"):
        fgsm(model, x, y, eps=0.1, seed=0, indices=range(3))
    with pytest.raises(InputError, match="eps"):
        fgsm(model, x, y, eps=-1.0, seed=0, indices=range(4))
    with pytest.raises(InputError, match="labels"):
        fgsm(model, x, y[:2], eps=0.1, seed=0, indices=range(4))
    model.train()
    try:
        with pytest.raises(InputError, match="eval"):
            fgsm(model, x, y, eps=0.1, seed=0, indices=range(4))
    finally:
        model.eval()


def test_too_few_classes_for_targeted_dlr() -> None:
    three = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 3)).eval()
    x = torch.rand(4, 3, 4, 4)
    y = three(x).argmax(1).detach()
    with pytest.raises(InputError, match="at least 4 classes"):
        ATTACKS.get("apgd-t")(three, x, y, eps=0.1, seed=0, indices=range(4), n_iter=2)


# --- counting ---------------------------------------------------------------------------


def test_pass_counts(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = data[0][:64], data[1][:64]
    stats = AttackStats()
    ATTACKS.get("pgd-linf")(model, x, y, eps=8 / 255, seed=0, indices=range(64), stats=stats, steps=7)
    n = stats.clean_correct
    # clean pass on all, 7 gradient steps and the final check on the clean-correct ones
    assert (stats.forwards, stats.backwards) == (64 + 8 * n, 7 * n)
    assert stats.backwards_per_image == pytest.approx(7 * n / 64)
    merged = stats.merge(stats)
    assert (merged.images, merged.forwards) == (128, 2 * stats.forwards)


# --- strength and checks on the trained model ------------------------------------------------


def test_robust_accuracy_curves_and_attack_ordering(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = data[0][:200], data[1][:200]
    idx = range(200)
    eps_list = [parse_eps(e) for e in ("2/255", "4/255", "8/255", "16/255")]
    curves: dict[str, list[float]] = {}
    settings = {"fgsm": {}, "pgd-linf": {}, "apgd-ce": {"n_iter": 50}, "apgd-t": {"n_iter": 50, "n_target_classes": 3}}
    worst: list[float] = []
    for eps in eps_list:
        success = {
            name: ATTACKS.get(name)(model, x, y, eps=eps, seed=0, indices=idx, **kw) for name, kw in settings.items()
        }
        for name, s in success.items():
            curves.setdefault(name, []).append(robust_accuracy(s))
        worst.append(robust_accuracy([success["apgd-ce"], success["apgd-t"]]))
    clean = clean_accuracy(model, x, y)
    assert clean > 0.85
    for name, curve in [*curves.items(), ("apgd worst case", worst)]:
        assert all(a >= b for a, b in itertools.pairwise(curve)), (name, curve)
        assert curve[0] <= clean
    assert curves["fgsm"][-1] < clean - 0.5, "the budgets must matter on this model"
    for w, pgd, fgsm in zip(worst, curves["pgd-linf"], curves["fgsm"]):
        assert w <= pgd <= fgsm, (worst, curves)


def test_pgd_agrees_with_direct_foolbox(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = data
    fb = foolbox()
    eps, steps, rel = 8 / 255, 20, 0.25
    ours = robust_accuracy(ATTACKS.get("pgd-linf")(model, x, y, eps=eps, seed=0, indices=range(len(x))))
    with torch.random.fork_rng():
        torch.manual_seed(0)
        attack = fb.attacks.LinfPGD(steps=steps, rel_stepsize=rel)
        _, _, success = attack(fb.PyTorchModel(model, bounds=(0, 1)), x, y, epsilons=eps)
    theirs = 1 - float(success.float().mean())
    assert 0.2 < ours < 0.8, "a budget where the attack is neither trivial nor hopeless"
    assert abs(ours - theirs) <= 0.01, (ours, theirs)


def test_foolbox_defaults_through_settings_agree(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = data
    fb = foolbox()
    ours = robust_accuracy(
        ATTACKS.get("pgd-l2")(model, x, y, eps=0.5, seed=1, indices=range(len(x)), steps=50, rel_stepsize=0.025)
    )
    with torch.random.fork_rng():
        torch.manual_seed(1)
        _, _, success = fb.attacks.L2PGD()(fb.PyTorchModel(model, bounds=(0, 1)), x, y, epsilons=0.5)
    assert abs(ours - (1 - float(success.float().mean()))) <= 0.01


@pytest.mark.parametrize("norm", [Norm.LINF, Norm.L2])
def test_apgd_matches_reference_from_the_same_start(
    norm: Norm, model: nn.Module, data: tuple[torch.Tensor, torch.Tensor]
) -> None:
    """Our APGD loop against pyautoattack's ``attack_single_run`` given the same start."""
    autopgd = pytest.importorskip("pyautoattack.autopgd_base")
    x, y = data[0][:150], data[1][:150]
    with torch.no_grad():
        logits = model(x)
    keep = logits.argmax(1) == y
    x, y, logits = x[keep], y[keep], logits[keep]
    eps = EPS[norm]
    start = random_start(x, eps, norm, Draws("test", 0, range(len(x))), "start", torch.arange(len(x)))
    ref_norm = {Norm.LINF: "Linf", Norm.L2: "L2"}[norm]
    target = logits.sort(dim=1)[1][:, -2]
    ce_ref = autopgd.APGDAttack(model, n_iter=30, norm=ref_norm, eps=eps, loss="ce", device=x.device)
    t_ref = autopgd.APGDAttack_targeted(model, n_iter=30, norm=ref_norm, eps=eps, device=x.device)
    t_ref.y_target = target
    for ref, loss in [(ce_ref, ce_loss), (t_ref, targeted_dlr_loss(target))]:
        ref.init_hyperparam(x)
        _, _, _, theirs = ref.attack_single_run(x, y, x_init=start)
        ours = apgd_single_run(model, x, y, start, eps=eps, norm=norm, loss=loss, n_iter=30)
        with torch.no_grad():
            assert torch.equal(model(ours).argmax(1) != y, model(theirs).argmax(1) != y)
        assert (ours - theirs).abs().max() < 0.05


def test_apgd_agrees_with_reference_perturb(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor]) -> None:
    """Whole APGD-CE runs (different random starts) agree within a point."""
    autopgd = pytest.importorskip("pyautoattack.autopgd_base")
    x, y = data[0][:400], data[1][:400]
    eps = 8 / 255
    ours = robust_accuracy(ATTACKS.get("apgd-ce")(model, x, y, eps=eps, seed=0, indices=range(400), n_iter=20))
    with torch.random.fork_rng():
        adv = autopgd.APGDAttack(model, n_iter=20, eps=eps, loss="ce", seed=0, device=x.device).perturb(x, y)
    theirs = clean_accuracy(model, adv, y)
    assert abs(ours - theirs) <= 0.01, (ours, theirs)


# --- determinism ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "settings"),
    [
        ("pgd-linf", {"steps": 5, "restarts": 2}),
        ("pgd-l2", {"steps": 5}),
        ("apgd-ce", {"n_iter": 8, "restarts": 2}),
        ("apgd-t", {"n_iter": 8, "n_target_classes": 2}),
        ("random-noise-linf", {"draws": 3}),
        ("random-noise-l2", {"draws": 3}),
        ("fgsm", {}),
    ],
)
def test_same_seed_same_result_for_any_batch_size(
    name: str, settings: dict, model: nn.Module, data: tuple[torch.Tensor, torch.Tensor]
) -> None:
    n = 64
    x, y = data[0][:n], data[1][:n]
    attack = ATTACKS.get(name)
    eps = EPS[attack.norm_of(**settings)] / 2
    results = []
    for batch in (1, 7, 64):
        parts = [
            attack(
                model,
                x[i : i + batch],
                y[i : i + batch],
                eps=eps,
                seed=5,
                indices=range(i, min(i + batch, n)),
                **settings,
            )
            for i in range(0, n, batch)
        ]
        results.append(torch.cat(parts))
    assert torch.equal(results[0], results[1]) and torch.equal(results[0], results[2])
    # a sample's result does not depend on where it sits in the batch either
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    shuffled = attack(model, x[perm], y[perm], eps=eps, seed=5, indices=perm.tolist(), **settings)
    assert torch.equal(shuffled, results[0][perm])


def test_pgd_restarts_only_help(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = data[0][:200], data[1][:200]
    one, three = (
        ATTACKS.get("pgd-linf")(model, x, y, eps=8 / 255, seed=0, indices=range(200), steps=5, restarts=r)
        for r in (1, 3)
    )
    assert bool((three | ~one).all()), "restart 0 is shared, later restarts only add successes"


def test_robust_mask_over_attacks(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = data[0][:100], data[1][:100]
    results = {
        name: ATTACKS.get(name)(model, x, y, eps=4 / 255, seed=0, indices=range(100), **FAST[name])
        for name in ("fgsm", "pgd-linf", "random-noise-linf")
    }
    mask = robust_mask(results)
    assert torch.equal(mask, ~(results["fgsm"] | results["pgd-linf"] | results["random-noise-linf"]))
    assert robust_accuracy(results) <= min(robust_accuracy(s) for s in results.values())


def test_settings_dataclasses_are_frozen() -> None:
    for _, attack in ATTACKS.items():
        settings = attack.settings()
        assert dataclasses.is_dataclass(settings)
        with pytest.raises(dataclasses.FrozenInstanceError):
            settings.__setattr__("x", 1)


@pytest.mark.slow
def test_autoattack_pair_at_defaults_agrees_with_reference(
    model: nn.Module, data: tuple[torch.Tensor, torch.Tensor]
) -> None:
    """APGD-CE then APGD-T (100 iterations, 9 targets) as AutoAttack ``standard`` runs them."""
    autopgd = pytest.importorskip("pyautoattack.autopgd_base")
    x, y = data[0][:300], data[1][:300]
    eps = 8 / 255
    ours = robust_accuracy(
        [ATTACKS.get(name)(model, x, y, eps=eps, seed=0, indices=range(300)) for name in ("apgd-ce", "apgd-t")]
    )
    with torch.random.fork_rng():
        adv = autopgd.APGDAttack(model, eps=eps, loss="ce", seed=0, device=x.device).perturb(x, y)
        robust = (model(adv).argmax(1) == y).detach()
        adv_t = autopgd.APGDAttack_targeted(model, eps=eps, seed=0, device=x.device).perturb(x[robust], y[robust])
        robust[robust.clone()] = (model(adv_t).argmax(1) == y[robust]).detach()
    theirs = float(robust.float().mean())
    assert abs(ours - theirs) <= 0.01, (ours, theirs)
