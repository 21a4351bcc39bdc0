"""The HotStore contract, on the embedded store and on a real InfluxDB 1.x alike."""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from pathlib import Path

import pytest

from solarfleet.errors import BadRequest, ServiceUnavailable
from solarfleet.telemetry.embedded import EmbeddedHotStore
from solarfleet.telemetry.hot import HotStore
from solarfleet.telemetry.influx import LINES_PER_REQUEST, InfluxHotStore, to_lines
from solarfleet.telemetry.points import US_PER_DAY, Point, Value, day_of, to_us
from tests.telemetry.conftest import INFLUX_URL, NO_INFLUX, closed_port

IMEI = "356000000000001"
OTHER = "356000000000002"
T0 = to_us(datetime(2026, 11, 20, 10, 30, 15, 123456))  # microseconds on purpose
EVERYTHING = (0, to_us(datetime(2200, 1, 1)))


def pt(
    field: str = "voltage",
    time_us: int = T0,
    value: Value = 12.5,
    *,
    imei: str = IMEI,
    measurement: str = "telemetry",
    tags: dict[str, str] | None = None,
) -> Point:
    return Point(imei, measurement, tuple(sorted((tags or {}).items())), field, time_us, value)


def everything(store: HotStore, imei: str = IMEI, **kw: object) -> list[Point]:
    return store.read(imei, *EVERYTHING, **kw)  # type: ignore[arg-type]


def test_write_then_read_returns_the_points_in_time_order(store: HotStore) -> None:
    points = [pt(time_us=T0 + 3), pt(time_us=T0 + 1), pt("current", T0 + 2, 1.25), pt(time_us=T0)]
    assert store.write(points) == 4
    got = everything(store)
    assert got == sorted(points, key=lambda p: (p.time_us, p.field))
    assert [p.time_us for p in got] == sorted(p.time_us for p in got)


def test_the_same_identity_overwrites(store: HotStore) -> None:
    store.write([pt(value=1.0), pt("current", value=2.0)])
    assert store.write([pt(value=3.5)]) == 1
    assert {p.field: p.value for p in everything(store)} == {"voltage": 3.5, "current": 2.0}
    assert sum(store.counts_by_day(IMEI, *EVERYTHING).values()) == 2


def test_a_batch_holding_one_identity_twice_keeps_the_last(store: HotStore) -> None:
    assert store.write([pt(value=1.0), pt(value=2.0), pt(value=3.0)]) == 1
    assert [p.value for p in everything(store)] == [3.0]


def test_tags_measurement_and_field_are_part_of_the_identity(store: HotStore) -> None:
    points = [
        pt(),
        pt(tags={"source": "bms"}),
        pt(tags={"source": "inverter"}),
        pt(measurement="status", value=1.0),
        pt("current"),
        pt(imei=OTHER),
    ]
    assert store.write(points) == 6
    assert len(everything(store)) == 5
    assert everything(store, OTHER) == [pt(imei=OTHER)]


def test_read_window_is_start_inclusive_end_exclusive(store: HotStore) -> None:
    store.write([pt(time_us=T0 + i) for i in range(5)])
    assert [p.time_us for p in store.read(IMEI, T0 + 1, T0 + 3)] == [T0 + 1, T0 + 2]
    assert store.read(IMEI, T0 + 5, T0 + 10) == []
    assert store.read(IMEI, T0 + 3, T0 + 3) == []


def test_read_selects_measurement_and_fields(store: HotStore) -> None:
    store.write(
        [pt("a", value=1.0), pt("b", value=2.0), pt("c", value=3.0), pt("a", measurement="x")]
    )
    assert {p.field for p in everything(store, fields=["a", "c"])} == {"a", "c"}
    assert {p.measurement for p in everything(store, fields=["a"])} == {"telemetry", "x"}
    assert [p.field for p in everything(store, measurement="x")] == ["a"]
    assert everything(store, measurement="telemetry", fields=["nope"]) == []
    assert everything(store, measurement="nothing") == []
    assert everything(store, fields=[]) == []


def test_value_kinds_round_trip(store: HotStore) -> None:
    values: dict[str, Value] = {
        "f_whole": 12.0,
        "f_big": 1e16,
        "f_tiny": 5e-324,
        "f_neg": -273.15,
        "i_big": 2**62 + 1,
        "i_neg": -(2**63),
        "b_true": True,
        "b_false": False,
        "s_plain": "eco",
        "s_odd": 'he said "hi" \\ back, a=b\nnext line ünïcødé 🌞',
        "s_empty": "",
        "s_number": "42",
    }
    store.write([pt(name, value=value) for name, value in values.items()])
    got = {p.field: p.value for p in everything(store)}
    assert got == values
    for name, value in values.items():
        assert type(got[name]) is type(value), name


def test_kinds_are_free_across_writes_one_per_field_within_one(store: HotStore) -> None:
    """The stores keep any kind a reading has (one unit's choice never binds another: the
    API's rule is one kind per unit series); one write still gives a field one kind."""
    store.write([pt("level", value=1.0)])
    store.write([pt("level", T0, "text", imei=OTHER)])
    store.write(
        [pt("level", T0 + 1, 5, tags={"src": "x"}), pt("level", T0 + 2, True, measurement="m")]
    )
    with pytest.raises(BadRequest, match="both"):
        store.write([pt("fresh", T0, 1.0), pt("fresh", T0 + 1, True)])
    assert everything(store) == [
        pt("level", value=1.0),
        pt("level", T0 + 1, 5, tags={"src": "x"}),
        pt("level", T0 + 2, True, measurement="m"),
    ]
    assert everything(store, OTHER) == [pt("level", T0, "text", imei=OTHER)]
    assert sum(store.counts_by_day(IMEI, *EVERYTHING).values()) == 3


ODD = [
    "with space",
    "comma,here",
    "equals=sign",
    'double"quote',
    "single'quote",
    "ünïcødé ☀",
    " lead and trail ",
    "a,b=c d\"e'f",
]


@pytest.mark.parametrize("text", ODD)
def test_odd_tag_values_and_keys_round_trip(store: HotStore, text: str) -> None:
    points = [
        pt(tags={"site": text}, value=1.0),
        pt(tags={text: "v"}, value=2.0),
        pt(tags={"site": text, text: text}, value=3.0),
    ]
    assert store.write(points) == 3
    assert everything(store) == sorted(points, key=lambda p: p.tags)


@pytest.mark.parametrize("text", ODD)
def test_odd_measurements_and_field_names_round_trip(store: HotStore, text: str) -> None:
    points = [pt(text, value=1.0), pt("v", measurement=text, value=2.0)]
    store.write(points)
    assert set(everything(store)) == set(points)
    assert everything(store, measurement=text) == [points[1]]
    assert everything(store, fields=[text]) == [points[0]]


@pytest.mark.parametrize(
    "point",
    [
        pt(tags={"site": "back\\slash"}),
        pt(tags={"site": "trailing\\"}),
        pt(tags={"site": "new\nline"}),
        pt(tags={"site": ""}),
        pt(tags={"": "empty key"}),
        pt(tags={"imei": IMEI}),
        pt(tags={"time": "x"}),
        pt("time"),
        pt(""),
        pt("tab\there"),
        pt(measurement="#comment"),
        pt(measurement=""),
        pt(value=float("nan")),
        pt(value=float("inf")),
        pt(value=2**63),
        pt(imei="not-an-imei"),
        pt(time_us=2**62),
    ],
)
def test_texts_no_store_can_hold_are_refused_by_both(store: HotStore, point: Point) -> None:
    with pytest.raises(BadRequest):
        store.write([pt("fine", value=1.0), point])
    assert everything(store) == []


def test_microsecond_precision(store: HotStore) -> None:
    times = [T0, T0 + 1, T0 + 999, 1, 0, 7_000_000_000_000_001]
    store.write([pt(time_us=t, value=float(i)) for i, t in enumerate(times)])
    assert [p.time_us for p in everything(store)] == sorted(times)
    assert store.read(IMEI, T0 + 1, T0 + 2) == [pt(time_us=T0 + 1, value=1.0)]


def test_counts_by_day(store: HotStore) -> None:
    day = T0 - T0 % US_PER_DAY
    points = [
        pt(time_us=day),  # first microsecond of the day
        pt("current", day, 1.0),
        pt(time_us=day + US_PER_DAY - 1),  # last microsecond
        pt(time_us=day + US_PER_DAY),  # next day
        pt(time_us=day + 3 * US_PER_DAY + 5, tags={"source": "bms"}),
        pt(time_us=day + 3 * US_PER_DAY + 5, measurement="status", value=1.0),
        pt(time_us=day, imei=OTHER),
    ]
    store.write(points)
    first = day_of(day)
    assert store.counts_by_day(IMEI, *EVERYTHING) == {first: 3, first + 1: 1, first + 3: 2}
    assert store.counts_by_day(IMEI, day + 1, day + US_PER_DAY + 1) == {first: 1, first + 1: 1}
    assert store.counts_by_day(OTHER, *EVERYTHING) == {first: 1}
    assert store.counts_by_day("999", *EVERYTHING) == {}


def test_drop_deletes_the_window_of_one_unit_only(store: HotStore) -> None:
    day = T0 - T0 % US_PER_DAY
    store.write(
        [pt(time_us=day + i * US_PER_DAY) for i in range(4)]
        + [pt("x", day + US_PER_DAY, 1.0, measurement="status")]
        + [pt(time_us=day + US_PER_DAY, imei=OTHER)]
    )
    assert store.drop(IMEI, day + US_PER_DAY, day + 3 * US_PER_DAY) == 3
    assert [p.time_us for p in everything(store)] == [day, day + 3 * US_PER_DAY]
    assert len(everything(store, OTHER)) == 1
    assert store.drop(IMEI, day + US_PER_DAY, day + 3 * US_PER_DAY) == 0


def test_empty_writes_and_unknown_units(store: HotStore) -> None:
    assert store.write([]) == 0
    assert everything(store, "123") == []
    assert store.counts_by_day("123", *EVERYTHING) == {}
    assert store.drop("123", *EVERYTHING) == 0


def test_large_batches_are_written_whole(store: HotStore) -> None:
    n = LINES_PER_REQUEST * 2 + 17
    points = [pt(time_us=T0 + i * 1000, value=float(i)) for i in range(n)]
    assert store.write(points) == n
    assert everything(store) == points
    assert sum(store.counts_by_day(IMEI, *EVERYTHING).values()) == n


def test_concurrent_writers_and_readers(store: HotStore) -> None:
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for j in range(10):
                store.write([pt(f"f{k}", T0 + j, float(j))])
                store.read(IMEI, *EVERYTHING)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(everything(store)) == 80


# -- per implementation ------------------------------------------------------------------------


def test_embedded_store_is_durable_across_instances(tmp_path: Path) -> None:
    path = tmp_path / "hot.sqlite"
    first = EmbeddedHotStore(path)
    first.write([pt(value=1.5)])
    first.close()
    second = EmbeddedHotStore(path)
    assert everything(second) == [pt(value=1.5)]
    second.close()
    with pytest.raises(ServiceUnavailable):
        second.write([pt()])


def test_embedded_store_creates_nothing_until_used(tmp_path: Path) -> None:
    store = EmbeddedHotStore(tmp_path / "deep" / "hot.sqlite")
    assert not (tmp_path / "deep").exists()
    assert store.read(IMEI, *EVERYTHING) == []
    assert (tmp_path / "deep" / "hot.sqlite").exists()
    store.close()


def test_line_protocol_escaping() -> None:
    point = pt('f "1"', 1_000_000, 'say "hi" \\o/', measurement="m 1,x=y", tags={"t k": "a,b=c"})
    assert to_lines([point]) == [
        f'm\\ 1\\,x=y:01,imei={IMEI},t\\ k=a\\,b\\=c f\\ "1":str="say \\"hi\\" \\\\o/" 1000000'
    ]
    assert to_lines([pt("n", 5, 7), pt("b", 5, True), pt("f", 5, 0.5)]) == [
        f"telemetry:01,imei={IMEI} n:int=7i,b:bool=true,f:float=0.5 5"
    ]


@pytest.mark.parametrize("method", ["write", "read", "counts_by_day", "drop"])
def test_influx_down_is_service_unavailable(method: str) -> None:
    store = InfluxHotStore(f"http://127.0.0.1:{closed_port()}", database="x", timeout=2)
    calls = {
        "write": lambda: store.write([pt()]),
        "read": lambda: everything(store),
        "counts_by_day": lambda: store.counts_by_day(IMEI, *EVERYTHING),
        "drop": lambda: store.drop(IMEI, *EVERYTHING),
    }
    with pytest.raises(ServiceUnavailable, match="InfluxDB is unavailable"):
        calls[method]()
    store.close()


def test_influx_credentials_stay_out_of_messages() -> None:
    store = InfluxHotStore(f"http://user:secret@127.0.0.1:{closed_port()}", timeout=2)
    with pytest.raises(ServiceUnavailable) as caught:
        store.write([pt()])
    assert "secret" not in caught.value.message
    store.close()


@pytest.mark.skipif(not INFLUX_URL, reason=NO_INFLUX)
def test_influx_database_is_created_again_when_dropped() -> None:
    store = InfluxHotStore(INFLUX_URL or "", database="solarfleet_test_recreate_x")
    try:
        store.write([pt()])
        InfluxHotStore(INFLUX_URL or "", database=store.database).drop_database()
        assert everything(store) == []
        store.write([pt(value=2.0)])
        assert everything(store) == [pt(value=2.0)]
    finally:
        store.drop_database()
        store.close()


@pytest.mark.skipif(not INFLUX_URL, reason=NO_INFLUX)
def test_influx_requests_are_not_logged_one_by_one(caplog: pytest.LogCaptureFixture) -> None:
    """A Celery worker logs at INFO: each InfluxDB request must not be a line (issue 16.6)."""
    store = InfluxHotStore(INFLUX_URL or "", database="solarfleet_test_quiet_x")
    caplog.set_level(logging.INFO)
    try:
        store.write([pt()])
        everything(store)
    finally:
        store.drop_database()
        store.close()
    assert [r.getMessage() for r in caplog.records if r.name.startswith("httpx")] == []


@pytest.mark.skipif(not INFLUX_URL, reason=NO_INFLUX)
def test_influx_readings_of_the_former_layout_are_moved() -> None:
    """Data written before the kind-in-the-key layout (one measurement, plain field keys)."""
    store = InfluxHotStore(INFLUX_URL or "", database="solarfleet_test_legacy_x")
    store.drop_database()
    old = (
        f'telemetry,imei={IMEI} v=12.0,n=7i,b=true,s="eco" {T0}\n'
        f"telemetry,imei={IMEI},src=bms v=1.5 {T0 + 1}\n"
        f"telemetry,imei={OTHER} v=3.25 {T0 + 2 * US_PER_DAY}\n"
        f'status,imei={OTHER} s="ok" {T0}'
    )
    try:
        store._write_lines(old.encode())
        assert everything(store) == []  # not read in the former layout
        assert store.upgrade_layout() == 7
        assert everything(store) == [
            pt("b", value=True),
            pt("n", value=7),
            pt("s", value="eco"),
            pt("v", value=12.0),
            pt("v", T0 + 1, 1.5, tags={"src": "bms"}),
        ]
        assert everything(store, OTHER) == [
            pt("s", value="ok", imei=OTHER, measurement="status"),
            pt("v", T0 + 2 * US_PER_DAY, 3.25, imei=OTHER),
        ]
        assert store._legacy_measurements() == []
        assert store.upgrade_layout() == 0
    finally:
        store.drop_database()
        store.close()
