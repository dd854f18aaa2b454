"""Checkpoint formats, safe loading, key checking, model cards and downloads."""

from __future__ import annotations

import functools
import hashlib
import http.server
import pickle
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from robench.errors import CheckpointError, InputError, MissingFileError, UnknownNameError
from robench.models import ARCHS, FORMATS, Normalized, create_model, read_checkpoint, resolve_model
from robench.models.cards import card_from_dict, dump_card, read_card
from robench.models.checkpoints import FMC_RESNET_FEATURES

StateDict = dict[str, torch.Tensor]


def random_model(arch: str, pool: str, num_classes: int, seed: int = 0) -> torch.nn.Module:
    """A model whose every tensor (BN statistics included) is random, so mis-mapped keys show."""
    model = create_model(arch, pool, num_classes).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                t.copy_(
                    torch.rand(t.shape, generator=gen) + 0.5
                    if "running_var" in name
                    else torch.randn(t.shape, generator=gen) * 0.05
                )
    return model


def _optimizer_state() -> dict:
    p = torch.nn.Parameter(torch.zeros(3))
    opt = torch.optim.SGD([p], lr=0.1, momentum=0.9)
    p.grad = torch.ones(3)
    opt.step()
    return opt.state_dict()


def _fmc_key(key: str, wrap_whole: bool) -> str:
    top, rest = key.split(".", 1)
    if top in FMC_RESNET_FEATURES:
        key = f"features.{'' if wrap_whole else 'module.'}{FMC_RESNET_FEATURES.index(top)}.{rest}"
    else:
        key = key.replace("layer_reduce_bn.", "representation.conv_dr_block.1.")
        key = key.replace("layer_reduce.", "representation.conv_dr_block.0.").replace("fc.", "classifier.")
    return f"module.{key}" if wrap_whole else key


def write_state_dict(sd: StateDict, path: Path) -> str:
    torch.save(sd, path)
    return "state-dict"


def write_gcp_optimization(sd: StateDict, path: Path) -> str:
    torch.save(
        {
            "epoch": 100,
            "arch": "resnet18_mpncov",
            "state_dict": {f"module.{k}": v for k, v in sd.items()},
            "best_acc1": torch.tensor(75.48),
            "optimizer": _optimizer_state(),
        },
        path,
    )
    return "gcp-optimization"


def write_fmc_training(sd: StateDict, path: Path) -> str:
    torch.save(
        {
            "epoch": 65,
            "arch": "mpncovresnet18",
            "state_dict": {_fmc_key(k, False): v for k, v in sd.items()},
            "best_prec1": 77.9,
            "optimizer": _optimizer_state(),
        },
        path,
    )
    return "fmc-training"


def write_fmc_training_old(sd: StateDict, path: Path) -> str:
    """Before fast-MPN-COV commit 7f7ce0f the whole model was wrapped: ``module.features.N``."""
    torch.save({"epoch": 1, "state_dict": {_fmc_key(k, True): v for k, v in sd.items()}}, path)
    return "fmc-training"


def write_safetensors(sd: StateDict, path: Path) -> str:
    save_file({k: v.contiguous() for k, v in sd.items()}, path, metadata={"arch": "resnet18"})
    return "safetensors"


def write_compiled_ddp(sd: StateDict, path: Path) -> str:
    torch.save({f"module._orig_mod.{k}": v for k, v in sd.items()}, path)
    return "state-dict"


def write_numpy_scalar_container(sd: StateDict, path: Path) -> str:
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}, "best_acc1": np.float64(0.5)}, path)
    return "gcp-optimization"


def write_pre_041_state_dict(sd: StateDict, path: Path) -> str:
    """Files from PyTorch < 0.4.1 have no BatchNorm ``num_batches_tracked``."""
    torch.save({k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}, path)
    return "state-dict"


WRITERS: dict[str, Callable[[StateDict, Path], str]] = {
    "torchvision-fmc-release": write_state_dict,
    "gcp-optimization": write_gcp_optimization,
    "fmc-training": write_fmc_training,
    "fmc-training-old": write_fmc_training_old,
    "safetensors": write_safetensors,
    "compiled-ddp": write_compiled_ddp,
    "numpy-scalar": write_numpy_scalar_container,
    "pre-0.4.1": write_pre_041_state_dict,
}


@functools.cache
def _reference(arch: str, pool: str, num_classes: int) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    model = random_model(arch, pool, num_classes)
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    spec = ARCHS.get(arch)
    with torch.no_grad():
        logits = Normalized(model, spec.mean, spec.std)(x)
    return model, x, logits


def _roundtrip(tmp_path: Path, writer: str, arch: str, pool: str, classes: int, infer: bool) -> None:
    model, x, want = _reference(arch, pool, classes)
    path = tmp_path / f"{writer}.pth"
    fmt = WRITERS[writer](model.state_dict(), path)
    assert read_checkpoint(path).format == fmt
    resolved = resolve_model(path) if infer else resolve_model(path, arch, pool)
    assert (resolved.arch, resolved.pooling, resolved.num_classes, resolved.format) == (arch, pool, classes, fmt)
    assert resolved.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert resolved.card is None and not resolved.module.training
    with torch.no_grad():
        got = resolved.module(x)
    torch.testing.assert_close(got, want, rtol=0, atol=0)


@pytest.mark.parametrize("writer", WRITERS)
def test_official_formats_roundtrip_resnet18_gcp(tmp_path: Path, writer: str) -> None:
    _roundtrip(tmp_path, writer, "resnet18", "gcp", 10, infer=False)


@pytest.mark.parametrize("writer", ["gcp-optimization", "fmc-training", "safetensors"])
@pytest.mark.parametrize(("arch", "pool"), [("resnet_demo", "gcp"), ("resnet_demo", "gap"), ("resnet18", "gap")])
def test_architecture_inferred_from_keys(tmp_path: Path, writer: str, arch: str, pool: str) -> None:
    _roundtrip(tmp_path, writer, arch, pool, 10, infer=True)


@pytest.mark.parametrize("arch", ["mobilenet_v2", "shufflenet_v2_x1_0"])
def test_gcp_release_of_mobile_models(tmp_path: Path, arch: str) -> None:
    _roundtrip(tmp_path, "gcp-optimization", arch, "gcp", 10, infer=True)


@pytest.mark.parametrize(
    "writer",
    [w if w in ("gcp-optimization", "fmc-training") else pytest.param(w, marks=pytest.mark.slow) for w in WRITERS],
)
def test_official_formats_roundtrip_resnet50_gcp_1000(tmp_path: Path, writer: str) -> None:
    _roundtrip(tmp_path, writer, "resnet50", "gcp", 1000, infer=writer == "gcp-optimization")


def test_formats_registry_names() -> None:
    assert set(FORMATS.names()) == {"safetensors", "fmc-training", "gcp-optimization", "state-dict"}


class _Payload:
    """Unpickling this (unsafely) creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


@pytest.mark.parametrize("how", ["torch.save", "raw-pickle", "raw-pickle-protocol-2", "inside-state_dict"])
def test_malicious_pickle_is_refused_and_not_run(tmp_path: Path, how: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    payload = _Payload(marker)
    writers = {
        "torch.save": lambda: torch.save({"conv1.weight": torch.zeros(1), "x": payload}, path),
        "raw-pickle": lambda: path.write_bytes(pickle.dumps(payload)),
        "raw-pickle-protocol-2": lambda: path.write_bytes(pickle.dumps(payload, protocol=2)),
        "inside-state_dict": lambda: torch.save({"state_dict": {"fc.weight": payload}}, path),
    }
    writers[how]()
    with pytest.raises(CheckpointError) as err:
        resolve_model(path, "resnet18", "gap")
    message = str(err.value)
    assert "\n" not in message and message.startswith("Refusing to load")
    if how != "raw-pickle":  # protocol-4 framing is refused before the global is seen
        assert "the Python object exec" in message
    assert not marker.exists()
    # the payload is real: an unsafe load would have run it
    pickle.loads(path.read_bytes()) if how.startswith("raw") else torch.load(path, weights_only=False)
    assert marker.exists()


def test_bad_keys_are_listed_in_one_error(tmp_path: Path) -> None:
    sd = create_model("resnet18", "gcp", 10).state_dict()
    for key in ["layer_reduce.weight", "layer1.0.conv1.weight", "bn1.weight", "bn1.bias", "layer4.1.bn2.bias"]:
        del sd[key]
    sd["extra.weight"] = torch.zeros(1)
    sd["head.bias"] = torch.zeros(1)
    sd["fc.bias"] = torch.zeros(11)
    path = tmp_path / "bad.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, path)
    with pytest.raises(CheckpointError) as err:
        resolve_model(path, "resnet18", "gcp", num_classes=10)
    msg = str(err.value)
    assert "\n" not in msg
    assert "5 missing key(s): bn1.weight, bn1.bias, layer1.0.conv1.weight, layer4.1.bn2.bias, … (+1)" in msg
    assert "2 unexpected key(s): extra.weight, head.bias" in msg
    assert "1 shape mismatch(es): fc.bias file [11] vs model [10]" in msg


def test_wrong_architecture_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "r18.pth"
    torch.save(create_model("resnet18", "gap").state_dict(), path)
    with pytest.raises(CheckpointError, match="does not fit resnet18/gcp"):
        resolve_model(path, "resnet18", "gcp")
    torch.save({"conv1.weight": torch.zeros(3), "fc.weight": torch.zeros(10, 5)}, path)
    with pytest.raises(CheckpointError, match=r"Cannot tell the architecture.*--arch and --pool"):
        resolve_model(path)


def test_missing_unknown_and_truncated(tmp_path: Path) -> None:
    with pytest.raises(MissingFileError, match=r"does-not-exist\.pt not found"):
        resolve_model("does-not-exist.pt")
    with pytest.raises(UnknownNameError, match="Did you mean: demo-gcp"):
        resolve_model("demo-gpc")
    path = tmp_path / "cut.pth"
    torch.save(create_model("resnet_demo", "gap").state_dict(), path)
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint") as err:
        resolve_model(path)
    assert "\n" not in str(err.value)
    with pytest.raises(CheckpointError, match="not a state_dict"):
        torch.save([1, 2, 3], path)
        resolve_model(path)


def test_card_options_must_agree() -> None:
    with pytest.raises(InputError, match="resnet_demo"):
        resolve_model("demo-gap", arch="resnet50")
    assert resolve_model("demo-gap", arch="resnet_demo", pool="gap").pooling == "gap"


# ----------------------------------------------------------------------------- model cards

CARD = {
    "arch": "resnet_demo",
    "pooling": "gcp",
    "num_classes": 10,
    "source": "w.safetensors",
    "mean": [0.5, 0.5, 0.5],
    "std": [0.25, 0.25, 0.25],
    "input_size": 32,
    "accuracy": {"fashion-mnist-test": 91.0},
    "published": {"mce": 70.0, "reference": "x"},
}


def test_card_roundtrip_through_toml(tmp_path: Path) -> None:
    card = card_from_dict({**CARD, "name": "c"})
    path = tmp_path / "c.toml"
    path.write_text(dump_card(card, header="a card"), encoding="utf-8")
    assert read_card(path) == card
    assert card.published is not None and card.published.mce == 70.0
    assert card.to_dict()["accuracy"] == {"fashion-mnist-test": 91.0}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": "red"}, "unknown key.*colour.*valid keys: accuracy"),
        ({"published": {"mCE": 1.0}}, r"\[published\]: unknown key.*mCE.*valid keys"),
        ({"arch": "resnet05"}, "Did you mean: resnet50"),
        ({"pooling": "max"}, "Unknown pooling head"),
        ({"num_classes": 0}, "num_classes must be a positive integer"),
        ({"sha256": "abc"}, "64 lower-case hex"),
        ({"std": [0.1, 0.0, 0.1]}, "std > 0"),
        ({"accuracy": {"x": "high"}}, "must be a number"),
    ],
)
def test_card_validation(change: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        card_from_dict({**CARD, "name": "c", **change})


def test_card_requires_keys_and_matching_name(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"missing key.*source"):
        card_from_dict({k: v for k, v in CARD.items() if k != "source"} | {"name": "c"})
    path = tmp_path / "other.toml"
    path.write_text(dump_card(card_from_dict({**CARD, "name": "c"})), encoding="utf-8")
    with pytest.raises(InputError, match="differs from the file name"):
        read_card(path)


# ----------------------------------------------------------------------------- downloads


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "www"
    root.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ROBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "checkpoints"


def _url_card(tmp_path: Path, url: str, sha: str | None) -> Path:
    card = card_from_dict({**CARD, "name": "web", "source": url, **({"sha256": sha} if sha else {})})
    path = tmp_path / "web.toml"
    path.write_text(dump_card(card), encoding="utf-8")
    return path


def test_download_verifies_and_caches(tmp_path: Path, server: tuple[str, Path], cache: Path) -> None:
    base, root = server
    model = _reference("resnet_demo", "gcp", 10)[0]
    write_safetensors(model.state_dict(), root / "w.safetensors")
    sha = hashlib.sha256((root / "w.safetensors").read_bytes()).hexdigest()
    card_path = _url_card(tmp_path, f"{base}/w.safetensors", sha)
    resolved = resolve_model(card_path)
    assert resolved.path == cache / "w.safetensors" and resolved.sha256 == sha
    (root / "w.safetensors").unlink()  # second time from the cache, no server needed
    assert resolve_model(card_path).path == cache / "w.safetensors"
    assert sorted(p.name for p in cache.iterdir()) == ["w.safetensors"]


def test_download_with_wrong_sha_keeps_nothing(tmp_path: Path, server: tuple[str, Path], cache: Path) -> None:
    base, root = server
    (root / "w.safetensors").write_bytes(b"not the weights")
    with pytest.raises(CheckpointError, match="different file"):
        resolve_model(_url_card(tmp_path, f"{base}/w.safetensors", "0" * 64))
    assert not cache.exists() or not any(cache.iterdir())


def test_corrupt_cached_file_is_reported(tmp_path: Path, cache: Path) -> None:
    cache.mkdir(parents=True)
    (cache / "w.safetensors").write_bytes(b"old")
    with pytest.raises(CheckpointError, match="Delete it and download it again"):
        resolve_model(_url_card(tmp_path, "http://127.0.0.1:9/w.safetensors", "1" * 64))


def test_offline_message_says_what_to_do(tmp_path: Path, server: tuple[str, Path], cache: Path) -> None:
    base, _ = server
    with pytest.raises(MissingFileError, match=r"Could not download .*--ckpt PATH") as err:
        resolve_model(_url_card(tmp_path, f"{base}/absent.pth", None))
    assert "\n" not in str(err.value)


def test_manual_source_explains_where_to_get_it(cache: Path) -> None:
    with pytest.raises(MissingFileError, match=r"drive\.google\.com.*--ckpt PATH.*--arch resnet50 --pool gcp"):
        resolve_model("gcp-resnet50")
