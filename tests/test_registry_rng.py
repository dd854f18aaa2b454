from __future__ import annotations

import pytest
import torch

from robench._registry import Registry
from robench._rng import SampleRNG
from robench.errors import UnknownNameError


def test_unknown_name_suggests_close_match():
    reg: Registry[int] = Registry("corruption")
    reg.add("fog", 1)
    reg.add("frost", 2)
    with pytest.raises(UnknownNameError, match=r"Unknown corruption 'fgo'\. Did you mean: fog"):
        reg.get("fgo")


def test_duplicate_registration_is_refused():
    reg: Registry[int] = Registry("thing")
    reg.add("a", 1)
    with pytest.raises(ValueError, match="twice"):
        reg.add("a", 2)


def test_sample_streams_depend_only_on_index():
    whole = SampleRNG(range(10), seed=3, key="k").normal((4, 5))
    parts = torch.cat([SampleRNG(range(i, min(i + 3, 10)), seed=3, key="k").normal((4, 5)) for i in range(0, 10, 3)])
    assert torch.equal(whole, parts)
    alone = SampleRNG([7], seed=3, key="k").normal((4, 5))
    assert torch.equal(alone[0], whole[7])


def test_sample_streams_differ_by_seed_key_and_index():
    a = SampleRNG([0, 1], seed=0, key="k").uniform((16,))
    assert not torch.equal(a[0], a[1])
    assert not torch.equal(a, SampleRNG([0, 1], seed=1, key="k").uniform((16,)))
    assert not torch.equal(a, SampleRNG([0, 1], seed=0, key="other").uniform((16,)))


def test_integers_upper_bound_is_exclusive():
    draws = SampleRNG(range(50), seed=0, key="i").integers(-2, 2, (100,))
    assert draws.min() == -2 and draws.max() == 1


def test_per_sample_views_draw_what_the_batch_draws():
    batch = SampleRNG([4, 9, 2], seed=7, key="v").uniform((5, 6))
    views = SampleRNG([4, 9, 2], seed=7, key="v").per_sample()
    assert [v.indices for v in views] == [[4], [9], [2]]
    assert torch.equal(torch.cat([v.uniform((5, 6)) for v in views]), batch)
