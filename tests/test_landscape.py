"""`robench landscape` / `robench train`: probes, curvature, schedules, the twin protocol and its report.

Everything runs on tiny demo ResNets (widths 4/4/4, 16-px synthetic images) so the file stays fast.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from robench.cli import main as cli_main
from robench.landscape.curvature import HessianVectorProduct, curvature, hutchinson_trace, top_eigenvalue
from robench.landscape.probes import GRIDS, Grid, activation_probe, weight_probe
from robench.landscape.report import write_report
from robench.landscape.schedules import SCHEDULES, ScaledSchedule
from robench.landscape.split import SPLITS
from robench.landscape.tables import CONVERGENCE_COLUMNS, CURVATURE_COLUMNS, LANDSCAPE_COLUMNS
from robench.landscape.train import BatchStream, TrainConfig, TrainData, build_twin, run_protocol
from robench.models.isqrtcov import ISqrtCovPool

WIDTHS = (4, 4, 4)


def _data(n: int = 64, classes: int = 3, seed: int = 0) -> TrainData:
    g = torch.Generator().manual_seed(seed)
    return TrainData(
        (torch.rand(n, 3, 16, 16, generator=g) * 255).to(torch.uint8), torch.randint(0, classes, (n,), generator=g),
        (torch.rand(24, 3, 16, 16, generator=g) * 255).to(torch.uint8), torch.randint(0, classes, (24,), generator=g),
    )


TINY = TrainConfig(batch_size=16, steps_per_epoch=2, epoch_scale=50, schedules=("lrnorm", "lradju"), probe_every=2,
                   curvature_every=2, power_iters=3, trace_samples=2, grid=Grid(0.05, 5.0, 4), widths=WIDTHS,
                   threads=None)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("landscape")
    result = run_protocol(TINY, _data(), seeds=(0,))
    write_report(result, out, title="test", scale=TINY.epoch_scale)
    return result, out


def _batch(pool: str = "gcp", seed: int = 0) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    model = build_twin(pool, seed, widths=WIDTHS, num_classes=3)
    x, t = BatchStream(_data(), 16, seed, flips=True)(0)
    return model, x, t


# --- probes -----------------------------------------------------------------------------------------------


def _official_probe(model: nn.Module, x: torch.Tensor, t: torch.Tensor, a: float, b: float, k: int):
    """An independent transcription of the GCP code's arithmetic (landscape/ResNet/main.py): modules called
    one by one in train mode, ``.backward()`` on leaves, numpy norms, ``deta = a + (b − a)/(K − 1)·i``."""
    twin = copy.deepcopy(model).train()
    net = twin.model
    with torch.no_grad():
        z = twin.normalize(x)
        y = net.relu(net.bn1(net.conv1(z)))

    def h(inp):
        return net.fc(net.global_pool(net.layer_reduce_relu(net.layer_reduce_bn(net.layer_reduce(
            net.layer3(net.layer2(net.layer1(inp))))))))

    y = y.detach().requires_grad_(True)
    loss0 = F.cross_entropy(h(y), t)
    net.zero_grad()
    loss0.backward()
    dy = y.grad.clone()
    theta = (b - a) / (k - 1)
    losses, norms = [], []
    for i in range(k):
        deta = a + theta * i
        inp = (y + deta * dy).detach().requires_grad_(True)
        net.zero_grad()
        loss = F.cross_entropy(h(inp), t)
        loss.backward()
        losses.append(float(loss.detach()))
        norms.append(float(np.linalg.norm((inp.grad - dy).numpy().reshape(-1))))
    return float(loss0.detach()), dy, losses, norms


@pytest.mark.parametrize("pool", ["gap", "gcp"])
def test_activation_probe_matches_official_formulas(pool):
    model, x, t = _batch(pool)
    grid = Grid(0.1, 75.0, 6)
    res = activation_probe(model, SPLITS.get("resnet_demo"), x, t, grid.etas())
    base, dy, losses, norms = _official_probe(model, x, t, 0.1, 75.0, 6)
    np.testing.assert_allclose(res.etas, [0.1 + (75 - 0.1) / 5 * i for i in range(6)], rtol=0, atol=1e-12)
    assert res.base_loss == pytest.approx(base, rel=1e-6)
    np.testing.assert_allclose(res.losses, losses, rtol=1e-5)
    np.testing.assert_allclose(res.grad_diffs, norms, rtol=1e-4, atol=1e-9)
    gnorm = float(np.linalg.norm(dy.numpy().reshape(-1)))
    assert res.grad_norm == pytest.approx(gnorm, rel=1e-5)
    beta = max(d / (eta * gnorm) for eta, d in zip(res.etas, norms))
    assert res.beta_eff == pytest.approx(beta, rel=1e-4)
    assert len(set(res.losses)) > 1 and max(res.grad_diffs) > 0  # the grid really moves the point


def test_beta_eff_tends_to_hessian_gradient_ratio():
    """As η → 0, d(η)/(η‖g‖) → ‖H_y g‖/‖g‖ (LANDSCAPE.md §5.4), H_y from one Hessian-vector product."""
    model, x, t = _batch("gcp")
    model = model.double()
    x = x.double()
    split = SPLITS.get("resnet_demo")
    twin = copy.deepcopy(model).train()
    for p in twin.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        y = split.stem(twin.model, twin.normalize(x))

    def loss(inp):
        return F.cross_entropy(split.rest(twin.model, inp), t)

    g = torch.autograd.grad(loss(y.requires_grad_(True)), y)[0]
    _, hg = torch.autograd.functional.hvp(loss, y.detach(), g)
    res = activation_probe(model, split, x, t, [1e-4])
    assert res.beta_eff == pytest.approx(float(hg.norm() / g.norm()), rel=1e-3)


def test_weight_probe_matches_manual_step():
    model, x, t = _batch("gap")
    res = weight_probe(model, None, x, t, [0.05, 0.4])
    twin = copy.deepcopy(model).train()
    params = dict(twin.named_parameters())
    buffers = {k: v.clone() for k, v in twin.named_buffers()}
    g = torch.autograd.grad(F.cross_entropy(twin(x), t), list(params.values()))
    flat_g = torch.cat([v.flatten() for v in g])
    for eta, loss_k, d_k in zip(res.etas, res.losses, res.grad_diffs):
        moved = {k: (p - eta * gi).detach().requires_grad_(True) for (k, p), gi in zip(params.items(), g)}
        out = functional_call(twin, {**moved, **{k: v.clone() for k, v in buffers.items()}}, (x,))
        lk = F.cross_entropy(out, t)
        gk = torch.autograd.grad(lk, list(moved.values()))
        assert loss_k == pytest.approx(float(lk.detach()), rel=1e-5)
        assert d_k == pytest.approx(float((torch.cat([v.flatten() for v in gk]) - flat_g).norm()), rel=1e-4)
    assert res.grad_norm == pytest.approx(float(flat_g.norm()), rel=1e-5)


def test_probes_touch_nothing():
    model, x, t = _batch("gcp")
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    activation_probe(model, SPLITS.get("resnet_demo"), x, t, [0.1, 1.0])
    weight_probe(model, None, x, t, [0.05])
    curvature(model, x, t, power_iters=2, trace_samples=2)
    assert torch.equal(torch.get_rng_state(), rng)
    assert model.training and all(p.grad is None for p in model.parameters())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_probes_leave_training_untouched(tiny_run):
    """A run with probes and Hessian probes ends with bit-identical weights to a run without them."""
    result, _ = tiny_run
    plain = run_protocol(TINY, _data(), seeds=(0,), probes=False)
    assert result.weights.keys() == plain.weights.keys()
    for key, state in result.weights.items():
        for name, value in state.items():
            assert torch.equal(value, plain.weights[key][name]), (key, name)
    assert result.convergence == plain.convergence


def test_grid_presets_and_validation():
    paper = GRIDS.get("resnet18").etas()
    assert len(paper) == 50 and paper[0] == 0.1 and paper[-1] == pytest.approx(75.0)
    assert paper[1] - paper[0] == pytest.approx(1.5286, abs=1e-4)
    assert GRIDS.get("mobilenet_v2").etas()[1] - 0.045 == pytest.approx(0.029694, abs=1e-6)
    assert GRIDS.get("demo").stop == pytest.approx(75.0 * 128 / 256)
    with pytest.raises(ValueError, match="--eta-min"):
        Grid(0.0, 1.0, 5)


# --- curvature --------------------------------------------------------------------------------------------


class _Tiny(nn.Module):
    """Conv → BN → ReLU → GAP or iSQRT-COV → linear: ~100 parameters, small enough for a dense Hessian."""

    def __init__(self, gcp: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, bias=False)
        self.bn = nn.BatchNorm2d(3)
        self.pool = ISqrtCovPool() if gcp else nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(6 if gcp else 3, 4)

    def forward(self, x):
        return self.fc(self.pool(torch.relu(self.bn(self.conv(x)))).flatten(1))


@pytest.mark.parametrize("gcp", [False, True])
def test_hessian_probes_match_dense_hessian(gcp):
    torch.manual_seed(0)
    model = _Tiny(gcp).double().train()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(12, 3, 6, 6, generator=g, dtype=torch.float64)
    t = torch.randint(0, 4, (12,), generator=g)
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    sizes = [p.numel() for p in model.parameters()]
    buffers = {k: v.clone() for k, v in model.named_buffers()}

    def loss(flat):
        params = {n: c.view(s) for n, c, s in zip(names, flat.split(sizes), shapes)}
        return F.cross_entropy(functional_call(model, {**params, **{k: v.clone() for k, v in buffers.items()}},
                                               (x,)), t)

    w = torch.cat([p.detach().flatten() for p in model.parameters()])
    dense = torch.autograd.functional.hessian(loss, w)
    eig = torch.linalg.eigvalsh(dense)
    top = float(eig[eig.abs().argmax()])
    hvp = HessianVectorProduct(model, x, t)
    found = top_eigenvalue(hvp, max_iter=1000, tol=1e-7, generator=torch.Generator().manual_seed(0))
    assert found.converged
    assert found.value == pytest.approx(top, rel=0.01)
    trace = hutchinson_trace(hvp, samples=200, generator=torch.Generator().manual_seed(0))
    exact = float(dense.trace())
    assert abs(trace.value - exact) <= 2 * trace.stderr  # a 95 % statement; deterministic for this seed
    # and the reported standard error is the Rademacher variance 2·Σ_{i≠j} H_ij² / m
    off = dense - torch.diag(dense.diagonal())
    assert trace.stderr == pytest.approx(math.sqrt(2 * float(off.square().sum()) / 200), rel=0.25)


# --- schedules --------------------------------------------------------------------------------------------


def test_schedule_formulas_match_landscape_md():
    lrnorm, lrfast, lradju = (SCHEDULES.get(n) for n in ("lrnorm", "lrfast", "lradju"))
    assert (lrnorm.epochs, lrfast.epochs, lradju.epochs) == (100, 30, 50)
    assert lrnorm.lr(29) == pytest.approx(0.1) and lrnorm.lr(30) == pytest.approx(0.01)
    assert lrnorm.lr(99) == pytest.approx(1e-4)
    assert lrfast.lr(0) == pytest.approx(0.123, abs=5e-4)  # 0.1·(53/52)^11: epochs start at 0, e_start at 1
    assert lrfast.lr(29) == pytest.approx(2.0e-5, rel=0.05)
    assert lradju.lr(0) == pytest.approx(0.104, abs=5e-4)
    assert lradju.lr(49) == pytest.approx(4.2e-5, rel=0.05)
    assert SCHEDULES.get("mbv2-lrnorm").lr(1) == pytest.approx(0.045 * 0.98)
    assert SCHEDULES.get("mbv2-lradju").lr(75) == pytest.approx(0.0055)
    scaled = ScaledSchedule(lrnorm, 5)
    assert scaled.epochs == 20 and scaled.lr(5) == pytest.approx(0.1) and scaled.lr(6) == pytest.approx(0.01)
    assert ScaledSchedule(lrfast, 5).epochs == 6 and ScaledSchedule(lradju, 5).epochs == 10


# --- protocol and report ----------------------------------------------------------------------------------


def test_twins_share_backbone_and_batches():
    gap, gcp = build_twin("gap", 3, widths=WIDTHS), build_twin("gcp", 3, widths=WIDTHS)
    shared = [k for k in gap.state_dict() if k.startswith(("model.conv1", "model.bn1", "model.layer"))]
    assert shared and all(torch.equal(gap.state_dict()[k], gcp.state_dict()[k]) for k in shared)
    assert not torch.equal(build_twin("gap", 4, widths=WIDTHS).model.conv1.weight, gap.model.conv1.weight)
    a, b = BatchStream(_data(), 16, 3, True), BatchStream(_data(), 16, 3, True)
    for step in (5, 0, 9):  # any access order, across passes over the data
        assert all(torch.equal(u, v) for u, v in zip(a(step), b(step)))


def test_csv_columns_and_files(tiny_run):
    _, out = tiny_run
    land = pd.read_csv(out / "landscape.csv")
    assert tuple(land.columns) == LANDSCAPE_COLUMNS
    assert tuple(pd.read_csv(out / "curvature.csv").columns[:5]) == CURVATURE_COLUMNS
    assert tuple(pd.read_csv(out / "convergence.csv").columns) == CONVERGENCE_COLUMNS
    # one row per model × probe step × η: 2 poolings × probes at steps 0, 2 of the 4-step LRnorm run × 4 etas
    assert len(land) == 2 * 2 * 4 and set(land.pooling) == {"gap", "gcp"}
    conv = pd.read_csv(out / "convergence.csv")
    assert len(conv) == 2 * (2 + 1)  # lrnorm 100/50 = 2 demo epochs, lradju 50/50 = 1
    for name in ("landscape_bands", "beta_eff", "curvature", "convergence", "loss_vs_eta"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000
    page = (out / "index.html").read_text()
    assert "data:image/png;base64" in page and "http" not in page.replace("http-equiv", "")
    assert pd.read_csv(out / "matching.csv").matching_epoch.notna().any()


def test_same_seed_same_csvs(tiny_run, tmp_path):
    _, out = tiny_run
    write_report(run_protocol(TINY, _data(), seeds=(0,)), tmp_path, title="test", scale=TINY.epoch_scale)
    for name in ("landscape.csv", "curvature.csv", "convergence.csv", "probes.csv"):
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes(), name


@pytest.mark.slow  # two demo models, 20 power iterations + 20 Hutchinson samples per batch
def test_checkpoint_probe_on_zoo_models(monkeypatch, tmp_path):
    """`robench landscape --ckpt demo-gap --ckpt demo-gcp` on the same (synthetic) training images."""
    from robench.landscape import at_weights

    g = torch.Generator().manual_seed(0)
    images = (torch.rand(40, 28, 28, generator=g) * 255).to(torch.uint8).numpy()
    labels = torch.randint(0, 10, (40,), generator=g).to(torch.uint8).numpy()
    monkeypatch.setattr(at_weights.fashion_mnist, "load_split", lambda split, data=None: (images, labels))
    code = cli_main(["-q", "landscape", "--limit", "16", "--batch-size", "8", "--points", "3",
                     "--out", str(tmp_path)])
    assert code == 0
    land = pd.read_csv(tmp_path / "landscape.csv")
    assert set(land.model) == {"demo-gap", "demo-gcp"} and sorted(land.step.unique()) == [0, 1]
    assert len(land) == 2 * 2 * 3
    assert len(pd.read_csv(tmp_path / "curvature.csv")) == 4


@pytest.mark.parametrize(("args", "needle"), [
    (["train", "--data", "/nonexistent-fmnist"], "Fashion-MNIST file"),
    (["landscape", "--train", "--data", "/nonexistent-fmnist"], "--data DIR"),
    (["landscape", "--ckpt", "no-such-model"], "Unknown model"),
    (["landscape", "--train", "--ckpt", "demo-gap"], "drop --ckpt"),
    (["landscape", "--grid", "resnet19"], "Did you mean: resnet18"),
    (["landscape", "--train", "--preset", "fast"], "Unknown landscape preset"),
    (["train", "--schedule", "lrfastest"], "Did you mean: lrfast"),
    (["landscape", "--eta-min", "0"], "--eta-min"),
])
def test_cli_user_errors_are_one_line(capsys, args, needle):
    assert cli_main(["-q", *args]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and needle in err[0], err


def test_runs_apart_combine_to_the_joint_report(tiny_run, tmp_path):
    """GAP and GCP trained in separate processes, combined with `--from`, give the joint run's CSVs."""
    _, joint = tiny_run
    for pool in ("gap", "gcp"):
        write_report(run_protocol(TINY, _data(), seeds=(0,), pools=(pool,)), tmp_path / pool, title="t",
                     scale=TINY.epoch_scale)
    assert cli_main(["-q", "landscape", "--from", str(tmp_path / "gap"), "--from", str(tmp_path / "gcp"),
                     "--out", str(tmp_path / "both")]) == 0
    for name in ("landscape.csv", "curvature.csv", "convergence.csv", "probes.csv", "matching.csv"):
        assert (tmp_path / "both" / name).read_bytes() == (joint / name).read_bytes(), name
    assert cli_main(["-q", "landscape", "--from", str(tmp_path / "gap"), "--from", str(tmp_path / "gap"),
                     "--out", str(tmp_path / "dup")]) == 2
