"""The wheel carries everything the embedded default needs, with its licences, and works outside the repo."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("hatchling")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    code = "import sys; from hatchling.build import build_wheel; print(build_wheel(sys.argv[1]))"
    name = subprocess.run([sys.executable, "-c", code, str(out)], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip().splitlines()[-1]
    return out / name


def test_wheel_ships_models_suites_data_textures_and_notices(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"robench/_zoo/{p.name}" for p in (ROOT / "models").iterdir()} <= names
    assert {f"robench/_suites/{p.name}" for p in (ROOT / "corruptions").iterdir()} <= names
    assert {"robench/_zoo/demo-gcp.safetensors", "robench/_suites/imagenet-c.toml"} <= names
    assert "robench/data/files/fashion-mnist-test-2k.npz" in names
    textures = {n for n in names if n.startswith("robench/corruptions/textures/")}
    assert {f"robench/corruptions/textures/{t}" for t in ("frost1.png", "frost6.jpg", "NOTICE",
                                                          "LICENSE-Apache-2.0.txt")} <= textures
    assert any(n.endswith(".dist-info/licenses/NOTICE") for n in names), "the Fashion-MNIST notice must ship"
    assert not any(n.startswith(("tests/", "benchmarks/", "reports/")) or "/.venv/" in n for n in names)


def test_installed_wheel_runs_from_elsewhere(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target",
                    str(target), str(wheel)], check=True, capture_output=True)
    code = (
        "import robench, torch\n"
        "assert robench.__file__.startswith(sys.argv[1]), robench.__file__\n"
        "m = robench.load_model('demo-gcp')\n"
        "suite = robench.load_suite('imagenet-c')\n"
        "assert suite.baseline is not None and sum(i.kind == 'corruption' for i in suite.items) == 15\n"
        "y = robench.corrupt(torch.full((2, 3, 32, 32), 0.5), 'frost', 5, param_set='cifar')\n"
        "print(type(m).__name__, round(float(y.mean()), 4))\n"
    )
    run = subprocess.run([sys.executable, "-s", "-c", "import sys\n" + code, str(target)], cwd=tmp_path,
                         env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert float(run.stdout.split()[-1]) > 0.5  # frost brightened the grey images
