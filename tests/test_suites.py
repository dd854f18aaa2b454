from __future__ import annotations

import pytest

from robench.errors import InputError, MissingFileError, UnknownNameError
from robench.suites import load_suite, parse_suite


def test_demo_suite_is_clean_plus_corruptions_at_cifar_parameters():
    suite = load_suite("demo")
    assert suite.param_set == "cifar"
    assert suite.items[0].kind == "clean"
    corr = [i for i in suite.items if i.kind == "corruption"]
    assert {"gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "contrast", "brightness"} <= {
        i.name for i in corr
    }
    assert all(i.levels == (1, 2, 3, 4, 5) for i in corr)


def test_imagenet_c_suite_carries_alexnet_baseline_and_jpeg_protocol():
    suite = load_suite("imagenet-c")
    assert suite.protocol.jpeg_quality == 85 and suite.protocol.resize == 256 and suite.protocol.crop == 224
    assert suite.baseline is not None and suite.baseline.name == "alexnet"
    assert len(suite.baseline.errors) == 15
    assert suite.baseline.errors["fog"] == (0.67474, 0.76050, 0.84378, 0.87260, 0.94500)


def test_unknown_keys_are_rejected_with_valid_keys_named():
    with pytest.raises(InputError, match=r"unknown key\(s\) severites.*valid keys are limit, names, severities"):
        parse_suite({"clean": {}, "corruptions": {"names": ["fog"], "severites": [1]}})


def test_severity_out_of_range_is_rejected():
    with pytest.raises(InputError, match="severity 6 is out of range"):
        parse_suite({"corruptions": {"names": ["contrast"], "severities": [1, 6]}})


def test_unknown_corruption_gets_did_you_mean():
    with pytest.raises(UnknownNameError, match="Did you mean: contrast"):
        parse_suite({"corruptions": {"names": ["contrst"]}})


def test_malformed_toml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("name = [unclosed\n")
    with pytest.raises(InputError, match="not valid TOML"):
        load_suite(bad)
    with pytest.raises(MissingFileError):
        load_suite(tmp_path / "nope.toml")
    with pytest.raises(UnknownNameError, match="Did you mean: demo"):
        load_suite("dem")


def test_empty_suite_is_rejected():
    with pytest.raises(InputError, match="nothing to evaluate"):
        parse_suite({"name": "x"})


def test_every_builtin_suite_parses():
    from robench.suites import builtin_suites, list_suites

    suites = list_suites()
    assert {s.name for s in suites} == set(builtin_suites().names())
    assert {"demo", "imagenet-c", "imagenet-p", "demo-linf", "imagenet-linf", "imagenet-l2"} <= {s.name for s in suites}


def _attacks(**over):
    table = {"eps": ["4/255"], "names": ["pgd-linf"]} | over
    return parse_suite({"clean": {}, "attacks": table})


def test_attack_items_carry_eps_levels_and_settings():
    suite = _attacks(eps=["1/255", "0.5/255"], settings={"pgd-linf": {"steps": 7}})
    item = suite.items[1]
    assert item.kind == "attack" and item.levels == (1, 2)
    assert item.settings["eps"] == pytest.approx([1 / 255, 0.5 / 255])
    assert item.settings["attack"] == {"steps": 7}


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"eps": ["four/255"]}, "eps"),
        ({"eps": []}, "non-empty list"),
        ({"names": ["pgd-linf"], "norm": "l3"}, "attacks.norm must be one of linf, l2"),
        ({"names": ["pgd-l2"]}, "runs in the l2 norm but the suite's norm is linf"),
        ({"settings": {"pgd-linf": {"stepz": 3}}}, "stepz"),
        ({"settings": {"fgsm": {}}}, "not in attacks.names"),
    ],
)
def test_bad_attack_tables_are_rejected(over, message):
    with pytest.raises(InputError, match=message):
        _attacks(**over)


def test_unknown_attack_name_gets_did_you_mean():
    with pytest.raises(UnknownNameError, match="Did you mean: pgd-linf"):
        _attacks(names=["pgd-lnf"])


def test_suite_models_name_zoo_cards_and_are_checked():
    from robench.models import resolve_model
    from robench.suites import list_suites

    seeds = load_suite("demo-seeds")
    assert len(seeds.models) == 6 and load_suite("demo").models == ()
    cards = [resolve_model(name, None, None, device="cpu").card for s in list_suites() for name in s.models]
    assert {(c.group, c.seed) for c in cards if c.name.startswith("demo-")} >= {
        (f"demo-{p}", s) for p in ("gap", "gcp") for s in (0, 1, 2)
    }
    with pytest.raises(InputError, match="models must be a non-empty list"):
        parse_suite({"clean": {}, "models": "demo-gap"})


def test_eval_without_ckpt_runs_the_suites_models(tmp_path):
    from robench.evaluate import EvalConfig, run_eval
    from robench.store import Store

    suite = tmp_path / "one.toml"
    suite.write_text('name = "one"\ndataset = "fashion-mnist-demo"\nparam_set = "cifar"\nmodels = ["demo-gcp"]\n'
                     "limit = 8\n[clean]\n")
    run_eval(EvalConfig(suite=str(suite), out=tmp_path / "out"))
    with Store(tmp_path / "out" / "results.sqlite", readonly=True) as st:
        assert set(st.models()) == {"demo-gcp"}
