"""Inference-time form of a network on the CPU: batch norms folded into convolutions, channels-last.

Evaluation only needs the forward pass of a network in eval mode, so :func:`for_inference` returns
a copy that PyTorch's CPU kernels run faster: every ``BatchNorm2d`` that directly follows a
``Conv2d`` is folded into the convolution's weights and bias (one memory pass less per layer), and
weights and inputs are channels-last (oneDNN's native layout: no reorders around each
convolution). Measured on the demo models (``benchmarks/bench_eval.py``): see the README.

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

import torch
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


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """``module`` (eval mode, modified) with each ``Conv2d → BatchNorm2d`` pair folded into one conv.

    A pair is folded where the BN is the only user of the conv's output. Modules that torch.fx
    cannot trace (control flow on the input, as in :class:`~robench.models.wrap.Normalized`) are
    kept and their children folded instead.
    """
    try:
        graph = _LeafTracer().trace(module)
    except Exception:  # fx fails in many ways on untraceable code: fold the children instead
        for name, child in module.named_children():
            setattr(module, name, fold_batchnorm(child))
        return module
    traced = fx.GraphModule(module, graph)
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
    if not folded:
        return module
    traced.delete_all_unused_submodules()
    traced.recompile()
    return traced


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


def for_inference(module: nn.Module, device: torch.device) -> nn.Module:
    """An evaluation copy of ``module`` on ``device``: on the CPU folded and channels-last, wrapped in
    :class:`InferenceNet`; on GPUs channels-last (cuDNN picks its kernels per shape anyway).

    The copy's parameters do not require gradients (attacks differentiate w.r.t. the input only).
    """
    net = copy.deepcopy(module).eval().to(device)
    if device.type != "cpu":
        return net.requires_grad_(False).to(memory_format=torch.channels_last)
    net = fold_batchnorm(net).requires_grad_(False).to(memory_format=torch.channels_last)
    return InferenceNet(net).eval()
