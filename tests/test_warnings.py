"""The test configuration (pyproject's ``filterwarnings``): deprecations raised from robench fail the run."""

from __future__ import annotations

import warnings

import pytest


@pytest.mark.parametrize("category", [DeprecationWarning, FutureWarning])
def test_deprecation_raised_from_a_robench_module_is_an_error(category: type[Warning]) -> None:
    with pytest.raises(category, match="old API"):
        warnings.warn_explicit("old API", category, "robench/kinds.py", 1, module="robench.kinds")
    with warnings.catch_warnings(record=True) as caught:  # a library's own warning is only recorded
        warnings.warn_explicit("old API", category, "somelib/x.py", 1, module="somelib.x")
    assert len(caught) == 1
