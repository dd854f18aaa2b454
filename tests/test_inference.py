"""The evaluator's fast CPU form of a model (BN folded, channels-last) is batch-invariant bit for bit."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robench.evaluate import DEMO_MODELS, EvalConfig, load_models, run_eval
from robench.models.inference import InferenceNet, fold_batchnorm, for_inference, pointwise_fusion_works
from robench.report import write_reports

CPU = torch.device("cpu")


def _batched(net: nn.Module, x: torch.Tensor, batch: int) -> torch.Tensor:
    with torch.inference_mode():
        return torch.cat([net(x[i : i + batch]) for i in range(0, len(x), batch)])


@pytest.fixture(scope="module")
def demo_models():
    return load_models(EvalConfig(ckpts=DEMO_MODELS))


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.rand(64, 3, 32, 32, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("index", [0, 1], ids=["demo-gap", "demo-gcp"])
def test_demo_logits_do_not_depend_on_batch_size(demo_models, images, index):
    model = demo_models[index]
    net = for_inference(model.module, CPU)
    assert isinstance(net, InferenceNet)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())  # every BN was folded
    whole = _batched(net, images, 64)
    for batch in (1, 7):
        assert torch.equal(_batched(net, images, batch), whole)
    # an image's logits do not depend on its neighbour either
    pairs = torch.cat([_batched(net, torch.stack([images[(i + 5) % 64], images[i]]), 2)[1:] for i in range(64)])
    assert torch.equal(pairs, whole)
    # the folded network computes the same function, to float32 round-off
    plain = _batched(model.module.eval(), images, 64)
    torch.testing.assert_close(whole, plain, atol=1e-4, rtol=1e-4)


def test_relu_and_residual_fusion_match_the_separate_operations():
    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b, self.skip = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(3, 8, 1)

        def forward(self, x):
            y = torch.relu(self.a(x))
            return nn.functional.relu(self.skip(x) + self.b(y))

    net = Block().eval()
    x = torch.randn(5, 3, 9, 9, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = net(x)
        fast = for_inference(net, CPU)
        if pointwise_fusion_works():
            assert sum(type(m).__name__ == "_ConvReLU" for m in fast.modules()) == 2
        assert torch.equal(fast(x), expected)


def test_fold_batchnorm_matches_the_unfolded_network():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                        nn.Conv2d(8, 8, 1, bias=False), nn.BatchNorm2d(8), nn.Flatten())
    g = torch.Generator().manual_seed(1)
    for bn in (net[1], net[4]):
        bn.running_mean.copy_(torch.randn(8, generator=g))
        bn.running_var.copy_(torch.rand(8, generator=g) + 0.5)
        bn.weight.data.copy_(torch.randn(8, generator=g))
        bn.bias.data.copy_(torch.randn(8, generator=g))
    net.eval()
    x = torch.randn(4, 3, 6, 6, generator=g)
    with torch.no_grad():
        expected = net(x)
        folded = fold_batchnorm(net)
        assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
        torch.testing.assert_close(folded(x), expected, atol=1e-5, rtol=1e-5)


def test_a_bn_whose_conv_output_is_also_used_elsewhere_stays():
    class Branch(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.bn = nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3)

        def forward(self, x):
            y = self.conv(x)
            return self.bn(y) + y

    net = Branch().eval()
    net.bn.running_mean.fill_(0.3)
    x = torch.randn(2, 3, 4, 4)
    with torch.no_grad():
        expected = net(x)
        folded = fold_batchnorm(net)
        assert any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
        torch.testing.assert_close(folded(x), expected)


def test_the_prepared_copy_leaves_the_model_alone(demo_models):
    model = demo_models[0].module
    before = {k: v.clone() for k, v in model.state_dict().items()}
    net = for_inference(model, CPU)
    assert all(not p.requires_grad for p in net.parameters())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


@pytest.mark.parametrize("index", [0, 1], ids=["demo-gap", "demo-gcp"])
def test_fused_path_and_autograd_path_agree(demo_models, images, index):
    """Attacks differentiate through the separate operations; their logits equal the fused ones."""
    net = for_inference(demo_models[index].module, CPU)
    if pointwise_fusion_works():
        assert any(type(m).__name__ == "_ConvReLU" for m in net.modules())
    x = images[:7].clone().requires_grad_(True)
    logits = net(x)
    logits.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert torch.equal(logits.detach(), _batched(net, images[:7], 7))


SUITE = """
name = "fast"
dataset = "fashion-mnist-demo"
param_set = "cifar"

[clean]

[corruptions]
names = ["gaussian_noise", "contrast"]
severities = [5]

[perturbations]
names = ["translate"]
difficulties = [1]
limit = 9
"""


def test_stored_counts_of_the_demo_models_do_not_depend_on_batch_size(tmp_path, demo_models):
    suite = tmp_path / "fast.toml"
    suite.write_text(SUITE)
    tables = []
    for batch in (1, 7, 64):
        out = tmp_path / f"bs{batch}"
        summary = run_eval(EvalConfig(out=out, suite=str(suite), limit=20, batch_size=batch), models=demo_models)
        write_reports(summary.store, out, figures=False, html=False)
        tables.append((out / "results.csv").read_bytes())
    assert tables[0] == tables[1] == tables[2]


def test_the_prepared_network_is_in_eval_mode(demo_models):
    net = for_inference(demo_models[1].module, CPU)
    assert not any(m.training for m in net.modules())
