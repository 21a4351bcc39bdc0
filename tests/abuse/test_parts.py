"""Issue 9, items 7 and 8, against a real server: an ENTITY user probing parts and unique values
of other entities gets the answers it would get for things that do not exist, and reads nothing
of a part's time on another entity's unit."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest

from solarfleet.db import utcnow
from solarfleet.fleet.models import Part, PartProductLinker, Product
from tests.factories import Factory
from tests.faults.services import Server

Headers = dict[str, str]
SLOW = 5.0  # seconds: loose, for a shared machine


@dataclass
class Fleet:
    theirs: Product  # entity 3's unit
    mine: Product  # entity 2's unit
    on_theirs: Part  # on entity 3's unit
    left_theirs: Part  # taken off entity 3's unit, on no unit since
    moved: Part  # was on entity 3's unit, now on entity 2's
    never: Part  # never on any unit
    me: Headers  # entity 2, FACTORY (creates units and parts, attaches)


@pytest.fixture
def fleet(factory: Factory) -> Fleet:
    e3, e2 = factory.entity(), factory.entity()
    theirs = factory.product(entity=e3)
    mine = factory.product(entity=e2)
    on_theirs = factory.part(on=theirs)
    left_theirs, moved, never = factory.part(), factory.part(), factory.part()
    ptype = factory.parameter_type()
    then = utcnow() - timedelta(days=10)
    left = utcnow() - timedelta(days=5)
    for part in (left_theirs, moved):
        factory._add(
            PartProductLinker(
                part_id=part.part_id,
                product_imei=theirs.product_imei,
                date_added=then,
                date_removed=left,
            )
        )
        factory.part_parameter(
            part,
            ptype,
            value="5",
            status="removed",
            created_at=then,
            date_added=then,
            date_removed=left - timedelta(days=1),
            modified_by=f"unit:{theirs.product_imei}",
        )
    factory._add(
        PartProductLinker(part_id=moved.part_id, product_imei=mine.product_imei, date_added=left)
    )
    return Fleet(
        theirs, mine, on_theirs, left_theirs, moved, never, factory.headers("FACTORY", "ENTITY", e2)
    )


@pytest.fixture
def http(served: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=30) as client:
        yield client


def _timed(send: object) -> httpx.Response:
    started = time.monotonic()
    r: httpx.Response = send()  # type: ignore[operator]
    assert time.monotonic() - started < SLOW
    return r


def test_attaching_other_entities_parts_answers_as_a_missing_part(
    http: httpx.Client, fleet: Fleet
) -> None:
    url = f"/v1/products/{fleet.mine.product_imei}/parts"
    answers = {}
    for part_id in (
        fleet.on_theirs.part_id,
        fleet.left_theirs.part_id,
        fleet.never.part_id,
        2**31 - 1,  # no such part
    ):
        r = _timed(lambda p=part_id: http.post(url, json={"part_id": p}, headers=fleet.me))
        answers[part_id] = (r.status_code, r.json())
    assert answers == {
        p: (400, {"status": "error", "message": f"Invalid part_id: no part {p}"}) for p in answers
    }
    # nor can they be seen, changed or given values
    for part in (fleet.on_theirs, fleet.left_theirs, fleet.never):
        assert http.get(f"/v1/parts/{part.part_id}", headers=fleet.me).status_code == 404
        body = {"parameter_type_id": 1, "value": 1}
        r = http.post(f"/v1/parts/{part.part_id}/parameters", json=body, headers=fleet.me)
        assert r.status_code == 404, r.text


def test_a_moved_part_shows_nothing_of_its_time_on_the_other_entity(
    http: httpx.Client, fleet: Fleet
) -> None:
    mine, theirs = fleet.mine.product_imei, fleet.theirs.product_imei
    q = json.dumps({"filters": [{"name": "part_id", "op": "==", "val": fleet.moved.part_id}]})
    then = (utcnow() - timedelta(days=8)).isoformat()
    texts = [
        http.get(f"/v1/products/{mine}/parameters/history", headers=fleet.me),
        http.get(f"/v1/products/{mine}/parameters/history?date={then}", headers=fleet.me),
        http.get("/v1/part_parameters", params={"q": q}, headers=fleet.me),
        http.get("/v1/part_parameters", params={"q": q, "as_of": then}, headers=fleet.me),
        http.get("/v1/part_product_linker", params={"q": q}, headers=fleet.me),
    ]
    for r in texts:
        assert r.status_code == 200, r.text
        assert theirs not in r.text, r.text
    history = texts[0].json()["data"]["part_parameters"]
    assert history == {str(fleet.moved.part_id): []}
    assert texts[2].json()["num_results"] == 0
    assert len(texts[4].json()["objects"]) == 1  # its link to my unit only


def test_a_taken_unique_value_answers_alike_in_and_out_of_scope(
    http: httpx.Client, fleet: Fleet, factory: Factory
) -> None:
    """A unique value cannot be created twice, so a 409 must tell that it is taken; it does not
    tell where: the answer for another entity's value is the answer for one's own."""
    mine, theirs = fleet.mine, fleet.theirs
    type_id = mine.product_type_id

    def product(**body: object) -> tuple[int, str]:
        r = _timed(
            lambda: http.post(
                "/v1/products", json={"product_type_id": type_id, **body}, headers=fleet.me
            )
        )
        return r.status_code, r.json()["message"]

    def part(serial: str) -> tuple[int, str]:
        body = {"serial_number": serial, "part_type_id": fleet.never.part_type_id}
        r = _timed(lambda: http.post("/v1/parts", json=body, headers=fleet.me))
        return r.status_code, r.json()["message"]

    def same(a: tuple[int, str], b: tuple[int, str], value_a: str, value_b: str) -> None:
        assert a[0] == b[0] == 409
        assert a[1].replace(value_a, "V") == b[1].replace(value_b, "V")

    same(
        product(product_imei=theirs.product_imei),
        product(product_imei=mine.product_imei),
        theirs.product_imei,
        mine.product_imei,
    )
    same(
        product(product_imei="359999999999999", serial_number=theirs.serial_number),
        product(product_imei="359999999999998", serial_number=mine.serial_number),
        theirs.serial_number,
        mine.serial_number,
    )
    same(
        part(fleet.on_theirs.serial_number),
        part(fleet.moved.serial_number),
        fleet.on_theirs.serial_number,
        fleet.moved.serial_number,
    )
    # and a unit of mine cannot be given another entity's serial number quietly either
    r = http.put(
        f"/v1/products/{mine.product_imei}",
        json={"serial_number": theirs.serial_number},
        headers=fleet.me,
    )
    assert r.status_code == 409
    assert r.json()["message"].replace(theirs.serial_number, "V") == product(
        product_imei="359999999999997", serial_number=mine.serial_number
    )[1].replace(mine.serial_number, "V")
