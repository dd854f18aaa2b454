"""Inference-time form of a network on the CPU: batch norms folded into convolutions, ReLUs (and
residual additions) fused into them, channels-last.

Evaluation only needs the forward pass of a network in eval mode, so :func:`for_inference` returns
a copy that PyTorch's CPU kernels run faster: every ``BatchNorm2d`` that directly follows a
``Conv2d`` is folded into the convolution's weights and bias; a ReLU that follows a convolution, or
the sum of a convolution and another tensor (a residual connection), is applied by oneDNN inside the
convolution (a post-op on its float32 output, the same arithmetic as the separate operations, one
memory pass less each); weights and inputs are channels-last (oneDNN's native layout: no reorders
around each convolution). Measured on the demo models (``benchmarks/bench_eval.py``): see the README.

Results must not depend on how the images are batched. PyTorch picks its CPU convolution
kernel by shape: for a single image it falls back from oneDNN to its own im2col kernel, and a
one-row ``Linear`` becomes a matrix-vector product, each summing in another order. oneDNN's
convolutions and the matrix products of two or more rows compute every image in the same
order whatever the batch. :class:`InferenceNet` therefore never runs a batch of one: it
evaluates such an image twice in one batch of two and keeps one copy. ``tests/test_inference.py``
checks logits bit for bit across batch sizes 1, 7 and 64 for both demo models.

Left out because it breaks that invariance: TorchScript ``freeze`` + ``optimize_for_inference``
(oneDNN blocked tensors with prepacked weights) was the fastest, but an image's logits changed
with the other image in its batch of two.
"""

from __future__ import annotations

import copy
import functools
import operator
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import fx, nn


class _LeafTracer(fx.Tracer):
    """Traces through containers only; every module without children (conv, BN, pooling heads such
    as iSQRT-COV, whose code branches on dtypes) stays one opaque call."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return next(m.children(), None) is None


def _folded_conv(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """``bn(conv(x))`` as one convolution (eval mode), computed in float64 and rounded once."""
    scale = bn.weight.double() * torch.rsqrt(bn.running_var.double() + bn.eps)
    bias = torch.zeros_like(bn.running_mean, dtype=torch.float64) if conv.bias is None else conv.bias.double()
    fused = copy.deepcopy(conv)
    fused.weight = nn.Parameter((conv.weight.double() * scale.view(-1, 1, 1, 1)).to(conv.weight.dtype))
    fused.bias = nn.Parameter(((bias - bn.running_mean.double()) * scale + bn.bias.double()).to(conv.weight.dtype))
    return fused


def _foldable(bn: nn.Module) -> bool:
    return (isinstance(bn, nn.BatchNorm2d) and bn.affine and bn.running_mean is not None
            and bn.running_var is not None)


def _fold_pass(traced: fx.GraphModule) -> int:
    """Folds each BN whose input is a conv output used by nothing else; returns how many."""
    subs = dict(traced.named_modules())
    folded = 0
    for node in list(traced.graph.nodes):
        if node.op != "call_module" or not _foldable(subs[node.target]):
            continue
        conv = node.args[0]
        if not (isinstance(conv, fx.Node) and conv.op == "call_module" and len(conv.users) == 1
                and type(subs[conv.target]) is nn.Conv2d):
            continue
        parent, _, name = conv.target.rpartition(".")
        setattr(traced.get_submodule(parent), name, _folded_conv(subs[conv.target], subs[node.target]))
        node.replace_all_uses_with(conv)
        traced.graph.erase_node(node)
        folded += 1
    return folded


def _rewritten(module: nn.Module, passes: Sequence[Callable[[fx.GraphModule], int]]) -> nn.Module:
    """``module`` traced by torch.fx and rewritten by ``passes`` (``module`` itself if none applies).

    Modules that fx cannot trace (control flow on the input, as in
    :class:`~robench.models.wrap.Normalized`) are kept and their children rewritten instead.
    """
    try:
        graph = _LeafTracer().trace(module)
    except Exception:  # fx fails in many ways on untraceable code: rewrite the children instead
        for name, child in module.named_children():
            setattr(module, name, _rewritten(child, passes))
        return module
    traced = fx.GraphModule(module, graph)
    if not sum(rewrite(traced) for rewrite in passes):
        return module
    traced.delete_all_unused_submodules()
    traced.recompile()
    return traced


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """``module`` (eval mode, modified) with each ``Conv2d → BatchNorm2d`` pair folded into one conv,
    where the BN is the only user of the conv's output."""
    return _rewritten(module, [_fold_pass])


_RELUS = (torch.relu, F.relu)
_ADDS = (operator.add, torch.add)


@functools.cache
def pointwise_fusion_works() -> bool:
    """Whether this PyTorch has oneDNN's fused convolution (a private op) and it agrees bit for bit
    with the separate operations; fusion is skipped otherwise."""
    try:
        torch.ops.mkldnn._convolution_pointwise.binary  # noqa: B018 - raises where the op is missing
    except (AttributeError, RuntimeError):
        return False
    if not torch.backends.mkldnn.is_available():
        return False
    g = torch.Generator().manual_seed(0)
    x, other = (torch.randn(2, c, 5, 5, generator=g).contiguous(memory_format=torch.channels_last) for c in (3, 4))
    conv = nn.Conv2d(3, 4, 3, padding=1).to(memory_format=torch.channels_last)
    try:
        with torch.no_grad():
            return torch.equal(_ConvReLU(conv, add=True)(x, other), torch.relu(conv(x) + other))
    except (RuntimeError, TypeError):
        return False


class _ConvReLU(nn.Module):
    """``relu(conv(x))`` or ``relu(conv(x) + other)`` as one oneDNN call; the separate operations (same
    result) where autograd or autocast needs them."""

    def __init__(self, conv: nn.Conv2d, add: bool) -> None:
        super().__init__()
        self.conv, self.add = conv, add
        self.args = (list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups)

    def forward(self, x: torch.Tensor, other: torch.Tensor | None = None) -> torch.Tensor:
        plain = (torch.is_autocast_enabled("cpu") or (torch.is_grad_enabled() and (
            x.requires_grad or (other is not None and other.requires_grad))) or x.device.type != "cpu")
        if plain:
            y = self.conv(x)
            return torch.relu(y if other is None else y + other)
        x = x.contiguous(memory_format=torch.channels_last)
        w, b = self.conv.weight, self.conv.bias
        if other is None:
            return torch.ops.mkldnn._convolution_pointwise(x, w, b, *self.args, "relu", [], "")
        other = other.contiguous(memory_format=torch.channels_last)
        return torch.ops.mkldnn._convolution_pointwise.binary(x, other, w, b, *self.args, "add", 1.0, "relu", [], "")


def _is_relu(node: fx.Node, subs: dict[str, nn.Module]) -> bool:
    if node.op == "call_module":
        return isinstance(subs[node.target], nn.ReLU)
    return node.op == "call_function" and node.target in _RELUS and set(node.kwargs) <= {"inplace"}


def _sole_conv(node: object, subs: dict[str, nn.Module]) -> bool:
    """A plain zero-padded float ``Conv2d`` call whose output has no other user."""
    if not (isinstance(node, fx.Node) and node.op == "call_module" and len(node.users) == 1):
        return False
    conv = subs[node.target]
    return (type(conv) is nn.Conv2d and conv.padding_mode == "zeros" and not isinstance(conv.padding, str)
            and conv.weight.dtype == torch.float32)


def _fuse_pass(traced: fx.GraphModule) -> int:
    """Replaces each ``relu(conv(x))`` and ``relu(conv(x) + other)`` by one :class:`_ConvReLU` call;
    returns how many."""
    subs = dict(traced.named_modules())
    fused = 0
    for node in list(traced.graph.nodes):
        if not _is_relu(node, subs) or len(node.args) != 1:
            continue
        src, other = node.args[0], None
        if (isinstance(src, fx.Node) and src.op == "call_function" and src.target in _ADDS and len(src.args) == 2
                and not src.kwargs and len(src.users) == 1):
            a, b = src.args
            conv, other = (a, b) if _sole_conv(a, subs) else (b, a)
            if not (_sole_conv(conv, subs) and isinstance(other, fx.Node)):
                continue
        elif _sole_conv(src, subs):
            conv = src
        else:
            continue
        name = base = f"{conv.target.replace('.', '_')}_relu"
        while hasattr(traced, name):  # e.g. the GCP head's own `layer_reduce_relu`
            name = f"{base}_{fused}"
        traced.add_submodule(name, _ConvReLU(subs[conv.target], add=other is not None))
        with traced.graph.inserting_before(node):
            call = traced.graph.call_module(name, (conv.args[0],) if other is None else (conv.args[0], other))
        node.replace_all_uses_with(call)
        for dead in (node, src, conv) if other is not None else (node, conv):
            traced.graph.erase_node(dead)
        fused += 1
    return fused


class InferenceNet(nn.Module):
    """Runs ``module`` on channels-last inputs and never on a batch of one (see the module docstring)."""

    def __init__(self, module: nn.Module, channels_last: bool = True) -> None:
        super().__init__()
        self.module, self.channels_last = module, channels_last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        single = x.shape[0] == 1
        if single:
            x = x.expand(2, *x.shape[1:])
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        out = self.module(x)
        return out[:1] if single else out


def for_inference(module: nn.Module, device: torch.device, *, rewrite: bool = True) -> nn.Module:
    """An evaluation copy of ``module`` on ``device``: on the CPU folded, fused and channels-last,
    wrapped in :class:`InferenceNet`; on GPUs channels-last (cuDNN picks its kernels per shape anyway).

    ``rewrite=False`` keeps the network as it is (contiguous NCHW, no folding), still never run on a
    batch of one: the form for library models (timm, torchvision sources), whose layers the rewrites
    were not checked on. In channels-last, a timm EfficientNet's logits changed with the batch (by
    1e-9, for 2 of 40 random initialisations); in NCHW none of 120 timm models/initialisations did.

    The copy's parameters do not require gradients (attacks differentiate w.r.t. the input only).
    """
    net = copy.deepcopy(module).eval().to(device)
    if not rewrite:
        net = net.requires_grad_(False)
        return InferenceNet(net, channels_last=False).eval() if device.type == "cpu" else net
    if device.type != "cpu":
        return net.requires_grad_(False).to(memory_format=torch.channels_last)
    passes = [_fold_pass, _fuse_pass] if pointwise_fusion_works() else [_fold_pass]
    net = _rewritten(net, passes).requires_grad_(False).to(memory_format=torch.channels_last)
    return InferenceNet(net).eval()
