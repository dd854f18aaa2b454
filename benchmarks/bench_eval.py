"""Evaluation throughput and memory: clean vs on-the-fly corrupted ImageNet-C evaluation, and peak RSS.

1. Images/s of ResNet-18 and ResNet-50 (random weights, 224 px) on the current device for clean batches and
   for on-the-fly corrupted batches (one batch per test corruption, all 15, severity 3, with the official
   protocol: 8-bit truncation + JPEG q85). Prints both and their ratio.
2. Peak RSS of `robench eval` (clean-only suite, demo GCP model) on 1,000 vs 10,000 Fashion-MNIST test
   images (needs the IDX files: Debian's dataset-fashion-mnist or --fmnist DIR): it must stay flat.
3. The pipeline overhead of the embedded default: wall time of `robench eval` with no arguments (a fresh
   --out, in a subprocess: start-up, corruptions, perturbation frames, store and reports included) divided
   by the time of a bare eager NCHW forward loop of the same demo models over the same number of
   image-forwards (clean + corruption cells + perturbation frames, both models), batch 256, same threads.
   Below 1 the pipeline hides behind the evaluator's faster inference form of the models.

Usage::

    python benchmarks/bench_eval.py [--device cuda] [--batch 32] [--batches 4] [--amp bf16] [--skip-rss]
    python benchmarks/bench_eval.py --archs --skip-rss            # only the overhead ratio (CPU)
    python benchmarks/bench_eval.py --archs --skip-rss --eval-limit 400   # a shorter variant of it
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from robench._rng import SampleRNG
from robench.corruptions import CORRUPTIONS
from robench.data.sources import open_dataset
from robench.evaluate import DEMO_MODELS, item_size
from robench.kinds import apply_protocol
from robench.models import create_model, load_model
from robench.perturbations import PERTURBATIONS
from robench.suites import load_suite, parse_suite


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def throughput(arch: str, device: torch.device, batch: int, batches: int, amp: str | None) -> tuple[float, float]:
    model = create_model(arch, "gap", num_classes=1000).to(device).eval()
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    suite = parse_suite({"param_set": "imagenet", "protocol": {"jpeg_quality": 85}, "clean": {}})
    x = torch.rand(batch, 3, 224, 224, generator=torch.Generator().manual_seed(0)).to(device)
    names = [n for n, c in CORRUPTIONS.items() if c.test]
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp or "")

    def forward(inp: torch.Tensor) -> None:
        with torch.inference_mode(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            model(inp)

    forward(x)  # warm-up
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(batches):
        forward(x)
    _sync(device)
    clean = batch * batches / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for i, name in enumerate(names):
        rng = SampleRNG(range(i * batch, (i + 1) * batch), seed=0, key=f"imagenet/{name}/3")
        xc = apply_protocol(CORRUPTIONS.get(name)(x, 3, rng=rng, param_set="imagenet"), suite)
        forward(xc)
    _sync(device)
    corrupted = batch * len(names) / (time.perf_counter() - t0)
    return clean, corrupted


def peak_rss_mb(limit: int, data: Path) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        suite = Path(tmp) / "clean.toml"
        suite.write_text('name = "rss"\ndataset = "fashion-mnist-demo"\nparam_set = "cifar"\n[clean]\n')
        code = (
            "import resource, sys\n"
            "from robench.evaluate import EvalConfig, run_eval\n"
            f"run_eval(EvalConfig(ckpts=('demo-gcp',), suite={str(suite)!r}, data={str(data)!r}, limit={limit}, "
            f"out={tmp!r}, batch_size=256))\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        return float(out.stdout.strip().splitlines()[-1])


def demo_forwards(limit: int | None) -> int:
    """Image-forwards of one model in `robench eval` on the demo suite: clean and corrupted images, and
    every frame of every perturbation sequence."""
    suite = load_suite("demo")
    n = len(open_dataset(suite.dataset, None, suite.protocol))
    n = min(n, limit or suite.limit or n)
    total = 0
    for item in suite.items:
        frames = PERTURBATIONS.get(item.name).num_frames(suite.param_set) if item.kind == "perturbation" else 1
        total += len(item.levels) * item_size(item, n) * frames
    return total


def eval_wall_time(limit: int | None) -> float:
    """Seconds of `python -m robench eval` (no arguments but a fresh --out) in a subprocess."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "robench", "eval", "--out", tmp]
        if limit is not None:
            cmd += ["--limit", str(limit)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parents[1]),
                                                                           os.environ.get("PYTHONPATH")]))}
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - t0


def bare_forward_time(forwards: int, batch: int = 256) -> float:
    """Seconds of an eager NCHW forward loop of the demo models over ``forwards`` images each."""
    x = torch.rand(batch, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    total = 0.0
    for name in DEMO_MODELS:
        model = load_model(name).eval()
        with torch.inference_mode():
            model(x[:8])  # warm-up
            t0 = time.perf_counter()
            for start in range(0, forwards, batch):
                model(x[: min(batch, forwards - start)])
            total += time.perf_counter() - t0
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--batches", type=int, default=4, help="clean batches timed (corrupted: one per corruption)")
    parser.add_argument("--amp", choices=["bf16", "fp16"], default=None)
    parser.add_argument("--archs", nargs="*", default=["resnet18", "resnet50"], help="none: skip the throughput")
    parser.add_argument("--fmnist", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    parser.add_argument("--skip-rss", action="store_true")
    parser.add_argument("--skip-overhead", action="store_true", help="skip the demo-suite overhead ratio")
    parser.add_argument("--eval-limit", type=int, default=None, help="overhead ratio on the first N images only")
    args = parser.parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; batch {args.batch} x {args.batches}; amp {args.amp}")
    if args.archs:
        print(f"{'model':<10} {'clean img/s':>12} {'corrupted img/s':>16} {'ratio':>7}")
    for arch in args.archs:
        clean, corrupted = throughput(arch, device, args.batch, args.batches, args.amp)
        print(f"{arch:<10} {clean:>12.1f} {corrupted:>16.1f} {corrupted / clean:>7.2f}")
    if not args.skip_overhead:
        forwards = demo_forwards(args.eval_limit)
        wall = eval_wall_time(args.eval_limit)
        bare = bare_forward_time(forwards)
        what = "robench eval" + (f" --limit {args.eval_limit}" if args.eval_limit else "")
        print(f"{what}: {wall:.1f} s wall; bare NCHW forward loop over the same {len(DEMO_MODELS)} x {forwards} "
              f"image-forwards (batch 256, {torch.get_num_threads()} threads): {bare:.1f} s; "
              f"overhead ratio {wall / bare:.2f}")
    if not args.skip_rss:
        if not args.fmnist.is_dir():
            print(f"peak RSS: skipped ({args.fmnist} missing; pass --fmnist DIR)")
            return
        small, large = peak_rss_mb(1000, args.fmnist), peak_rss_mb(10000, args.fmnist)
        print(f"peak RSS: 1k images {small:.0f} MiB, 10k images {large:.0f} MiB, ratio {large / small:.2f}")


if __name__ == "__main__":
    main()
