"""Signing in and out with the API's users; a token that ends sends the user to sign-in and back;
an ENTITY user's console shows exactly what the API shows that user, whatever the URL says."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import httpx

from tests.console.conftest import Shoot, sign_in, token_of
from tests.factories import Factory


def test_sign_out_leaves_the_token_unusable(
    page: Any, api: httpx.Client, factory: Factory, shoot: Shoot
) -> None:
    user = factory.user("OVERVIEW")
    page.goto("/console/")
    page.wait_for_selector("text=Sign in")
    shoot(page, "sign-in", "input[name=username]")
    sign_in(page, user.username)
    token = token_of(page)
    headers = {"Authorization": f"Token token={token}"}
    assert api.get("/v1/products", headers=headers).status_code == 200
    page.click("#sign-out")
    page.wait_for_selector("input[name=username]")
    assert page.evaluate("localStorage.getItem('solarfleet.console.session')") is None
    answer = api.get("/v1/products", headers=headers)
    assert answer.status_code == 401, answer.text
    # Nothing of the fleet is shown without signing in again.
    page.goto("/console/#/fleet")
    page.wait_for_selector("input[name=username]")
    assert page.locator("#units").count() == 0


def test_a_token_that_ends_sends_the_user_to_sign_in_and_back_to_the_page(
    page: Any, api: httpx.Client, factory: Factory
) -> None:
    user = factory.user("OVERVIEW")
    unit = factory.product(serial_number="SF-BACK-AGAIN")
    sign_in(page, user.username)
    page.wait_for_selector("#units tbody tr")
    # The token ends behind the console's back (revoked, as an expiry would end it).
    assert api.post("/v1/auth/logout", headers={"Authorization": f"Token token={token_of(page)}"})
    page.goto(f"/console/#/unit/{unit.product_imei}")
    page.wait_for_selector("input[name=username]")
    assert "next=" in page.url and quote(f"#/unit/{unit.product_imei}", safe="") in page.url
    assert "Your session ended" in page.inner_text("main")
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", "correct horse battery")
    page.click("form button[type=submit]")
    page.wait_for_selector("#unit-fields")
    assert page.url.endswith(f"#/unit/{unit.product_imei}")
    assert "SF-BACK-AGAIN" in page.inner_text("#unit-fields")


def test_wrong_credentials_show_the_apis_message(
    page: Any, api: httpx.Client, factory: Factory
) -> None:
    user = factory.user("OVERVIEW")
    refused = api.post("/v1/auth/login", json={"username": user.username, "password": "nope"})
    assert refused.status_code == 401
    page.goto("/console/")
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", "not the password")
    page.press("input[name=password]", "Enter")
    error = page.locator(".message.error")
    error.wait_for()
    assert error.inner_text() == refused.json()["message"]
    assert page.locator("#who").is_hidden()


def test_an_entity_users_console_never_shows_another_entitys_unit(
    page: Any, api: httpx.Client, factory: Factory
) -> None:
    ours, theirs = factory.entity("Ours"), factory.entity("Theirs")
    mine = [factory.product(entity=ours, serial_number=f"OURS-{n}") for n in range(3)]
    other = factory.product(entity=theirs, serial_number="THEIRS-1")
    factory.product_parameter(other, factory.parameter_type(name="secret_level"), value="42")
    user = factory.user("ADMIN", "ENTITY", ours)
    headers = {"Authorization": f"Token token={factory.token(user)}"}
    expected = api.get("/v1/products", headers=headers, params={"results_per_page": 100}).json()

    sign_in(page, user.username)
    page.wait_for_selector("#units tbody tr")
    shown = page.eval_on_selector_all(
        "#units tbody tr[data-imei]", "rs => rs.map(r => r.dataset.imei)"
    )
    assert shown == [u["product_imei"] for u in expected["objects"]]
    assert sorted(shown) == sorted(u.product_imei for u in mine)
    assert page.inner_text("#num-results") == "3"

    # Its own unit: the entity history names the entity.
    page.goto(f"/console/#/unit/{mine[0].product_imei}")
    page.wait_for_selector("#unit-fields")
    assert f"Ours ({ours.entity_id})" in page.inner_text("main")

    # A hand-edited URL: the other entity's unit by IMEI, and a filter naming it.
    page.goto(f"/console/#/unit/{other.product_imei}")
    page.wait_for_selector(".message.error")
    body = page.inner_text("main")
    assert f"No unit {other.product_imei} that you can see" in body
    assert "THEIRS-1" not in body and "42" not in body
    assert page.locator("#unit-fields, #timeline").count() == 0
    q = {"filters": [{"name": "serial_number", "op": "==", "val": "THEIRS-1"}]}
    page.goto(f"/console/#/fleet?q={quote(json.dumps(q))}")
    page.wait_for_selector("#num-results")
    assert page.inner_text("#num-results") == "0"
    assert "THEIRS-1" not in page.inner_text("#units")
    # Its migration screen counts only its own units.
    page.goto("/console/#/migration")
    page.wait_for_selector("#units-migrated")
    assert page.inner_text("#units-migrated") == "0 / 3"
