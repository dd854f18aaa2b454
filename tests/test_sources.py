"""Model sources ``timm:``, ``tv:``, ``hf-hub:``: timm's/torchvision's own logits and preprocessing, local caches
only (nothing is downloaded), one-line errors for missing files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from robench.data.sources import ImageFolderSource
from robench.errors import CheckpointError, InputError, MissingFileError, UnknownNameError
from robench.models import resolve_model
from robench.models.sources import tv_preprocessing
from robench.suites import Protocol

timm = pytest.importorskip("timm")

HUB_CONFIG = {  # a timm-format hub config.json: 288 px, crop_pct 0.95, bicubic, non-ImageNet statistics
    "architecture": "resnet10t",
    "num_classes": 5,
    "pretrained_cfg": {"input_size": [3, 288, 288], "crop_pct": 0.95, "interpolation": "bicubic",
                       "mean": [0.5, 0.4, 0.3], "std": [0.2, 0.25, 0.3], "crop_mode": "center",
                       "classifier": "fc", "num_classes": 5},
}


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    """No network, and empty caches unless a test fills them."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    try:
        import huggingface_hub.constants as hf_constants
    except ImportError:
        return
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)  # read at import: the env var alone is too late


@pytest.fixture
def folder(tmp_path) -> Path:
    """Six images of odd sizes in two class folders (resize and crop both matter)."""
    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    for k, (h, w) in enumerate([(300, 250), (260, 340), (233, 233), (410, 300), (280, 290), (320, 240)]):
        d = root / f"c{k % 2}"
        d.mkdir(parents=True, exist_ok=True)
        yy, xx = np.mgrid[0:h, 0:w]
        smooth = np.stack([np.sin(xx / (7 + k)), np.cos(yy / (5 + k)), np.sin((xx + yy) / 11)], -1)
        img = np.clip(127 + 90 * smooth + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(d / f"{k}.png")
    return root


def _timm_reference(net: torch.nn.Module, folder: Path) -> torch.Tensor:
    """timm's own pipeline: its eval transform on PIL images, then the network."""
    tf = timm.data.create_transform(**timm.data.resolve_model_data_config(net))
    x = torch.stack([tf(Image.open(p).convert("RGB")) for p in sorted(folder.glob("*/*.png"))])
    with torch.no_grad():
        return net.eval()(x)


def _ours(resolved, folder: Path) -> torch.Tensor:
    pre = resolved.preprocessing
    ds = ImageFolderSource(folder, Protocol(resize=pre.resize, crop=pre.crop, interpolation=pre.interpolation))
    x = torch.stack([ds[i][0] for i in range(len(ds))]).float() / 255
    with torch.no_grad():
        return resolved.module(x)


def _hub_cache(tmp_path: Path, repo: str, config: dict, state: dict | None, revision: str = "0123abcd") -> Path:
    """The Hugging Face cache layout: models--ORG--NAME/refs/main and snapshots/<revision>/<files>."""
    from safetensors.torch import save_file

    base = tmp_path / "hf" / "hub" / ("models--" + repo.replace("/", "--"))
    snap = base / "snapshots" / revision
    snap.mkdir(parents=True)
    (base / "refs").mkdir()
    (base / "refs" / "main").write_text(revision)
    (snap / "config.json").write_text(json.dumps(config))
    if state is not None:
        save_file({k: v.contiguous() for k, v in state.items()}, str(snap / "model.safetensors"))
    return snap


def test_timm_weights_file_gives_timms_logits_with_timms_preprocessing(tmp_path, folder):
    torch.manual_seed(0)
    ref = timm.create_model("resnet10t.c3_in1k", pretrained=False, num_classes=7)
    torch.save(ref.state_dict(), tmp_path / "r10t.pth")
    resolved = resolve_model("timm:resnet10t.c3_in1k", weights=tmp_path / "r10t.pth")
    pre = resolved.preprocessing
    cfg = timm.data.resolve_model_data_config(ref)
    assert (pre.input_size, pre.crop, pre.interpolation, pre.crop_pct) == (176, 176, "bicubic", 0.875)
    assert pre.resize == int(176 / 0.875) == 201 and pre.mean == tuple(cfg["mean"]) and pre.std == tuple(cfg["std"])
    assert (resolved.arch, resolved.pooling, resolved.num_classes, resolved.source) == ("timm:resnet10t", "gap", 7,
                                                                                          "timm")
    ours, theirs = _ours(resolved, folder), _timm_reference(ref, folder)
    assert ours.shape == (6, 7)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    # the preprocessing matters: the official 256/224 bilinear images give other logits
    official = ImageFolderSource(folder, Protocol(resize=256, crop=224))
    with torch.no_grad():
        other = resolved.module(torch.stack([official[i][0] for i in range(6)]).float() / 255)
    assert not torch.allclose(other, theirs, atol=1e-3)


@pytest.mark.parametrize("arch", ["resnet10t", "test_vit", "test_convnext", "test_efficientnet"])
def test_library_models_are_evaluated_batch_invariant_in_their_plain_form(tmp_path, arch):
    from robench.evaluate import _placed

    torch.manual_seed(28)  # an initialisation whose EfficientNet logits differ with the batch in channels-last
    ref = timm.create_model(arch, pretrained=False, num_classes=4)
    torch.save(ref.state_dict(), tmp_path / "w.pth")
    resolved = resolve_model(f"timm:{arch}", weights=tmp_path / "w.pth")
    net = _placed([resolved], torch.device("cpu"), None, 4)[resolved.name]
    assert not any(isinstance(m, torch.fx.GraphModule) for m in net.modules())  # not rewritten
    x = torch.rand(7, 3, 96, 96, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        whole = net(x)
        assert all(torch.equal(torch.cat([net(x[i:i + b]) for i in range(0, 7, b)]), whole) for b in (1, 2, 3))
        assert torch.equal(whole, resolved.module(x))  # the same network, untouched


def test_hub_cache_repo_loads_like_timm_with_its_288px_config(tmp_path, folder):
    torch.manual_seed(1)
    ref = timm.create_model("resnet10t", pretrained=False, num_classes=5)
    snap = _hub_cache(tmp_path, "someone/tiny-r10t", HUB_CONFIG, ref.state_dict())
    resolved = resolve_model("hf-hub:someone/tiny-r10t")
    pre = resolved.preprocessing
    assert (pre.input_size, pre.resize, pre.crop, pre.interpolation, pre.crop_pct) == (288, 303, 288, "bicubic", 0.95)
    assert pre.mean == (0.5, 0.4, 0.3) and pre.std == (0.2, 0.25, 0.3)
    assert resolved.path == snap / "model.safetensors" and resolved.format == "safetensors"
    # timm with the same pretrained config and weights: same preprocessing, same logits
    overlay = {k: tuple(v) if isinstance(v, list) else v for k, v in HUB_CONFIG["pretrained_cfg"].items()}
    theirs_net = timm.create_model("resnet10t", pretrained=False, num_classes=5, pretrained_cfg_overlay=overlay)
    theirs_net.load_state_dict(ref.state_dict())
    assert timm.data.resolve_model_data_config(theirs_net)["input_size"] == (3, 288, 288)
    torch.testing.assert_close(_ours(resolved, folder), _timm_reference(theirs_net, folder), rtol=1e-5, atol=1e-5)


def test_missing_hub_repo_or_weights_fail_in_one_line_naming_cache_and_command(tmp_path):
    with pytest.raises(MissingFileError) as e:
        resolve_model("hf-hub:someone/absent")
    text = str(e.value)
    assert "\n" not in text and "models--someone--absent" in text and "hf download someone/absent" in text
    _hub_cache(tmp_path, "someone/no-weights", HUB_CONFIG, None)
    with pytest.raises(MissingFileError, match=r"model\.safetensors, pytorch_model\.bin"):
        resolve_model("hf-hub:someone/no-weights")
    with pytest.raises(InputError, match="ORG/NAME"):
        resolve_model("hf-hub:not-a-repo")
    _hub_cache(tmp_path, "someone/not-timm", {"model_type": "vit"}, None)
    with pytest.raises(InputError, match="not a timm-format repository"):
        resolve_model("hf-hub:someone/not-timm")


def test_timm_weights_missing_from_caches_name_both_and_the_command(tmp_path):
    with pytest.raises(MissingFileError) as e:
        resolve_model("timm:resnet10t.c3_in1k")
    text = str(e.value)
    assert "\n" not in text
    assert str(tmp_path / "hf" / "hub" / "models--timm--resnet10t.c3_in1k") in text
    assert str(tmp_path / "torch" / "hub" / "checkpoints" / "resnet10t_176_c3-f3215ab1.pth") in text
    assert "timm.create_model('resnet10t.c3_in1k', pretrained=True)" in text and "--weights FILE" in text


def test_wrong_weights_file_and_unknown_names_are_one_line_errors(tmp_path):
    torch.save(timm.create_model("resnet10t", pretrained=False).state_dict(), tmp_path / "r10t.pth")
    with pytest.raises(CheckpointError, match="does not fit timm:resnet18"):
        resolve_model("timm:resnet18", weights=tmp_path / "r10t.pth")
    with pytest.raises(UnknownNameError, match="Did you mean: resnet10t"):
        resolve_model("timm:resnet10x")
    with pytest.raises(InputError, match="no pretrained tag"):
        resolve_model("timm:resnet10t.nope_in1k")
    with pytest.raises(InputError, match="IMAGENET1K_V1"):
        resolve_model("tv:resnet18.NOPE")
    with pytest.raises(InputError, match="--weights applies to"):
        resolve_model("demo-gap", weights=tmp_path / "r10t.pth")
    with pytest.raises(InputError, match="--arch/--pool"):
        resolve_model("timm:resnet10t", "resnet18", weights=tmp_path / "r10t.pth")


def test_timm_missing_is_one_line_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm raises ImportError
    with pytest.raises(InputError, match=r"pip install 'robench\[timm\]'"):
        resolve_model("timm:resnet10t")


def test_torchvision_weights_enum_gives_its_transforms_and_logits(tmp_path, folder):
    from torchvision import models

    torch.manual_seed(2)
    ref = models.get_model("resnet18", weights=None).eval()
    torch.save(ref.state_dict(), tmp_path / "r18.pth")
    resolved = resolve_model("tv:resnet18.IMAGENET1K_V1", weights=tmp_path / "r18.pth")
    pre = resolved.preprocessing
    assert (pre.input_size, pre.resize, pre.crop, pre.interpolation) == (224, 256, 224, "bilinear")
    assert (resolved.arch, resolved.num_classes, resolved.source) == ("tv:resnet18", 1000, "tv")
    tf = models.ResNet18_Weights.IMAGENET1K_V1.transforms()
    x = torch.stack([tf(Image.open(p).convert("RGB")) for p in sorted(folder.glob("*/*.png"))])
    with torch.no_grad():
        theirs = ref(x)
    torch.testing.assert_close(_ours(resolved, folder), theirs, rtol=1e-5, atol=1e-5)
    v2 = tv_preprocessing(models.ResNet50_Weights.IMAGENET1K_V2)  # the V2 recipe evaluates at 232 → 224
    assert (v2.resize, v2.crop, v2.interpolation) == (232, 224, "bilinear")


def test_torchvision_cache_missing_or_damaged_is_one_line(tmp_path):
    with pytest.raises(MissingFileError) as e:
        resolve_model("tv:resnet18.IMAGENET1K_V1")
    path = tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    text = str(e.value)
    assert "\n" not in text and str(path) in text
    assert "torchvision.models.get_model('resnet18', weights='IMAGENET1K_V1')" in text
    path.parent.mkdir(parents=True)
    from torchvision import models

    torch.save(models.get_model("resnet18", weights=None).state_dict(), path)  # not the published file
    with pytest.raises(CheckpointError, match="does not match the hash in its file name"):
        resolve_model("tv:resnet18.IMAGENET1K_V1")


def test_zoo_card_points_to_a_timm_source(tmp_path, monkeypatch):
    from robench.models import read_card

    card = read_card(Path(__file__).parents[1] / "models" / "timm-resnet50-a1.toml")
    assert (card.source, card.source_scheme, card.arch) == ("timm:resnet50.a1_in1k", "timm", "resnet50")
    cfg = timm.models.get_pretrained_cfg("resnet50.a1_in1k")
    assert (card.input_size, card.crop, card.resize) == (cfg.input_size[-1], cfg.input_size[-1],
                                                        int(cfg.input_size[-1] / cfg.crop_pct))
    with pytest.raises(MissingFileError, match=r"models--timm--resnet50\.a1_in1k"):
        resolve_model("timm-resnet50-a1")
    # with the file in the hub cache, the card loads it (through a cache laid out as timm leaves it)
    net = timm.create_model("resnet50", pretrained=False)
    torch.save(net.state_dict(), tmp_path / "r50.pth")
    assert resolve_model("timm-resnet50-a1", weights=tmp_path / "r50.pth").path == tmp_path / "r50.pth"
    _hub_cache(tmp_path, "timm/resnet50.a1_in1k", {"architecture": "resnet50"}, net.state_dict())
    resolved = resolve_model("timm-resnet50-a1")
    assert (resolved.name, resolved.arch, resolved.card, resolved.preprocessing.interpolation) == (
        "timm-resnet50-a1", "timm:resnet50", card, "bicubic")



def test_cli_shows_the_resolved_preprocessing_and_evaluates_at_the_models_resolution(tmp_path, folder, capsys):
    import sqlite3

    from robench.cli import main

    ref = timm.create_model("resnet10t", pretrained=False, num_classes=5)
    _hub_cache(tmp_path, "someone/tiny-r10t", HUB_CONFIG, ref.state_dict())
    assert main(["list", "models", "--ckpt", "hf-hub:someone/tiny-r10t"]) == 0
    shown = capsys.readouterr().out
    assert "native 288 px: resize shorter side to 303 (bicubic) → centre crop 288, crop_pct 0.95" in shown
    assert main(["list", "models", "--ckpt", "hf-hub:someone/absent"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "hf download someone/absent" in err
    suite = tmp_path / "native.toml"
    suite.write_text('name = "native"\ndataset = "imagefolder"\n[protocol]\nresize = 256\ncrop = 224\n'
                     'resolution = "model"\n[clean]\n')
    assert main(["eval", "--ckpt", "hf-hub:someone/tiny-r10t", "--suite", str(suite), "--data", str(folder),
                 "--out", str(tmp_path / "out")]) == 0
    con = sqlite3.connect(tmp_path / "out" / "results.sqlite")
    (prov,) = con.execute("SELECT provenance FROM cells").fetchone()
    con.close()
    prov = json.loads(prov)
    assert (prov["protocol"]["resize"], prov["protocol"]["crop"], prov["protocol"]["interpolation"]) == (
        303, 288, "bicubic")
    assert prov["preprocessing"]["crop_pct"] == 0.95 and prov["preprocessing"]["mean"] == [0.5, 0.4, 0.3]


def test_a_hub_blob_whose_digest_differs_from_its_name_is_refused(tmp_path):
    ref = timm.create_model("resnet10t", pretrained=False, num_classes=5)
    snap = _hub_cache(tmp_path, "someone/damaged", HUB_CONFIG, ref.state_dict())
    blobs = snap.parents[1] / "blobs"
    blobs.mkdir()
    blob = blobs / ("0" * 64)  # the hub names large files by their sha256
    (snap / "model.safetensors").rename(blob)
    (snap / "model.safetensors").symlink_to(Path("..") / ".." / "blobs" / blob.name)
    with pytest.raises(CheckpointError, match="damaged"):
        resolve_model("hf-hub:someone/damaged")
