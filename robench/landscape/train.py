"""The training-time protocol: GAP and GCP twins under the paper's schedules, probed as they train.

For every seed, both poolings start from the same backbone initialisation and see the
same minibatches and flips (separate random streams for the weights and the data, so
the GCP head's extra parameters do not shift the data order). Each schedule of the
config is one run; the first (``lrnorm`` by default) carries the probes: at every
``probe_every``-th step, on that step's minibatch and the weights *before* the
optimiser step, the landscape probe (and, at ``curvature_every``, the Hessian probes)
run on a copy of the model. Training itself never sees the probes (tested: the final
weights are bit-identical with and without them).

Epochs are scaled (LANDSCAPE.md §5.5): a *demo epoch* is ``steps_per_epoch`` steps, and
it trains at the paper's rate of epoch ``epoch_scale·u`` (see :class:`ScaledSchedule`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robench._progress import progress
from robench._registry import Registry
from robench._rng import stream_seed
from robench.data import fashion_mnist
from robench.errors import InputError
from robench.landscape.curvature import curvature
from robench.landscape.probes import GRIDS, SPACES, Grid
from robench.landscape.schedules import SCHEDULES, ScaledSchedule
from robench.landscape.split import SPLITS
from robench.models.archs import ARCHS
from robench.models.pooling import POOLINGS
from robench.models.resnet import DEMO_WIDTHS, DemoResNet, init_weights
from robench.models.train_demo import accuracy, torch_threads
from robench.models.wrap import Normalized

ARCH = "resnet_demo"


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a protocol run (one preset = one instance).

    Attributes:
        batch_size: Minibatch (also the probe batch).
        momentum: SGD momentum (0.9 in the paper).
        weight_decay: SGD weight decay (1e-4, the paper's ResNet value; not in the probed loss).
        steps_per_epoch: Steps of one demo epoch.
        epoch_scale: Paper epochs per demo epoch.
        max_epochs: Cut every run after this many demo epochs (``None``: the schedule's length).
        schedules: Schedule names; the first run carries the probes.
        probe_every: Probe interval in steps (0: no probes).
        probe_until: No probes from this step on (``None``: the whole probe run).
        space: Probe space (``SPACES``).
        grid: The step grid.
        curvature_every: Hessian probes at steps that are multiples of this (0: none).
        power_iters: Power-iteration budget for the top eigenvalue.
        tol: Its relative tolerance.
        trace_samples: Rademacher samples for Hutchinson's trace.
        eval_images: Test images for top-1 after each demo epoch (the shipped subset's first N).
        widths: Stage widths of the demo ResNet.
        threads: Torch threads while training (``None``: leave as is).
        flips: Random horizontal flips (as the demo recipe).
    """

    batch_size: int = 128
    momentum: float = 0.9
    weight_decay: float = 1e-4
    steps_per_epoch: int = 10
    epoch_scale: int = 5
    max_epochs: int | None = None
    schedules: tuple[str, ...] = ("lrnorm", "lrfast", "lradju")
    probe_every: int = 40
    probe_until: int | None = None
    space: str = "activation"
    grid: Grid = field(default_factory=lambda: GRIDS.get("demo"))
    curvature_every: int = 80
    power_iters: int = 10
    tol: float = 1e-3
    trace_samples: int = 10
    eval_images: int = 2000
    widths: tuple[int, ...] = DEMO_WIDTHS
    threads: int | None = 2
    flips: bool = True

    def __post_init__(self) -> None:
        for name in self.schedules:
            SCHEDULES.get(name)
        SPACES.get(self.space)
        if not self.schedules:
            raise InputError("Give at least one schedule (--schedule lrnorm|lrfast|lradju).")
        for what in ("batch_size", "steps_per_epoch", "epoch_scale"):
            if getattr(self, what) < 1:
                raise InputError(f"{what.replace('_', '-')} must be >= 1, got {getattr(self, what)}.")
        if self.probe_every < 0 or self.curvature_every < 0:
            raise InputError("probe and curvature intervals must be >= 0 (0 switches them off).")

    def run_epochs(self, schedule: str) -> int:
        n = ScaledSchedule(SCHEDULES.get(schedule), self.epoch_scale).epochs
        return n if self.max_epochs is None else min(n, self.max_epochs)

    def total_steps(self) -> int:
        return sum(self.run_epochs(s) for s in self.schedules) * self.steps_per_epoch


PRESETS: Registry[TrainConfig] = Registry("landscape preset")
PRESETS.add("quick", TrainConfig())
PRESETS.add("paper", TrainConfig(
    batch_size=256, steps_per_epoch=234, epoch_scale=1, max_epochs=3, schedules=("lrnorm",), probe_every=25,
    grid=GRIDS.get("resnet18"), curvature_every=234, power_iters=20, trace_samples=50))
PRESET_NOTES = {
    "quick": "batch 128, demo epoch = 10 steps = 5 paper epochs (LRnorm 20 demo epochs = 200 steps, LRfast 6, "
             "LRadju 10), probes every 40 steps of the LRnorm run on the 50-point 'demo' grid, Hessian (10 power "
             "iterations, 10 Rademacher samples) every 80 steps, top-1 on the 2,000-image shipped test subset after "
             "every demo epoch",
    "paper": "batch 256, 3 real epochs at lr 0.1 (LRnorm's first phase), probes every 25 steps on the GCP code's "
             "ResNet-18 grid [0.1, 75], Hessian once per epoch; no fast-decay runs",
}


@dataclass(frozen=True)
class TrainData:
    """uint8 ``N×3×H×W`` images and int64 labels for training and for the per-epoch test."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    name: str = "fashion-mnist"


def load_fashion_mnist(data: Path | None = None, eval_images: int = 2000) -> TrainData:
    """Fashion-MNIST training split (Debian's folder or ``data``) and the shipped 2k test subset."""
    train_x, train_y = fashion_mnist.load_split("train", data)
    sub_x, sub_y = fashion_mnist.load_demo_subset()
    return TrainData(
        fashion_mnist.to_model_input(train_x), torch.from_numpy(train_y.astype(np.int64)),
        fashion_mnist.to_model_input(sub_x[:eval_images]), torch.from_numpy(sub_y[:eval_images].astype(np.int64)),
    )


def _generator(seed: int, key: str) -> torch.Generator:
    return torch.Generator().manual_seed(stream_seed(seed, key, 0))


def build_twin(pool: str, seed: int, *, widths: tuple[int, ...] = DEMO_WIDTHS, num_classes: int = 10) -> nn.Module:
    """A demo ResNet with ``pool``'s head; the backbone's initial weights depend on ``seed`` only.

    Modules are initialised in registration order, backbone first, from a generator of
    their own, so the GAP and GCP twins of a seed share every backbone weight.
    """
    spec = ARCHS.get(ARCH)
    net = DemoResNet(POOLINGS.get(pool), num_classes=num_classes, widths=widths)
    init_weights(net, generator=_generator(seed, "init"))
    return Normalized(net, spec.mean, spec.std)


class BatchStream:
    """Minibatch ``t`` of a run: reshuffled each pass over the data, flips drawn with the order.

    The stream depends on the seed and the data only, so every pooling and schedule of a
    seed sees the same batches (shorter runs see a prefix).
    """

    def __init__(self, data: TrainData, batch_size: int, seed: int, flips: bool) -> None:
        n = len(data.train_labels)
        if n < batch_size:
            raise InputError(f"{n} training images are fewer than one batch of {batch_size}; lower --batch-size.")
        self.data, self.batch_size, self.flips = data, batch_size, flips
        self.per_pass = n // batch_size
        self._gen = _generator(seed, "data")
        self._passes: list[tuple[torch.Tensor, torch.Tensor]] = []

    def __call__(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        k, pos = divmod(step, self.per_pass)
        n = len(self.data.train_labels)
        while len(self._passes) <= k:
            self._passes.append((torch.randperm(n, generator=self._gen), torch.rand(n, generator=self._gen) < 0.5))
        order, flips = self._passes[k]
        idx = order[pos * self.batch_size : (pos + 1) * self.batch_size]
        x = self.data.train_images[idx].to(torch.float32).div_(255.0)
        if self.flips:
            x = torch.where(flips[idx, None, None, None], x.flip(-1), x)
        return x, self.data.train_labels[idx]


@dataclass
class ProtocolResult:
    """Rows of the four tables (dicts in column order) and the final weights of every run."""

    landscape: list[dict[str, Any]] = field(default_factory=list)
    probes: list[dict[str, Any]] = field(default_factory=list)
    curvature: list[dict[str, Any]] = field(default_factory=list)
    convergence: list[dict[str, Any]] = field(default_factory=list)
    weights: dict[tuple[str, str], dict[str, torch.Tensor]] = field(default_factory=dict)


def model_name(pool: str, seed: int) -> str:
    return f"{ARCH}-{pool}-s{seed}"


def _train_run(cfg: TrainConfig, data: TrainData, pool: str, schedule: str, seed: int, *, probe: bool,
               out: ProtocolResult, bar: Any) -> nn.Module:
    model = build_twin(pool, seed, widths=cfg.widths, num_classes=int(data.train_labels.max()) + 1)
    name = model_name(pool, seed)
    scaled = ScaledSchedule(SCHEDULES.get(schedule), cfg.epoch_scale)
    batches = BatchStream(data, cfg.batch_size, seed, cfg.flips)
    split, space = SPLITS.get(ARCH), SPACES.get(cfg.space)
    etas = cfg.grid.etas()
    opt = torch.optim.SGD(model.parameters(), lr=scaled.lr(0), momentum=cfg.momentum,
                          weight_decay=cfg.weight_decay)
    for epoch in range(cfg.run_epochs(schedule)):
        lr = scaled.lr(epoch)
        for group in opt.param_groups:
            group["lr"] = lr
        total = 0.0
        for s in range(cfg.steps_per_epoch):
            step = epoch * cfg.steps_per_epoch + s
            x, target = batches(step)
            if probe:
                _probe_step(cfg, model, split, space, etas, x, target, step=step, lr=lr, name=name, pool=pool,
                            seed=seed, out=out)
            model.train()
            loss = F.cross_entropy(model(x), target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach())
            bar.update(1)
        out.convergence.append({
            "model": name, "pooling": pool, "schedule": schedule, "epoch": epoch + 1, "lr": lr,
            "train_loss": total / cfg.steps_per_epoch,
            "test_top1": accuracy(model, data.test_images, data.test_labels),
        })
    return model


def _due(step: int, every: int, until: int | None) -> bool:
    return every > 0 and step % every == 0 and (until is None or step < until)


def _probe_step(cfg: TrainConfig, model: nn.Module, split: Any, space: Any, etas: Sequence[float],
                x: torch.Tensor, target: torch.Tensor, *, step: int, lr: float, name: str, pool: str, seed: int,
                out: ProtocolResult) -> None:
    if _due(step, cfg.probe_every, cfg.probe_until):
        res = space.probe(model, split, x, target, etas)
        out.landscape.extend(landscape_rows(name, pool, step, res))
        out.probes.append(probe_row(name, pool, step, res, seed=seed, lr=lr))
    if _due(step, cfg.curvature_every, cfg.probe_until):
        c = curvature(model, x, target, power_iters=cfg.power_iters, tol=cfg.tol,
                      trace_samples=cfg.trace_samples, seed=stream_seed(seed, "hessian", step))
        out.curvature.append(curvature_row(name, pool, step, c))


def landscape_rows(name: str, pool: str, step: int, res: Any) -> list[dict[str, Any]]:
    """``landscape.csv`` rows of one probe (β_eff: the probe's maximum, repeated on its rows)."""
    beta = res.beta_eff
    return [{"model": name, "pooling": pool, "step": step, "eta": eta, "loss": loss, "grad_diff": d,
             "grad_norm": res.grad_norm, "beta_eff": beta}
            for eta, loss, d in zip(res.etas, res.losses, res.grad_diffs)]


def probe_row(name: str, pool: str, step: int, res: Any, *, seed: int | None, lr: float | None) -> dict[str, Any]:
    """One ``probes.csv`` row: the bands and the extras the paper's log has (L(y), ‖y‖)."""
    return {
        "model": name, "pooling": pool, "seed": seed, "step": step, "lr": lr, "base_loss": res.base_loss,
        "grad_norm": res.grad_norm, "point_norm": res.point_norm,
        "max_displacement": max(res.etas) * res.grad_norm / res.point_norm if res.point_norm else math.nan,
        "loss_min": min(res.losses), "loss_max": max(res.losses),
        "grad_diff_min": min(res.grad_diffs), "grad_diff_max": max(res.grad_diffs), "beta_eff": res.beta_eff,
    }


def curvature_row(name: str, pool: str, step: int, c: Any) -> dict[str, Any]:
    return {"model": name, "pooling": pool, "step": step, "hessian_top": c.top.value,
            "hessian_trace": c.trace.value, "trace_stderr": c.trace.stderr, "power_iterations": c.top.iterations}


def run_protocol(cfg: TrainConfig, data: TrainData, *, seeds: Sequence[int] = (0,),
                 pools: Sequence[str] = ("gap", "gcp"), probes: bool = True, desc: str = "landscape") -> ProtocolResult:
    """Train every (seed, pooling, schedule); probe the first schedule's runs when ``probes``."""
    for pool in pools:
        POOLINGS.get(pool)
    out = ProtocolResult()
    with torch_threads(cfg.threads), progress(total=len(seeds) * len(pools) * cfg.total_steps(), desc=desc,
                                         unit="step") as bar:
        for seed in seeds:
            for pool in pools:
                for i, schedule in enumerate(cfg.schedules):
                    model = _train_run(cfg, data, pool, schedule, seed, probe=probes and i == 0, out=out, bar=bar)
                    out.weights[(model_name(pool, seed), schedule)] = {
                        k: v.detach().clone() for k, v in model.model.state_dict().items()}
    return out


def with_overrides(cfg: TrainConfig, **changes: Any) -> TrainConfig:
    """``cfg`` with the non-``None`` keyword arguments replaced."""
    return replace(cfg, **{k: v for k, v in changes.items() if v is not None})


def save_weights_to(result: ProtocolResult, out: Path) -> list[Path]:
    """``<model>-<schedule>.safetensors`` for every run (load with ``--arch resnet_demo --pool …``)."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for (name, schedule), state in result.weights.items():
        path = out / f"{name}-{schedule}.safetensors"
        save_file({k: v.contiguous() for k, v in state.items()}, path)
        paths.append(path)
    return paths
