"""The console in a real browser (Debian's Chromium, headless, through Playwright) against
``solarfleet serve``: 100,000 units, and one unit with 10,000 parameter rows.

For each screen: the time from navigation start (a fresh page load of the console, token
already stored; the page's own performance.now()) to the screen shown (the fleet's first page
in its table, the unit's parameter timeline drawn), against the time of the API calls that
screen makes, made by a Python client (httpx, keep-alive) in the same order, one after the
other. The ratio is browser / API.

    .venv/bin/python bench/bench_console.py                 # 100,000 units, 10,000 rows
    .venv/bin/python bench/bench_console.py --units 20000 --runs 3   # a quick look
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from _common import free_port, machine, start_server, stop_server, wait_ready
from bench_list import build_database
from sqlalchemy import insert, update

import solarfleet.models  # noqa: F401  (every table known to the metadata)
from solarfleet.db import make_engine
from solarfleet.fleet.models import ParameterType, ProductType
from solarfleet.parameters.models import ProductParameter

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]  # fmt: skip
IMEI = f"35{0:013d}"
TYPES = 4


def add_history(url: str, rows: int) -> None:
    """``rows`` parameter rows on one unit: TYPES types, each a chain of values an hour apart,
    every one removed when the next became active, the last one active."""
    engine = make_engine(url)
    start = datetime(2025, 1, 1)
    with engine.begin() as conn:
        ids = []
        for n in range(TYPES):
            result = conn.execute(
                insert(ParameterType.__table__).values(
                    name=f"bench_param_{n}",
                    data_type="int",
                    validation_rules={},
                    repeatable=False,
                    setting=True,
                    created_at=start,
                    created_by="bench",
                )  # fmt: skip
            )
            ids.append(result.inserted_primary_key[0])
        conn.execute(update(ProductType.__table__).values(parameter_types=ids))
        batch: list[dict[str, Any]] = []
        per_type = rows // TYPES
        for type_id in ids:
            for i in range(per_type):
                added = start + timedelta(hours=i)
                last = i == per_type - 1
                batch.append({
                    "product_imei": IMEI, "parameter_type_id": type_id, "value": str(i % 500),
                    "status": "active" if last else "removed", "date_added": added,
                    "date_removed": None if last else added + timedelta(hours=1),
                    "created_at": added - timedelta(minutes=5), "created_by": "bench",
                })  # fmt: skip
        conn.execute(insert(ProductParameter.__table__), batch)
    engine.dispose()


def api_time(base: str, token: str, calls: list[tuple[str, dict[str, Any]]], runs: int) -> float:
    """Median seconds for ``calls`` made one after the other (after one warm-up)."""
    headers = {"Authorization": f"Token token={token}"}
    times = []
    with httpx.Client(base_url=base, headers=headers, timeout=120) as http:
        for run in range(runs + 1):
            t0 = time.perf_counter()
            for path, params in calls:
                answer = http.get(path, params=params)
                answer.raise_for_status()
            if run:
                times.append(time.perf_counter() - t0)
    return statistics.median(times)


def browser_time(page: Any, base: str, target: str, ready: str, runs: int) -> float:
    """Median seconds from navigation start to the screen shown, as the page measures it:
    ``ready`` is an element whose ``data-<mark>`` attribute the screen sets to
    ``performance.now()`` once shown (after one warm-up load)."""
    selector, mark = ready.split("@")
    times = []
    for run in range(runs + 1):
        page.goto("about:blank")
        page.goto(f"{base}/console/{target}")
        shown = page.wait_for_selector(f"{selector}[data-{mark}]", timeout=300_000)
        if run:
            times.append(float(shown.get_attribute(f"data-{mark}")) / 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--units", type=int, default=100_000, help="products (default 100000)")
    parser.add_argument("--rows", type=int, default=10_000, help="parameter rows of one unit")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per figure (median)")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    print(machine())
    data_dir = Path(tempfile.mkdtemp(prefix="solarfleet-bench-console-"))
    try:
        t0 = time.perf_counter()
        url, token = build_database(data_dir, args.units, seed=2016)
        add_history(url, args.rows)
        print(f"{args.units:,} units, {args.rows:,} parameter rows on #{IMEI} "
              f"(built in {time.perf_counter() - t0:.0f}s)")  # fmt: skip
        port = free_port()
        log = data_dir / "serve.log"
        server = start_server(data_dir, port, log, cli=True)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_ready(base, server, log)
            run(args, base, token, sync_playwright)
        finally:
            stop_server(server)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def run(args: argparse.Namespace, base: str, token: str, sync_playwright: Any) -> None:
    fleet_calls = [
        ("/v1/products", {"page": 1, "results_per_page": 25}),
        ("/v1/product_types", {"page": 1, "results_per_page": 1000}),
    ]
    by_imei = json.dumps({"filters": [{"name": "product_imei", "op": "==", "val": IMEI}],
                          "order_by": [{"field": "date_added", "direction": "desc"}]})  # fmt: skip
    unit_calls = [
        (f"/v1/products/{IMEI}", {}),
        ("/v1/product_entity_linker", {"q": by_imei, "results_per_page": 1000}),
        (f"/v1/products/{IMEI}/parts", {}),
        ("/v1/part_product_linker", {"q": by_imei, "results_per_page": 1000}),
        ("/v1/parameter_types", {"results_per_page": 1000}),
        ("/v1/product_types/1", {}),
        (f"/v1/products/{IMEI}/parameters/history", {}),
    ]
    session = {"token": token, "user": {"username": "bench", "permissions": "SYSTEM",
                                        "user_product_visibility": "GLOBAL"}}  # fmt: skip
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(f"{base}/console/#/login")
        page.evaluate(
            "s => localStorage.setItem('solarfleet.console.session', s)", json.dumps(session)
        )
        figures = [
            ("fleet: first page of 25 shown", fleet_calls, "#/fleet", "#units@shown"),
            (f"unit: timeline of {args.rows:,} rows drawn", unit_calls, f"#/unit/{IMEI}",
             "#timeline@drawn"),
        ]  # fmt: skip
        for name, calls, target, ready in figures:
            api = api_time(base, token, calls, args.runs)
            shown = browser_time(page, base, target, ready, args.runs)
            print(f"{name:<40} browser {shown * 1000:8.0f} ms   API calls ({len(calls)}) "
                  f"{api * 1000:7.0f} ms   ratio {shown / api:5.2f}")  # fmt: skip
        browser.close()


if __name__ == "__main__":
    main()
