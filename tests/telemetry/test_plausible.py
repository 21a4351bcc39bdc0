"""Points at implausible instants (issue 13): epoch seconds sent where milliseconds are expected
land in January 1970, a unit's clock may run years ahead. Such points are set aside, not stored;
the rest of the upload is stored; the answer stays 200 and says how many were set aside and why
(on both endpoints, both hot stores, SQLite and PostgreSQL)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import datetime

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from solarfleet.telemetry.hot import HotStore
from solarfleet.telemetry.points import from_us, to_us
from solarfleet.timeparse import format_instant
from tests.conftest import make_settings
from tests.telemetry.conftest import Site
from tests.telemetry.test_ingest import MS, MS_US, stored, upload

FLOOR_NOTE = "before 2000-01-01 (epoch seconds where milliseconds are expected?)"


def seconds_now() -> int:
    return int(time.time())


@pytest.mark.parametrize("as_unit", [False, True], ids=["operator", "unit"])
def test_seconds_instead_of_milliseconds_are_set_aside_with_a_note(
    client: TestClient, site: Site, hot: HotStore, as_unit: bool
) -> None:
    now_s = seconds_now()
    body = {"fields": {"v": [[now_s - 120, 1], [now_s - 60, 2], [now_s, 3]]}}
    r = upload(client, site, body, as_unit=as_unit)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "status": "success",
        "message": f"0 points written for #{site.imei}; 3 points set aside: their times lie "
        + FLOOR_NOTE,
        "data": {
            "product_imei": site.imei,
            "points": 0,
            "written": 0,
            "set_aside": 3,
            "earliest_set_aside": format_instant(from_us((now_s - 120) * 1000)),
            "latest_set_aside": format_instant(from_us(now_s * 1000)),
        },
    }
    assert stored(hot, site.imei) == []  # nothing from January 1970
    assert site.mark() is None  # nothing to migrate either


def test_a_mixed_upload_stores_the_good_points(
    client: TestClient, site: Site, hot: HotStore, caplog: pytest.LogCaptureFixture
) -> None:
    now_s = seconds_now()
    body = {
        "fields": {
            "v": [[MS, 1], [now_s, 2], [MS + 1000, 3]],
            "w": [["1999-12-31T23:59:59", 4], ["2000-01-01", 5], [now_s - 1, 6]],
        }
    }
    with caplog.at_level(logging.INFO, logger="solarfleet.telemetry.ingest"):
        r = upload(client, site, body, as_unit=True)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "status": "success",
        "message": f"3 points written for #{site.imei}; 3 points set aside: their times lie "
        + FLOOR_NOTE,
        "data": {
            "product_imei": site.imei,
            "points": 3,
            "oldest": "2000-01-01T00:00:00.000000",
            "newest": "2016-11-21T11:18:17.961000",
            "written": 3,
            "set_aside": 3,
            "earliest_set_aside": format_instant(from_us((now_s - 1) * 1000)),
            "latest_set_aside": "1999-12-31T23:59:59.000000",
        },
    }
    floor = to_us(datetime(2000, 1, 1))
    assert sorted((p.field, p.time_us, p.value) for p in stored(hot, site.imei)) == [
        ("v", MS_US, 1.0),
        ("v", MS_US + 1_000_000, 3.0),
        ("w", floor, 5.0),  # the floor itself is plausible
    ]
    assert site.mark() == (floor, 2)
    notes = [r for r in caplog.records if "set aside" in r.getMessage()]
    assert len(notes) == 1 and notes[0].levelno == logging.INFO  # once per upload
    assert site.imei in notes[0].getMessage() and "3 points set aside" in notes[0].getMessage()


def test_points_too_far_in_the_future_are_set_aside(
    client: TestClient, site: Site, hot: HotStore
) -> None:
    now_ms = seconds_now() * 1000
    hour, year = 3_600_000, 365 * 86_400_000
    body = {"fields": {"v": [[now_ms + hour, 1], [now_ms + year, 2], [now_ms + 2 * year, 3]]}}
    r = upload(client, site, body)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["message"].startswith(
        f"1 points written for #{site.imei}; 2 points set aside: their times lie after "
    )
    assert answer["message"].endswith(" (a clock ahead?)")
    assert answer["data"]["written"] == 1 and answer["data"]["set_aside"] == 2
    assert answer["data"]["earliest_set_aside"] == format_instant(from_us((now_ms + year) * 1000))
    assert answer["data"]["latest_set_aside"] == format_instant(from_us((now_ms + 2 * year) * 1000))
    assert [(p.time_us, p.value) for p in stored(hot, site.imei)] == [((now_ms + hour) * 1000, 1.0)]


def test_both_reasons_are_named(client: TestClient, site: Site, hot: HotStore) -> None:
    future = (seconds_now() + 10 * 86_400) * 1000
    body = {"fields": {"v": [[1_000, 1], [2_000, 2], [future, 3], [MS, 4]]}}
    r = upload(client, site, body, as_unit=True)
    assert r.status_code == 200, r.text
    message = r.json()["message"]
    assert message.startswith(
        f"1 points written for #{site.imei}; 3 points set aside: 2 lie {FLOOR_NOTE}; 1 lie after "
    )
    assert r.json()["data"]["earliest_set_aside"] == "1970-01-01T00:00:01.000000"
    assert [p.value for p in stored(hot, site.imei)] == [4.0]


def test_a_plausible_upload_answers_as_before(
    client: TestClient, site: Site, hot: HotStore
) -> None:
    r = upload(client, site, {"fields": {"v": [[MS, 1]]}})
    assert r.json()["message"] == f"1 points written for #{site.imei}"
    assert set(r.json()["data"]) == {"product_imei", "points", "oldest", "newest"}


@pytest.fixture
def floor_2017(app: FastAPI) -> Iterator[None]:
    """The app's settings with the floor at 2017-01-01 and no future allowed."""
    previous = app.state.settings
    app.state.settings = previous.model_copy(
        update={"telemetry_earliest": datetime(2017, 1, 1), "telemetry_future_seconds": 0}
    )
    yield
    app.state.settings = previous


def test_the_floor_and_the_future_come_from_the_settings(
    client: TestClient, site: Site, hot: HotStore, floor_2017: None
) -> None:
    soon = (seconds_now() + 600) * 1000
    body = {"fields": {"v": [[MS, 1], ["2017-01-01", 2], [soon, 3]]}}
    r = upload(client, site, body, as_unit=True)
    assert r.status_code == 200, r.text
    message = r.json()["message"]
    assert message.startswith(
        f"1 points written for #{site.imei}; 2 points set aside: 1 lie before 2017-01-01 "
        "(epoch seconds where milliseconds are expected?); 1 lie after "
    )
    assert r.json()["data"]["earliest_set_aside"] == "2016-11-21T11:18:16.961000"
    assert [p.value for p in stored(hot, site.imei)] == [2.0]


def test_the_settings_read_the_environment(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert make_settings(tmp_path).telemetry_earliest == datetime(2000, 1, 1)
    assert make_settings(tmp_path).telemetry_future_seconds == 86_400
    monkeypatch.setenv("SOLARFLEET_TELEMETRY_EARLIEST", "2010-06-01T02:00:00+02:00")
    monkeypatch.setenv("SOLARFLEET_TELEMETRY_FUTURE_SECONDS", "3600")
    settings = make_settings(tmp_path)
    assert settings.telemetry_earliest == datetime(2010, 6, 1)  # naive UTC
    assert settings.telemetry_future_seconds == 3600
