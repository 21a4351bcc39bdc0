"""The unit screen draws what the API answers: one bar per row of the history in force with its
value, the API's as-of set and diff, and the API's own message for an invalid value."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from solarfleet.fleet.models import PartProductLinker
from tests.console.conftest import SCREENSHOTS, Shoot, sign_in
from tests.factories import Factory

D = datetime.fromisoformat


@pytest.fixture
def unit(factory: Factory) -> dict[str, Any]:
    """A unit and a part with a history in every state."""
    watts = factory.parameter_type(
        "int", name="max_load_watts", validation_rules={"min": 0, "max": 500}, units="W"
    )
    plan = factory.parameter_type(
        "string", name="tariff_plan", validation_rules={"choices": ["daily", "weekly"]}
    )
    level = factory.parameter_type("int", name="lamp_level")
    kind = factory.product_type(
        name="BB17", parameter_types=[watts.parameter_type_id, plan.parameter_type_id]
    )
    lamp = factory.part_type(name="Lamp", parameter_types=[level.parameter_type_id])
    product = factory.product(product_type=kind, serial_number="SF-TIMELINE")
    part = factory.part(part_type=lamp, serial_number="PT-LAMP-1")
    factory._add(
        PartProductLinker(
            part_id=part.part_id, product_imei=product.product_imei, date_added=D("2025-12-01")
        )
    )
    rows = [
        (watts, "100", "removed", "2026-01-01", "2026-03-01", "2025-12-30"),
        (watts, "200", "removed", "2026-03-01", "2026-06-01", "2026-02-27"),
        (watts, "250", "expired", "2026-05-02", "2026-05-02T00:00:01", "2026-05-01"),
        (watts, "300", "active", "2026-06-01", None, "2026-05-20"),
        (watts, "400", "pending", None, None, "2026-10-01"),
        (plan, "daily", "active", "2026-02-01", None, "2026-01-20"),
    ]
    for ptype, value, status, added, removed, created in rows:
        factory.product_parameter(
            product, ptype, value=value, status=status,
            date_added=added and D(added), date_removed=removed and D(removed),
            created_at=D(created),
        )  # fmt: skip
    factory.part_parameter(
        part, level, value="7", status="active", date_added=D("2026-04-01"),
        created_at=D("2026-03-25"),
    )  # fmt: skip
    return {"imei": product.product_imei, "watts": watts, "part": part}


BARS = """el => [...el.querySelectorAll('.barlayer .trace')].map(t =>
    [...t.querySelectorAll('.point')].map(p => p.querySelector('text')?.textContent ?? ''))"""
LABELS = "el => [...el.querySelectorAll('.scatterlayer .textpoint text')].map(t => t.textContent)"


EXPIRED = "el => el.querySelectorAll('.scatterlayer .trace .point').length"


def _bars(page: Any) -> tuple[list[str], list[str]]:
    """The bars in force (drawn in traces of at most 400), and the pending bars (the last bar
    trace): the label each bar carries itself."""
    page.wait_for_selector("#timeline[data-drawn]")
    *in_force, pending = page.eval_on_selector("#timeline", BARS)
    return [label for trace in in_force for label in trace], pending


def _expired(page: Any) -> int:
    """How many expired crosses the timeline shows."""
    return int(page.eval_on_selector("#timeline", EXPIRED))


def _admin(factory: Factory) -> tuple[str, dict[str, str]]:
    user = factory.user("ADMIN")
    return user.username, {"Authorization": f"Token token={factory.token(user)}"}


def test_the_timeline_has_one_bar_per_row_in_force_with_its_value(
    page: Any, api: httpx.Client, factory: Factory, unit: dict[str, Any], shoot: Shoot
) -> None:
    username, headers = _admin(factory)
    history = api.get(f"/v1/products/{unit['imei']}/parameters/history", headers=headers).json()
    rows = history["data"]["product_parameters"] + [
        r for part in history["data"]["part_parameters"].values() for r in part
    ]
    in_force = sorted(r["value"] for r in rows if r["status"] in ("active", "removed"))
    sign_in(page, username, f"#/unit/{unit['imei']}")
    in_force_bars, pending_bars = _bars(page)
    assert len(in_force_bars) == len(in_force) == 5
    labels = page.eval_on_selector("#timeline", LABELS)  # the values written on those bars
    assert sorted(labels) == in_force == ["100", "200", "300", "7", "daily"]
    assert pending_bars == ["pending 400"]
    assert _expired(page) == 1
    lanes = page.eval_on_selector_all(  # top to bottom, as a person reads them
        "#timeline .ytick text",
        """ts => ts.map(t => [t.getBoundingClientRect().top, t.textContent])
                  .sort((a, b) => a[0] - b[0]).map(p => p[1])""",
    )
    assert lanes == ["max_load_watts", "tariff_plan", "PT-LAMP-1 · lamp_level"]
    shoot(page, "unit", "#timeline[data-drawn]")


def test_the_as_of_panel_and_the_diff_are_the_apis_answers(
    page: Any, api: httpx.Client, factory: Factory, unit: dict[str, Any]
) -> None:
    username, headers = _admin(factory)
    at, t1, t2 = "2026-04-15T00:00:00", "2026-02-15T00:00:00", "2026-07-01T00:00:00"
    sign_in(page, username, f"#/unit/{unit['imei']}?at={quote(at)}&from={t1}&to={t2}")
    page.wait_for_selector("#as-of tbody tr")
    shown = page.eval_on_selector_all(
        "#as-of tbody tr", "rs => rs.map(r => [...r.cells].slice(0, 2).map(c => c.textContent))"
    )
    answer = api.get(
        f"/v1/products/{unit['imei']}/parameters/history", params={"date": at}, headers=headers
    ).json()["data"]
    names = {unit["watts"].parameter_type_id: "max_load_watts"}
    expected = [[names.get(r["parameter_type_id"], "tariff_plan"), r["value"]]
                for r in answer["product_parameters"]]  # fmt: skip
    expected += [["PT-LAMP-1 · lamp_level", r["value"]]
                 for r in answer["part_parameters"][str(unit["part"].part_id)]]  # fmt: skip
    assert shown == expected == [["max_load_watts", "200"], ["tariff_plan", "daily"],
                                 ["PT-LAMP-1 · lamp_level", "7"]]  # fmt: skip

    page.wait_for_selector("#diff tbody tr")
    diff = page.eval_on_selector_all(
        "#diff tbody tr", "rs => rs.map(r => [...r.cells].map(c => c.textContent))"
    )
    changes = api.get(
        f"/v1/products/{unit['imei']}/parameters/diff",
        params={"from": t1, "to": t2}, headers=headers,
    ).json()["data"]  # fmt: skip
    [changed] = changes["product_parameters"]["changed"]
    [added] = changes["part_parameters"][str(unit["part"].part_id)]["added"]
    assert diff == [
        ["max_load_watts", "changed", changed["from"]["value"], changed["to"]["value"]],
        ["PT-LAMP-1 · lamp_level", "added", "–", added["value"]],
    ]
    assert (changed["from"]["value"], changed["to"]["value"]) == ("100", "300")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)  # the README's picture (docs/console.png)
    page.locator("#timeline-card").screenshot(path=str(SCREENSHOTS / "unit-timeline.png"))

    # Moving the cursor with the form asks the API again and keeps the instant in the URL.
    page.get_by_label("As of (UTC)").fill("2026-01-15T00:00:00")
    page.click("text=Show set in force")
    page.wait_for_function("location.hash.includes('at=2026-01-15')")
    page.wait_for_function(
        "document.querySelector('#as-of-instant')?.textContent.startsWith('2026-01-15')"
    )
    shown = page.eval_on_selector_all(
        "#as-of tbody tr", "rs => rs.map(r => r.cells[1].textContent)"
    )
    assert shown == ["100"]


def test_an_invalid_value_shows_the_apis_message_next_to_the_field(
    page: Any, api: httpx.Client, factory: Factory, unit: dict[str, Any]
) -> None:
    username, headers = _admin(factory)
    refused = api.post(
        f"/v1/products/{unit['imei']}/parameters", headers=headers,
        json={"parameter_type_id": unit["watts"].parameter_type_id, "value": 900},
    )  # fmt: skip
    assert refused.status_code == 400
    sign_in(page, username, f"#/unit/{unit['imei']}")
    form = page.locator("#set-parameter")
    form.get_by_label("Parameter").select_option(str(unit["watts"].parameter_type_id))
    value = form.get_by_label("Value")
    value.fill("900")
    value.press("Enter")  # keyboard submits the form
    error = form.locator(".field-error").filter(has_text="900").first
    error.wait_for()
    assert error.inner_text() == refused.json()["message"]
    assert value.get_attribute("aria-invalid") == "true"
    assert error.get_attribute("id") in (value.get_attribute("aria-describedby") or "")

    value.fill("450")
    form.locator("button[type=submit]").click()
    form.locator(".message.ok").wait_for()
    page.wait_for_function(
        "document.querySelectorAll('#timeline .scatterlayer .point').length === 2"
    )
    assert _bars(page)[1] == ["pending 450"]  # the older pending value expired
