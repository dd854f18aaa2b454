"""Per-sample random streams.

Every random draw made for dataset index ``i`` comes from a generator seeded by a
stable hash of ``(seed, stream key, i)``. The draws for one image are therefore the
same whatever the batch size, worker count, process count or device, which is what
lets resumed and distributed runs reproduce an uninterrupted run exactly.
Draws are made on the CPU and moved to the target device for the same reason.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch


def stream_seed(seed: int, key: str, index: int) -> int:
    """A 63-bit seed for one sample of one random stream."""
    digest = hashlib.blake2b(f"{seed}\x1f{key}\x1f{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


class SampleRNG:
    """One ``torch.Generator`` per sample of a batch.

    Args:
        indices: Dataset indices of the batch's samples, in batch order.
        seed: The run's seed.
        key: What the stream is for, e.g. ``"cifar/gaussian_noise/3"``.
    """

    def __init__(self, indices: Sequence[int], *, seed: int = 0, key: str = "") -> None:
        self.indices = [int(i) for i in indices]
        self.generators = []
        for i in self.indices:
            g = torch.Generator()
            g.manual_seed(stream_seed(seed, key, i))
            self.generators.append(g)

    @classmethod
    def for_batch(cls, n: int, *, seed: int = 0, key: str = "", start: int = 0) -> SampleRNG:
        """Streams for indices ``start … start+n-1`` (for direct, non-dataset use)."""
        return cls(range(start, start + n), seed=seed, key=key)

    def __len__(self) -> int:
        return len(self.generators)

    def per_sample(self) -> list[SampleRNG]:
        """One single-sample view per sample, sharing this object's generators (same draws, same order)."""
        views = []
        for i, g in zip(self.indices, self.generators):
            view = object.__new__(SampleRNG)
            view.indices, view.generators = [i], [g]
            views.append(view)
        return views

    def _stack(self, draws: list[torch.Tensor], device: torch.device | str | None) -> torch.Tensor:
        out = torch.stack(draws)
        return out if device is None else out.to(device, non_blocking=True)

    def _fill(self, draw, shape: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
        """``(N, *shape)`` with sample ``i``'s draws written in place from generator ``i`` (no stacking copy)."""
        out = torch.empty((len(self.generators), *shape), dtype=dtype)
        for row, g in zip(out, self.generators):
            draw(tuple(shape), generator=g, dtype=dtype, out=row)
        return out

    def normal(
        self, shape: Sequence[int], *, mean: float = 0.0, std: float = 1.0, device=None,
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """Normal draws of per-sample ``shape``; returns ``(N, *shape)``."""
        out = self._fill(torch.randn, shape, dtype)
        if std != 1.0:
            out.mul_(std)
        if mean != 0.0:
            out.add_(mean)
        return out if device is None else out.to(device, non_blocking=True)

    def uniform(
        self, shape: Sequence[int], *, low: float = 0.0, high: float = 1.0, device=None,
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """Uniform draws in ``[low, high)`` of per-sample ``shape``; returns ``(N, *shape)``."""
        out = self._fill(torch.rand, shape, dtype)
        if (low, high) != (0.0, 1.0):
            out.mul_(high - low).add_(low)
        return out if device is None else out.to(device, non_blocking=True)

    def integers(self, low: int, high: int, shape: Sequence[int] = (), *, device=None) -> torch.Tensor:
        """Integer draws in ``[low, high)`` (upper bound exclusive, like NumPy's randint)."""
        draws = [torch.randint(low, high, tuple(shape), generator=g) for g in self.generators]
        return self._stack(draws, device)

    def poisson(self, rates: torch.Tensor) -> torch.Tensor:
        """Poisson draws with per-element ``rates`` of shape ``(N, …)``, on ``rates``' device."""
        cpu = rates.detach().to("cpu", torch.float64)
        draws = [torch.poisson(r, generator=g) for r, g in zip(cpu, self.generators, strict=True)]
        return torch.stack(draws).to(rates.device, rates.dtype)
