"""Cell kinds: how one batch of a (kind, item, level) cell is evaluated.

Each kind turns a clean batch into per-model additive counts. New capabilities
(perturbation sequences, attacks) register a kind here instead of changing the
evaluator. Counts may carry ``"outcomes"``: a list of per-batch dicts of per-image arrays
(fields declared in :mod:`robench.outcomes`), which the evaluator joins, sorts by index and
stores beside the counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from robench._registry import Registry
from robench._rng import SampleRNG
from robench.corruptions import quantize_uint8
from robench.corruptions.catalog import any_corruption
from robench.errors import InputError
from robench.metrics.counts import ClassificationCounts, classification_outcomes
from robench.metrics.scoring import DEFAULT as DEFAULT_SCORING
from robench.metrics.scoring import SCORING_RULES, ScoringRule
from robench.suites import Item, Suite

Counts = dict[str, Any]


@dataclass(frozen=True)
class Batch:
    """Images (float ``[0, 1]``, on the evaluation device), labels and dataset indices.

    ``released`` marks images read from a released dataset, already transformed (corrupted and
    JPEG-stored images, or perturbation videos ``N×T×C×H×W``), which the kind then evaluates as they are.
    ``robust_before`` (cascaded attack cells, :mod:`robench.attacks.cascade`): per model, the dataset
    indices still robust before this cell, or ``None`` where every image is attacked.
    """

    x: torch.Tensor
    y: torch.Tensor
    indices: list[int]
    released: bool = False
    robust_before: Sequence[frozenset[int] | None] | None = None


class CellKind(Protocol):
    def inputs(self, item: Item, level: int, suite: Suite) -> dict[str, Any]:
        """What besides model, data, item settings and level determines the cell's images (resume checks)."""
        ...

    def evaluate(
        self, models: Sequence[nn.Module], batch: Batch, item: Item, level: int, suite: Suite
    ) -> list[Counts]:
        """Per-model counts for one batch (same order as ``models``)."""
        ...


CELL_KINDS: Registry[CellKind] = Registry("cell kind")


def logits_of(model: nn.Module, x: torch.Tensor, what: str) -> torch.Tensor:
    """Forward pass without gradients; non-finite logits are an error, never averaged in."""
    with torch.inference_mode():
        logits = model(x).float()
    bad = ~torch.isfinite(logits).all(dim=1)
    if bad.any():
        who = getattr(model, "robench_name", "the model")
        raise InputError(
            f"{what}: {who} produced NaN/inf logits for {int(bad.sum())} of {len(bad)} images; "
            "check the checkpoint (NaN weights?) and --amp. Finished cells are kept."
        )
    return logits


def apply_protocol(x: torch.Tensor, suite: Suite) -> torch.Tensor:
    """The suite's post-transform steps: 8-bit truncation, then an optional JPEG round trip."""
    if suite.protocol.quantize:
        x = quantize_uint8(x)
    if suite.protocol.jpeg_quality:
        from robench.corruptions import jpeg_roundtrip

        x = jpeg_roundtrip(x, suite.protocol.jpeg_quality)
    return x


def scoring_of(suite: Suite) -> ScoringRule:
    """The decision rule of the suite's dataset (:mod:`robench.metrics.scoring`), e.g. ImageNet-A's mask."""
    from robench.data.sources import DATASETS

    return SCORING_RULES.get(DATASETS.get(suite.dataset).scoring)


def scoring_inputs(suite: Suite) -> dict[str, str]:
    """The rule as a cell input; empty for the plain rule, so cells stored before rules existed stay valid."""
    name = scoring_of(suite).name
    return {} if name == DEFAULT_SCORING else {"scoring": name}


def classify(models: Sequence[nn.Module], x: torch.Tensor, batch: Batch, what: str,
             rule: ScoringRule | None = None) -> list[Counts]:
    """Counts and per-image outcomes of each model on ``x``, scored by ``rule`` (default: all classes)."""
    rule = rule or SCORING_RULES.get(DEFAULT_SCORING)
    out = []
    for model in models:
        logits, labels = rule(logits_of(model, x, what), batch.y)
        counts = ClassificationCounts()
        counts.update(logits, labels)
        out.append({**counts.as_dict(), "outcomes": [classification_outcomes(logits, labels, batch.indices)]})
    return out


class CleanKind:
    """The untouched images (the official clean error uses the original files, no JPEG step)."""

    def inputs(self, item, level, suite):
        return {"resize": suite.protocol.resize, "crop": suite.protocol.crop, **scoring_inputs(suite)}

    def evaluate(self, models, batch, item, level, suite):
        return classify(models, batch.x, batch, "clean", scoring_of(suite))


class CorruptionKind:
    """A corruption at one severity, then the suite protocol (quantise, JPEG)."""

    def inputs(self, item, level, suite):
        return {"seed": suite.seed, "param_set": suite.param_set, "protocol": suite.protocol.key(),
                "revision": any_corruption().get(item.name).revision, **scoring_inputs(suite)}

    def evaluate(self, models, batch, item, level, suite):
        rule = scoring_of(suite)
        if batch.released:
            return classify(models, batch.x, batch, f"released {item.name} severity {level}", rule)
        rng = SampleRNG(batch.indices, seed=suite.seed, key=f"{suite.param_set}/{item.name}/{level}")
        x = any_corruption().get(item.name)(batch.x, level, rng=rng, param_set=suite.param_set)
        return classify(models, apply_protocol(x, suite), batch, f"{item.name} severity {level}", rule)


class PerturbationKind:
    """An ImageNet-P sequence per image; level = difficulty. Videos are never split across batches."""

    def inputs(self, item, level, suite):
        from robench.perturbations import PERTURBATIONS

        return {"seed": suite.seed, "param_set": suite.param_set,
                "revision": PERTURBATIONS.get(item.name).revision}

    def evaluate(self, models, batch, item, level, suite):
        from robench.metrics.perturbation import PerturbationCounts, per_video_counts, ranked_classes
        from robench.perturbations import PERTURBATIONS, perturbation_rng

        pert = PERTURBATIONS.get(item.name)
        if batch.released:
            frames = iter(batch.x.unbind(dim=1))
        else:
            rng = perturbation_rng(batch.indices, name=item.name, difficulty=level, seed=suite.seed,
                                   param_set=suite.param_set)
            crop = item.settings.get("crop") or None
            frames = pert.frames(batch.x, difficulty=level, rng=rng, param_set=suite.param_set, crop=crop)
        ranked: list[list[torch.Tensor]] = [[] for _ in models]
        for t, frame in enumerate(frames):
            for k, model in enumerate(models):
                ranked[k].append(ranked_classes(logits_of(model, frame, f"{item.name} frame {t}")).cpu())
        out = []
        for per_frame in ranked:
            top5 = torch.stack(per_frame, dim=1)
            counts = PerturbationCounts()
            counts.update(top5, noise=pert.noise, difficulty=level)
            videos = per_video_counts(top5, noise=pert.noise, difficulty=level)
            out.append({**counts.as_dict(),
                        "outcomes": [{"index": np.asarray(batch.indices, dtype=np.int64), **videos}]})
        return out


class AttackKind:
    """One attack at one eps (level k = the suite's k-th eps); counts robust images and their indices,
    so the per-image worst case over attacks can be formed from the store.

    In a cascaded suite an image not in the batch's ``robust_before`` is not attacked and counts as
    broken, so the cell's robust images are those surviving every earlier cell of the cascade too.
    """

    def inputs(self, item, level, suite):
        from robench.attacks.cascade import cascaded, chain

        if not cascaded(item):
            return {"seed": suite.seed}
        return {"seed": suite.seed, "cascade_after": chain(suite.items, item, level)}

    def evaluate(self, models, batch, item, level, suite):
        from robench.attacks import ATTACKS, AttackStats

        attack = ATTACKS.get(item.name)
        eps = item.settings["eps"][level - 1]
        before = batch.robust_before or [None] * len(models)
        out = []
        for model, robust_before in zip(models, before):
            stats = AttackStats()
            skip = None if robust_before is None else torch.tensor(
                [i not in robust_before for i in batch.indices], dtype=torch.bool)
            with torch.enable_grad():
                success = attack(model, batch.x, batch.y, eps=eps, seed=suite.seed, indices=batch.indices,
                                 stats=stats, skip=skip, **item.settings["attack"])
            robust = [i for i, s in zip(batch.indices, success.tolist()) if not s]
            per_image = {"index": np.asarray(batch.indices, dtype=np.int64),
                         "robust": ~success.cpu().numpy().astype(bool)}
            out.append({"n": len(batch.indices), "robust": len(robust), "robust_idx": robust,
                        "clean_correct": stats.clean_correct, "forwards": stats.forwards,
                        "backwards": stats.backwards, "outcomes": [per_image]})
        return out


CELL_KINDS.add("clean", CleanKind())
CELL_KINDS.add("corruption", CorruptionKind())
CELL_KINDS.add("perturbation", PerturbationKind())
CELL_KINDS.add("attack", AttackKind())


def add_counts(total: Counts | None, more: Counts) -> Counts:
    """Sum two count dicts (numbers add, lists concatenate: ``robust_idx``, the per-batch ``outcomes``)."""
    if total is None:
        return dict(more)
    return {k: total[k] + more[k] for k in total}
