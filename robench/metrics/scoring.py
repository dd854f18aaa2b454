"""Scoring rules: how a dataset's logits and labels become the labels of a top-k decision.

Every classification cell counts top-1 / top-5 errors and per-image outcomes of ``(logits, labels)``;
a dataset whose published scores use another decision rule names it here, and its images are scored
through it before counting (:func:`robench.kinds.classify`). A rule returns logits of the same width
and one ImageNet-1k label per image, so counts, outcomes and exports keep their meaning:

* ``all-classes``: the plain rule (argmax over every logit; the image's one label).
* ``imagenet-a-200`` / ``imagenet-r-200``: the standard evaluators' rule for the 200-class datasets
  (Hendrycks' ``eval.py``, timm ``--valid-labels``, imagenet-testbed ``class_sublist``): the logits of
  the other 800 classes are set to ``-inf``, so top-k, softmax confidence and argmax run over the 200
  only; labels stay ImageNet-1k indices. The 1000-way alternative (natural-adv-examples PR #15) is not
  what the published tables use.
* ``real-label-sets``: ImageNet-ReaL (Beyer et al. 2020; timm ``RealLabelsImagenet``): a prediction is
  correct when it is one of the image's valid labels, top-5 when any of the top 5 is. Labels arrive
  as ``N×L`` (padded with -1); the rule returns for each image the valid label the model ranks
  highest (the first of its top-5 in the set, else the set member with the largest logit), so
  ``pred == label`` is exactly ReaL top-1 and "label in top-5" exactly ReaL top-5.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch

from robench._registry import Registry
from robench.errors import InputError

Apply = Callable[[torch.Tensor, torch.Tensor], "tuple[torch.Tensor, torch.Tensor]"]


@dataclass(frozen=True)
class ScoringRule:
    """A named decision rule: ``apply(logits, labels) -> (logits, labels)``, both on the logits' device."""

    name: str
    description: str
    apply: Apply

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.apply(logits, labels)


SCORING_RULES: Registry[ScoringRule] = Registry("scoring rule")
DEFAULT = "all-classes"


def _identity(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return logits, labels.to(logits.device)


@functools.cache
def _keep(subset: str, width: int, device: torch.device) -> torch.Tensor:
    from robench.data.imagenet_classes import subset_indices

    idx = subset_indices(subset)
    if width <= idx[-1]:
        raise InputError(f"The {subset} classes are ImageNet-1k indices up to {idx[-1]} but the model has "
                         f"{width} outputs; evaluate an ImageNet-1k classifier.")
    keep = torch.zeros(width, dtype=torch.bool)
    keep[list(idx)] = True
    return keep.to(device)


def masked_to(subset: str) -> Apply:
    """The rule that scores only the classes of ``subset`` (logits of the others set to ``-inf``)."""

    def apply(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        keep = _keep(subset, logits.shape[1], logits.device)
        return logits.masked_fill(~keep, float("-inf")), labels.to(logits.device)

    return apply


def best_valid_label(logits: torch.Tensor, label_sets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """ReaL: each image's valid label ranked highest by the model (see the module docstring)."""
    if label_sets.ndim != 2:
        raise InputError("ReaL scoring needs a label set per image; use the imagenet-real dataset.")
    sets = label_sets.to(logits.device)
    valid = sets >= 0
    if not valid.any(dim=1).all():
        raise InputError("An image with no ReaL label reached scoring; such images must be excluded.")
    top = logits.topk(min(5, logits.shape[1]), dim=1).indices  # the same topk as the counts
    hit = ((top[:, :, None] == sets[:, None, :]) & valid[:, None, :]).any(dim=2)  # N×k: top[j] in the set
    first = hit.int().argmax(dim=1)
    in_top = top.gather(1, first[:, None])[:, 0]
    member_logits = logits.gather(1, sets.clamp(min=0)).masked_fill(~valid, float("-inf"))
    best_member = sets.gather(1, member_logits.argmax(dim=1, keepdim=True))[:, 0]
    return logits, torch.where(hit.any(dim=1), in_top, best_member)


SCORING_RULES.add(DEFAULT, ScoringRule(DEFAULT, "argmax over all logits; label = the image's class", _identity))
for _subset in ("imagenet-a", "imagenet-r"):
    SCORING_RULES.add(f"{_subset}-200", ScoringRule(
        f"{_subset}-200",
        f"argmax over the 200 {_subset} classes (other logits masked to -inf); labels are ImageNet-1k indices",
        masked_to(_subset)))
SCORING_RULES.add("real-label-sets", ScoringRule(
    "real-label-sets", "correct if the prediction is in the image's ReaL label set (top-5: any of the top 5)",
    best_valid_label))
