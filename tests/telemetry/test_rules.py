"""The hot stores trust points the upload parser made (``CheckedPoints``) without checking them
again: that is only right if the parser's rules imply the stores' own. Checked here on random
uploads, tricky texts included."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solarfleet.errors import BadRequest
from solarfleet.telemetry import rules
from solarfleet.telemetry.ingest import parse_upload
from solarfleet.telemetry.points import Point

TRICKY = st.one_of(
    st.text(max_size=70),
    st.sampled_from(["time", "imei", "tags", "#m", "a\\b", "a\nb", "a b", "é", "x" * 65]),
)
VALID = st.from_regex(r"[A-Za-z0-9_.-]{1,64}", fullmatch=True)
NAME = st.one_of(VALID, VALID, VALID, VALID, TRICKY)  # mostly good, or nothing gets through
TAG_VALUE = st.one_of(st.text(min_size=1, max_size=8), VALID, TRICKY)
TIME = st.one_of(
    st.integers(min_value=0, max_value=7_258_118_400_000),  # epoch ms up to 2200
    st.integers(min_value=-(2**63), max_value=2**63),
    st.sampled_from(["2026-01-01", "2026-01-01T00:00:00+03:00", "1969-12-31T23:59:59", "nope"]),
)
VALUE = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.booleans(),
    st.text(max_size=20),
    st.none(),
)
UPLOADS = st.fixed_dictionaries(
    {
        "measurement": st.one_of(st.just("telemetry"), NAME),
        "tags": st.dictionaries(NAME, st.one_of(TAG_VALUE, st.integers()), max_size=3),
        "fields": st.dictionaries(
            NAME,
            st.lists(st.tuples(TIME, VALUE).map(list), min_size=1, max_size=3),
            min_size=1,
            max_size=3,
        ),
    }
)


@settings(max_examples=400, deadline=None)
@given(upload=UPLOADS, imei=st.sampled_from(["1", "123456789012345"]))
def test_points_the_parser_accepts_pass_every_store_rule(upload: dict[str, Any], imei: str) -> None:
    try:
        points = parse_upload(imei=imei, **upload)
    except BadRequest:
        return
    assert isinstance(points, rules.CheckedPoints)
    for point in points:
        rules.check_series(point)
        rules.check_reading(point)
    unchecked, kinds = rules.prepare(list(points))
    assert rules.prepare(points) == (unchecked, kinds)


def test_unchecked_points_are_checked_once_per_series_and_every_reading() -> None:
    good = Point("1", "m", (("site", "a"),), "v", 0, 1.0)
    bad_name = Point("1", "m", (("site", "a\\b"),), "v", 0, 1.0)
    bad_value = Point("1", "m", (("site", "a"),), "v", 1, float("nan"))
    with pytest.raises(BadRequest, match="backslash"):
        rules.prepare([good, bad_name])
    with pytest.raises(BadRequest, match="finite"):
        rules.prepare([good, bad_value])
