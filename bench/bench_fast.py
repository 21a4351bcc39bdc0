"""The fixed cost of a request (issue 11, goals 1 and 2), in one run, as ratios.

* Goal 1: a page of 10 products, ``GET /v1/rc_data`` for a unit with nothing pending, and
  ``GET …/parameters/history?date=`` for a unit with 16 rows in force, each against the HTTP
  floor: an unknown path through the same server and client (a 404 that touches no database).
* Goal 2: the same SQLite file served by Flask-Restless 0.17 (Python 3.8, the original's stack,
  objects flat; built as the differential test builds it) and by solarfleet: a page of 10, and a
  filtered, ordered page of 100 with relation filters. Skipped with a message without Python 3.8.

Requests of every kind are interleaved round by round, so a noisy moment hurts all alike.

    .venv/bin/python bench/bench_fast.py [--requests 300]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from _common import free_port, machine, start_server, stop_server, wait_ready

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

IMEI = "350000000000000"  # given 16 values in force
IDLE = "350000000000001"  # nothing pending
RELATION_Q = {
    "filters": [
        {"name": "product_type__name", "op": "has", "val": "BB17 Smart"},
        {"name": "parts", "op": "any", "val": {"name": "serial_number", "op": "like",
                                               "val": "PT0000%"}},
    ],
    "order_by": [{"field": "serial_number", "direction": "desc"}],
}  # fmt: skip


def prepare(folder: Path) -> str:
    """The demo, a SYSTEM user's password; 16 values in force on IMEI."""
    bin_ = Path(sys.executable).with_name("solarfleet")
    env = {"SOLARFLEET_DATA_DIR": str(folder), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([str(bin_), "demo"], env=env, check=True, capture_output=True, text=True)
    found = re.search(r"with password (\S+)", out.stdout)
    assert found, out.stdout
    return found.group(1)


def sixteen_in_force(api: httpx.Client, headers: dict[str, str]) -> None:
    types = api.get("/v1/parameter_types", headers=headers).json()["objects"]
    ptype = api.get(f"/v1/products/{IMEI}", headers=headers).json()["product_type_id"]
    allowed = api.get(f"/v1/product_types/{ptype}", headers=headers).json()["parameter_types"]
    for i in range(16 - len(allowed)):
        made = api.post("/v1/parameter_types", headers=headers,
                        json={"name": f"bench_{i}", "data_type": "int"}).json()  # fmt: skip
        allowed.append(made["parameter_type_id"])
    api.put(f"/v1/product_types/{ptype}", headers=headers, json={"parameter_types": allowed})
    kinds = {t["parameter_type_id"]: t["data_type"] for t in types}
    sample = {"int": 7, "float": 11.5, "string": "daily", "bool": True,
              "datetime": "2030-01-01T00:00:00"}  # fmt: skip
    values = [{"parameter_type_id": t, "value": sample[kinds.get(t, "int")]} for t in allowed]
    if any(t for t in types if t["name"] == "firmware_channel"):
        fw = next(t["parameter_type_id"] for t in types if t["name"] == "firmware_channel")
        values = [v if v["parameter_type_id"] != fw else {**v, "value": "stable"} for v in values]
    for v in values:
        r = api.post(f"/v1/products/{IMEI}/parameters", headers=headers, json=v)
        assert r.status_code in (200, 201), r.text
    key = api.get(f"/v1/products/{IMEI}", headers=headers).json()["device_key"]
    r = api.post("/v1/rc_data", auth=(IMEI, key), json={"product_parameters": values})
    assert r.status_code == 200, r.text


def original_server(folder: Path) -> tuple[subprocess.Popen[bytes] | None, str]:
    from tests.compat.model import original_model
    from tests.compat.original_env import SERVER, original_python

    python = original_python()
    if python is None:
        return (
            None,
            "no Python 3.8 (set SOLARFLEET_PY38): the comparison with the original is skipped",
        )
    (folder / "model.json").write_text(json.dumps(original_model()))
    port = free_port()
    log = (folder / "original.log").open("wb")
    process = subprocess.Popen(
        [str(python), str(SERVER), str(folder / "solarfleet.sqlite"), str(port),
         str(folder / "model.json")], stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            httpx.get(base + "/v1/entities", timeout=2)
            return process, base
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit("the original's server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    print(machine())
    folder = Path(tempfile.mkdtemp(prefix="bench-fast-"))
    password = prepare(folder)
    port = free_port()
    log = folder / "server.log"
    server = start_server(folder, port, log)
    original, theirs = None, ""
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(base, server, log)
        ours = httpx.Client(base_url=base, timeout=30)
        admin = {"username": "admin@solarfleet.local", "password": password}
        login = ours.post("/v1/auth/login", data=admin)
        headers = {
            "Authorization": "Token token="
            + login.json()["message"]["login_successful"]["API_token"]
        }
        sixteen_in_force(ours, headers)
        time.sleep(1.1)  # the instants below have whole seconds: after every confirmation
        idle_key = ours.get(f"/v1/products/{IDLE}", headers=headers).json()["device_key"]
        at = ours.get(f"/v1/products/{IMEI}/parameters/history", headers=headers)
        now = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        history = f"/v1/products/{IMEI}/parameters/history"
        in_force = ours.get(history, headers=headers, params={"date": now})
        rows = in_force.json()["data"]
        count = len(rows["product_parameters"]) + sum(
            len(v) for v in rows["part_parameters"].values()
        )
        assert at.status_code == 200
        q100 = {"q": json.dumps(RELATION_Q), "results_per_page": 100}
        ops: dict[str, Callable[[], httpx.Response]] = {
            "floor (unknown path, 404)": lambda: ours.get("/v1/no-such-thing"),
            "products page of 10": lambda: ours.get("/v1/products", headers=headers),
            "rc_data, nothing pending": lambda: ours.get("/v1/rc_data", auth=(IDLE, idle_key)),
            f"history?date= ({count} rows)": lambda: ours.get(
                f"/v1/products/{IMEI}/parameters/history", headers=headers, params={"date": now}),
            "products filtered page of 100": lambda: ours.get("/v1/products", headers=headers,
                                                              params=q100),
        }  # fmt: skip
        original, theirs = original_server(folder)
        if original is not None:
            other = httpx.Client(base_url=theirs, timeout=30)
            ops["original: page of 10"] = lambda: other.get("/v1/products")
            ops["original: filtered page of 100"] = lambda: other.get("/v1/products", params=q100)
            a = ours.get("/v1/products", headers=headers, params=q100).json()
            b = other.get("/v1/products", params=q100).json()
            assert a["num_results"] == b["num_results"], (a["num_results"], b["num_results"])
        else:
            print(theirs)
        for op in ops.values():  # warm-up
            for _ in range(20):
                assert op().status_code < 500
        times: dict[str, list[float]] = {name: [] for name in ops}
        for _ in range(args.requests):
            for name, op in ops.items():
                t0 = time.perf_counter()
                op()
                times[name].append(time.perf_counter() - t0)
        med = {name: statistics.median(t) * 1000 for name, t in times.items()}
        floor = med["floor (unknown path, 404)"]
        print(f"{'request':40} {'median ms':>10} {'× floor':>8}")
        for name, ms in med.items():
            print(f"{name:40} {ms:10.2f} {ms / floor:8.2f}")
        if original is not None:
            print(
                f"original / ours, page of 10:          "
                f"{med['original: page of 10'] / med['products page of 10']:.2f}×"
            )
            ratio = med["original: filtered page of 100"] / med["products filtered page of 100"]
            print(f"original / ours, filtered page of 100: {ratio:.2f}×")
    finally:
        stop_server(server)
        if original is not None:
            original.terminate()


if __name__ == "__main__":
    main()
