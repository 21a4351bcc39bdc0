"""GET /v1/products/<imei>/data on both hot stores: every parameter, the downsampling arithmetic,
the where grammar through HTTP, injection attempts, and scope."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from solarfleet.db import utcnow
from solarfleet.telemetry.hot import HotStore, TooManyReadings
from solarfleet.telemetry.points import Point, Value, to_us
from solarfleet.timeparse import format_instant
from tests.factories import Factory
from tests.telemetry.conftest import Site

T = datetime(2026, 11, 20, 10, 0, 0)  # a round hour: buckets start here
MIN = timedelta(minutes=1)


def iso(moment: datetime) -> str:
    return format_instant(moment)


def put(
    hot: HotStore,
    site: Site,
    field: str,
    series: list[tuple[datetime, Value]],
    *,
    tags: dict[str, str] | None = None,
    measurement: str = "telemetry",
) -> None:
    tag_tuple = tuple(sorted((tags or {}).items()))
    hot.write([Point(site.imei, measurement, tag_tuple, field, to_us(t), v) for t, v in series])


def get(
    client: TestClient, site: Site, headers: dict[str, str] | None = None, **params: Any
) -> Any:
    return client.get(
        f"/v1/products/{site.imei}/data", params=params, headers=headers or site.admin
    )


def data(client: TestClient, site: Site, **params: Any) -> Any:
    r = get(client, site, **params)
    assert r.status_code == 200, r.text
    return r.json()["data"]


WINDOW = {"start": iso(T - timedelta(days=1)), "end": iso(T + timedelta(days=1))}


def test_default_window_is_the_last_seven_days(
    client: TestClient, site: Site, hot: HotStore
) -> None:
    now = utcnow().replace(microsecond=0)
    put(hot, site, "v", [(now - timedelta(days=8), 1.0), (now - timedelta(days=6), 2.0)])
    put(hot, site, "v", [(now - timedelta(hours=1), 3.0)])
    r = get(client, site)
    assert r.status_code == 200
    assert r.json() == {
        "status": "success",
        "message": f"Readings of #{site.imei} returned successfully",
        "data": {
            "measurement": "telemetry",
            "tags": {"imei": site.imei},
            "v": [[2.0, iso(now - timedelta(days=6))], [3.0, iso(now - timedelta(hours=1))]],
        },
    }
    # start alone: up to now; end alone: the 7 days before it
    assert len(data(client, site, start=iso(now - timedelta(days=9)))["v"]) == 3
    assert data(client, site, end=iso(now - timedelta(days=7, hours=12)))["v"] == [
        [1.0, iso(now - timedelta(days=8))]
    ]


def test_start_and_end_are_inclusive_and_take_every_format(
    client: TestClient, site: Site, hot: HotStore
) -> None:
    put(hot, site, "v", [(T + i * MIN, float(i)) for i in range(5)])
    got = data(client, site, start=iso(T + MIN), end=iso(T + 3 * MIN))["v"]
    assert [v for v, _ in got] == [1.0, 2.0, 3.0]
    ms = to_us(T + MIN) // 1000
    got = data(client, site, start=str(ms), end=(T + 2 * MIN).isoformat() + "+00:00")["v"]
    assert [v for v, _ in got] == [1.0, 2.0]
    assert len(data(client, site, start="2026-11-20", end="2026-11-21")["v"]) == 5


def test_fields_measurement_and_kinds(client: TestClient, site: Site, hot: HotStore) -> None:
    put(hot, site, "a", [(T, 1.5)])
    put(hot, site, "b", [(T, "eco")])
    put(hot, site, "c", [(T, True)])
    put(hot, site, "a", [(T, 9.0)], measurement="status")
    assert data(client, site, **WINDOW) == {
        "measurement": "telemetry",
        "tags": {"imei": site.imei},
        "a": [[1.5, iso(T)]],
        "b": [["eco", iso(T)]],
        "c": [[True, iso(T)]],
    }
    got = data(client, site, fields="c, a,zzz", **WINDOW)
    assert list(got) == ["measurement", "tags", "c", "a", "zzz"]
    assert got["zzz"] == []
    got = data(client, site, measurement="status", **WINDOW)
    assert got == {"measurement": "status", "tags": {"imei": site.imei}, "a": [[9.0, iso(T)]]}


def test_limit_takes_the_earliest_values_per_field(
    client: TestClient, site: Site, hot: HotStore
) -> None:
    put(hot, site, "a", [(T + i * MIN, float(i)) for i in range(5)])
    put(hot, site, "b", [(T, 0.0)])
    r = get(client, site, limit="2", **WINDOW)
    assert "cut at 2 values per field" in r.json()["message"]
    got = r.json()["data"]
    assert got["a"] == [[0.0, iso(T)], [1.0, iso(T + MIN)]]
    assert got["b"] == [[0.0, iso(T)]]


def test_tag_filters(client: TestClient, site: Site, hot: HotStore) -> None:
    put(hot, site, "v", [(T, 1.0)], tags={"source": "bms", "phase": "1"})
    put(hot, site, "v", [(T + MIN, 2.0)], tags={"source": "bms", "phase": "2"})
    put(hot, site, "v", [(T + 2 * MIN, 3.0)], tags={"source": "inverter, west"})
    put(hot, site, "v", [(T + 3 * MIN, 4.0)])

    def values(tags: str) -> list[Any]:
        return [v for v, _ in data(client, site, tags=tags, fields="v", **WINDOW)["v"]]

    assert values("source:bms") == [1.0, 2.0]
    assert values("source:bms,phase:2") == [2.0]
    assert values(" source : bms , phase:1 ") == [1.0]
    assert values('{"source": "inverter, west"}') == [3.0]
    assert values('{"source": "nope"}') == []
    assert values(f"imei:{site.imei}") == [1.0, 2.0, 3.0, 4.0]
    assert values("{}") == [1.0, 2.0, 3.0, 4.0]
    got = data(client, site, tags="source:bms", **WINDOW)
    assert got["tags"] == {"imei": site.imei, "source": "bms"}


def test_where_filters_rows(client: TestClient, site: Site, hot: HotStore) -> None:
    put(hot, site, "voltage", [(T, 11.0), (T + MIN, 12.6), (T + 2 * MIN, 13.1)])
    put(hot, site, "current", [(T, 1.0), (T + MIN, 2.0), (T + 2 * MIN, 5.0)])
    put(hot, site, "mode", [(T, "eco"), (T + MIN, "boost"), (T + 2 * MIN, "eco")])
    got = data(client, site, where="voltage > 12.5 and current <= 3", **WINDOW)
    assert got["voltage"] == [[12.6, iso(T + MIN)]]
    assert got["current"] == [[2.0, iso(T + MIN)]]
    # The where may read fields that are not asked for.
    got = data(client, site, fields="current", where="mode = 'eco'", **WINDOW)
    assert got == {
        "measurement": "telemetry",
        "tags": {"imei": site.imei},
        "current": [[1.0, iso(T)], [5.0, iso(T + 2 * MIN)]],
    }
    got = data(client, site, fields="current", where="nothing > 1", **WINDOW)
    assert got["current"] == []


def test_downsampling_arithmetic(client: TestClient, site: Site, hot: HotStore) -> None:
    # Minutes 0..9 → values 0..9; 5-minute buckets [0..4] and [5..9].
    put(hot, site, "v", [(T + i * MIN, float(i)) for i in range(10)])
    put(hot, site, "mode", [(T + i * MIN, "x") for i in range(7)])
    b0, b1 = iso(T), iso(T + 5 * MIN)
    expected = {
        "mean": [[2.0, b0], [7.0, b1]],
        "sum": [[10.0, b0], [35.0, b1]],
        "max": [[4.0, b0], [9.0, b1]],
        "min": [[0.0, b0], [5.0, b1]],
        "count": [[5, b0], [5, b1]],
        "first": [[0.0, b0], [5.0, b1]],
        "last": [[4.0, b0], [9.0, b1]],
    }
    for function, values in expected.items():
        got = data(client, site, ds_interval="5m", ds_function=function, **WINDOW)
        assert got["v"] == values, function
    got = data(client, site, ds_interval="5m", ds_function="count", **WINDOW)
    assert got["mode"] == [[5, b0], [2, b1]]
    got = data(client, site, ds_interval="5m", ds_function="mean", **WINDOW)
    assert got["mode"] == []  # no numbers: buckets left out
    got = data(client, site, ds_interval="5m", ds_function="LAST", **WINDOW)
    assert got["mode"] == [["x", b0], ["x", b1]]
    # An interval alone is a mean; buckets align to the epoch, not to start.
    got = data(
        client, site, ds_interval="1h", fields="v", start=iso(T + 3 * MIN), end=WINDOW["end"]
    )
    assert got["v"] == [[6.0, iso(T)]]
    # A function alone aggregates the window into one value at start.
    got = data(client, site, ds_function="max", fields="v", **WINDOW)
    assert got["v"] == [[9.0, WINDOW["start"]]]
    got = data(client, site, ds_interval="2m", ds_function="sum", fields="v", limit="2", **WINDOW)
    assert got["v"] == [[1.0, b0], [5.0, iso(T + 2 * MIN)]]
    got = data(
        client, site, ds_interval="1d", ds_function="count", fields="v", where="v >= 8", **WINDOW
    )
    assert got["v"] == [[2, iso(datetime(2026, 11, 20))]]


def test_mean_of_values_that_do_not_add_up_exactly(
    client: TestClient, site: Site, hot: HotStore
) -> None:
    put(hot, site, "v", [(T, 0.1), (T + MIN, 0.2), (T + 2 * MIN, 0.3)])
    got = data(client, site, ds_function="sum", **WINDOW)
    assert got["v"] == [[0.6, WINDOW["start"]]]  # fsum: not 0.6000000000000001
    got = data(client, site, ds_function="mean", **WINDOW)
    assert got["v"] == [[0.6 / 3, WINDOW["start"]]]  # the correctly rounded sum, divided


BAD_PARAMS: list[tuple[dict[str, str], str]] = [
    ({"start": "last tuesday"}, "start"),
    ({"end": "soon"}, "end"),
    ({"start": "2026-11-21", "end": "2026-11-20"}, "start"),
    ({"start": "-5"}, "start"),
    ({"fields": ""}, "fields"),
    ({"fields": ",,"}, "fields"),
    ({"fields": "bad name"}, "bad name"),
    ({"fields": "time"}, "time"),
    ({"fields": ",".join(f"f{i}" for i in range(101))}, "fields"),
    ({"measurement": "a b"}, "measurement"),
    ({"measurement": 'telemetry"; DROP DATABASE solarfleet'}, "measurement"),
    ({"limit": "0"}, "limit"),
    ({"limit": "ten"}, "limit"),
    ({"limit": "100001"}, "limit"),
    ({"tags": "{bad json"}, "tags"),
    ({"tags": "[1, 2]"}, "tags"),
    ({"tags": "novalue"}, "novalue"),
    ({"tags": '{"k": 5}'}, "'k'"),
    ({"tags": "bad key:x"}, "bad key"),
    ({"tags": "imei:123"}, "imei"),
    ({"tags": "k:"}, "'k'"),
    ({"tags": '{"k": ' + "[" * 3000 + "]" * 3000 + "}"}, "nested deeper than 1 level"),
    ({"tags": '{"k": "[[{", "j": 5}'}, "'j'"),  # brackets in a string are no nesting
    ({"where": "voltage >"}, "where"),
    ({"where": "'; DROP MEASUREMENT telemetry; --"}, "where"),
    ({"where": '") or 1=1'}, "where"),
    ({"where": "voltage > 1 or 1=1"}, "where"),
    ({"ds_interval": "5x"}, "ds_interval"),
    ({"ds_interval": "0m"}, "ds_interval"),
    ({"ds_interval": "53w"}, "ds_interval"),
    ({"ds_interval": "1.5h"}, "ds_interval"),
    ({"ds_function": "median"}, "ds_function"),
    ({"ds_function": "mean); DROP"}, "ds_function"),
]


@pytest.mark.parametrize(("params", "named"), BAD_PARAMS)
def test_bad_parameters_are_400s_naming_them(
    client: TestClient, site: Site, hot: HotStore, params: dict[str, str], named: str
) -> None:
    put(hot, site, "v", [(T, 1.0)])
    r = get(client, site, **params)
    assert r.status_code == 400, r.text
    assert named in r.json()["message"]
    assert len(hot.read(site.imei, 0, 2**52)) == 1  # nothing harmed


@pytest.mark.parametrize(
    "tags",
    [
        '{"source": "\'; DROP DATABASE solarfleet; --"}',
        '{"source": "x\\" OR 1=1 --"}',
        "source:' OR ''='",
    ],
)
def test_injection_through_tag_values_is_just_a_value(
    client: TestClient, site: Site, hot: HotStore, tags: str
) -> None:
    put(hot, site, "v", [(T, 1.0)], tags={"source": "bms"})
    assert data(client, site, tags=tags, fields="v", **WINDOW)["v"] == []
    assert "v" not in data(client, site, tags=tags, **WINDOW)  # no field found
    assert data(client, site, **WINDOW)["v"] == [[1.0, iso(T)]]


def test_scope_and_permissions(
    client: TestClient, site: Site, hot: HotStore, factory: Factory
) -> None:
    put(hot, site, "v", [(T, 1.0)])
    other = site.other.product_imei
    hot.write([Point(other, "telemetry", (), "v", to_us(T), 2.0)])
    # OVERVIEW in the unit's entity: reads its own unit, 404 for the other entity's
    r = get(client, site, headers=site.reader, **WINDOW)
    assert r.status_code == 200 and r.json()["data"]["v"] == [[1.0, iso(T)]]
    r = client.get(f"/v1/products/{other}/data", params=WINDOW, headers=site.reader)
    assert r.status_code == 404
    assert "2.0" not in r.text
    assert client.get(f"/v1/products/{site.imei}/data").status_code == 401
    assert client.get("/v1/products/999999/data", headers=site.admin).status_code == 404
    assert client.get("/v1/products/12ab/data", headers=site.admin).status_code == 400
    stranger = factory.headers("SYSTEM", "ENTITY", factory.entity())
    assert client.get(f"/v1/products/{site.imei}/data", headers=stranger).status_code == 404


# -- bounded reads (issue 9 item 3) ------------------------------------------------------------


@pytest.fixture
def ceiling(app: FastAPI) -> Iterator[int]:
    """SOLARFLEET_TELEMETRY_MAX_POINTS lowered to 10 for the test."""
    previous = app.state.settings
    app.state.settings = previous.model_copy(update={"telemetry_max_points": 10})
    yield 10
    app.state.settings = previous


def test_a_window_holding_more_than_the_ceiling_is_a_400_naming_it(
    client: TestClient, site: Site, hot: HotStore, ceiling: int
) -> None:
    put(hot, site, "a", [(T + i * MIN, float(i)) for i in range(8)])
    put(hot, site, "b", [(T + i * MIN, float(i)) for i in range(3)])
    for params in ({}, {"ds_interval": "1h"}, {"where": "a > 0"}, {"fields": "a,b"}):
        r = get(client, site, **params, **WINDOW)
        assert r.status_code == 400, (params, r.text)
        assert r.json()["message"] == (
            "Too many readings: the window holds more than 10 (the most a read takes, "
            "SOLARFLEET_TELEMETRY_MAX_POINTS); narrow it with start and end, name fewer fields, "
            "or ask for the earliest values with limit (without where, tags or ds_*)"
        )
    # Within the ceiling, the answer is the usual one.
    assert data(client, site, fields="a", **WINDOW)["a"] == [
        [float(i), iso(T + i * MIN)] for i in range(8)
    ]
    got = data(client, site, start=iso(T), end=iso(T + 4 * MIN), ds_function="count")
    assert got == {
        "measurement": "telemetry",
        "tags": {"imei": site.imei},
        "a": [[5, iso(T)]],
        "b": [[3, iso(T)]],
    }


def test_a_limit_is_taken_from_the_stores_whatever_the_window_holds(
    client: TestClient, site: Site, hot: HotStore, ceiling: int
) -> None:
    put(hot, site, "a", [(T + i * MIN, float(i)) for i in range(40)])
    put(hot, site, "a", [(T + i * MIN, -float(i)) for i in range(40)], tags={"src": "x"})
    put(hot, site, "b", [(T + i * MIN, float(i)) for i in range(40)])
    put(hot, site, "c", [(T + 5 * MIN, "late")], measurement="other")
    r = get(client, site, limit="3", **WINDOW)
    assert r.status_code == 200, r.text
    assert r.json()["message"] == (
        f"Readings of #{site.imei} returned successfully (cut at 3 values per field)"
    )
    assert r.json()["data"] == {
        "measurement": "telemetry",
        "tags": {"imei": site.imei},
        "a": [[0.0, iso(T)], [-0.0, iso(T)], [1.0, iso(T + MIN)]],
        "b": [[0.0, iso(T)], [1.0, iso(T + MIN)], [2.0, iso(T + 2 * MIN)]],
    }
    assert data(client, site, limit="1", fields="b", **WINDOW)["b"] == [[0.0, iso(T)]]
    assert data(client, site, limit="2", measurement="other", **WINDOW)["c"] == [
        ["late", iso(T + 5 * MIN)]
    ]
    # A limit the stores cannot apply (after a tag filter) does not lift the ceiling.
    assert get(client, site, limit="1", tags="src:x", **WINDOW).status_code == 400


@pytest.mark.parametrize("limit", [None, 1, 2, 5])
def test_store_reads_stop_at_the_cap_and_take_the_earliest_per_field(
    store: HotStore, limit: int | None
) -> None:
    imei = "356000000000001"
    points = [
        Point(imei, m, tags, f, to_us(T + i * MIN), float(i))
        for m in ("telemetry", "other")
        for tags in ((), (("src", "x"),))
        for f in ("a", "b")
        for i in range(4)
    ]
    store.write(points)
    everything = store.read(imei, 0, 2**52)
    assert len(everything) == 32
    total = 32 if limit is None else 4 * min(limit, 8)  # 4 series (measurement, field) of 8
    try:
        capped = len(store.read(imei, 0, 2**52, max_points=9, limit=limit))
    except TooManyReadings:
        capped = 10
    assert capped > 9 if total > 9 else capped == total
    assert store.read(imei, 0, 2**52, max_points=40, limit=limit) == [
        p
        for p in everything
        if limit is None
        or [q for q in everything if (q.measurement, q.field) == (p.measurement, p.field)].index(p)
        < limit
    ]
