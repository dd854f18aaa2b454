"""Calibration of a classification cell: top-label ECE (15 equal-width bins), NLL and multi-class Brier.

Definitions (SHIFTS.md §4): with softmax probabilities p_i over the logits the cell scores with,
confidence c_i = max_k p_ik, correct a_i = 1[argmax_k p_ik = y_i]:

* ``ECE = Σ_b (n_b / N) · |acc_b − conf_b| = Σ_b |Σ_{i∈b} (a_i − c_i)| / N``, bin
  ``b = min(⌊15·c⌋, 14)`` (the robustness_metrics / uncertainty-baselines convention: left-closed bins,
  1.0 in the last one), empty bins contribute nothing;
* ``NLL = (1/N) Σ_i −log p_{i,y_i}`` (nats);
* ``Brier = (1/N) Σ_i Σ_k (p_ik − 1[k = y_i])²`` ∈ [0, 2] (robustness_metrics' form, not Ovadia's ``− 1``).

The per-image terms (``nll``, ``brier``) are computed by :func:`per_image_terms` in float64 from the cell's
logits and stored as float32 beside the per-image confidence (:mod:`robench.outcomes`); every aggregate here
sums them in float64 with :func:`math.fsum` (exactly rounded, so independent of summation order), which
makes a resumed, re-batched or sharded run report byte-identical numbers.

:func:`per_image_terms` is the one place where a cell's logits become probabilities for calibration. A suite
that scores a class subset (ImageNet-A/R: the standard evaluators' masked logits) passes its masked logits
to :func:`robench.metrics.counts.classification_outcomes`, and confidence, NLL and Brier then all use the
masked softmax.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

BINS = 15
"""Equal-width confidence bins of the top-label ECE."""


def per_image_terms(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, np.ndarray]:
    """Per-image ``nll`` (−log p_y) and ``brier`` (Σ_k (p_k − 1[k = y])²) as float32 arrays.

    Computed in float64 from the logits row by row, so an image's terms do not depend on its batch.
    """
    z = logits.detach().to(torch.float64)
    labels = labels.to(z.device).long()
    logp = torch.log_softmax(z, dim=1)
    p = logp.exp()
    p_y = p.gather(1, labels[:, None])[:, 0]
    nll = -logp.gather(1, labels[:, None])[:, 0]
    brier = (p * p).sum(dim=1) - 2.0 * p_y + 1.0
    brier = brier.clamp(0.0, 2.0)
    return {"nll": nll.cpu().numpy().astype(np.float32), "brier": brier.cpu().numpy().astype(np.float32)}


def bin_of(confidence: np.ndarray, bins: int = BINS) -> np.ndarray:
    """Bin of each confidence: ``min(⌊bins · c⌋, bins − 1)`` in float64."""
    c = np.asarray(confidence, dtype=np.float64)
    return np.minimum(np.floor(c * bins), bins - 1).astype(np.int64).clip(0, bins - 1)


def _fsum(values: np.ndarray) -> float:
    return math.fsum(np.asarray(values, dtype=np.float64).tolist())


@dataclass(frozen=True)
class Reliability:
    """Per-bin counts of one cell (or a pool of cells): images, summed confidence, correct images."""

    count: np.ndarray
    confidence_sum: np.ndarray
    correct: np.ndarray

    @property
    def n(self) -> int:
        return int(self.count.sum())

    def ece(self) -> float:
        """Top-label ECE as a fraction (NaN for no images)."""
        if self.n == 0:
            return math.nan
        return math.fsum(abs(float(a) - float(c)) for a, c in zip(self.correct, self.confidence_sum)) / self.n


def reliability(confidence: np.ndarray, correct: np.ndarray, bins: int = BINS) -> Reliability:
    """Per-bin counts of ``confidence`` / ``correct`` (each bin's sums exactly rounded)."""
    conf = np.asarray(confidence, dtype=np.float64)
    ok = np.asarray(correct, dtype=bool)
    b = bin_of(conf, bins)
    count = np.bincount(b, minlength=bins).astype(np.int64)
    sums = np.array([_fsum(conf[b == k]) for k in range(bins)], dtype=np.float64)
    right = np.bincount(b, weights=ok.astype(np.float64), minlength=bins)
    return Reliability(count, sums, right)


def ece(confidence: np.ndarray, correct: np.ndarray, bins: int = BINS) -> float:
    """Top-label expected calibration error (fraction) with ``bins`` equal-width bins."""
    return reliability(confidence, correct, bins).ece()


def mean_term(values: np.ndarray) -> float:
    """Mean of per-image terms (NLL or Brier), exactly rounded sum in float64 (NaN for none)."""
    v = np.asarray(values, dtype=np.float64)
    return _fsum(v) / v.size if v.size else math.nan


def nll_from_probabilities(p: np.ndarray, labels: np.ndarray) -> float:
    """NLL of an ``N × K`` probability matrix (reference form, for tests and checks)."""
    p = np.asarray(p, dtype=np.float64)
    return mean_term(-np.log(p[np.arange(len(labels)), labels]))


def brier_from_probabilities(p: np.ndarray, labels: np.ndarray) -> float:
    """Multi-class Brier score of an ``N × K`` probability matrix (reference form)."""
    p = np.asarray(p, dtype=np.float64)
    onehot = np.zeros_like(p)
    onehot[np.arange(len(labels)), labels] = 1.0
    return mean_term(((p - onehot) ** 2).sum(axis=1))
