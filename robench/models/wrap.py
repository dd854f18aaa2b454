"""The pixel contract: models take ``[0, 1]`` images and normalise them inside."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from robench.errors import InputError


class Normalized(nn.Module):
    """``model((x - mean) / std)`` for ``N×C×H×W`` inputs in ``[0, 1]``.

    The statistics are non-persistent buffers: they follow ``.to(device)`` but are not
    part of the state_dict, which stays that of the wrapped network.

    Args:
        model: The network expecting normalised inputs.
        mean: Per-channel mean.
        std: Per-channel standard deviation.
    """

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if len(mean) != len(std) or any(s <= 0 for s in std):
            raise InputError(f"Normalisation needs one positive std per mean, got mean={mean}, std={std}.")
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32)[:, None, None], persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32)[:, None, None], persistent=False)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.mean.shape[0]:
            raise InputError(f"Expected N×{self.mean.shape[0]}×H×W images in [0, 1], got shape {tuple(x.shape)}.")
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.normalize(x))

    def extra_repr(self) -> str:
        mean = ", ".join(f"{v:.4f}" for v in self.mean.flatten().tolist())
        std = ", ".join(f"{v:.4f}" for v in self.std.flatten().tolist())
        return f"mean=({mean}), std=({std})"
