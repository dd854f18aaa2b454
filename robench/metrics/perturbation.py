"""ImageNet-P stability metrics: flip probability (FP) and top-5 distance (T5D).

Definitions of Hendrycks & Dietterich as implemented in ``ImageNet-P/test.py``:

* **Pairs.** Noise perturbations compare every frame with frame 0. The others, at
  difficulty (stride) d, split the T frames into the d subsequences ``s, s+d, s+2d, …``
  (s = 0 … d−1) and compare consecutive frames within each.
* **FP** of a video is the fraction of its pairs whose top-1 predictions differ.
* **T5D** of a pair (reference r, compared r') is ``Σ_{k=0..4} |k − min(σ_k − 1, 5)|``
  where σ_k is the rank (1 = top) in r' of the class ranked k+1 in r; ranks are
  ``rankdata(−logits, 'ordinal')``, so ties go to the lower class index.
* A video's value is the mean over its pairs, the benchmark's the mean over videos.

Every video of a perturbation has the same number of pairs (T − 1 for noise, T − d
otherwise), so the mean over videos equals the pooled ratio of integer sums:
:class:`PerturbationCounts` keeps ``(flips, pairs)`` and ``(t5d_sum, pairs)``, which add
up over batches and ranks. T5D needs only each frame's five best classes — a class
outside the compared frame's top five contributes ``min(σ − 1, 5) = 5`` whatever its
rank — so the counts are computed from ``N×T×5`` top-5 indices.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from robench.errors import InputError

TOP = 5


@functools.lru_cache(maxsize=64)
def frame_pairs(num_frames: int, *, noise: bool, difficulty: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(reference, compared)`` of the frame pairs Hendrycks compares.

    Args:
        num_frames: T.
        noise: Compare every frame with frame 0 (the stride is then 1).
        difficulty: The stride d of non-noise perturbations.

    Raises:
        InputError: ``difficulty < 1``, or no pair exists (T ≤ d).
    """
    if difficulty < 1:
        raise InputError(f"Difficulty must be a positive stride, got {difficulty}.")
    if noise:
        ref = [0] * (num_frames - 1)
        cmp = list(range(1, num_frames))
    else:
        ref, cmp = [], []
        for start in range(difficulty):
            seq = list(range(start, num_frames, difficulty))
            ref += seq[:-1]
            cmp += seq[1:]
    if not cmp:
        raise InputError(f"{num_frames} frames at difficulty {difficulty} give no frame pairs.")
    return np.asarray(ref), np.asarray(cmp)


def _as_tensor(a, *, dims: int, what: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(a) if not isinstance(a, torch.Tensor) else a).detach().cpu()
    if t.dim() != dims:
        raise InputError(f"Expected {what} with {dims} dimensions, got shape {tuple(t.shape)}.")
    return t


def ranked_classes(logits: torch.Tensor, k: int = TOP) -> torch.Tensor:
    """The ``k`` best classes of each frame, best first, ties to the lower class index.

    The same order as ``scipy.stats.rankdata(−logits, method='ordinal')``.
    """
    order = torch.sort(-logits, dim=-1, stable=True).indices
    return order[..., :k]


def flip_counts(preds, *, noise: bool, difficulty: int = 1) -> tuple[int, int]:
    """``(flips, pairs)`` summed over the videos of ``preds``.

    Args:
        preds: ``N×T`` top-1 predictions, or ``N×T×k`` ranked classes (column 0 is used).
        noise: Whether the perturbation is a noise one (compare with frame 0).
        difficulty: Stride of non-noise perturbations.
    """
    p = torch.as_tensor(np.asarray(preds) if not isinstance(preds, torch.Tensor) else preds).cpu()
    if p.dim() == 3:
        p = p[..., 0]
    if p.dim() != 2:
        raise InputError(f"Expected N×T predictions, got shape {tuple(p.shape)}.")
    ref, cmp = frame_pairs(p.shape[1], noise=noise, difficulty=difficulty)
    flips = int((p[:, ref] != p[:, cmp]).sum())
    return flips, p.shape[0] * len(ref)


def _pair_distances(top: torch.Tensor, ref: np.ndarray, cmp: np.ndarray) -> torch.Tensor:
    """T5D of every pair, ``N×P`` int64, from ``N×T×k`` ranked classes (k = min(5, K))."""
    a = top[:, ref]  # N×P×k: reference classes, best first
    b = top[:, cmp]
    k = a.shape[-1]
    match = a[..., :, None] == b[..., None, :]  # reference class i at compared position j
    found = match.any(dim=-1)
    position = match.to(torch.int64).argmax(dim=-1)
    capped = torch.where(found, position, torch.full_like(position, TOP))  # min(σ − 1, 5)
    ranks = torch.arange(k, dtype=torch.int64)
    return (capped - ranks).abs().sum(dim=-1)


def top5_distance_counts(top5, *, noise: bool, difficulty: int = 1) -> tuple[int, int]:
    """``(t5d_sum, pairs)`` summed over the videos, from ``N×T×5`` ranked classes.

    The classes must be ranked as :func:`ranked_classes` ranks them (best first, ties
    to the lower index). With fewer than five classes pass all of them.
    """
    t = _as_tensor(top5, dims=3, what="N×T×5 ranked classes").to(torch.int64)
    ref, cmp = frame_pairs(t.shape[1], noise=noise, difficulty=difficulty)
    dist = _pair_distances(t[..., :TOP], ref, cmp)
    return int(dist.sum()), dist.numel()


def per_video_counts(top5, *, noise: bool, difficulty: int = 1) -> dict[str, np.ndarray]:
    """Each video's ``flips``, ``t5d`` (sum over its pairs) and ``pairs``, from ``N×T×5`` ranked classes.

    The per-video terms of :class:`PerturbationCounts`: they sum to its ``flips``, ``t5d_sum`` and ``pairs``.
    """
    t = _as_tensor(top5, dims=3, what="N×T×5 ranked classes").to(torch.int64)
    ref, cmp = frame_pairs(t.shape[1], noise=noise, difficulty=difficulty)
    top1 = t[..., 0]
    flips = (top1[:, ref] != top1[:, cmp]).sum(dim=1)
    t5d = _pair_distances(t[..., :TOP], ref, cmp).sum(dim=1)
    return {"flips": flips.numpy(), "t5d": t5d.numpy().astype(np.float64),
            "pairs": np.full(t.shape[0], len(ref), dtype=np.int64)}


def _mean_over_videos(per_pair: torch.Tensor) -> float:
    """Mean over pairs within each video, then over videos, summed in video order as Hendrycks."""
    per_video = per_pair.to(torch.float64).sum(dim=1) / per_pair.shape[1]
    n = per_pair.shape[0]
    result = 0.0
    for value in per_video.tolist():
        result += value / n
    return result


def flip_probability(preds, *, noise: bool, difficulty: int = 1) -> float:
    """Flip probability of ``N×T`` top-1 predictions (array or tensor), in ``[0, 1]``.

    Args:
        preds: Predicted class of every frame of every video.
        noise: Compare every frame with frame 0 (noise perturbations).
        difficulty: Stride of the consecutive comparisons otherwise.
    """
    p = _as_tensor(preds, dims=2, what="N×T predictions")
    if p.shape[0] == 0:
        raise InputError("No videos to compute a flip probability of.")
    ref, cmp = frame_pairs(p.shape[1], noise=noise, difficulty=difficulty)
    return _mean_over_videos((p[:, ref] != p[:, cmp]).to(torch.int64))


def top5_distance(logits, *, noise: bool, difficulty: int = 1) -> float:
    """Top-5 distance of ``N×T×K`` logits (array or tensor), in ``[0, 15]``.

    Args:
        logits: Scores of every class for every frame of every video.
        noise: Compare every frame with frame 0 (noise perturbations).
        difficulty: Stride of the consecutive comparisons otherwise.
    """
    z = _as_tensor(logits, dims=3, what="N×T×K logits")
    if z.shape[0] == 0:
        raise InputError("No videos to compute a top-5 distance of.")
    ref, cmp = frame_pairs(z.shape[1], noise=noise, difficulty=difficulty)
    return _mean_over_videos(_pair_distances(ranked_classes(z), ref, cmp))


@dataclass
class PerturbationCounts:
    """Additive FP / T5D sums of one (model, perturbation, difficulty) cell.

    ``update`` takes a batch of whole videos as ``N×T×5`` ranked classes (see
    :func:`ranked_classes`), ``merge`` adds another accumulator; :attr:`flip_probability`
    and :attr:`top5_distance` equal the per-video-mean definitions because every video
    has the same number of pairs.
    """

    videos: int = 0
    flips: int = 0
    t5d_sum: int = 0
    pairs: int = 0

    def update(self, top5, *, noise: bool, difficulty: int = 1) -> None:
        t = _as_tensor(top5, dims=3, what="N×T×5 ranked classes")
        flips, pairs = flip_counts(t, noise=noise, difficulty=difficulty)
        t5d, _ = top5_distance_counts(t, noise=noise, difficulty=difficulty)
        self.videos += t.shape[0]
        self.flips += flips
        self.t5d_sum += t5d
        self.pairs += pairs

    def merge(self, other: PerturbationCounts) -> None:
        self.videos += other.videos
        self.flips += other.flips
        self.t5d_sum += other.t5d_sum
        self.pairs += other.pairs

    @property
    def flip_probability(self) -> float:
        return self.flips / self.pairs if self.pairs else float("nan")

    @property
    def top5_distance(self) -> float:
        return self.t5d_sum / self.pairs if self.pairs else float("nan")

    def as_dict(self) -> dict[str, int]:
        return {"videos": self.videos, "flips": self.flips, "t5d_sum": self.t5d_sum, "pairs": self.pairs}
