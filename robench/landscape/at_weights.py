"""``robench landscape --ckpt A --ckpt B``: the probes at given weights, on the same training minibatches.

Every model is probed on the same ``limit`` images, a seeded random sample of the data
(so an ImageNet folder sorted by class still gives mixed batches), cut into full
minibatches of ``batch_size``; each minibatch is one probe "step". There is no
augmentation. The probes are those of the training-time protocol (a copy in train mode:
BN batch statistics), so a step's numbers depend on which images share its batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from robench._progress import progress
from robench._rng import stream_seed
from robench.data import fashion_mnist
from robench.data.sources import ImageFolderSource, TensorSource
from robench.errors import InputError
from robench.landscape.curvature import curvature
from robench.landscape.probes import GRIDS, SPACES, Grid
from robench.landscape.split import SPLITS
from robench.landscape.train import ProtocolResult, curvature_row, landscape_rows, probe_row
from robench.models.archs import ARCHS
from robench.models.loading import ResolvedModel, resolve_model
from robench.models.train_demo import torch_threads
from robench.suites import Protocol


@dataclass(frozen=True)
class AtWeightsConfig:
    """Options of a checkpoint probe.

    Attributes:
        ckpts: Zoo names or checkpoint files.
        data: Training images: the Fashion-MNIST IDX folder for demo models (default: Debian's), an
            ImageFolder root (``DIR/<class>/<images>``) for ImageNet-size models.
        limit: Images probed in total (default: one batch).
        batch_size: Probe minibatch.
        space: Probe space (``SPACES``).
        grid: Step grid (default: the space's).
        curvature: Whether to run the Hessian probes.
        power_iters, tol, trace_samples: Hessian settings.
        seed: Seed of the image sample and the Hessian's random vectors.
        arch, pool: For checkpoint files without a card.
        device: Torch device.
        threads: Torch threads.
    """

    ckpts: tuple[str, ...] = ("demo-gap", "demo-gcp")
    data: Path | None = None
    limit: int | None = None
    batch_size: int = 128
    space: str = "activation"
    grid: Grid | None = None
    curvature: bool = True
    power_iters: int = 20
    tol: float = 1e-3
    trace_samples: int = 20
    seed: int = 0
    arch: str | None = None
    pool: str | None = None
    device: str = "cpu"
    threads: int | None = 2


def _dataset(model: ResolvedModel, data: Path | None) -> Dataset:
    spec = ARCHS.get(model.arch)
    if model.arch == "resnet_demo":
        x, y = fashion_mnist.load_split("train", data)
        return TensorSource(fashion_mnist.to_model_input(x), torch.from_numpy(y.astype(np.int64)),
                            classes=fashion_mnist.CLASSES, name="fashion-mnist-train")
    if data is None:
        raise InputError(f"{model.name} ({model.arch}) needs training images: pass --data DIR (an ImageFolder "
                         "root, DIR/<class>/<images>) and --limit N.")
    return ImageFolderSource(Path(data), Protocol(resize=spec.resize or 0, crop=spec.input_size))


def _batches(ds: Dataset, cfg: AtWeightsConfig) -> list[tuple[torch.Tensor, torch.Tensor]]:
    limit = cfg.batch_size if cfg.limit is None else cfg.limit
    if limit < 1 or cfg.batch_size < 1:
        raise InputError(f"--limit and --batch-size must be >= 1, got {limit} and {cfg.batch_size}.")
    n = min(limit, len(ds))
    order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(stream_seed(cfg.seed, "probe-data", 0)))
    size = min(cfg.batch_size, n)
    out = []
    for start in range(0, n - size + 1, size):
        samples = [ds[int(i)] for i in order[start : start + size]]
        if any(img is None for img, _ in samples):
            raise InputError("An image of the probe sample is unreadable; fix or remove it.")
        x = torch.stack([img for img, _ in samples]).to(torch.float32).div_(255.0)
        out.append((x, torch.tensor([label for _, label in samples], dtype=torch.int64)))
    return out


def probe_checkpoints(cfg: AtWeightsConfig) -> ProtocolResult:
    """Probe every model of ``cfg.ckpts`` on the same minibatches (step = minibatch index)."""
    space = SPACES.get(cfg.space)
    grid = cfg.grid or GRIDS.get(space.grid)
    models = [resolve_model(c, cfg.arch, cfg.pool, device=cfg.device) for c in cfg.ckpts]
    splits = [SPLITS.get(m.arch) for m in models]
    out = ProtocolResult()
    cache: dict[tuple[str, int], list[tuple[torch.Tensor, torch.Tensor]]] = {}
    with torch_threads(cfg.threads):
        for model, split in zip(models, splits):
            key = ("demo" if model.arch == "resnet_demo" else "folder", ARCHS.get(model.arch).input_size)
            if key not in cache:
                cache[key] = _batches(_dataset(model, cfg.data), cfg)
            batches = cache[key]
            for step, (x, target) in enumerate(progress(batches, desc=f"probe {model.name}", unit="batch")):
                x, target = x.to(cfg.device), target.to(cfg.device)
                if int(target.max()) >= model.num_classes:
                    raise InputError(f"Labels of --data reach {int(target.max())} but {model.name} has "
                                     f"{model.num_classes} classes; pass the data the model was trained on.")
                res = space.probe(model.module, split, x, target, grid.etas())
                out.landscape.extend(landscape_rows(model.name, model.pooling, step, res))
                out.probes.append(probe_row(model.name, model.pooling, step, res, seed=cfg.seed, lr=None))
                if cfg.curvature:
                    c = curvature(model.module, x, target, power_iters=cfg.power_iters, tol=cfg.tol,
                                  trace_samples=cfg.trace_samples, seed=stream_seed(cfg.seed, "hessian", step))
                    out.curvature.append(curvature_row(model.name, model.pooling, step, c))
    return out

