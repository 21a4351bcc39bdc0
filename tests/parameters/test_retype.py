"""A parameter type's data_type changes only while no value of it exists (issue 9 item 12): the
stored values are canonical texts of the old type."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from solarfleet.fleet.models import ParameterType
from solarfleet.parameters.models import ProductParameter
from tests.factories import Factory
from tests.parameters.conftest import Fleet, set_part, set_unit


def retype(client: TestClient, fleet: Fleet, system: dict[str, str], data_type: str) -> Any:
    url = f"/v1/parameter_types/{fleet.level.parameter_type_id}"
    return client.put(url, json={"data_type": data_type}, headers=system)


def stored_type(sessions: sessionmaker[Session], fleet: Fleet) -> str:
    with sessions() as session:
        return session.get_one(ParameterType, fleet.level.parameter_type_id).data_type


def test_a_type_without_values_may_change_its_data_type(
    client: TestClient, fleet: Fleet, system: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    r = client.put(
        f"/v1/parameter_types/{fleet.level.parameter_type_id}",
        json={"data_type": "string", "validation_rules": None},
        headers=system,
    )
    assert r.status_code == 200, r.text
    assert stored_type(sessions, fleet) == "string"


@pytest.mark.parametrize("on", ["unit", "part"])
@pytest.mark.parametrize("status", ["pending", "expired"])
def test_a_type_with_values_keeps_its_data_type(
    client: TestClient,
    fleet: Fleet,
    system: dict[str, str],
    sessions: sessionmaker[Session],
    on: str,
    status: str,
) -> None:
    setter = set_unit if on == "unit" else set_part
    assert setter(client, fleet, 5).status_code == 201
    if status == "expired":
        assert setter(client, fleet, 6).status_code == 201
    r = retype(client, fleet, system, "float")
    assert r.status_code == 409, r.text
    type_id = fleet.level.parameter_type_id
    assert r.json() == {
        "status": "error",
        "message": f"Cannot change data_type of parameter type {type_id} (charge_level) from "
        f"'int' to 'float': values of it exist on {on}s; create a new parameter type instead",
    }
    assert stored_type(sessions, fleet) == "int"
    # the same data_type again, or another field, is no change of data_type
    assert retype(client, fleet, system, "int").status_code == 200
    url = f"/v1/parameter_types/{type_id}"
    r = client.put(url, json={"description": "percent"}, headers=system)
    assert r.status_code == 200, r.text


def race_once(app: FastAPI, factory: Factory, system: dict[str, str], n: int) -> tuple[int, Any]:
    """Four sets of 7 on four units and one change of the type to bool, released together."""
    ptype = factory.parameter_type("int", name=f"level {n}")
    kind = factory.product_type(parameter_types=[ptype.parameter_type_id])
    units = [factory.product(product_type=kind) for _ in range(4)]
    barrier = threading.Barrier(len(units) + 1)
    answers: list[int] = []

    def set_value(imei: str) -> None:
        client = TestClient(app)
        barrier.wait()
        body = {"parameter_type_id": ptype.parameter_type_id, "value": 7}
        r = client.post(f"/v1/products/{imei}/parameters", json=body, headers=system)
        answers.append(r.status_code)

    def change() -> None:
        client = TestClient(app)
        barrier.wait()
        url = f"/v1/parameter_types/{ptype.parameter_type_id}"
        r = client.put(url, json={"data_type": "bool"}, headers=system)
        answers.append(r.status_code)

    threads = [threading.Thread(target=set_value, args=(u.product_imei,)) for u in units]
    threads.append(threading.Thread(target=change))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return ptype.parameter_type_id, answers


def test_a_retype_racing_sets_never_leaves_values_of_the_old_type(
    app: FastAPI, factory: Factory, sessions: sessionmaker[Session]
) -> None:
    """Sets and a change of data_type at once: either the change is refused (409), or it won
    and every set after it was checked against the new type (PostgreSQL: the set locks the
    type FOR SHARE, the change FOR UPDATE)."""
    system = factory.headers("SYSTEM")
    for n in range(8):
        type_id, answers = race_once(app, factory, system, n)
        assert set(answers) <= {200, 201, 400, 409}, answers
        with sessions() as session:
            now = session.get_one(ParameterType, type_id).data_type
            values = list(
                session.scalars(
                    select(ProductParameter.value).where(
                        ProductParameter.parameter_type_id == type_id
                    )
                )
            )
        if now == "bool":
            assert values == [], (answers, values)  # 7 is no bool: every later set was a 400
            assert sorted(answers) == [200, 400, 400, 400, 400]
        else:
            assert values == ["7"] * 4 and sorted(answers) == [201] * 4 + [409], answers
