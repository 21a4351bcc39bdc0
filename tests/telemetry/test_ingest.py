"""Uploads through both endpoints, on both hot stores: exact answers, the rules, and the order of
writes (dirty mark committed before the hot store is written; nothing acknowledged otherwise)."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from solarfleet.telemetry.dirty import clear_if_unchanged
from solarfleet.telemetry.hot import HotStore
from solarfleet.telemetry.influx import InfluxHotStore
from solarfleet.telemetry.ingest import MAX_POINTS
from solarfleet.telemetry.points import Point, to_us
from tests.factories import Factory
from tests.telemetry.conftest import Site, closed_port

EVERYTHING = (0, to_us(datetime(2200, 1, 1)))
MS = 1479727096961  # 2016-11-21T11:18:16.961
MS_US = MS * 1000
JSON = {"Content-Type": "application/json"}


def stored(hot: HotStore, imei: str) -> list[Point]:
    return hot.read(imei, *EVERYTHING)


def upload(client: TestClient, site: Site, body: Any, *, as_unit: bool = False) -> Any:
    # json.dumps escapes what httpx's json= cannot encode (lone surrogates) as \udXXX.
    content = json.dumps(body)
    if as_unit:
        return client.post("/v1/rm_data", content=content, headers={**site.device, **JSON})
    return client.post(
        f"/v1/products/{site.imei}/data", content=content, headers={**site.admin, **JSON}
    )


@pytest.mark.parametrize("as_unit", [False, True], ids=["operator", "unit"])
def test_upload_answers_how_many_points_were_written(
    client: TestClient, site: Site, hot: HotStore, as_unit: bool
) -> None:
    body = {
        "measurement": "telemetry",
        "tags": {"source": "bms"},
        "fields": {
            "battery_voltage": [[MS, 12.7], [MS + 1000, 12]],
            "charging": [[MS, True]],
            "mode": [[MS, "eco"]],
        },
    }
    r = upload(client, site, body, as_unit=as_unit)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "status": "success",
        "message": f"4 points written for #{site.imei}",
        "data": {
            "product_imei": site.imei,
            "points": 4,
            "oldest": "2016-11-21T11:18:16.961000",
            "newest": "2016-11-21T11:18:17.961000",
        },
    }
    tags = (("source", "bms"),)
    assert stored(hot, site.imei) == [
        Point(site.imei, "telemetry", tags, "battery_voltage", MS_US, 12.7),
        Point(site.imei, "telemetry", tags, "charging", MS_US, True),
        Point(site.imei, "telemetry", tags, "mode", MS_US, "eco"),
        Point(site.imei, "telemetry", tags, "battery_voltage", MS_US + 1_000_000, 12.0),
    ]
    assert site.mark() == (MS_US, 2)  # marked before the hot write and again after it


def test_every_time_format_lands_on_the_same_microsecond(
    client: TestClient, site: Site, hot: HotStore
) -> None:
    times = [
        MS,
        str(MS),
        MS + 0.5,
        "2016-11-21T11:18:16.961",
        "2016-11-21T12:18:16.961+01:00",
        "2016-11-21T11:18:16.961Z",
        "2016-11-21T11:18:16.961123",
        "2016-11-21",
    ]
    fields = {f"f{i}": [[t, 1.0]] for i, t in enumerate(times)}
    assert upload(client, site, {"fields": fields}).status_code == 200
    got = {p.field: p.time_us for p in stored(hot, site.imei)}
    day = to_us(datetime(2016, 11, 21))
    assert got == {
        "f0": MS_US,
        "f1": MS_US,
        "f2": MS_US + 500,
        "f3": MS_US,
        "f4": MS_US,
        "f5": MS_US,
        "f6": MS_US + 123,
        "f7": day,
    }
    assert site.mark() == (day, 2)


def test_defaults_and_the_imei_tag(client: TestClient, site: Site, hot: HotStore) -> None:
    r = upload(client, site, {"fields": {"v": [[MS, 1]]}, "tags": {"imei": site.imei}})
    assert r.status_code == 200, r.text
    assert stored(hot, site.imei) == [Point(site.imei, "telemetry", (), "v", MS_US, 1.0)]
    r = upload(
        client, site, {"fields": {"v": [[MS, 1]]}, "tags": {"imei": site.other.product_imei}}
    )
    assert r.status_code == 400
    assert "imei" in r.json()["message"]


def test_resending_overwrites_and_bumps_the_mark(
    client: TestClient, site: Site, hot: HotStore
) -> None:
    body = {"fields": {"v": [[MS, 1], [MS + 1, 2]]}}
    for _ in range(3):
        assert upload(client, site, body, as_unit=True).status_code == 200
    assert len(stored(hot, site.imei)) == 2
    assert site.mark() == (MS_US, 6)
    upload(client, site, {"fields": {"v": [[MS, 5]]}})  # a changed value: last write wins
    assert [p.value for p in stored(hot, site.imei)] == [5.0, 2.0]
    upload(client, site, {"fields": {"v": [[MS - 60_000, 0]]}})  # older: the mark moves back
    upload(client, site, {"fields": {"v": [[MS + 60_000, 0]]}})  # newer: it stays
    assert site.mark() == (MS_US - 60_000_000, 12)


def test_duplicates_within_a_request_count_once(
    client: TestClient, site: Site, hot: HotStore
) -> None:
    r = upload(client, site, {"fields": {"v": [[MS, 1], [str(MS), 2], [MS + 1, 3]]}})
    assert r.json()["data"]["points"] == 2
    assert [p.value for p in stored(hot, site.imei)] == [2.0, 3.0]


def test_empty_upload_writes_nothing_and_marks_nothing(
    client: TestClient, site: Site, hot: HotStore
) -> None:
    r = upload(client, site, {"fields": {"v": []}})
    assert r.status_code == 200
    assert r.json()["data"] == {"product_imei": site.imei, "points": 0}
    assert site.mark() is None


LONG = "x" * 65
BAD_POINTS: list[tuple[Any, str]] = [
    ({"fields": {"v": [[MS, 1], ["yesterday-ish", 2]]}}, "v[1]"),
    ({"fields": {"v": [[MS, 1], [None, 2]]}}, "v[1]"),
    ({"fields": {"v": [[True, 2]]}}, "v[0]"),
    ({"fields": {"v": [[-1, 2]]}}, "v[0]"),
    ({"fields": {"v": [["1969-12-31T23:59:59", 2]]}}, "v[0]"),
    ({"fields": {"v": [["2200-01-01", 2]]}}, "v[0]"),
    ({"fields": {"v": [[10**20, 2]]}}, "v[0]"),
    ({"fields": {"v": [[MS, 1], [MS + 1, "abc"]]}}, "v[1]"),
    ({"fields": {"v": [[MS, "abc"], [MS + 1, 1]]}}, "v[1]"),
    ({"fields": {"v": [[MS, 1.5], [MS + 1, True]]}}, "v[1]"),
    ({"fields": {"ok": [[MS, 1]], "v": [[MS, None]]}}, "v[0]"),
    ({"fields": {"v": [[MS, {"a": 1}]]}}, "v[0]"),
    ({"fields": {"v": [[MS, [1]]]}}, "v[0]"),
    ({"fields": {"v": [[MS, 10**400]]}}, "v[0]"),
    ({"fields": {"v": [[MS, "x" * 4097]]}}, "v[0]"),
    ({"fields": {"v": [[MS, "nul\x00"]]}}, "v[0]"),
    ({"fields": {"v": [[MS]]}}, "v[0]"),
    ({"fields": {"v": [[MS, 1, 2]]}}, "v[0]"),
    ({"fields": {"v": [MS]}}, "v[0]"),
    ({"fields": {"v": [{"time": MS, "value": 1}]}}, "v[0]"),
    ({"fields": {"": [[MS, 1]]}}, "''"),
    ({"fields": {LONG: [[MS, 1]]}}, LONG),
    ({"fields": {"with space": [[MS, 1]]}}, "with space"),
    ({"fields": {"time": [[MS, 1]]}}, "'time'"),
    ({"fields": {"imei": [[MS, 1]]}}, "'imei'"),
    ({"fields": {"tags": [[MS, 1]]}}, "'tags'"),
    ({"fields": {"v": [[MS, 1]]}, "measurement": ""}, "measurement"),
    ({"fields": {"v": [[MS, 1]]}, "measurement": "a,b"}, "measurement"),
    ({"fields": {"v": [[MS, 1]]}, "measurement": 5}, "measurement"),
    ({"fields": {"v": [[MS, 1]]}, "tags": {"k": ""}}, "'k'"),
    ({"fields": {"v": [[MS, 1]]}, "tags": {"k": "a\\b"}}, "'k'"),
    ({"fields": {"v": [[MS, 1]]}, "tags": {"k": "a\nb"}}, "'k'"),
    ({"fields": {"v": [[MS, 1]]}, "tags": {"k": "x" * 257}}, "'k'"),
    ({"fields": {"v": [[MS, 1]]}, "tags": {"k": 5}}, "tags.k"),
    ({"fields": {"v": [[MS, 1]]}, "tags": {"bad key": "x"}}, "bad key"),
    ({"fields": {"v": [[MS, 1]]}, "tags": {"time": "x"}}, "time"),
    ({"fields": {"v": [[MS, 1]]}, "tags": {f"k{i}": "x" for i in range(33)}}, "tags"),
    ({"fields": {"v": 5}}, "fields.v"),
    (
        {"fields": {"v": [[MS, 1], [MS, "ok\ud800"]]}},
        "v[1]: the string contains a lone surrogate \\ud800",
    ),
    ({"fields": {"v": [[MS, "\udfff"]]}, "tags": {}}, "lone surrogate \\udfff"),
    ({"fields": {"v": [[MS, 1]]}, "tags": {"k": "x\udc00"}}, "tag 'k': a lone surrogate \\udc00"),
    ({"fields": [[MS, 1]]}, "fields"),
    ({"measurement": "telemetry"}, "fields"),
]


@pytest.mark.parametrize("as_unit", [False, True], ids=["operator", "unit"])
@pytest.mark.parametrize(("body", "named"), BAD_POINTS)
def test_a_bad_point_refuses_the_whole_request(
    client: TestClient, site: Site, hot: HotStore, body: Any, named: str, as_unit: bool
) -> None:
    good = {"good": [[MS, 1.0], [MS + 5, 2.0]]}
    if isinstance(body.get("fields"), dict):
        body = {**body, "fields": {**good, **body["fields"]}}
    r = upload(client, site, body, as_unit=as_unit)
    assert r.status_code == 400, r.text
    assert r.json()["status"] == "error"
    assert named in r.json()["message"]
    assert stored(hot, site.imei) == []
    assert site.mark() is None


def test_nan_and_infinity_are_refused(client: TestClient, site: Site, hot: HotStore) -> None:
    for literal in ("NaN", "Infinity", "-Infinity"):
        content = f'{{"fields": {{"ok": [[{MS}, 1]], "v": [[{MS}, 1], [{MS}, {literal}]]}}}}'
        r = client.post(
            f"/v1/products/{site.imei}/data",
            content=content,
            headers={**site.admin, "Content-Type": "application/json"},
        )
        assert r.status_code == 400, (literal, r.text)
        assert "v[1]" in r.json()["message"]
    assert stored(hot, site.imei) == []
    assert site.mark() is None


def test_too_many_points(client: TestClient, site: Site, hot: HotStore) -> None:
    half = MAX_POINTS // 2 + 1
    body = {"fields": {"a": [[MS + i, 1] for i in range(half)], "b": [[MS, 1]] * half}}
    r = upload(client, site, body)
    assert r.status_code == 400
    assert f"at most {MAX_POINTS}" in r.json()["message"]
    assert stored(hot, site.imei) == [] and site.mark() is None


def test_malformed_json_is_a_400(client: TestClient, site: Site, hot: HotStore) -> None:
    r = client.post(
        f"/v1/products/{site.imei}/data",
        content=b"{not json",
        headers={**site.admin, "Content-Type": "application/json"},
    )
    assert r.status_code == 400
    assert site.mark() is None


@pytest.mark.parametrize(
    ("content", "headers", "message"),
    [
        (b"{not json", JSON, "Malformed JSON body"),
        (b"", JSON, "Missing JSON body: send a JSON object (Content-Type: application/json)"),
        (b"null", JSON, "Missing JSON body: send a JSON object (Content-Type: application/json)"),
        (b"[]", JSON, "The body must be a JSON object, not list"),
        (b"5", JSON, "The body must be a JSON object, not int"),
        (b"{}", JSON, "Missing field 'fields'"),
        (b'{"fields": {"v": 5}}', JSON,
         "Invalid value for 'fields.v': Input should be a valid list"),
        (b'{"fields": {}}', {"Content-Type": "text/plain"},
         "The body must be JSON (Content-Type: application/json)"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("as_unit", [False, True], ids=["operator", "unit"])
def test_a_body_that_is_not_an_upload_is_a_400(
    client: TestClient, site: Site, hot: HotStore, content: bytes, headers: dict[str, str],
    message: str, as_unit: bool,
) -> None:  # fmt: skip
    url = "/v1/rm_data" if as_unit else f"/v1/products/{site.imei}/data"
    caller = site.device if as_unit else site.admin
    r = client.post(url, content=content, headers={**caller, **headers})
    assert (r.status_code, r.json()["message"]) == (400, message)
    assert stored(hot, site.imei) == [] and site.mark() is None


@pytest.mark.parametrize("as_unit", [False, True], ids=["operator", "unit"])
def test_the_caller_is_authenticated_before_the_body_is_read(
    client: TestClient, site: Site, as_unit: bool
) -> None:
    # the body is parsed in the endpoint's thread, after authentication (issue 11)
    url = "/v1/rm_data" if as_unit else f"/v1/products/{site.imei}/data"
    basic = base64.b64encode(f"{site.imei}:{'x' * 32}".encode()).decode()
    wrong = {"Authorization": f"Basic {basic}"}
    caller = wrong if as_unit else {"Authorization": "Token token=" + "x" * 43}
    r = client.post(url, content=b"{not json", headers={**caller, **JSON})
    assert r.status_code == 401
    assert r.json()["message"] == ("Invalid unit credentials" if as_unit else "Invalid token")


def test_a_type_conflict_with_stored_readings_is_a_400_naming_the_field(
    client: TestClient, site: Site, hot: HotStore
) -> None:
    assert upload(client, site, {"fields": {"mode": [[MS, "eco"]]}}).status_code == 200
    r = upload(client, site, {"fields": {"other": [[MS + 1, 1]], "mode": [[MS + 1, 3]]}})
    assert r.status_code == 400
    assert "'mode'" in r.json()["message"]
    assert [p.field for p in stored(hot, site.imei)] == ["mode"]  # nothing of that request


def test_unit_credentials(client: TestClient, site: Site, hot: HotStore) -> None:
    body = {"fields": {"v": [[MS, 1]]}}
    assert client.post("/v1/rm_data", json=body).status_code == 401
    wrong = {"Authorization": "Basic " + "MzU2MDAwMDAwMDAwMDAxOm5vcGU="}  # 356…001:nope
    assert client.post("/v1/rm_data", json=body, headers=wrong).status_code == 401
    assert client.post("/v1/rm_data", json=body, headers=site.admin).status_code == 401
    assert stored(hot, site.imei) == []


def test_operator_upload_needs_admin_and_scope(
    client: TestClient, site: Site, hot: HotStore, factory: Factory
) -> None:
    body = {"fields": {"v": [[MS, 1]]}}
    r = client.post(f"/v1/products/{site.imei}/data", json=body, headers=site.reader)
    assert r.status_code == 403
    stranger = factory.headers("ADMIN", "ENTITY", site.entity)
    r = client.post(f"/v1/products/{site.other.product_imei}/data", json=body, headers=stranger)
    assert r.status_code == 404
    r = client.post("/v1/products/123456/data", json=body, headers=site.admin)
    assert r.status_code == 404
    r = client.post("/v1/products/12x/data", json=body, headers=site.admin)
    assert r.status_code == 400
    assert stored(hot, site.other.product_imei) == [] and site.mark(site.other.product_imei) is None
    r = client.post(f"/v1/products/{site.imei}/data", json=body, headers=stranger)
    assert r.status_code == 200


class Spy:
    """A real hot store that records, when it is written, the dirty mark other sessions see."""

    def __init__(self, inner: HotStore, site: Site) -> None:
        self.inner, self.site = inner, site
        self.marks_seen: list[Any] = []

    def write(self, points: Sequence[Point]) -> int:
        self.marks_seen.append(self.site.mark())
        return self.inner.write(points)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_the_dirty_mark_is_committed_before_the_hot_write(
    app: FastAPI, client: TestClient, site: Site, hot: HotStore
) -> None:
    spy = Spy(hot, site)
    app.state.hot_store = spy
    upload(client, site, {"fields": {"v": [[MS, 1]]}})
    upload(client, site, {"fields": {"v": [[MS - 5, 1]]}}, as_unit=True)
    assert spy.marks_seen == [(MS_US, 1), (MS_US - 5000, 3)]


class ClearingSpy(Spy):
    """A hot store during whose write a migration pass clears the unit's mark."""

    def write(self, points: Sequence[Point]) -> int:
        mark = self.site.mark()
        assert mark is not None
        with self.site.sessions() as session:
            assert clear_if_unchanged(session=session, imei=self.site.imei, version=mark[1])
            session.commit()
        return self.inner.write(points)


def test_a_pass_clearing_the_mark_during_the_write_leaves_the_readings_marked(
    app: FastAPI, client: TestClient, site: Site, hot: HotStore
) -> None:
    """Without the second mark, these readings would sit unmarked in the hot store."""
    app.state.hot_store = ClearingSpy(hot, site)
    assert upload(client, site, {"fields": {"v": [[MS, 1]]}}).status_code == 200
    assert site.mark() is not None and site.mark()[0] == MS_US


@pytest.mark.parametrize("as_unit", [False, True], ids=["operator", "unit"])
def test_influx_down_is_a_503_and_nothing_is_acknowledged(
    app: FastAPI, client: TestClient, site: Site, as_unit: bool
) -> None:
    down = InfluxHotStore(f"http://127.0.0.1:{closed_port()}", database="x", timeout=2)
    previous, app.state.hot_store = app.state.hot_store, down
    try:
        r = upload(client, site, {"fields": {"v": [[MS, 1]]}}, as_unit=as_unit)
        assert r.status_code == 503
        assert r.json()["status"] == "error"
        assert "InfluxDB is unavailable" in r.json()["message"]
        assert site.mark() == (MS_US, 1)  # committed before: harmless, the migration finds nothing
        r = client.get(f"/v1/products/{site.imei}/data", headers=site.admin)
        assert r.status_code == 503
    finally:
        app.state.hot_store = previous
        down.close()
    # The database is not left locked: the next upload goes through.
    assert upload(client, site, {"fields": {"v": [[MS, 1]]}}, as_unit=as_unit).status_code == 200
    assert site.mark() == (MS_US, 3)


def test_the_default_hot_store_is_embedded_under_the_data_dir(app: FastAPI) -> None:
    from solarfleet.telemetry.embedded import EmbeddedHotStore

    store = app.state.hot_store
    assert isinstance(store, EmbeddedHotStore)
    assert store.path == app.state.settings.data_dir / "hot" / "telemetry.sqlite"
