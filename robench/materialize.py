"""`robench corrupt`: write a corrupted copy of an image folder in the official ImageNet-C layout.

``<out>/<corruption>/<severity>/<class>/<file>`` (JPEG quality 85 with ``optimize=True``, as the released
dataset; ``--no-jpeg`` writes lossless PNG). Images get the same per-sample random draws as on-the-fly
evaluation (key: seed, parameter set, corruption, severity, index), so evaluating the written folder
reproduces the ``imagenet-c`` suite's numbers. Each file is written to a temporary name and renamed, so a
killed run leaves no half-written image, and a rerun skips the files that exist.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from robench._progress import progress
from robench._rng import SampleRNG
from robench.corruptions import CORRUPTIONS, SEVERITIES, quantize_uint8
from robench.corruptions._base import check_severity
from robench.data.batches import iter_batches
from robench.data.sources import ImageFolderSource
from robench.errors import InputError, MissingFileError
from robench.suites import Protocol


@dataclass(frozen=True)
class CorruptConfig:
    data: Path
    out: Path
    corruptions: tuple[str, ...] = ()
    severities: tuple[int, ...] = SEVERITIES
    seed: int = 0
    jpeg: bool = True
    workers: int = 0
    batch_size: int = 32
    param_set: str = "imagenet"
    resize: int = 256
    crop: int = 224


def _target(out: Path, corruption: str, severity: int, rel: Path, jpeg: bool) -> Path:
    """Output path: the source's relative path, with a suffix that says what the file holds."""
    path = out / corruption / str(severity) / rel
    if not jpeg:
        return path.with_suffix(".png")
    return path if path.suffix.lower() in (".jpeg", ".jpg") else path.with_suffix(".JPEG")


def _save(img: np.ndarray, path: Path, jpeg: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pil = Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img)
    if jpeg:
        pil.save(tmp, format="JPEG", quality=85, optimize=True)
    else:
        pil.save(tmp, format="PNG")
    os.replace(tmp, path)


def materialize(cfg: CorruptConfig) -> dict[str, int]:
    """Write every requested (corruption, severity) of ``cfg.data``; returns written / skipped counts."""
    if not cfg.data.is_dir():
        what = "is not a folder" if cfg.data.exists() else "does not exist"
        raise MissingFileError(f"Image folder {cfg.data} {what}; pass --data DIR (DIR/<class>/<images>).")
    names = list(cfg.corruptions) or [n for n, c in CORRUPTIONS.items() if c.test]
    for n in names:
        CORRUPTIONS.get(n)
    for s in cfg.severities:
        check_severity(s)
    if cfg.batch_size < 1:
        raise InputError(f"--batch-size must be at least 1, got {cfg.batch_size}.")
    ds = ImageFolderSource(cfg.data, Protocol(resize=cfg.resize, crop=cfg.crop))
    rels = [path.relative_to(cfg.data) for path, _ in ds.samples]
    counts = {"written": 0, "skipped": 0}
    jobs = [(c, s) for c in names for s in sorted(set(cfg.severities))]
    with progress(total=len(jobs) * len(ds), desc="corrupt", unit="img") as bar:
        for corruption, severity in jobs:
            todo = [i for i, rel in enumerate(rels)
                    if not _target(cfg.out, corruption, severity, rel, cfg.jpeg).exists()]
            counts["skipped"] += len(rels) - len(todo)
            bar.update(len(rels) - len(todo))
            bar.set_postfix_str(f"{corruption} {severity}")
            for x, _, chunk, _ in iter_batches(ds, todo, cfg.batch_size, cfg.workers):
                rng = SampleRNG(chunk, seed=cfg.seed, key=f"{cfg.param_set}/{corruption}/{severity}")
                y = CORRUPTIONS.get(corruption)(x.float().div_(255.0), severity, rng=rng, param_set=cfg.param_set)
                u8 = (quantize_uint8(y) * 255.0).round_().to(torch.uint8).permute(0, 2, 3, 1).numpy()
                for i, img in zip(chunk, u8):
                    _save(img, _target(cfg.out, corruption, severity, rels[i], cfg.jpeg), cfg.jpeg)
                counts["written"] += len(chunk)
                bar.update(len(chunk))
    return counts

