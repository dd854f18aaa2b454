"""Issue #16: FAB-T, Square, standard AutoAttack against pyautoattack, and the attack cascade."""

from __future__ import annotations

import itertools
import logging
import re

import numpy as np
import pytest
import torch

from robench.attacks import ATTACKS, Norm
from robench.attacks._base import Draws
from robench.attacks.cascade import autoattack_attacks, cascade_order
from robench.data.fashion_mnist import load_demo_subset, to_model_input
from robench.errors import InputError
from robench.models import load_model
from robench.models.inference import for_inference
from robench.suites import parse_suite

EPS = 8 / 255


@pytest.fixture(scope="module")
def demo():
    """demo-gap in the evaluator's inference form (logits and gradients bit-identical whatever the batch) and
    the first 240 images of the shipped subset, with a mask of the clean-correct ones."""
    model = for_inference(load_model("demo-gap"), torch.device("cpu"))
    images, labels = load_demo_subset()
    x = to_model_input(images[:240]).float() / 255
    y = torch.as_tensor(labels[:240].astype("int64"))
    with torch.no_grad():
        ok = model(x).argmax(1) == y
    return model, x, y, ok


def _correct(demo, n):
    model, x, y, ok = demo
    idx = ok.nonzero().flatten()[:n]
    return model, x[idx], y[idx], idx.tolist()


# ---- the building blocks against the reference ----------------------------------------------------------


def test_fab_projections_match_the_reference():
    ref = pytest.importorskip("pyautoattack.fab_projections")
    from robench.attacks.fab import project_l2, project_linf

    g = torch.Generator().manual_seed(0)
    for dim in (5, 300, 3072):
        t = torch.rand(48, dim, generator=g)
        w = torch.randn(48, dim, generator=g)
        w[:, :2] = 0  # zero weights take the special path
        b = torch.randn(48, generator=g) * dim**0.5  # some hyperplanes out of the box's reach
        assert torch.equal(project_linf(t, w, b), ref.projection_linf(t, w, b))
        assert torch.allclose(project_l2(t, w, b), ref.projection_l2(t, w, b), atol=1e-6)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_fab_targeted_run_matches_the_reference(demo, norm):
    fab_pt = pytest.importorskip("pyautoattack.fab_pt")
    from robench.attacks.fab import FABSettings, fab_targeted_run

    model, x, y, _ = _correct(demo, 10)
    ref = fab_pt.FABAttack_PT(model, norm={"linf": "Linf", "l2": "L2"}[norm], n_iter=15, eps=EPS, targeted=True,
                              device="cpu")
    ref.target_class = 2
    expected = ref.attack_single_run(x, y, use_rand_start=False, is_targeted=True)
    with torch.no_grad():
        target = model(x).sort(dim=1)[1][:, -2]
    adv, size = fab_targeted_run(model, x, y, target, x.clone(), norm=Norm(norm), settings=FABSettings(n_iter=15))
    found = torch.isfinite(size)
    assert found.sum() >= 5, "FAB-T found too few adversarial points for the comparison to mean anything"
    # The reference returns the clean image where it found nothing, as this run does.
    tol = 0.0 if norm == "linf" else 1e-4  # L2: the norms are summed in another order
    assert (adv - expected).abs().max() <= tol


def _replayed(square_attack, start, u, c, w):
    """The reference Square class with its global-RNG draws replaced by one sample's stream, in our order."""
    step = {"it": 0, "k": 0}

    class Replayed(square_attack):
        def random_choice(self, shape):
            if list(shape) == [1, c, 1, w]:
                return torch.sign(2 * start - 1).unsqueeze(0)
            it = step["it"]
            step["it"] += 1
            return torch.sign(2 * u[it, 2:] - 1).view(c, 1, 1)

        def random_int(self, low=0, high=1, shape=(1,)):
            k = step["k"]
            step["k"] = 1 - k
            return (high * u[step["it"], k]).long()

    return Replayed


def test_square_linf_matches_the_reference_given_the_same_draws(demo):
    square = pytest.importorskip("pyautoattack.square")
    from robench.attacks.square import SquareSettings, _linf

    model, x, y, idx = _correct(demo, 3)
    queries, eps = 150, 4 / 255
    c, _, w = x.shape[1:]
    for k in range(len(y)):
        xi, yi = x[k:k + 1], y[k:k + 1]
        draws = Draws("square", 0, [idx[k]])
        rng = draws.rng("restart0")  # the streams the attack draws from, in its order
        start, u = rng.uniform((c, 1, w))[0], rng.uniform((queries, 2 + c))[0]
        ref = _replayed(square.SquareAttack, start, u, c, w)(
            model, norm="Linf", n_queries=queries, eps=eps, p_init=0.8, resc_schedule=False, device="cpu")
        ref.init_hyperparam(xi)
        _, expected = ref.attack_single_run(xi, yi)
        got = _linf(model, xi, yi, eps, draws, "restart0", torch.tensor([0]), SquareSettings(n_queries=queries))
        assert torch.equal(got, expected)
        assert not torch.equal(got, xi)


@pytest.mark.parametrize(
    ("name", "settings"),
    [
        ("fab-t", {"n_iter": 10, "n_target_classes": 2, "restarts": 2}),  # restart 2 draws a random start
        ("fab-t", {"norm": "l2", "n_iter": 10, "n_target_classes": 2, "restarts": 2}),
        ("square", {"n_queries": 60}),
        ("square", {"norm": "l2", "n_queries": 60}),
    ],
)
def test_fab_t_and_square_do_not_depend_on_the_batch(demo, name, settings):
    model, x, y, idx = _correct(demo, 9)
    attack = ATTACKS.get(name)
    cfg = attack.settings(**settings)
    eps = {("fab-t", "linf"): EPS, ("fab-t", "l2"): 1.0, ("square", "linf"): 2 / 255, ("square", "l2"): 0.5}[
        name, cfg.norm]

    def run(parts):
        out = []
        for part in parts:
            out.append(attack.run(model, x[part], y[part], eps=eps, draws=Draws(name, 0, [idx[i] for i in part]),
                                  settings=cfg))
        return torch.cat(out)

    whole = run([list(range(9))])
    for sizes in ([1] * 9, [2, 7]):
        bounds = np.cumsum([0, *sizes])
        assert torch.equal(run([list(range(a, b)) for a, b in itertools.pairwise(bounds)]), whole), sizes
    assert (whole != x).flatten(1).any(1).sum() >= 3, "the attack changed too little: the test would prove nothing"
    size = attack.norm(cfg).size(whole - x)
    assert (size <= eps * (1 + 1e-5)).all() and whole.min() >= 0 and whole.max() <= 1


def test_fab_t_breaks_the_same_images_as_the_reference_at_8_255(demo):
    """FAB-T with AutoAttack's settings (9 targets, 100 iterations, one restart: no random draws) against
    the reference's ``perturb`` on the same images."""
    fab_pt = pytest.importorskip("pyautoattack.fab_pt")
    model, x, y, idx = _correct(demo, 12)
    ours = ATTACKS.get("fab-t")(model, x, y, eps=EPS, seed=0, indices=idx)
    ref = fab_pt.FABAttack_PT(model, norm="Linf", n_iter=100, eps=EPS, targeted=True, n_target_classes=9, seed=0,
                              device="cpu")
    with torch.no_grad():
        theirs = model(ref.perturb(x, y)).argmax(1) != y
    assert torch.equal(ours, theirs)
    assert ours.sum() >= 6, f"FAB-T broke only {int(ours.sum())} of 12 images: the comparison would be weak"


# ---- standard AutoAttack against pyautoattack ------------------------------------------------------------


def robench_standard(model, x, y, indices, eps, norm="linf"):
    """robench's standard AutoAttack cascade: per attack, the images it broke first (clean errors apart)."""
    with torch.no_grad():
        broken = model(x).argmax(1) != y
    counts = {"clean errors": int(broken.sum())}
    for name, settings in autoattack_attacks("standard", Norm(norm)).items():
        success = ATTACKS.get(name)(model, x, y, eps=eps, seed=0, indices=indices, skip=broken, **settings)
        counts[name] = int((success & ~broken).sum())
        broken |= success
    return 1 - float(broken.float().mean()), counts


class _Lines(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def reference_standard(model, x, y, eps, norm="Linf"):
    """pyautoattack's standard AutoAttack: robust accuracy and, per attack, the images it broke (from its log)."""
    autoattack = pytest.importorskip("pyautoattack")
    aa = autoattack.AutoAttack(model, norm=norm, eps=eps, version="standard", seed=0, device="cpu")
    handler = _Lines()
    logger = logging.getLogger("auto-attack")
    old = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        x_adv, _ = aa.run_standard_evaluation(x, y, batch_size=len(y))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)
    with torch.no_grad():
        robust = float((model(x_adv).argmax(1) == y).float().mean())
    counts = {"clean errors": int((model(x).argmax(1) != y).sum())}
    for line in handler.lines:
        m = re.match(r"(\S+) - \d+/\d+ - (\d+) out of \d+ successfully perturbed", line)
        if m:
            counts[m.group(1)] = counts.get(m.group(1), 0) + int(m.group(2))
    return robust, counts


def _parity(demo, n, eps=EPS, tolerance=0.01):
    model, x_all, y_all, _ = demo
    x, y = x_all[:n], y_all[:n]
    ours, our_counts = robench_standard(model, x, y, list(range(n)), eps)
    theirs, their_counts = reference_standard(model, x, y, eps)
    message = (f"{n} images at {eps * 255:g}/255 Linf: robench RA {ours:.2%} (broken per attack: {our_counts}); "
               f"pyautoattack RA {theirs:.2%} (broken per attack: {their_counts})")
    print(message)
    assert abs(ours - theirs) <= tolerance + 1e-9, message
    return our_counts, their_counts


def test_standard_autoattack_agrees_with_pyautoattack(demo):
    _parity(demo, 48)


@pytest.mark.slow
def test_standard_autoattack_agrees_with_pyautoattack_on_200_images(demo):
    _parity(demo, 200)


@pytest.mark.slow
def test_standard_autoattack_agrees_with_pyautoattack_where_every_attack_runs(demo):
    """At 8/255 APGD-CE already breaks every demo image; at 3/255 APGD-T, FAB-T and Square all run on the
    images left. Square's per-sample draws differ from the reference's batch-shared ones, so one image of
    the 40 (2.5 points) may go either way."""
    _parity(demo, 40, eps=3 / 255, tolerance=1 / 40)


# ---- suites: autoattack = "standard" and the cascade ------------------------------------------------------


def _suite(**attacks):
    return parse_suite({"clean": {}, "attacks": {"eps": ["8/255"]} | attacks})


def test_autoattack_standard_names_the_four_attacks_with_the_reference_settings():
    for norm in ("linf", "l2"):
        suite = _suite(autoattack="standard", norm=norm)
        items = [i for i in suite.items if i.kind == "attack"]
        assert [i.name for i in items] == ["apgd-ce", "apgd-t", "fab-t", "square"]
        assert all(i.settings["attack"]["norm"] == norm and i.settings["cascade"] for i in items)
        assert items[3].settings["attack"]["n_queries"] == 5000
        assert items[2].settings["attack"]["n_target_classes"] == 9
    assert "cascade" not in _suite(autoattack="standard", cascade=False).items[1].settings


@pytest.mark.parametrize(
    ("attacks", "message"),
    [
        ({"autoattack": "plus"}, "autoattack 'plus' is not supported"),
        ({"autoattack": "standard", "names": ["fgsm"]}, "fixes the attacks"),
        ({"names": ["fgsm"], "cascade": "yes"}, "attacks.cascade has the wrong type"),
    ],
)
def test_bad_autoattack_and_cascade_options_are_rejected(attacks, message):
    with pytest.raises(InputError, match=message):
        _suite(**attacks)


def test_cascade_order_is_eps_ascending_then_attack_order():
    suite = parse_suite({"attacks": {"eps": ["8/255", "2/255"], "names": ["fgsm", "pgd-linf"]}})
    order = [(i.name, i.settings["eps_text"][lv - 1]) for i, lv in cascade_order(suite.items)]
    assert order == [("fgsm", "2/255"), ("pgd-linf", "2/255"), ("fgsm", "8/255"), ("pgd-linf", "8/255")]


CASCADE_SUITE = """
name = "{name}"
dataset = "fashion-mnist-demo"
param_set = "cifar"
limit = 24

[clean]

[attacks]
norm = "linf"
eps = ["2/255", "8/255"]
names = ["fgsm", "pgd-linf", "apgd-ce"]
cascade = {cascade}

[attacks.settings.pgd-linf]
steps = 5

[attacks.settings.apgd-ce]
n_iter = 10
"""


@pytest.fixture(scope="module")
def cascade_runs(tmp_path_factory):
    """The same attacks on demo-gap with and without the cascade, and the cells each stored."""
    from robench.evaluate import EvalConfig, run_eval
    from robench.report import load_results

    tmp = tmp_path_factory.mktemp("cascade")
    cells = {"stores": {}}
    for cascade in ("true", "false"):
        path = tmp / f"c-{cascade}.toml"
        path.write_text(CASCADE_SUITE.format(name=f"c-{cascade}", cascade=cascade))
        summary = run_eval(EvalConfig(ckpts=("demo-gap",), suite=str(path), out=tmp / cascade, batch_size=10))
        cells["stores"][cascade] = summary.store
        df = load_results(summary.store, indices=True)
        cells[cascade] = df[df.kind == "attack"].set_index(["item", "eps"])
    return cells


def test_cascade_gives_the_worst_case_of_every_attack_at_every_smaller_eps(cascade_runs):
    """Cascaded robust images at eps e = images that survive every attack at every eps <= e without the
    cascade (an adversarial example at a smaller eps is one at e); per-sample draws make it exact."""
    on, off = cascade_runs["true"], cascade_runs["false"]
    survivors, sizes = None, []
    for eps in ("2/255", "8/255"):
        plain = set.intersection(*(set(off.loc[(a, eps)].robust_idx) for a in ("fgsm", "pgd-linf", "apgd-ce")))
        survivors = plain if survivors is None else survivors & plain
        assert set(on.loc[("apgd-ce", eps)].robust_idx) == survivors
        # Here the attacks are monotone in eps, so the cascade changes no worst case at all.
        assert survivors == plain
        sizes.append(len(survivors))
    assert 0 < sizes[0] < 24 and sizes[1] < sizes[0], f"survivors {sizes}: a trivial worst case would prove nothing"


def test_cascade_cuts_gradient_evaluations(cascade_runs):
    on, off = cascade_runs["true"], cascade_runs["false"]
    grads_on, grads_off = int(on.backwards.sum()), int(off.backwards.sum())
    print(f"image gradients: {grads_off} without the cascade, {grads_on} with it ({grads_off / grads_on:.1f}x fewer)")
    assert grads_on < 0.7 * grads_off
    # Every cell still classified every image (clean accuracy is the same on both paths).
    assert (on.clean_correct.to_numpy() == off.clean_correct.to_numpy()).all()


def test_attacks_table_reports_the_cascade_gains(cascade_runs):
    from robench.report import leaderboard

    for cascade, store in cascade_runs["stores"].items():
        table = leaderboard(store, kind="attacks")
        if cascade == "false":
            assert table.cascade_gain.isna().all()
            continue
        table = table.assign(e=table.eps.map({"2/255": 0, "8/255": 1}),
                             p=table.attack.map({"fgsm": 0, "pgd-linf": 1, "apgd-ce": 2})).sort_values(["e", "p"])
        assert (table.cascade_gain >= 0).all() and (np.diff(table.robust_acc) <= 0).all()
        # The gains add up from clean accuracy to the final worst case.
        clean = 100.0 * cascade_runs["true"].clean_correct.iloc[0] / 24
        assert table.cascade_gain.sum() == pytest.approx(clean - table.robust_acc.iloc[-1])
