"""Issue 9 items 3 and 10 (telemetry) against a real server: a read of a window holding more
readings than SOLARFLEET_TELEMETRY_MAX_POINTS answers a 400 naming the limit, quickly and without
the server's memory growing with the window; a limit over that window is answered from the
stores; a lone surrogate and a deeply nested ``tags`` are 400s naming them."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from solarfleet.telemetry.dirty import read_mark
from tests.abuse.conftest import Serve
from tests.factories import Factory
from tests.faults.services import Server

CEILING = 2_000
MS = 1_764_547_200_000  # 2025-12-01T00:00:00Z
WIDE = {"start": "2025-01-01", "end": "2027-01-01"}


def peak_rss_mib(server: Server) -> float:
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmHWM"))
    return int(line.split()[1]) / 1024


@pytest.fixture(scope="module")
def small(serve: Serve) -> Server:
    return serve(SOLARFLEET_TELEMETRY_MAX_POINTS=str(CEILING))


def test_a_wide_read_answers_within_bounds(small: Server, factory: Factory) -> None:
    unit = factory.product()
    imei = unit.product_imei
    admin = factory.headers("ADMIN")
    with httpx.Client(base_url=small.url, headers=admin, timeout=60) as http:
        for part in range(3):  # 3 x 2 fields x 2,000: six times the ceiling
            body = {"fields": {f: [[MS + (part * 2000 + i) * 1000, float(i)] for i in range(2000)]
                               for f in ("a", "b")}}  # fmt: skip
            r = http.post(f"/v1/products/{imei}/data", json=body)
            assert r.status_code == 200, r.text
        before = peak_rss_mib(small)
        started = time.perf_counter()
        wide = http.get(f"/v1/products/{imei}/data", params=WIDE)
        took = time.perf_counter() - started
        assert wide.status_code == 400, wide.text
        assert wide.json()["message"].startswith(
            f"Too many readings: the window holds more than {CEILING} (the most a read takes, "
            "SOLARFLEET_TELEMETRY_MAX_POINTS)"
        )
        assert took < 10
        for params in ({"ds_interval": "1h"}, {"where": "a > 1"}, {"fields": "a"}):
            assert (
                http.get(f"/v1/products/{imei}/data", params={**WIDE, **params}).status_code == 400
            )
        # A limit is taken from the store, whatever the window holds.
        first = http.get(f"/v1/products/{imei}/data", params={**WIDE, "limit": "1"})
        assert first.status_code == 200, first.text
        assert first.json()["data"] == {
            "measurement": "telemetry",
            "tags": {"imei": imei},
            "a": [[0.0, "2025-12-01T00:00:00.000000"]],
            "b": [[0.0, "2025-12-01T00:00:00.000000"]],
        }
        # A window within the ceiling answers as always.
        narrow = http.get(
            f"/v1/products/{imei}/data",
            params={"start": "2025-12-01T00:00:00", "end": "2025-12-01T00:08:19", "fields": "a"},
        )
        assert narrow.status_code == 200, narrow.text
        assert len(narrow.json()["data"]["a"]) == 500
        assert peak_rss_mib(small) - before < 100


def test_bad_telemetry_texts_are_400s_naming_them(small: Server, factory: Factory) -> None:
    unit = factory.product()
    imei = unit.product_imei
    admin = {**factory.headers("ADMIN"), "Content-Type": "application/json"}
    with httpx.Client(base_url=small.url, headers=admin, timeout=60) as http:
        for body, named in (
            ({"fields": {"s": [[MS, "x\ud800"]]}}, "s[0]: the string contains a lone surrogate"),
            ({"tags": {"k": "\udfff"}, "fields": {"s": [[MS, 1]]}}, "tag 'k': a lone surrogate"),
        ):
            r = http.post(f"/v1/products/{imei}/data", content=json.dumps(body))
            assert r.status_code == 400, r.text
            assert named in r.json()["message"]
        deep = '{"k": ' + "[" * 3000 + "]" * 3000 + "}"
        r = http.get(f"/v1/products/{imei}/data", params={"tags": deep})
        assert r.status_code == 400, r.text
        assert r.json()["message"] == (
            "Invalid tags: nested deeper than 1 level (a flat object of strings)"
        )
    with factory.sessions() as session:
        assert read_mark(session=session, imei=imei) is None  # nothing was written
