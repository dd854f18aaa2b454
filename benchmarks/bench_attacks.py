"""robench's PGD cell vs a direct foolbox 3 call on the same model and batch.

Both run L∞ PGD with the same settings; robench adds its input checks, per-sample
random starts, pass counting and the final success check. The acceptance bar is an
overhead of at most 10 %.

    OMP_NUM_THREADS=1 python benchmarks/bench_attacks.py [--device cuda] [--batch 128]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from robench.attacks import ATTACKS, AttackStats
from robench.attacks._foolbox import foolbox


def small_cnn(classes: int = 10) -> nn.Module:
    """A CIFAR-sized CNN (~0.3 M parameters); weights are random, speed is all that matters."""

    def block(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2))

    return nn.Sequential(block(3, 32), block(32, 64), block(64, 128), nn.Flatten(), nn.Linear(128 * 16, classes))


def timed(fn: Callable[[], object], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t


def interleaved(
    a: Callable[[], object], b: Callable[[], object], repeats: int, device: torch.device
) -> tuple[list[float], list[float]]:
    """Wall times of ``a`` and ``b``, alternated so that load changes hit both alike."""
    a(), b()  # warm-up
    times_a, times_b = [], []
    for _ in range(repeats):
        times_a.append(timed(a, device))
        times_b.append(timed(b, device))
    return times_a, times_b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--eps", type=float, default=8 / 255)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(0)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = small_cnn().to(device).eval()
    x = torch.rand(args.batch, 3, 32, 32, generator=gen).to(device)
    with torch.no_grad():
        y = model(x).argmax(1)  # every sample clean-correct: both sides attack the whole batch

    fb = foolbox()
    fmodel = fb.PyTorchModel(model, bounds=(0, 1), device=device)
    direct = fb.attacks.LinfPGD(steps=args.steps, rel_stepsize=0.25)
    pgd = ATTACKS.get("pgd-linf")
    indices = range(args.batch)

    def run_foolbox() -> object:
        return direct(fmodel, x, y, epsilons=args.eps)[2]

    def run_robench() -> object:
        return pgd(model, x, y, eps=args.eps, seed=0, indices=indices, steps=args.steps, rel_stepsize=0.25)

    fb_times, rb_times = interleaved(run_foolbox, run_robench, args.repeats, device)
    fb_min, fb_med = min(fb_times), statistics.median(fb_times)
    rb_min, rb_med = min(rb_times), statistics.median(rb_times)
    stats = AttackStats()
    pgd(model, x, y, eps=args.eps, seed=0, indices=indices, stats=stats, steps=args.steps, rel_stepsize=0.25)

    print(
        f"device={device} batch={args.batch} steps={args.steps} eps={args.eps:.5f} "
        f"threads={torch.get_num_threads()} repeats={args.repeats}"
    )
    print(f"foolbox LinfPGD   min {fb_min * 1e3:8.1f} ms   median {fb_med * 1e3:8.1f} ms")
    print(f"robench pgd-linf  min {rb_min * 1e3:8.1f} ms   median {rb_med * 1e3:8.1f} ms")
    print(f"overhead (median) {rb_med / fb_med - 1:+.1%}   (min) {rb_min / fb_min - 1:+.1%}")
    print(f"robench passes per image: {stats.forwards_per_image:.0f} forward, {stats.backwards_per_image:.0f} backward")


if __name__ == "__main__":
    main()
