"""``?as_of=T`` on the product_parameters and part_parameters lists, together with ``q``:
"which units ran parameter X = Y at T" across the fleet."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from solarfleet.db import utcnow
from solarfleet.fleet.models import Entity, PartProductLinker
from solarfleet.timeparse import format_instant
from tests.factories import Factory
from tests.parameters.conftest import Fleet, report, set_part, set_unit

T0 = datetime(2026, 11, 1, 8, 0, 0)
T1 = T0 + timedelta(days=1)
T2 = T0 + timedelta(days=2)
US = timedelta(microseconds=1)


def fleet(factory: Factory, b_entity: Entity | None = None) -> dict[str, str]:
    """Unit A ran 5 from T1 to T2, then 6; unit B has run 5 since T0."""
    ptype = factory.parameter_type("int")
    a = factory.product("100000000000001")
    b = factory.product("100000000000002", entity=b_entity)
    factory.product_parameter(a, ptype, value="5", status="removed", date_added=T1, date_removed=T2)
    factory.product_parameter(a, ptype, value="6", status="active", date_added=T2)
    factory.product_parameter(
        a, ptype, value="7", status="expired", date_added=T1 + US, date_removed=T1 + 2 * US
    )
    factory.product_parameter(a, ptype, value="8", status="pending")
    factory.product_parameter(b, ptype, value="5", status="active", date_added=T0)
    return {"a": a.product_imei, "b": b.product_imei}


def ran(client: TestClient, headers: dict[str, str], at: datetime, **q: object) -> list[tuple]:
    params = {"as_of": at.isoformat(), "q": json.dumps(q)}
    r = client.get("/v1/product_parameters", params=params, headers=headers)
    assert r.status_code == 200, r.text
    return sorted(
        (o["product_imei"], o["value"], o["status"], o["date_removed"]) for o in r.json()["objects"]
    )


def test_as_of_gives_the_rows_in_force_as_they_were(
    client: TestClient, factory: Factory, system: dict[str, str]
) -> None:
    units = fleet(factory)
    a, b = units["a"], units["b"]
    assert ran(client, system, T0 - US) == []
    assert ran(client, system, T0) == [(b, "5", "active", None)]
    assert ran(client, system, T1 + US) == [(a, "5", "active", None), (b, "5", "active", None)]
    assert ran(client, system, T2 - US) == [(a, "5", "active", None), (b, "5", "active", None)]
    assert ran(client, system, T2) == [(a, "6", "active", None), (b, "5", "active", None)]


def test_as_of_combines_with_q(
    client: TestClient, factory: Factory, system: dict[str, str]
) -> None:
    units = fleet(factory)
    five = {"filters": [{"name": "value", "op": "==", "val": "5"}]}
    assert [r[0] for r in ran(client, system, T1 + US, **five)] == [units["a"], units["b"]]
    assert [r[0] for r in ran(client, system, T2, **five)] == [units["b"]]


def test_as_of_respects_scope(client: TestClient, factory: Factory) -> None:
    factory.entity("Unknown entity", entity_id=1)
    mine = factory.entity("Mine", entity_id=2)
    units = fleet(factory, b_entity=mine)
    headers = factory.headers("OVERVIEW", "ENTITY", mine)
    assert ran(client, headers, T1 + US) == [(units["b"], "5", "active", None)]


def test_as_of_on_a_table_without_history_is_400(
    client: TestClient, system: dict[str, str]
) -> None:
    r = client.get("/v1/entities", params={"as_of": "2026-01-01"}, headers=system)
    assert r.status_code == 400
    assert r.json() == {
        "status": "error",
        "message": "entities has no history: as_of does not apply",
    }


def test_unparseable_as_of_is_400(client: TestClient, system: dict[str, str]) -> None:
    r = client.get("/v1/part_parameters", params={"as_of": "last tuesday"}, headers=system)
    assert r.status_code == 400
    assert r.json()["message"].startswith("Invalid as_of 'last tuesday'")


def test_as_of_beyond_the_calendar_in_utc_is_400(
    client: TestClient, system: dict[str, str]
) -> None:
    """Found by the fuzzer: an instant whose zone moves it before year 1 or after 9999 in UTC
    was a 500 (OverflowError), here and wherever instants are parsed."""
    for at in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"):
        r = client.get("/v1/product_parameters", params={"as_of": at}, headers=system)
        assert r.status_code == 400, r.text
        assert r.json()["message"].startswith(f"Invalid as_of {at!r}")
        q = json.dumps({"filters": [{"name": "date_added", "op": "<", "val": at}]})
        r = client.get("/v1/product_parameters", params={"q": q}, headers=system)
        assert r.status_code == 400, r.text


def test_part_parameters_as_of(
    client: TestClient, factory: Factory, system: dict[str, str]
) -> None:
    """The values in force at T on parts that were on a unit at T: a part on no unit then ran
    nothing on any unit, as no unit's ``?date=T`` answer lists it."""
    ptype = factory.parameter_type("int")
    unit = factory.product()
    part, loose = factory.part(), factory.part()
    factory._add(
        PartProductLinker(part_id=part.part_id, product_imei=unit.product_imei, date_added=T0)
    )
    for p in (part, loose):
        factory.part_parameter(
            p, ptype, value="1", status="removed", date_added=T0, date_removed=T1
        )
        factory.part_parameter(p, ptype, value="2", status="active", date_added=T1)
    r = client.get("/v1/part_parameters", params={"as_of": T0.isoformat()}, headers=system)
    got = [(o["part_id"], o["value"], o["status"]) for o in r.json()["objects"]]
    assert got == [(part.part_id, "1", "active")]


def test_as_of_filters_the_rows_as_they_were(
    client: TestClient, fleet: Fleet, factory: Factory
) -> None:
    """Issue 14: 61 confirmed, T, 62 confirmed. At T the 61 row was active with no removal and
    last changed by the unit when it confirmed 61: filters and the answer say so, on the unit's
    rows and on a part's."""
    level = fleet.level.parameter_type_id
    part = str(fleet.part.part_id)
    for value in (61, 62):
        set_unit(client, fleet, value)
        set_part(client, fleet, value)
        report(
            client,
            fleet,
            product_parameters=[{"parameter_type_id": level, "value": value}],
            part_parameters={part: [{"parameter_type_id": level, "value": value}]},
        )
        if value == 61:
            at = format_instant(utcnow())
    date = client.get(
        f"/v1/products/{fleet.imei}/parameters/history", params={"date": at}, headers=fleet.admin
    ).json()["data"]
    (unit_row,) = date["product_parameters"]
    (part_row,) = date["part_parameters"][part]
    for row in (unit_row, part_row):
        assert (row["value"], row["status"], row["date_removed"]) == ("61", "active", None)
        assert (row["modified_at"], row["modified_by"]) == (row["date_added"], f"unit:{fleet.imei}")
    for resource, key, row in (
        ("product_parameters", "product_imei", unit_row),
        ("part_parameters", "part_id", part_row),
    ):
        mine = {"name": key, "op": "==", "val": row[key]}

        def listed(
            *filters: dict[str, Any], resource: str = resource, mine: dict[str, Any] = mine
        ) -> list[dict[str, Any]]:
            q = {"filters": [mine, *filters]}
            r = client.get(
                f"/v1/{resource}",
                params={"as_of": at, "q": json.dumps(q)},
                headers=fleet.admin,
            )
            assert r.status_code == 200, r.text
            assert r.json()["num_results"] == len(r.json()["objects"])
            return r.json()["objects"]  # type: ignore[no-any-return]

        assert listed() == [row]
        assert listed({"name": "status", "op": "==", "val": "active"}) == [row]
        assert listed({"name": "status", "op": "==", "val": "removed"}) == []
        assert listed({"name": "date_removed", "op": "is_null"}) == [row]
        assert listed({"name": "date_removed", "op": "is_not_null"}) == []
        assert listed({"name": "modified_at", "op": "<=", "val": at}) == [row]
        assert listed({"name": "modified_by", "op": "==", "val": f"unit:{fleet.imei}"}) == [row]
    # today the 61 rows are removed, changed after T: what the as-of rows are not
    q = json.dumps({"filters": [{"name": "value", "op": "==", "val": "61"}]})
    for resource in ("product_parameters", "part_parameters"):
        (today,) = client.get(f"/v1/{resource}", params={"q": q}, headers=fleet.admin).json()[
            "objects"
        ]
        assert today["status"] == "removed" and today["modified_at"] > at


def test_as_of_with_group_by_single_and_relations(
    client: TestClient, factory: Factory, system: dict[str, str]
) -> None:
    """The as-of view is queried as the table: group_by, single and relation filters work on it."""
    units = fleet(factory)

    def get(**q: object) -> Any:
        params = {"as_of": (T1 + US).isoformat(), "q": json.dumps(q)}
        r = client.get("/v1/product_parameters", params=params, headers=system)
        assert r.status_code == 200, r.text
        return r.json()

    grouped = get(group_by=[{"field": "value"}])
    assert [(o["product_imei"], o["value"]) for o in grouped["objects"]] == [(units["a"], "5")]
    one = get(single=True, filters=[{"name": "product_imei", "op": "==", "val": units["b"]}])
    assert (one["value"], one["status"]) == ("5", "active")
    through = get(
        filters=[{"name": "product__serial_number", "op": "like", "val": "%"}],
        order_by=[{"field": "product__product_imei", "direction": "desc"}],
    )
    assert [o["product_imei"] for o in through["objects"]] == [units["b"], units["a"]]
