"""Batches of dataset images in index order, for evaluation and for `robench corrupt`."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from robench.data.sources import TensorSource


def _keep_list(samples: list) -> list:
    """DataLoader collate that keeps the samples: images may differ in size, or be skipped (None)."""
    return samples


def iter_batches(
    ds: Dataset, indices: list[int], batch_size: int, workers: int, pin_memory: bool = False
) -> Iterator[tuple[torch.Tensor, torch.Tensor, list[int], int]]:
    """``(uint8 images, labels, dataset indices, skipped)`` in index order.

    Images of different sizes (e.g. ImageNet-P's uncropped 256-px images) are yielded as separate
    same-size groups; unreadable images skipped under ``--on-bad-image skip`` arrive as ``None`` and
    are only counted.
    """
    if isinstance(ds, TensorSource):
        for start in range(0, len(indices), batch_size):
            chunk = indices[start : start + batch_size]
            x, y = ds.batch(chunk)
            yield x, y, chunk, 0
        return
    loader = DataLoader(Subset(ds, indices), batch_size=batch_size, num_workers=workers, shuffle=False,
                        collate_fn=_keep_list)
    start = 0
    for samples in loader:
        chunk = indices[start : start + len(samples)]
        start += len(samples)
        kept = [(img, label, i) for (img, label), i in zip(samples, chunk) if img is not None]
        skipped = len(samples) - len(kept)
        if not kept:
            yield torch.empty(0), torch.empty(0, dtype=torch.int64), [], skipped
        for _, group in itertools.groupby(kept, key=lambda s: tuple(s[0].shape)):
            group = list(group)
            x = torch.stack([g[0] for g in group])
            yield (x.pin_memory() if pin_memory else x), torch.tensor([g[1] for g in group]), [g[2] for g in group], \
                skipped
            skipped = 0
