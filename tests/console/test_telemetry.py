"""Telemetry charts read /v1/products/<imei>/data downsampled to the chart's width, and zooming
re-reads the narrower window at a finer interval."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from solarfleet.db import utcnow
from tests.console.conftest import sign_in
from tests.factories import Factory

SERIES = "el => el.data.map(t => [t.name, t.x.length])"


def test_the_chart_draws_the_apis_downsampled_answer_and_zoom_rereads(
    page: Any, api: httpx.Client, factory: Factory
) -> None:
    unit = factory.product()
    user = factory.user("ADMIN")
    headers = {"Authorization": f"Token token={factory.token(user)}"}
    start = utcnow().replace(minute=0, second=0, microsecond=0) - timedelta(days=3)
    times = [(start + timedelta(minutes=10 * n)).isoformat() for n in range(3 * 144)]
    fields = {
        "battery_voltage": [[t, 12 + (n % 20) / 10] for n, t in enumerate(times)],
        "load_power": [[t, float(n % 7)] for n, t in enumerate(times)],
    }
    stored = api.post(
        f"/v1/products/{unit.product_imei}/data",
        json={"measurement": "telemetry", "tags": {}, "fields": fields},
        headers=headers,
    )
    assert stored.status_code in (200, 201), stored.text

    sign_in(page, user.username, f"#/unit/{unit.product_imei}")
    chart = page.locator("#telemetry[data-drawn]")
    chart.wait_for()
    window = chart.evaluate("el => ({...el.dataset})")
    answer = api.get(
        f"/v1/products/{unit.product_imei}/data",
        params={"start": window["start"], "end": window["end"],
                "ds_interval": window["interval"], "ds_function": "mean"},
        headers=headers,
    ).json()["data"]  # fmt: skip
    assert chart.evaluate(SERIES) == [[f, len(answer[f])] for f in sorted(fields)]
    assert window["interval"] == "30m"  # 7 days over ~1200 px: at most a bucket per 2 pixels
    assert len(answer["battery_voltage"]) < len(times)  # never the raw readings

    # Zoom to the last six hours: a new read of that window, at a finer interval.
    drawn = window["drawn"]
    chart.evaluate(
        "el => Plotly.relayout(el, {'xaxis.range[0]': new Date(Date.now() - 6*3600e3)"
        ".toISOString().slice(0, 19), 'xaxis.range[1]': new Date().toISOString().slice(0, 19)})"
    )
    page.wait_for_function(f"document.querySelector('#telemetry').dataset.drawn !== '{drawn}'")
    zoomed = chart.evaluate("el => ({...el.dataset})")
    assert zoomed["interval"] == "1m"  # 6 hours over ~1200 px
    answer = api.get(
        f"/v1/products/{unit.product_imei}/data",
        params={"start": zoomed["start"], "end": zoomed["end"],
                "ds_interval": zoomed["interval"], "ds_function": "mean"},
        headers=headers,
    ).json()["data"]  # fmt: skip
    assert chart.evaluate(SERIES) == [[f, len(answer[f])] for f in sorted(fields)]
