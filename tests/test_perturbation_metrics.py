"""Flip probability and top-5 distance against Hendrycks' definitions."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy.stats import rankdata

from robench.errors import InputError
from robench.metrics.perturbation import (
    PerturbationCounts,
    flip_counts,
    flip_probability,
    frame_pairs,
    ranked_classes,
    top5_distance,
    top5_distance_counts,
)

# ---------------------------------------------------------------- transcriptions of the published formulas


def reference_pairs(num_frames: int, noise: bool, d: int) -> list[tuple[int, int]]:
    if noise:
        return [(0, j) for j in range(1, num_frames)]
    pairs = []
    for s in range(d):
        seq = list(range(s, num_frames, d))
        pairs += list(itertools.pairwise(seq))
    return pairs


def reference_fp(preds: np.ndarray, noise: bool, d: int) -> float:
    """Paper: 1/(m(T−1)) Σ_videos Σ_j 1[f(x_j) ≠ f(x_{j−1})] (x_1 for noise), per-video means."""
    result = 0.0
    for video in preds:
        flips = [int(video[a] != video[b]) for a, b in reference_pairs(len(video), noise, d)]
        result += np.mean(flips) / len(preds)
    return result


def reference_t5d_pair(ref_logits: np.ndarray, cmp_logits: np.ndarray) -> int:
    """Paper's double sum over i = 1..5 with σ from ``rankdata(−logits, 'ordinal')``."""
    r1 = rankdata(-ref_logits, method="ordinal")
    r2 = rankdata(-cmp_logits, method="ordinal")
    sigma = r2[np.argsort(r1)]  # rank in frame 2 of the class ranked i in frame 1
    total = 0
    for i in range(1, 6):
        s = int(sigma[i - 1])
        for j in range(min(i, s) + 1, max(i, s) + 1):
            if 1 <= j - 1 <= 5:
                total += 1
    return total


def reference_t5d(logits: np.ndarray, noise: bool, d: int) -> float:
    result = 0.0
    for video in logits:
        dists = [reference_t5d_pair(video[a], video[b]) for a, b in reference_pairs(len(video), noise, d)]
        result += np.mean(dists) / len(logits)
    return result


# ---------------------------------------------------------------- worked examples (REFERENCE §3.2)


@pytest.mark.parametrize(("noise", "d", "expected"), [(False, 1, 0.5), (False, 2, 1.0), (True, 1, 0.5)])
def test_flip_probability_worked_example(noise, d, expected):
    assert flip_probability([[3, 3, 7, 7, 3]], noise=noise, difficulty=d) == expected


def test_top5_distance_worked_example():
    # Reference order A..E (classes 0..4); next frame ranks B, A, C, F, E, G, D.
    k = 10
    ref = np.arange(k, 0, -1, dtype=np.float64)  # class 0 best
    order = [1, 0, 2, 5, 4, 6, 3, 7, 8, 9]
    nxt = np.empty(k)
    nxt[order] = np.arange(k, 0, -1)
    logits = np.stack([ref, nxt])[None]
    assert reference_t5d_pair(ref, nxt) == 4
    assert top5_distance(logits, noise=False) == 4.0
    assert top5_distance_counts(ranked_classes(torch.as_tensor(logits)), noise=False) == (4, 1)


# ---------------------------------------------------------------- random inputs: exact equality


@pytest.mark.parametrize("noise", [False, True])
@pytest.mark.parametrize("d", [1, 2, 3])
def test_flip_probability_matches_transcription(noise, d):
    rng = np.random.default_rng(10 * d + noise)
    preds = rng.integers(0, 4, size=(13, 31))
    assert flip_probability(preds, noise=noise, difficulty=d) == reference_fp(preds, noise, d)
    assert flip_probability(torch.as_tensor(preds), noise=noise, difficulty=d) == reference_fp(preds, noise, d)
    flips, pairs = flip_counts(preds, noise=noise, difficulty=d)
    assert flips / pairs == pytest.approx(reference_fp(preds, noise, d), rel=1e-12)


@pytest.mark.parametrize("noise", [False, True])
@pytest.mark.parametrize("d", [1, 2, 3])
def test_top5_distance_matches_transcription(noise, d):
    rng = np.random.default_rng(100 + 10 * d + noise)
    # Few distinct values: many ties, which rankdata breaks by class index.
    logits = rng.integers(0, 6, size=(7, 11, 12)).astype(np.float32)
    drift = rng.normal(size=(7, 11, 12)).astype(np.float32)
    logits = np.where(rng.random((7, 11, 1)) < 0.5, logits, logits + drift)
    expected = reference_t5d(logits, noise, d)
    assert top5_distance(logits, noise=noise, difficulty=d) == expected
    total, pairs = top5_distance_counts(ranked_classes(torch.as_tensor(logits)), noise=noise, difficulty=d)
    assert total / pairs == pytest.approx(expected, rel=1e-12)


def test_top5_indices_suffice_for_t5d():
    """Ranks beyond 5 enter only as min(σ − 1, 5): top-5 lists give the full-logit value."""
    rng = np.random.default_rng(7)
    logits = rng.normal(size=(20, 9, 1000)).astype(np.float32)
    # Let consecutive frames share most of their top classes, with reshuffles beyond rank 5.
    logits[:, 1:] = logits[:, :1] + 0.3 * logits[:, 1:]
    for noise, d in [(False, 1), (False, 3), (True, 1)]:
        full = sum(
            reference_t5d_pair(video[a], video[b])
            for video in logits
            for a, b in reference_pairs(logits.shape[1], noise, d)
        )
        total, pairs = top5_distance_counts(ranked_classes(torch.as_tensor(logits)), noise=noise, difficulty=d)
        assert total == full
        assert pairs == 20 * len(reference_pairs(9, noise, d))


def test_ranked_classes_break_ties_like_rankdata():
    z = torch.tensor([[1.0, 3.0, 3.0, 0.0, 3.0, 2.0, 1.0]])
    expected = np.argsort(rankdata(-z[0].numpy(), method="ordinal"))[:5]
    assert ranked_classes(z)[0].tolist() == expected.tolist() == [1, 2, 4, 5, 0]


def test_counts_accumulate_over_batches():
    rng = np.random.default_rng(3)
    logits = torch.as_tensor(rng.normal(size=(10, 31, 20)).astype(np.float32))
    top = ranked_classes(logits)
    whole = PerturbationCounts()
    whole.update(top, noise=False, difficulty=2)
    parts = [PerturbationCounts() for _ in range(3)]
    for part, chunk in zip(parts, torch.tensor_split(top, 3)):
        part.update(chunk, noise=False, difficulty=2)
    merged = PerturbationCounts()
    for part in parts:
        merged.merge(part)
    assert merged == whole
    assert whole.videos == 10 and whole.pairs == 10 * (31 - 2)
    assert whole.flip_probability == pytest.approx(flip_probability(logits.argmax(-1), noise=False, difficulty=2))
    assert whole.top5_distance == pytest.approx(top5_distance(logits, noise=False, difficulty=2))


def test_frame_pairs_counts():
    assert len(frame_pairs(31, noise=True)[0]) == 30
    for d in (1, 2, 3):
        assert len(frame_pairs(31, noise=False, difficulty=d)[0]) == 31 - d
        assert len(frame_pairs(41, noise=False, difficulty=d)[0]) == 41 - d


def test_bad_inputs_raise():
    with pytest.raises(InputError):
        flip_probability([1, 2, 3], noise=False)
    with pytest.raises(InputError):
        flip_probability([[1, 2]], noise=False, difficulty=2)
    with pytest.raises(InputError):
        top5_distance(np.zeros((2, 3)), noise=True)
