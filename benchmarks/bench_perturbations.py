"""Throughput of perturbation-sequence generation vs model inference, on one device.

For every perturbation it streams the whole sequence of a batch of images and reports
generated frames per second, next to the frames per second a torchvision ResNet-18
classifies at the same size (ImageNet-P at 224 px, CIFAR-10-P at 32 px). A ratio
below 1 means generation, not the model, limits on-the-fly evaluation.

    python benchmarks/bench_perturbations.py [--device cuda] [--batch 8] [--repeats 1]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
import torchvision

from robench.perturbations import PERTURBATIONS, TEST_PERTURBATIONS, VALIDATION_PERTURBATIONS, perturbation_rng

SETTINGS = (("imagenet", 224), ("cifar", 32))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _best_time(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def generation_fps(name: str, x: torch.Tensor, param_set: str, repeats: int) -> float:
    """Frames per second of streaming one sequence of the batch ``x`` (frames discarded)."""
    perturbation = PERTURBATIONS.get(name)
    rng_indices = list(range(x.shape[0]))

    def run() -> None:
        rng = perturbation_rng(rng_indices, name=name, param_set=param_set)
        for _ in perturbation.frames(x, rng=rng, param_set=param_set):
            pass

    frames = x.shape[0] * perturbation.num_frames(param_set)
    return frames / _best_time(run, x.device, repeats)


def inference_fps(model: torch.nn.Module, x: torch.Tensor, repeats: int) -> float:
    """Frames per second of a forward pass over the batch ``x``."""
    with torch.inference_mode():
        model(x)  # warm-up (cuDNN autotuning, lazy init)
        return x.shape[0] / _best_time(lambda: model(x), x.device, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=8, help="images per batch (default 8)")
    parser.add_argument("--model-batch", type=int, default=64, help="frames per model forward (default 64)")
    parser.add_argument("--repeats", type=int, default=1, help="best of this many runs (default 1)")
    parser.add_argument("--only", nargs="*", default=None, help="perturbations to time (default: all)")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval().to(device)
    names = args.only or list(TEST_PERTURBATIONS + VALIDATION_PERTURBATIONS)

    model_fps = {}
    for param_set, size in SETTINGS:
        frames = torch.rand(args.model_batch, 3, size, size, device=device)
        model_fps[param_set] = inference_fps(model, frames, args.repeats)

    print(
        f"device: {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), "
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, batch {args.batch} images"
    )
    header = f"{'perturbation':<16}" + "".join(
        f"{f'gen fps {s}px':>16}{f'model fps {s}px':>17}{'gen/model':>11}" for _, s in SETTINGS
    )
    print(header)
    print("-" * len(header))
    for name in names:
        row = f"{name:<16}"
        for param_set, size in SETTINGS:
            x = torch.rand(args.batch, 3, size, size, device=device)
            fps = generation_fps(name, x, param_set, args.repeats)
            row += f"{fps:>16.1f}{model_fps[param_set]:>17.1f}{fps / model_fps[param_set]:>11.2f}"
        print(row, flush=True)


if __name__ == "__main__":
    main()
