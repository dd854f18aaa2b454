"""Additive per-cell counts of a classification run (torchmetrics-style accumulator)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class ClassificationCounts:
    """Top-1 / top-5 error counts over the images seen so far.

    ``update`` takes a batch, ``merge`` adds another accumulator (e.g. from another
    rank), ``as_dict`` gives the stored form; every field is a plain sum, so the
    result is the same however the images were batched or sharded.
    """

    n: int = 0
    top1_errors: int = 0
    top5_errors: int = 0

    def update(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        labels = labels.to(logits.device)
        k = min(5, logits.shape[1])
        top = logits.topk(k, dim=1).indices
        self.n += int(labels.numel())
        self.top1_errors += int((top[:, 0] != labels).sum())
        self.top5_errors += int((top != labels[:, None]).all(dim=1).sum())

    def merge(self, other: ClassificationCounts) -> None:
        self.n += other.n
        self.top1_errors += other.top1_errors
        self.top5_errors += other.top5_errors

    def as_dict(self) -> dict[str, int]:
        return {"n": self.n, "top1_errors": self.top1_errors, "top5_errors": self.top5_errors}


def classification_outcomes(
    logits: torch.Tensor, labels: torch.Tensor, indices: Sequence[int]
) -> dict[str, np.ndarray]:
    """Per-image terms of :class:`ClassificationCounts` for one batch (see :mod:`robench.outcomes`).

    ``pred`` and the top-5 set come from the same ``topk`` as the counts; ``confidence`` is the
    float32 softmax probability of ``pred``; ``nll`` and ``brier`` are the calibration terms of
    :func:`robench.metrics.calibration.per_image_terms`. Pass the logits the cell scores with (a suite that
    masks logits to a class subset passes the masked ones): all fields then follow the same softmax.
    """
    from robench.metrics.calibration import per_image_terms

    labels = labels.to(logits.device)
    k = min(5, logits.shape[1])
    top = logits.topk(k, dim=1).indices
    pred = top[:, 0]
    confidence = torch.softmax(logits.float(), dim=1).gather(1, pred[:, None])[:, 0]
    return {
        "index": np.asarray(indices, dtype=np.int64),
        "label": labels.cpu().numpy().astype(np.int64),
        "pred": pred.cpu().numpy().astype(np.int64),
        "correct": (pred == labels).cpu().numpy(),
        "correct5": (top == labels[:, None]).any(dim=1).cpu().numpy(),
        "confidence": confidence.cpu().numpy().astype(np.float32),
        **per_image_terms(logits, labels),
    }
