"""The abuse suite's server answers as the in-process app does, on the same database."""

from __future__ import annotations

import httpx

from tests.factories import Factory
from tests.faults.services import Server


def test_a_user_made_in_process_is_known_to_the_server(served: Server, factory: Factory) -> None:
    headers = factory.headers("OVERVIEW")
    with httpx.Client(base_url=served.url, timeout=10) as http:
        assert http.get("/v1/entities").status_code == 401
        page = http.get("/v1/entities", headers=headers)
    assert page.status_code == 200, page.text
    assert page.json()["num_results"] == len(page.json()["objects"])
