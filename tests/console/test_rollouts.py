"""The rollouts screen shows what /v1/parameter_rollouts answers — the list with its counts, a
rollout's counts per phase, its events and units — and its pause / resume buttons go through
the API, whose refusal (an OVERVIEW user) is shown as it answers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from solarfleet.db import utcnow
from solarfleet.rollouts.advance import advance
from solarfleet.settings import Settings
from tests.console.conftest import Shoot, console_server, sign_in
from tests.factories import Factory
from tests.faults.services import Server

STATES = ["confirmed", "pending", "queued", "failed", "superseded", "out_of_scope"]
LABELS = ["Confirmed", "Pending", "Queued", "Failed", "Superseded", "Out of scope"]


@pytest.fixture(scope="module")
def served(
    app: Any, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """The console's server without its rollout ticker: the tests advance rollouts themselves,
    so nothing changes between what the API answered and what the screen shows."""
    folder = tmp_path_factory.mktemp("console-rollouts")
    server = console_server(settings, folder, SOLARFLEET_ROLLOUT_TICK_SECONDS="0")
    yield server
    server.stop()


def _auth(factory: Factory, permissions: str) -> tuple[Any, dict[str, str]]:
    user = factory.user(permissions)
    return user, {"Authorization": f"Token token={factory.token(user)}"}


def _rollouts(
    factory: Factory, api: httpx.Client, sessions: sessionmaker[Session], admin: dict[str, str]
) -> list[dict[str, Any]]:
    """Three rollouts over 12 units: one cancelled, one paused, the newest running its first
    phase (3 units pending, 9 queued)."""
    limit = factory.parameter_type(
        "int", name="max_load_watts", validation_rules={"min": 0, "max": 500}
    )
    kind = factory.product_type(parameter_types=[limit.parameter_type_id])
    for i in range(12):
        factory.product(f"35100000000{i:04d}", product_type=kind)
    q = {"filters": [{"name": "product_type_id", "op": "==", "val": kind.product_type_id}]}
    made = []
    for value, phases in ((100, None), (120, [{"batch": 6}]), (150, [{"batch": "25%"}] * 2)):
        body = {"q": q, "parameter_type_id": limit.parameter_type_id, "value": value}
        if phases:
            body["phases"] = phases
        r = api.post("/v1/parameter_rollouts", json=body, headers=admin)
        assert r.status_code == 201, r.text
        made.append(r.json()["parameter_rollout_id"])
    for rid, action in zip(made, ("cancel", "pause"), strict=False):
        r = api.put(f"/v1/parameter_rollouts/{rid}/{action}", headers=admin)
        assert r.status_code == 200, r.text
    advance(sessions, utcnow())
    shown = [api.get(f"/v1/parameter_rollouts/{rid}", headers=admin).json() for rid in made]
    assert [s["state"] for s in shown] == ["cancelled", "paused", "running"]
    assert shown[2]["counts"]["pending"] == 3 and shown[2]["counts"]["queued"] == 9
    return shown


def _bar_label(counts: dict[str, int], targets: int) -> str:
    said = ", ".join(f"{label} {counts[key]}" for key, label in zip(STATES, LABELS, strict=True))
    return f"{targets} units: {said}"


def test_the_list_shows_the_rows_and_counts_the_api_gives(
    page: Any,
    api: httpx.Client,
    factory: Factory,
    sessions: sessionmaker[Session],
    shoot: Shoot,
) -> None:
    _, admin = _auth(factory, "ADMIN")
    _rollouts(factory, api, sessions, admin)
    user, headers = _auth(factory, "OVERVIEW")
    sign_in(page, user.username, "#/rollouts")
    page.wait_for_selector("table.rollouts tbody tr td a")
    rows = page.eval_on_selector_all(
        "table.rollouts tbody tr",
        """rs => rs.map(r => ({id: r.cells[0].textContent, state: r.cells[1].textContent,
            targets: r.cells[4].textContent, phase: r.cells[5].textContent,
            bar: r.querySelector('.stack').getAttribute('aria-label'),
            segs: [...r.querySelectorAll('.seg')].map(s => [s.dataset.state, s.style.width])}))""",
    )
    q = '{"order_by":[{"field":"parameter_rollout_id","direction":"desc"}]}'
    listed = api.get(
        "/v1/parameter_rollouts", params={"q": q, "results_per_page": 25}, headers=headers
    ).json()["objects"]
    assert len(listed) == 3
    assert rows == [
        {
            "id": f"#{r['parameter_rollout_id']}",
            "state": r["state"],
            "targets": str(r["targets"]),
            "phase": f"{r['phase']} / {r['phases_total']}",
            "bar": _bar_label(r["counts"], r["targets"]),
            "segs": [
                [k, f"{100 * r['counts'][k] / r['targets']:g}%"] for k in STATES if r["counts"][k]
            ],
        }
        for r in listed
    ]
    assert rows[0]["segs"] == [["pending", "25%"], ["queued", "75%"]]
    assert page.inner_text("#refreshed").startswith("A rollout is running")
    assert page.get_attribute("#nav a[data-screen=rollouts]", "aria-current") == "page"
    page.click(f"table.rollouts a:has-text('{rows[0]['id']}')")
    page.wait_for_selector("table.counts")
    assert page.url.endswith(f"#/rollouts/{listed[0]['parameter_rollout_id']}")
    page.goto("/console/#/rollouts")
    shoot(page, "rollouts", "table.rollouts tbody tr td a")


def test_a_rollout_page_shows_the_apis_counts_phases_events_and_units(
    page: Any,
    api: httpx.Client,
    factory: Factory,
    sessions: sessionmaker[Session],
    shoot: Shoot,
) -> None:
    _, admin = _auth(factory, "ADMIN")
    rid = _rollouts(factory, api, sessions, admin)[2]["parameter_rollout_id"]
    user, headers = _auth(factory, "OVERVIEW")
    sign_in(page, user.username, f"#/rollouts/{rid}")
    page.wait_for_selector("table.targets tbody tr td a")
    shown = api.get(f"/v1/parameter_rollouts/{rid}", headers=headers).json()
    counts = page.eval_on_selector_all(
        "table.counts [data-count]", "cs => cs.map(c => [c.dataset.count, c.textContent])"
    )
    assert counts == [[k, str(shown["counts"][k])] for k in STATES]
    assert page.inner_text("#rollout-state") == "running"
    assert page.inner_text("#rollout-phase") == f"{shown['phase']} / {shown['phases_total']}"
    assert page.inner_text("#rollout-targets") == "12"
    phases = page.eval_on_selector_all(
        "table.phases tbody tr",
        "rs => rs.map(r => [...r.cells].slice(1, 8).map(c => c.textContent))",
    )
    assert phases == [
        [str(p["units"]), *(str(p["counts"][k]) for k in STATES)] for p in shown["phase_counts"]
    ]
    assert [p[0] for p in phases] == ["3", "3", "6"]
    events = page.eval_on_selector_all(
        "table.events tbody tr",
        "rs => rs.map(r => [r.cells[0].textContent, r.cells[3].textContent])",
    )
    assert events == [[e["event"], e["created_by"]] for e in shown["events"]]
    by = [{"field": "phase", "direction": "asc"}, {"field": "product_imei", "direction": "asc"}]
    listed = api.get(
        f"/v1/parameter_rollouts/{rid}/units",
        params={"q": json.dumps({"order_by": by}), "results_per_page": 25},
        headers=headers,
    ).json()["objects"]
    units = page.eval_on_selector_all(
        "table.targets tbody tr",
        "rs => rs.map(r => [0, 1, 2].map(i => r.cells[i].textContent))",
    )
    assert units == [[u["product_imei"], str(u["phase"]), u["state"]] for u in listed]
    assert [u[2] for u in units] == ["pending"] * 3 + ["queued"] * 9
    shoot(page, "rollout", "table.targets tbody tr td a")
    # The next tick starts phase 2 (no wait): the page shows it without being reloaded.
    advance(sessions, utcnow())
    page.wait_for_function(
        "document.querySelector('#rollout-phase').textContent === '2 / 3'", timeout=15_000
    )
    page.wait_for_function(
        "document.querySelector('table.counts [data-count=pending]').textContent === '6'"
    )
    page.click(f"table.targets a:has-text('{units[0][0]}')")
    page.wait_for_selector("#unit-fields")
    assert page.url.endswith(f"#/unit/{units[0][0]}")


def test_pause_then_resume_through_the_buttons_changes_the_apis_state(
    page: Any, api: httpx.Client, factory: Factory, sessions: sessionmaker[Session]
) -> None:
    user, admin = _auth(factory, "ADMIN")
    rid = _rollouts(factory, api, sessions, admin)[2]["parameter_rollout_id"]
    sign_in(page, user.username, f"#/rollouts/{rid}")
    page.wait_for_selector("#rollout-pause:not([hidden])")
    assert page.is_hidden("#rollout-resume")
    page.click("#rollout-pause")
    page.wait_for_selector("#rollout-resume:not([hidden])")
    shown = api.get(f"/v1/parameter_rollouts/{rid}", headers=admin).json()
    assert shown["state"] == "paused"
    assert page.inner_text("#rollout-state") == "paused"
    assert shown["events"][-1]["event"] == "paused"
    assert shown["events"][-1]["created_by"] == user.username
    # resumed from the keyboard alone
    page.focus("#rollout-resume")
    page.keyboard.press("Enter")
    page.wait_for_selector("#rollout-pause:not([hidden])")
    assert api.get(f"/v1/parameter_rollouts/{rid}", headers=admin).json()["state"] == "running"
    assert page.inner_text("#rollout-state") == "running"
    assert page.inner_text("#rollout-status") == f"Rollout #{rid}: running."


def test_an_overview_users_pause_is_refused_with_the_apis_message(
    page: Any, api: httpx.Client, factory: Factory, sessions: sessionmaker[Session]
) -> None:
    _, admin = _auth(factory, "ADMIN")
    rid = _rollouts(factory, api, sessions, admin)[2]["parameter_rollout_id"]
    user, headers = _auth(factory, "OVERVIEW")
    sign_in(page, user.username, f"#/rollouts/{rid}")
    page.wait_for_selector("#rollout-pause:not([hidden])")
    page.click("#rollout-pause")
    error = page.wait_for_selector("#rollout-status .message.error")
    refused = api.put(f"/v1/parameter_rollouts/{rid}/pause", headers=headers)
    assert refused.status_code == 403
    assert error.inner_text() == refused.json()["message"]
    assert api.get(f"/v1/parameter_rollouts/{rid}", headers=admin).json()["state"] == "running"
    assert page.inner_text("#rollout-state") == "running"
