"""Reads stitch the archive and the hot store: no gap, no duplicate, the hot store winning.

A second real hot store (embedded, in another folder) stands in for the archive reader."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from solarfleet.telemetry.embedded import EmbeddedHotStore
from solarfleet.telemetry.hot import HotStore
from solarfleet.telemetry.points import US_PER_DAY, Point, to_us
from solarfleet.telemetry.reads import DataQuery, read_points, shape
from solarfleet.telemetry.store import ArchiveReader
from solarfleet.telemetry.where import parse_where
from solarfleet.timeparse import format_instant
from tests.telemetry.conftest import Site, dispose, make_store

T = to_us(datetime(2026, 11, 20))
MIN = 60_000_000
WINDOW = (T - 10 * US_PER_DAY, T + 10 * US_PER_DAY)


def reader_of(store: HotStore) -> ArchiveReader:
    def read(
        imei: str,
        start_us: int,
        end_us: int,
        measurement: str | None,
        fields: Sequence[str] | None,
        *,
        limit: int | None = None,
        max_points: int | None = None,
    ) -> list[Point]:
        return store.read(
            imei, start_us, end_us, measurement=measurement, fields=fields, limit=limit,
            max_points=max_points,
        )  # fmt: skip

    return read


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[EmbeddedHotStore]:
    store = EmbeddedHotStore(tmp_path / "archive" / "points.sqlite")
    yield store
    store.close()


def p(field: str, time_us: int, value: float, imei: str = "356000000000001", **tags: str) -> Point:
    return Point(imei, "telemetry", tuple(sorted(tags.items())), field, time_us, value)


def test_union_without_duplicates_hot_wins(store: HotStore, archive: EmbeddedHotStore) -> None:
    archive.write([p("v", T, 1.0), p("v", T + MIN, 2.0), p("v", T + MIN, 2.0, source="x")])
    store.write([p("v", T + MIN, 20.0), p("v", T + 2 * MIN, 3.0)])
    got = read_points(store, reader_of(archive), "356000000000001", *WINDOW)
    assert got == [
        p("v", T, 1.0),
        p("v", T + MIN, 20.0),
        p("v", T + MIN, 2.0, source="x"),
        p("v", T + 2 * MIN, 3.0),
    ]
    assert read_points(store, None, "356000000000001", *WINDOW) == store.read(
        "356000000000001", *WINDOW
    )
    # The window and the selection reach both tiers.
    assert read_points(store, reader_of(archive), "356000000000001", T + MIN, T + 2 * MIN) == [
        p("v", T + MIN, 20.0),
        p("v", T + MIN, 2.0, source="x"),
    ]
    assert read_points(store, reader_of(archive), "356000000000001", *WINDOW, fields=["x"]) == []


def test_reads_through_the_api_stitch_both_tiers(
    app: FastAPI, client: TestClient, site: Site, hot: HotStore, archive: EmbeddedHotStore
) -> None:
    """Old days only in the archive (dropped from the hot store), a late overwrite in the hot
    store, new days only in the hot store."""
    day = US_PER_DAY
    readings = [p("v", T + i * day, float(i), site.imei) for i in range(6)]
    archive.write(readings[:4])
    hot.write(readings[2:])
    hot.drop(site.imei, 0, T + 2 * day)  # nothing to drop: days 0-1 were archived only
    hot.write([p("v", T + 3 * day, 33.0, site.imei)])  # late overwrite of an archived reading
    previous = app.state.archive_reader
    app.state.archive_reader = reader_of(archive)
    try:
        r = client.get(
            f"/v1/products/{site.imei}/data",
            params={"start": format_instant(datetime(2026, 11, 1)), "end": "2026-12-01"},
            headers=site.admin,
        )
    finally:
        app.state.archive_reader = previous
    assert r.status_code == 200, r.text
    assert [v for v, _ in r.json()["data"]["v"]] == [0.0, 1.0, 2.0, 33.0, 4.0, 5.0]


# -- property: stitched == one store holding everything ----------------------------------------

FIELDS = ("a", "b", "s")
WHERES = (None, "a > 0", "a <= 2.5 or s = 'on'", "not (b = 1)", "src = 'x'")
reading = st.tuples(
    st.sampled_from(FIELDS),
    st.integers(0, 40).map(lambda i: T + i * 7 * MIN),
    st.sampled_from(({}, {"src": "x"}, {"src": "y", "ph": "1"})),
    st.integers(-3, 3),
    st.sampled_from(("archive", "hot", "both")),
)
query = st.builds(
    DataQuery,
    start_us=st.sampled_from((WINDOW[0], T + 30 * MIN)),
    end_us=st.sampled_from((WINDOW[1], T + 3 * 60 * MIN)),
    fields=st.sampled_from((None, ("a",), ("s", "b"))),
    tags=st.sampled_from(({}, {"src": "x"})),
    where=st.sampled_from(WHERES).map(parse_where),
    limit=st.sampled_from((100_000, 3)),
    interval_us=st.sampled_from((None, 5 * MIN, 60 * MIN)),
    function=st.sampled_from((None, "mean", "sum", "count", "first", "last", "max")),
    limit_given=st.booleans(),
).filter(lambda q: q.function is not None or q.interval_us is None)


def value_of(field: str, n: int, version: int) -> float | str:
    if field == "s":
        return ("on", "off", "x")[(n + version) % 3]
    return n + version / 4


@pytest.mark.parametrize("kind", ["embedded", "influx"])
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(readings=st.lists(reading, max_size=30), queries=st.lists(query, min_size=1, max_size=3))
def test_stitched_reads_equal_one_store_holding_everything(
    tmp_path_factory: pytest.TempPathFactory,
    kind: str,
    readings: list[tuple[str, int, dict[str, str], int, str]],
    queries: list[DataQuery],
) -> None:
    folder = tmp_path_factory.mktemp("stitch")
    hot = make_store(kind, folder)
    archive = EmbeddedHotStore(folder / "archive.sqlite")
    single = EmbeddedHotStore(folder / "single.sqlite")
    try:
        imei = "356000000000009"
        archived, hot_points = [], []
        for field, time_us, tags, n, where in readings:
            old = Point(imei, "telemetry", tuple(sorted(tags.items())), field, time_us, 0.0)
            if where in ("archive", "both"):
                archived.append(_with(old, value_of(field, n, 0)))
            if where in ("hot", "both"):  # "both": a later write of the same reading
                hot_points.append(_with(old, value_of(field, n, 1)))
        archive.write(archived)
        hot.write(hot_points)
        single.write(archived)
        single.write(hot_points)  # the later writes win, as they did in the hot store
        for q in queries:
            stitched = read_points(
                hot, reader_of(archive), imei, q.start_us, q.end_us, fields=q.store_fields
            )
            alone = read_points(single, None, imei, q.start_us, q.end_us, fields=q.store_fields)
            assert stitched == alone
            assert shape(imei, stitched, q) == shape(imei, alone, q)
            # The limit taken from each tier (when it can be) answers the same.
            limited = read_points(
                hot, reader_of(archive), imei, q.start_us, q.end_us, fields=q.store_fields,
                limit=q.store_limit, max_points=200,
            )  # fmt: skip
            assert shape(imei, limited, q) == shape(imei, alone, q)
            keys = [pt.key for pt in stitched]
            assert len(keys) == len(set(keys))
    finally:
        dispose(hot)
        archive.close()
        single.close()


def _with(point: Point, value: float | str) -> Point:
    return Point(point.imei, point.measurement, point.tags, point.field, point.time_us, value)
