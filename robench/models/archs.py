"""The architecture registry and :func:`create_model`.

An architecture is a backbone family whose builder accepts any registered pooling head,
so ``create_model("resnet50", "gcp")`` and ``create_model("resnet50", "gap")`` are the
paper's paired models. Each entry also carries the preprocessing its released weights
expect, used when a checkpoint comes without a model card.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn
from torchvision.models import resnet as tv

from robench._registry import Registry
from robench.errors import InputError
from robench.models import mobile, resnet
from robench.models.pooling import POOLINGS, Pooling

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FASHION_MNIST_MEAN = (0.2854, 0.2854, 0.2854)
FASHION_MNIST_STD = (0.3384, 0.3384, 0.3384)
"""Per-pixel statistics of the Fashion-MNIST training split at 32 px (grey replicated)."""


@dataclass(frozen=True)
class Arch:
    """One registered architecture.

    Attributes:
        name: Registry name (``resnet50``).
        build: ``build(pool, num_classes) -> nn.Module``.
        classifier: State-dict key of the classifier weight (gives ``num_classes``).
        input_size: Side of the square input the released weights were trained on.
        resize: Side of the shorter edge before the centre crop (``None``: no resize).
        mean: Per-channel normalisation mean of the released weights.
        std: Per-channel normalisation std of the released weights.
        default_classes: ``num_classes`` when none is given.
        poolings: The pooling heads this architecture exists with (empty: every registered one).
    """

    name: str
    build: Callable[[Pooling, int], nn.Module]
    classifier: str = "fc.weight"
    input_size: int = 224
    resize: int | None = 256
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    default_classes: int = 1000
    poolings: tuple[str, ...] = ()

    def supports(self, pool: str) -> bool:
        return not self.poolings or pool in self.poolings


ARCHS: Registry[Arch] = Registry("architecture")

for _name, _block, _layers in (
    ("resnet18", tv.BasicBlock, [2, 2, 2, 2]),
    ("resnet34", tv.BasicBlock, [3, 4, 6, 3]),
    ("resnet50", tv.Bottleneck, [3, 4, 6, 3]),
    ("resnet101", tv.Bottleneck, [3, 4, 23, 3]),
):
    ARCHS.add(_name, Arch(_name, resnet.resnet_builder(_block, _layers)))
ARCHS.add("mobilenet_v2", Arch("mobilenet_v2", mobile.build_mobilenet_v2, classifier="classifier.1.weight"))
ARCHS.add("shufflenet_v2_x1_0", Arch("shufflenet_v2_x1_0", mobile.build_shufflenet_v2_x1_0))
ARCHS.add(
    "resnet_demo",
    Arch(
        "resnet_demo",
        resnet.build_demo,
        input_size=32,
        resize=None,
        mean=FASHION_MNIST_MEAN,
        std=FASHION_MNIST_STD,
        default_classes=10,
    ),
)


def build_alexnet(pool: Pooling, num_classes: int) -> nn.Module:
    """torchvision's AlexNet, the normalising baseline of ImageNet-C/P (its own 6×6 pool and FC head).

    Registered only with ``pool="gap"`` so that the baseline can be evaluated and stored like any
    model (e.g. ``--ckpt tv-alexnet``, then ``--baseline tv-alexnet`` for mFR / mT5D).
    """
    from torchvision.models import alexnet

    return alexnet(num_classes=num_classes)


ARCHS.add("alexnet", Arch("alexnet", build_alexnet, classifier="classifier.6.weight", poolings=("gap",)))


def create_model(arch: str, pool: str, num_classes: int | None = None) -> nn.Module:
    """Build an untrained model.

    Args:
        arch: Architecture name (see ``ARCHS``), e.g. ``"resnet50"``.
        pool: Pooling head name (see ``POOLINGS``): ``"gap"`` or ``"gcp"``.
        num_classes: Classifier outputs (default: 1000, or 10 for ``resnet_demo``).

    Returns:
        The network in training mode, taking *normalised* inputs (no normaliser inside;
        see :func:`robench.models.load_model` for the wrapped form).

    Raises:
        UnknownNameError: For an unknown architecture or pooling name.
    """
    spec = ARCHS.get(arch)
    head = POOLINGS.get(pool)
    if not spec.supports(pool):
        raise InputError(f"{arch} has no {pool} variant; use --pool {' or '.join(spec.poolings)}.")
    return spec.build(head, spec.default_classes if num_classes is None else num_classes)
