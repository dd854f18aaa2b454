"""Architectures (generated from the registries), the normaliser wrapper and the demo models."""

from __future__ import annotations

import pytest
import torch
import torchvision

from robench.errors import InputError, UnknownNameError
from robench.models import ARCHS, POOLINGS, Normalized, create_model, list_cards, resolve_model
from robench.models.isqrtcov import isqrt_cov_features
from robench.models.loading import expected_shapes

CASES = [(a, p) for a in ARCHS.names() for p in POOLINGS.names() if ARCHS.get(a).supports(p)]

PARAMS = {  # REFERENCE.md §5.3 (GCP) and torchvision (GAP)
    ("resnet18", "gcp"): 44_205_096,
    ("resnet34", "gcp"): 54_313_256,
    ("resnet50", "gcp"): 56_929_832,
    ("resnet101", "gcp"): 75_921_960,
    ("mobilenet_v2", "gcp"): 35_449_064,
    ("shufflenet_v2_x1_0", "gcp"): 34_413_260,
}
TORCHVISION = {
    "resnet18": torchvision.models.resnet18,
    "resnet34": torchvision.models.resnet34,
    "resnet50": torchvision.models.resnet50,
    "resnet101": torchvision.models.resnet101,
    "mobilenet_v2": torchvision.models.mobilenet_v2,
    "shufflenet_v2_x1_0": torchvision.models.shufflenet_v2_x1_0,
    "alexnet": torchvision.models.alexnet,
}
SMALL = ("resnet18", "mobilenet_v2", "shufflenet_v2_x1_0", "resnet_demo")


def _count(arch: str, pool: str) -> int:
    with torch.device("meta"):
        model = create_model(arch, pool)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(("arch", "pool"), CASES)
def test_keys_and_parameter_counts(arch: str, pool: str) -> None:
    classes = ARCHS.get(arch).default_classes
    shapes = expected_shapes(arch, pool, classes)
    assert shapes[ARCHS.get(arch).classifier][0] == classes
    if pool == "gap" and arch in TORCHVISION:
        with torch.device("meta"):
            tv = TORCHVISION[arch]()
        assert shapes == {k: tuple(v.shape) for k, v in tv.state_dict().items()}
    if (arch, pool) in PARAMS:
        assert _count(arch, pool) == PARAMS[arch, pool]


def test_resnet50_gcp_official_shapes() -> None:
    shapes = expected_shapes("resnet50", "gcp", 1000)
    assert shapes["layer_reduce.weight"] == (256, 2048, 1, 1)
    assert shapes["fc.weight"] == (1000, 32896)
    assert shapes["fc.bias"] == (1000,)
    assert shapes["layer4.0.downsample.0.weight"] == (2048, 1024, 1, 1)
    for name in ("weight", "bias", "running_mean", "running_var"):
        assert shapes[f"layer_reduce_bn.{name}"] == (256,)
    model = create_model("resnet50", "gcp")
    assert model.layer4[0].conv2.stride == (1, 1) and model.layer4[0].downsample[0].stride == (1, 1)
    assert isinstance(model.layer_reduce_relu, torch.nn.ReLU)
    assert model.layer_reduce.bias is None


def test_gcp_head_names_of_mobile_models() -> None:
    mobilenet = expected_shapes("mobilenet_v2", "gcp", 1000)
    assert mobilenet["dimension_reduction.0.weight"] == (256, 1280, 1, 1)
    assert mobilenet["classifier.1.weight"] == (1000, 32896)
    shufflenet = expected_shapes("shufflenet_v2_x1_0", "gcp", 1000)
    assert shufflenet["dimension_reduction.0.weight"] == (256, 1024, 1, 1)
    assert shufflenet["fc.weight"] == (1000, 32896)
    assert isinstance(create_model("mobilenet_v2", "gcp").dimension_reduction[2], torch.nn.ReLU6)


@pytest.mark.parametrize("arch", [a for a in SMALL if a != "resnet_demo"])
def test_gap_models_compute_torchvision_logits(arch: str) -> None:
    ours = create_model(arch, "gap").eval()
    tv = TORCHVISION[arch]().eval()
    tv.load_state_dict(ours.state_dict())
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), tv(x))


@pytest.mark.parametrize(("arch", "pool"), [(a, p) for a, p in CASES if a in SMALL])
def test_forward_features_head_split(arch: str, pool: str) -> None:
    model = create_model(arch, pool, num_classes=7).eval()
    size = ARCHS.get(arch).input_size if arch == "resnet_demo" else 64
    x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        feats = model.forward_features(x)
        pre = model.forward_head(feats, pre_logits=True)
        logits = model(x)
    assert logits.shape == (2, 7) and torch.isfinite(logits).all()
    assert pre.shape == (2, model.num_features)
    torch.testing.assert_close(model.forward_head(feats), logits)


def test_gcp_resnets_keep_layer4_at_stride_one() -> None:
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        gap = create_model("resnet18", "gap").eval().forward_features(x)
        gcp = create_model("resnet18", "gcp").eval().forward_features(x)
    assert gap.shape[-1] == 2 and gcp.shape[-1] == 4  # 224 px: 7×7 vs 14×14


def test_demo_architecture_shares_its_backbone() -> None:
    gap, gcp = (expected_shapes("resnet_demo", p, 10) for p in ("gap", "gcp"))
    backbone = {k: v for k, v in gap.items() if not k.startswith("fc.")}
    assert all(gcp[k] == v for k, v in backbone.items())
    assert gcp["layer_reduce.weight"] == (32, 64, 1, 1)
    assert gcp["fc.weight"] == (10, isqrt_cov_features(32))


def test_unknown_names_suggest() -> None:
    with pytest.raises(UnknownNameError, match="resnet50"):
        create_model("resnet05", "gap")
    with pytest.raises(UnknownNameError, match="gcp"):
        create_model("resnet50", "gpc")


def test_normalized_wrapper() -> None:
    net = torch.nn.Identity()
    model = Normalized(net, (0.5, 0.25, 0.0), (0.5, 0.5, 2.0))
    x = torch.ones(1, 3, 2, 2)
    out = model(x)
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor([1.0, 1.5, 0.5]))
    assert not model.state_dict()  # statistics are not weights
    with pytest.raises(InputError, match="N×3×H×W"):
        model(torch.ones(1, 1, 2, 2))
    with pytest.raises(InputError):
        Normalized(net, (0.5,), (0.0,))


@pytest.mark.parametrize("pool", ["gap", "gcp"])
def test_demo_models_load_and_match_their_cards(pool: str) -> None:
    from robench.data.fashion_mnist import load_demo_subset, to_model_input

    resolved = resolve_model(f"demo-{pool}")
    card = resolved.card
    assert card is not None and (resolved.arch, resolved.pooling, resolved.num_classes) == ("resnet_demo", pool, 10)
    assert resolved.sha256 == card.sha256
    assert card.accuracy["fashion-mnist-test"] >= 90.0
    assert resolved.path.stat().st_size < 2_000_000
    assert not resolved.module.training
    images, labels = load_demo_subset()
    x = to_model_input(images[:500]).float() / 255
    with torch.no_grad():
        pred = resolved.module(x).argmax(1)
    acc = 100.0 * (pred == torch.from_numpy(labels[:500].astype("int64"))).float().mean().item()
    assert abs(acc - card.accuracy["fashion-mnist-test-2k"]) < 4.0  # 500 of the 2,000 images


def test_zoo_cards_are_valid_and_complete() -> None:
    cards = {c.name: c for c in list_cards()}
    assert {"demo-gap", "demo-gcp"} <= set(cards)
    for arch in TORCHVISION:
        assert any(c.arch == arch and c.pooling == "gap" and c.source_scheme == "torchvision" for c in cards.values())
        if ARCHS.get(arch).supports("gcp"):  # AlexNet (the baseline) has no GCP variant
            assert any(c.arch == arch and c.pooling == "gcp" for c in cards.values())
    fmc = [c for c in cards.values() if c.source_scheme == "url"]
    assert {c.arch for c in fmc} >= {"resnet50", "resnet101"}
    assert cards["gcp-resnet50"].published is not None and cards["gcp-resnet50"].published.mce == 70.7
    for card in cards.values():
        assert card.pooling in POOLINGS and card.arch in ARCHS
        assert len(card.mean) == 3 == len(card.std)
        assert card.accuracy, card.name


def test_demo_files_are_byte_reproducible(tmp_path) -> None:
    from robench.models.train_demo import Recipe, write_demo

    state = {k: v.clone() for k, v in create_model("resnet_demo", "gcp").state_dict().items()}
    digests = {
        write_demo(state, "gcp", seed=0, recipe=Recipe(), accuracy={"x": 1.0}, out_dir=tmp_path / d)[2]
        for d in ("a", "b", "c")
    }
    assert len(digests) == 1
    assert resolve_model(tmp_path / "a" / "demo-gcp.toml").sha256 == digests.pop()
