"""Phase sizes against a plain model: shares rounded up, the rest a last phase, never more
than the targets, a 400 exactly when the phases ask for more than every target."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from solarfleet.errors import BadRequest
from solarfleet.rollouts.service import phase_sizes

BATCHES = st.one_of(
    st.integers(1, 300).map(lambda n: {"batch": n}),
    st.integers(1, 100).map(lambda p: {"batch": f"{p}%"}),
    st.decimals("0.5", "100", places=1).map(lambda p: {"batch": f"{p}%"}),
)


@given(st.lists(BATCHES, min_size=1, max_size=8), st.integers(1, 500))
def test_phase_sizes_follow_the_model(phases: list[dict], targets: int) -> None:
    asked = Fraction(0)
    for p in phases:
        b = p["batch"]
        asked += b if isinstance(b, int) else Fraction(b[:-1]) * targets / 100
    if asked > targets:
        with pytest.raises(BadRequest, match="more than the"):
            phase_sizes(phases, targets)
        return
    sizes = phase_sizes(phases, targets)
    assert sum(sizes) == targets and all(s >= 1 for s in sizes)
    expected, left = [], targets
    for p in phases:
        b = p["batch"]
        want = b if isinstance(b, int) else math.ceil(Fraction(b[:-1]) * targets / 100)
        if min(want, left) > 0:
            expected.append(min(want, left))
            left -= min(want, left)
    assert sizes == expected + ([left] if left else [])
