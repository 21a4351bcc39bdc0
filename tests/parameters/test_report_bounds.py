"""A unit's report costs bounded work whatever it holds (issue 9 item 1): at most
``max_report_values`` values, a fixed number of statements, at most ``max_notes_per_unit`` notes
kept per unit."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import event, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from solarfleet.parameters.models import UnitReportNote
from tests.factories import Factory
from tests.parameters.conftest import Fleet, counts, report, set_unit, unit_auth

LIMIT = 1000  # settings.max_report_values' default, what the test app runs with


def unknown(n: int, first: int = 500_000) -> list[dict[str, Any]]:
    return [{"parameter_type_id": first + i, "value": i} for i in range(n)]


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements run meanwhile (an executemany counts once)."""
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        seen.append(sql)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def note_values(sessions: sessionmaker[Session]) -> list[str | None]:
    with sessions() as session:
        stmt = select(UnitReportNote.value).order_by(UnitReportNote.unit_report_note_id)
        return list(session.scalars(stmt))


def test_a_report_beyond_the_limit_is_400_naming_it_and_writes_nothing(
    client: TestClient, fleet: Fleet, sessions: sessionmaker[Session]
) -> None:
    set_unit(client, fleet, 6)
    level = fleet.level.parameter_type_id
    body = {
        "product_parameters": [{"parameter_type_id": level, "value": 6}, *unknown(LIMIT - 2)],
        "part_parameters": {str(fleet.part.part_id): unknown(1)},
    }
    before = counts(sessions)
    r = client.post("/v1/rc_data", json=body, headers=fleet.device)
    assert r.status_code == 400, r.text
    assert r.json() == {
        "status": "error",
        "message": f"Too many values in one report: {LIMIT + 1} values and part keys; "
        f"at most {LIMIT} (max_report_values)",
    }
    assert counts(sessions) == before  # not even the matching value was applied
    body["product_parameters"].pop()  # at the limit: accepted
    assert report(client, fleet, **body)["activated"] == 1


def test_part_keys_count_towards_the_limit(client: TestClient, fleet: Fleet) -> None:
    body = {"part_parameters": {str(900_000 + i): [] for i in range(LIMIT + 1)}}
    r = client.post("/v1/rc_data", json=body, headers=fleet.device)
    assert r.status_code == 400 and "at most 1000" in r.json()["message"], r.text


def test_a_report_runs_a_fixed_number_of_statements_whatever_its_size(
    client: TestClient, fleet: Fleet, engine: Engine, sessions: sessionmaker[Session]
) -> None:
    """Unknown types, unknown parts, parts elsewhere: read once per report, not once per value
    (before: two statements per note, 162 s for 20,000 unknown ids)."""
    spare = str(fleet.spare.part_id)

    def body(n: int, first: int) -> dict[str, Any]:
        return {
            "product_parameters": unknown(n, 500_000 + first),
            "part_parameters": {
                spare: unknown(n, 500_000 + first),
                **{str(800_000 + first + i): unknown(1, 500_000 + first) for i in range(n)},
            },
        }

    with statements(engine) as few:
        assert report(client, fleet, **body(3, 0))["notes"] == 9
    started = time.monotonic()
    with statements(engine) as many:
        assert report(client, fleet, **body(249, 1000))["notes"] == 747  # 997 entries
    assert time.monotonic() - started < 10  # ~0.3 s; 3 s per 1,000 notes before
    assert len(many) == len(few) <= 20, many
    assert len(note_values(sessions)) == 756


def test_a_unit_keeps_its_newest_notes_only(
    app: FastAPI,
    client: TestClient,
    factory: Factory,
    fleet: Fleet,
    sessions: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(app.state.settings, "max_notes_per_unit", 5)
    other = factory.product("111010101010102")
    r = client.post(
        "/v1/rc_data", json={"product_parameters": unknown(4)}, headers=unit_auth(other)
    )
    assert r.status_code == 200 and r.json()["data"]["notes"] == 4, r.text
    level = fleet.level.parameter_type_id
    for values in ([1, 2, 3], [4, 5, 6], list(range(7, 20))):
        sent = [{"parameter_type_id": level, "value": v} for v in values]
        assert report(client, fleet, product_parameters=sent)["notes"] == min(len(values), 5)
    with sessions() as session:
        kept = session.execute(
            select(UnitReportNote.product_imei, UnitReportNote.value).order_by(
                UnitReportNote.unit_report_note_id
            )
        ).all()
    mine = [v for imei, v in kept if imei == fleet.imei]
    assert mine == ["15", "16", "17", "18", "19"]
    assert [v for imei, v in kept if imei == other.product_imei] == ["0", "1", "2", "3"]


def test_repeated_notes_are_kept_once(
    client: TestClient, fleet: Fleet, sessions: sessionmaker[Session]
) -> None:
    """A note equal to the latest of its (part, type) is a replay: not kept again, within one
    report or across reports."""
    level = fleet.level.parameter_type_id
    same = [{"parameter_type_id": level, "value": 5}] * 3 + unknown(2) * 2
    assert report(client, fleet, product_parameters=same)["notes"] == 3
    assert report(client, fleet, product_parameters=same)["notes"] == 0
    flip = [{"parameter_type_id": level, "value": v} for v in (5, 4, 5)]
    assert report(client, fleet, product_parameters=flip)["notes"] == 2  # 4, then 5 again
    assert note_values(sessions) == ["5", "0", "1", "4", "5"]


def test_a_repeated_note_is_kept_again_once_a_value_is_pending(
    client: TestClient, fleet: Fleet, sessions: sessionmaker[Session]
) -> None:
    """A unit reporting the value it already reported (noted) after a new value was set rejects
    that value: noted once more (a rollout counts it as failed), then a replay again."""
    level = fleet.level.parameter_type_id
    five = [{"parameter_type_id": level, "value": 5}]
    assert report(client, fleet, product_parameters=five)["notes"] == 1  # nothing pending
    assert set_unit(client, fleet, 6).status_code == 201
    assert report(client, fleet, product_parameters=five)["notes"] == 1  # rejects 6
    assert report(client, fleet, product_parameters=five)["notes"] == 0  # a replay
    assert note_values(sessions) == ["5", "5"]
