"""Which hot store the app gets, its life cycle, and that no input reaches a 500."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from solarfleet.app import create_app
from solarfleet.errors import ServiceUnavailable
from solarfleet.telemetry.embedded import EmbeddedHotStore
from solarfleet.telemetry.hot import HotStore
from solarfleet.telemetry.influx import InfluxHotStore
from solarfleet.telemetry.points import Point
from solarfleet.telemetry.store import make_hot_store
from tests.conftest import make_settings
from tests.telemetry.conftest import Site

RAISES = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def test_make_hot_store_follows_the_settings(tmp_path: Path) -> None:
    embedded = make_hot_store(make_settings(tmp_path))
    assert isinstance(embedded, EmbeddedHotStore)
    assert embedded.path == tmp_path / "hot" / "telemetry.sqlite"
    influx = make_hot_store(
        make_settings(
            tmp_path,
            influx_url="http://u:p@influx.example:8086/",
            influx_database="fleet",
            influx_timeout_seconds=3,
        )
    )
    assert isinstance(influx, InfluxHotStore)
    assert (influx.url, influx.database) == ("http://influx.example:8086", "fleet")
    embedded.close()
    influx.close()


def test_the_app_closes_its_hot_store_on_shutdown(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path))
    store: HotStore = app.state.hot_store
    with TestClient(app):
        store.write([Point("1", "telemetry", (), "v", 1, 1.0)])
    try:
        store.write([Point("1", "telemetry", (), "v", 2, 1.0)])
    except ServiceUnavailable:
        pass
    else:  # pragma: no cover
        raise AssertionError("the store is still open after shutdown")
    # The same app started again (a test client used twice, a server restarted in-process) has
    # a store that works, and holds what the first start-up wrote.
    with TestClient(app):
        again: HotStore = app.state.hot_store
        assert again is not store
        again.write([Point("1", "telemetry", (), "v", 3, 2.0)])
        assert [p.time_us for p in again.read("1", 0, 10)] == [1, 3]
    app.state.hot_store.write([Point("1", "telemetry", (), "v", 4, 1.0)])  # no lifespan run


@pytest.fixture
def own_store(app: FastAPI, tmp_path: Path) -> Any:
    """A fresh embedded store as the app's, so that the fuzzing leaves nothing behind."""
    previous, app.state.hot_store = app.state.hot_store, EmbeddedHotStore(tmp_path / "h.sqlite")
    yield app.state.hot_store
    app.state.hot_store.close()
    app.state.hot_store = previous


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)
bodies = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"fields": st.dictionaries(st.text(max_size=8), st.lists(json_values, max_size=4))},
        optional={"measurement": json_values, "tags": json_values},
    ),
)


@RAISES
@given(body=bodies)
def test_no_upload_body_is_a_500(client: TestClient, site: Site, own_store: Any, body: Any) -> None:
    r = client.post(
        f"/v1/products/{site.imei}/data",
        content=json.dumps(body, allow_nan=True),
        headers={**site.admin, "Content-Type": "application/json"},
    )
    assert r.status_code in (200, 400), r.text


texts = st.text(max_size=40) | st.sampled_from(["", " ", "{}", "[]", "a:b", "5m", "mean", "0"])


@RAISES
@given(
    params=st.dictionaries(
        st.sampled_from(
            [
                "start",
                "end",
                "fields",
                "measurement",
                "limit",
                "tags",
                "where",
                "ds_interval",
                "ds_function",
            ]
        ),
        texts,
        max_size=5,
    )
)
def test_no_read_parameters_are_a_500(
    client: TestClient, site: Site, own_store: Any, params: Any
) -> None:
    r = client.get(f"/v1/products/{site.imei}/data", params=params, headers=site.admin)
    assert r.status_code in (200, 400), r.text
