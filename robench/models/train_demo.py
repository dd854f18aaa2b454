"""Reproduce the demo models (``demo-gap``, ``demo-gcp``) from Fashion-MNIST.

Both are :class:`robench.models.resnet.DemoResNet` (``resnet_demo``) with the same
backbone and recipe; only the pooling head differs. Everything random (initial
weights, shuffling, flips) comes from one ``torch.Generator`` seeded by ``seed``, so a
run on the same machine and thread count reproduces the weights bit for bit.

Usage::

    python -m robench.models.train_demo --pool gcp [--data DIR] [--seed 0]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

import robench
from robench._paths import zoo_dir
from robench.data import fashion_mnist
from robench.models.archs import ARCHS, create_model
from robench.models.cards import ModelCard, _zoo, dump_card
from robench.models.download import sha256_file
from robench.models.resnet import DEMO_GCP_DIM, DEMO_STRIDES, DEMO_WIDTHS, init_weights
from robench.models.wrap import Normalized

log = logging.getLogger(__name__)

ARCH = "resnet_demo"
TEST_SET = "fashion-mnist-test"
SUBSET = "fashion-mnist-test-2k"


@dataclass(frozen=True)
class Recipe:
    """Training hyper-parameters shared by both demo models."""

    epochs: int = 6
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup: float = 0.15
    """Fraction of the steps spent warming up (one-cycle schedule)."""


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Torch's intra-op thread count set to ``n`` for the block (``None``/0: left as is)."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _as_float(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.float32).div_(255.0)


@torch.inference_mode()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 500) -> float:
    """Top-1 accuracy (%) of ``model`` on uint8 ``N×3×32×32`` images."""
    model.eval()
    correct = 0
    for start in range(0, len(labels), batch_size):
        logits = model(_as_float(images[start : start + batch_size]))
        correct += int((logits.argmax(1) == labels[start : start + batch_size]).sum())
    return 100.0 * correct / len(labels)


@torch.inference_mode()
def inference_ms_per_image(model: nn.Module, batch_size: int = 256, repeats: int = 20) -> float:
    """Best-of-``repeats`` forward time per image at ``batch_size`` (current thread count)."""
    model.eval()
    x = torch.zeros(batch_size, 3, 32, 32).uniform_(generator=torch.Generator().manual_seed(0))
    for _ in range(3):
        model(x)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        model(x)
        best = min(best, time.perf_counter() - t0)
    return 1000.0 * best / batch_size


def _labels(y: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(y.astype(np.int64))


def train_demo(
    pool: str,
    *,
    data: Path | None = None,
    seed: int = 0,
    epochs: int = Recipe.epochs,
    out_dir: Path | None = None,
    threads: int | None = 2,
) -> dict[str, Any]:
    """Train one demo model and write its weights and card.

    Args:
        pool: ``"gap"`` or ``"gcp"``.
        data: Folder with the Fashion-MNIST IDX files (default: Debian's location).
        seed: Seed of every random draw.
        epochs: Passes over the 60k training images.
        out_dir: Where ``demo-<pool>.safetensors`` / ``.toml`` go (default: the zoo).
        threads: Torch threads while training (``None``: leave as is).

    Returns:
        Summary: file paths, sha256, accuracies (full test split and shipped subset),
        training seconds, parameter count and inference speed.
    """
    recipe = Recipe(epochs=epochs)
    spec = ARCHS.get(ARCH)
    out = Path(out_dir) if out_dir is not None else zoo_dir()
    name = demo_name(pool, seed)
    train_x, train_y = fashion_mnist.load_split("train", data)
    test_x, test_y = fashion_mnist.load_split("test", data)
    sub_x, sub_y = fashion_mnist.load_demo_subset()
    train_images, train_labels = fashion_mnist.to_model_input(train_x), _labels(train_y)

    gen = torch.Generator().manual_seed(seed)
    net = create_model(ARCH, pool, num_classes=len(fashion_mnist.CLASSES))
    init_weights(net, generator=gen)
    model = Normalized(net, spec.mean, spec.std)

    steps_per_epoch = len(train_labels) // recipe.batch_size
    opt = torch.optim.SGD(
        model.parameters(),
        lr=recipe.lr,
        momentum=recipe.momentum,
        weight_decay=recipe.weight_decay,
        nesterov=True,
    )
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=recipe.lr, total_steps=recipe.epochs * steps_per_epoch, pct_start=recipe.warmup
    )
    t0 = time.perf_counter()
    with torch_threads(threads):
        for epoch in range(recipe.epochs):
            model.train()
            order = torch.randperm(len(train_labels), generator=gen)
            flips = torch.rand(len(train_labels), generator=gen) < 0.5
            total = 0.0
            for step in range(steps_per_epoch):
                idx = order[step * recipe.batch_size : (step + 1) * recipe.batch_size]
                x = _as_float(train_images[idx])
                x = torch.where(flips[idx, None, None, None], x.flip(-1), x)
                loss = F.cross_entropy(model(x), train_labels[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total += float(loss.detach())
            log.info(
                "%s epoch %d/%d: loss %.4f (%.0f s)",
                name,
                epoch + 1,
                recipe.epochs,
                total / steps_per_epoch,
                time.perf_counter() - t0,
            )
        seconds = time.perf_counter() - t0
        acc = {
            TEST_SET: round(accuracy(model, fashion_mnist.to_model_input(test_x), _labels(test_y)), 2),
            SUBSET: round(accuracy(model, fashion_mnist.to_model_input(sub_x), _labels(sub_y)), 2),
        }
        speed = inference_ms_per_image(model)

    state = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
    weights, card_path, digest = write_demo(state, pool, seed=seed, recipe=recipe, accuracy=acc, out_dir=out,
                                            threads=threads)
    log.info("%s: %s", name, acc)
    return {
        "name": name,
        "pooling": pool,
        "seed": seed,
        "epochs": recipe.epochs,
        "weights": str(weights),
        "card": str(card_path),
        "sha256": digest,
        "accuracy": acc,
        "train_seconds": round(seconds, 1),
        "params": sum(p.numel() for p in net.parameters()),
        "inference_ms_per_image": round(speed, 4),
    }


def write_demo(
    state: dict[str, torch.Tensor],
    pool: str,
    *,
    seed: int,
    recipe: Recipe,
    accuracy: dict[str, float],
    out_dir: Path,
    threads: int | None = 2,
) -> tuple[Path, Path, str]:
    """Write ``demo-<pool>.safetensors`` and its card; returns ``(weights, card, sha256)``.

    The safetensors metadata is a single JSON entry with sorted keys: safetensors
    writes several entries in hash-map order, which would make identical weights give
    different file digests from run to run.
    """
    spec = ARCHS.get(ARCH)
    name = demo_name(pool, seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = out_dir / f"{name}.safetensors"
    meta = {
        "arch": ARCH,
        "pooling": pool,
        "num_classes": len(fashion_mnist.CLASSES),
        "seed": seed,
        "epochs": recipe.epochs,
        "robench": robench.__version__,
        "torch": torch.__version__,
    }
    save_file(state, weights, metadata={"robench": json.dumps(meta, sort_keys=True)})
    weights.chmod(0o644)  # safetensors writes 0600; the zoo is shared
    digest = sha256_file(weights)
    card = ModelCard(
        name=name,
        arch=ARCH,
        pooling=pool,
        num_classes=len(fashion_mnist.CLASSES),
        source=weights.name,
        mean=spec.mean,
        std=spec.std,
        input_size=spec.input_size,
        sha256=digest,
        accuracy=accuracy,
        description=_describe(pool),
        seed=seed,
        group=f"demo-{pool}",
    )
    card_path = out_dir / f"{name}.toml"
    card_path.write_text(dump_card(card, header=_header(pool, seed, recipe, threads)), encoding="utf-8")
    _zoo.cache_clear()
    return weights, card_path, digest


def _describe(pool: str) -> str:
    head = f"iSQRT-COV head (1x1 reduction to {DEMO_GCP_DIM})" if pool == "gcp" else "global average pooling"
    return f"Fashion-MNIST demo ResNet (widths {'/'.join(map(str, DEMO_WIDTHS))}), {head}"


def demo_name(pool: str, seed: int) -> str:
    """``demo-<pool>`` for seed 0 (the embedded default), ``demo-<pool>-s<seed>`` for the other seeds."""
    return f"demo-{pool}" if seed == 0 else f"demo-{pool}-s{seed}"


def _header(pool: str, seed: int, recipe: Recipe, threads: int | None) -> str:
    return (
        f"Demo model for `robench eval` (Fashion-MNIST, 3x32x32, 10 classes), backbone strides "
        f"{'/'.join(map(str, DEMO_STRIDES))}.\n"
        f"Reproduce: python -m robench.models.train_demo --pool {pool} --seed {seed}"
        f" --epochs {recipe.epochs} --threads {threads}\n"
        f"accuracy: top-1 % on the full test split ({TEST_SET}) and on the shipped subset ({SUBSET}, "
        "the first 2,000 test images)."
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m robench.models.train_demo", description=__doc__.split("\n")[0])
    parser.add_argument("--pool", choices=["gap", "gcp"], required=True)
    parser.add_argument("--data", type=Path, default=None, help="folder with the Fashion-MNIST IDX files")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=Recipe.epochs)
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: the zoo)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    result = train_demo(
        args.pool, data=args.data, seed=args.seed, epochs=args.epochs, out_dir=args.out, threads=args.threads
    )
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
