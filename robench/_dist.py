"""torch.distributed helpers for `torchrun -m robench eval`.

Each rank evaluates an exact, contiguous shard of the dataset indices (no padding, no
duplicates, no drops — unlike ``DistributedSampler``), the per-cell counts are gathered
and summed, and rank 0 alone touches the store. With one process every helper is a no-op.
Because random draws are keyed by dataset index, the summed counts equal a one-process run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


def shard(indices: Sequence[int], rank: int, world: int) -> list[int]:
    """Rank ``rank``'s contiguous share of ``indices``; shares differ in size by at most one."""
    n = len(indices)
    start = rank * n // world
    stop = (rank + 1) * n // world
    return list(indices[start:stop])


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, device: torch.device) -> DistContext:
        """Join the process group torchrun describes in the environment (or stay single-process)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        if not dist.is_initialized():
            backend = "nccl" if device.type == "cuda" else "gloo"
            dist.init_process_group(backend=backend)
        return cls(dist.get_rank(), dist.get_world_size())

    def shard(self, indices: Sequence[int]) -> list[int]:
        return shard(indices, self.rank, self.world)

    def broadcast(self, obj: T) -> T:
        """Rank 0's ``obj`` on every rank."""
        if self.world == 1:
            return obj
        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]  # type: ignore[return-value]

    def reduce(self, value: T, combine: Callable[[T, T], T]) -> T:
        """Combine every rank's ``value`` (in rank order) and give the result to all ranks."""
        if self.world == 1:
            return value
        gathered: list[Any] = [None] * self.world
        dist.all_gather_object(gathered, value)
        out = gathered[0]
        for other in gathered[1:]:
            out = combine(out, other)
        return out

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()
