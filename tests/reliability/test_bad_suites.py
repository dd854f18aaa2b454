"""Broken suite files through the CLI: one line naming the problem and the fix, exit 2, nothing computed.
Complements tests/test_suites.py (library level) with the mistakes a user makes by hand."""

from __future__ import annotations

import pytest

from tests.reliability.conftest import assert_one_line_error, robench

HEAD = 'name = "mine"\ndataset = "fashion-mnist-demo"\nparam_set = "cifar"\n'

CASES = {
    # malformed files
    "unclosed-table": (HEAD + "[clean\n", ["not valid TOML", "line 4"]),
    "not-utf8": (b"\xff\xfe[clean]\n", ["not valid TOML"]),
    "duplicate-key": (HEAD + 'name = "again"\n[clean]\n', ["not valid TOML"]),
    # unknown keys, with the valid ones named
    "top-level-typo": (HEAD.replace("param_set", "parma_set") + "[clean]\n", ["parma_set", "valid keys are",
                                                                              "param_set"]),
    "section-typo": (HEAD + "[corruption]\nnames = ['fog']\n", ["corruption", "corruptions", "perturbations"]),
    "corruption-key-typo": (HEAD + "[corruptions]\nnames = ['fog']\nseverity = [1]\n",
                            ["severity", "valid keys are limit, names, severities"]),
    "protocol-key-typo": (HEAD + "[protocol]\njpeg = 85\n[clean]\n", ["jpeg", "jpeg_quality"]),
    "clean-with-keys": (HEAD + "[clean]\nlimit = 5\n", ["[clean]", "limit"]),
    # levels out of range
    "severity-0": (HEAD + "[corruptions]\nnames = ['fog']\nseverities = [0, 1]\n", ["severity 0", "1 to 5"]),
    "severity-6": (HEAD + "[corruptions]\nnames = ['fog']\nseverities = [6]\n", ["severity 6", "1 to 5"]),
    "severity-float": (HEAD + "[corruptions]\nnames = ['fog']\nseverities = [2.5]\n", ["2.5", "1 to 5"]),
    "severity-string": (HEAD + "[corruptions]\nnames = ['fog']\nseverities = ['3']\n", ["'3'", "1 to 5"]),
    "severity-not-a-list": (HEAD + "[corruptions]\nnames = ['fog']\nseverities = 3\n", ["severities", "list"]),
    "difficulty-4": (HEAD + "[perturbations]\nnames = ['translate']\ndifficulties = [4]\n", ["difficulties",
                                                                                           "1, 2, 3"]),
    # eps that is not a number
    "eps-words": (HEAD + "[attacks]\nnames = ['fgsm']\neps = ['four/255']\n", ["four/255", "fraction such as"]),
    "eps-zero-denominator": (HEAD + "[attacks]\nnames = ['fgsm']\neps = ['4/0']\n", ["4/0"]),
    "eps-not-a-list": (HEAD + "[attacks]\nnames = ['fgsm']\neps = '4/255'\n", ["attacks.eps", "list"]),
    "eps-pixel-units": (HEAD + "[attacks]\nnames = ['fgsm']\neps = [4]\n", ["exceeds 1", "4/255"]),
    "eps-negative": (HEAD + "[attacks]\nnames = ['fgsm']\neps = [-0.1]\n", ["-0.1"]),
    # unknown names, with did-you-mean
    "corruption-name": (HEAD + "[corruptions]\nnames = ['gausian_noise']\n", ["gausian_noise",
                                                                             "Did you mean: gaussian_noise"]),
    "perturbation-name": (HEAD + "[perturbations]\nnames = ['rotat']\n", ["rotat", "Did you mean: rotate"]),
    "attack-name": (HEAD + "[attacks]\nnames = ['fgms']\neps = ['1/255']\n", ["fgms", "Did you mean: fgsm"]),
    "attack-setting": (HEAD + "[attacks]\nnames = ['pgd-linf']\neps = ['1/255']\n[attacks.settings.pgd-linf]\n"
                       "stepz = 3\n", ["stepz", "steps"]),
    "baseline-corruption-name": (HEAD + "[corruptions]\nnames = ['fog']\n[baseline]\n"
                                 "errors.fgo = [0.1, 0.2, 0.3, 0.4, 0.5]\n", ["fgo", "Did you mean: fog"]),
    "param-set": (HEAD.replace('"cifar"', '"cifar10"') + "[clean]\n", ["cifar10", "cifar"]),
    "dataset": (HEAD.replace("fashion-mnist-demo", "fashion-mnst-demo") + "[clean]\n",
                ["fashion-mnst-demo", "Did you mean: fashion-mnist-demo"]),
    # wrong shapes of values
    "names-not-strings": (HEAD + "[corruptions]\nnames = [1, 2]\n", ["corruptions.names", "list of name strings"]),
    "names-nested": (HEAD + "[perturbations]\nnames = [['translate']]\n", ["perturbations.names"]),
    "names-empty": (HEAD + "[corruptions]\nnames = []\n", ["corruptions.names"]),
    "section-not-a-table": (HEAD + "clean = 3\n", ["[clean]", "table"]),
    "protocol-not-a-table": (HEAD + "protocol = 'jpeg'\n[clean]\n", ["[protocol]", "table"]),
    "attack-settings-not-a-table": (HEAD + "[attacks]\nnames = ['pgd-linf']\neps = ['1/255']\n[attacks.settings]\n"
                                    "pgd-linf = 3\n", ["attacks.settings.pgd-linf", "table"]),
    "baseline-errors-not-a-table": (HEAD + "[clean]\n[baseline]\nerrors = 7\n", ["baseline.errors", "table"]),
    "baseline-clean-error-percent": (HEAD + "[clean]\n[baseline]\nclean_error = 43.5\n", ["clean_error",
                                                                                          "[0, 1]"]),
    "negative-crop": (HEAD + "[perturbations]\nnames = ['translate']\ncrop = -3\n", ["perturbations.crop"]),
    "crop-larger-than-images": (HEAD + "[perturbations]\nnames = ['translate']\ncrop = 64\n",
                                ["64×64", "32×32", "perturbations.crop"]),
    "negative-resize": (HEAD + "[protocol]\nresize = -5\n[clean]\n", ["protocol.resize"]),
    "quantize-string": (HEAD + "[protocol]\nquantize = 'yes'\n[clean]\n", ["protocol.quantize", "'yes'"]),
    "limit-zero": (HEAD + "limit = 0\n[clean]\n", ["limit", "positive"]),
    "nothing-to-do": (HEAD, ["nothing to evaluate"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_suite_is_one_line_and_computes_nothing(cli, tmp_path, case):
    text, needles = CASES[case]
    path = tmp_path / "mine.toml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    out = tmp_path / "out"
    rc, err = cli("eval", "--ckpt", "demo-gap", "--limit", "4", "--suite", str(path), "--out", str(out))
    assert_one_line_error(rc, err, *needles)
    assert not (out / "results.sqlite").exists() or case == "crop-larger-than-images"


def test_bad_suite_in_a_real_process(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(HEAD + "[corruptions]\nnames = ['fog']\nseverities = [1, 7]\n")
    proc = robench("eval", "--suite", str(path), "--out", str(tmp_path / "out"))
    assert_one_line_error(proc.returncode, proc.stderr, "severity 7", "1 to 5", str(path))


def test_editing_a_suite_between_runs_on_one_store(cli, tmp_path):
    """A user drops the attacks from their suite and reruns it into the same --out: the run must still report."""
    path = tmp_path / "mine.toml"
    out = tmp_path / "out"
    path.write_text(HEAD + "[clean]\n[attacks]\nnames = ['fgsm']\neps = ['1/255']\n")
    rc, err = cli("eval", "--ckpt", "demo-gap", "--limit", "4", "--suite", str(path), "--out", str(out))
    assert rc == 0, err
    path.write_text(HEAD + "[clean]\n")
    rc, err = cli("eval", "--ckpt", "demo-gap", "--limit", "4", "--suite", str(path), "--out", str(out))
    assert rc == 0, err
