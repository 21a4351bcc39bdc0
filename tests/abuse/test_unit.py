"""Hostile unit reports and oversized values against a real server (issue 9 items 1 and 12).

A unit's device key is in a box anyone can open: its report (``POST /v1/rc_data``) is bounded
(at most 1000 values and part keys: 400 naming the limit), so 20,000 unknown ids no longer hold
the write lock for minutes; an 8 MB value is echoed in a few dozen characters."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx

from tests.factories import Factory
from tests.faults.services import Server
from tests.parameters.conftest import unit_auth


def unknown(n: int) -> dict[str, Any]:
    return {"product_parameters": [{"parameter_type_id": 10**6 + i, "value": i} for i in range(n)]}


def report_while_another_uploads(
    served: Server, factory: Factory, body: dict[str, Any]
) -> tuple[httpx.Response, float, httpx.Response, float]:
    """The report from one unit, and meanwhile an upload from another: answers and seconds."""
    attacker, other = factory.product(), factory.product()
    out: dict[str, Any] = {}

    def attack() -> None:
        started = time.monotonic()
        with httpx.Client(base_url=served.url, timeout=120) as http:
            out["report"] = http.post("/v1/rc_data", json=body, headers=unit_auth(attacker))
        out["report_s"] = time.monotonic() - started

    thread = threading.Thread(target=attack)
    thread.start()
    time.sleep(0.05)
    started = time.monotonic()
    with httpx.Client(base_url=served.url, timeout=120) as http:
        upload = http.post(
            "/v1/rm_data",
            json={"fields": {"battery_voltage": [[1732435200000, 12.6]]}},
            headers=unit_auth(other),
        )
    upload_s = time.monotonic() - started
    thread.join()
    return out["report"], out["report_s"], upload, upload_s


def test_a_20000_id_report_is_refused_at_once_and_blocks_no_one(
    served: Server, factory: Factory
) -> None:
    body = unknown(20_000)  # ~950 KB; before: 162 s holding SQLite's write lock
    report, report_s, upload, upload_s = report_while_another_uploads(served, factory, body)
    assert report.status_code == 400
    assert report.json()["message"] == (
        "Too many values in one report: 20000 values and part keys; at most 1000 "
        "(max_report_values)"
    )
    assert report_s < 5
    assert upload.status_code == 200, upload.text
    assert upload_s < 5


def test_a_report_at_the_limit_is_quick_and_blocks_no_one(served: Server, factory: Factory) -> None:
    report, report_s, upload, upload_s = report_while_another_uploads(
        served, factory, unknown(1000)
    )
    assert report.status_code == 200, report.text
    assert report.json()["data"]["notes"] == 1000
    assert report_s < 10  # ~0.3 s; two statements per note took ~3 s per 1,000 before
    assert upload.status_code == 200, upload.text
    assert upload_s < 10


def test_an_8_mb_bad_value_gets_a_short_error(served: Server, factory: Factory) -> None:
    ptype = factory.parameter_type("int", name="max_load")
    unit = factory.product(
        product_type=factory.product_type(parameter_types=[ptype.parameter_type_id])
    )
    value = "x" * (8 * 1024 * 1024)
    with httpx.Client(base_url=served.url, timeout=60) as http:
        r = http.post(
            f"/v1/products/{unit.product_imei}/parameters",
            json={"parameter_type_id": ptype.parameter_type_id, "value": value},
            headers=factory.headers("ADMIN"),
        )
    assert r.status_code == 400
    assert len(r.content) < 300  # before: 12 MB
    assert r.json()["message"] == (
        f"Invalid value for max_load (int): expected an integer, got '{'x' * 80}'… "
        f"({len(value)} characters)"
    )
