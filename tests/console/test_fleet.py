"""The fleet screen shows what the API answers for the same q: rows, num_results, order; the
filter builder writes that q, and the CSV export holds the whole filtered set."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from tests.console.conftest import Shoot, sign_in
from tests.factories import Factory


def _fleet(factory: Factory) -> None:
    lamp, home = factory.product_type(name="Lamp Kit"), factory.product_type(name="Home 50")
    battery = factory.part_type(name="Battery")
    for n in range(14):
        unit = factory.product(product_type=lamp if n % 2 else home, gps_lat=-1.0 - n / 10)
        if n % 3 == 0:
            factory.part(part_type=battery, on=unit, serial_number=f"PTX{n:04d}")


def _imeis_shown(page: Any) -> list[str]:
    return page.eval_on_selector_all(
        "#units tbody tr[data-imei]", "rows => rows.map(r => r.dataset.imei)"
    )


def _api_page(api: httpx.Client, headers: dict[str, str], q: dict[str, Any], **params: Any) -> Any:
    answer = api.get("/v1/products", params={"q": json.dumps(q), **params}, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_the_fleet_screen_shows_the_rows_and_count_the_api_gives_for_the_same_q(
    page: Any, api: httpx.Client, factory: Factory, shoot: Shoot
) -> None:
    _fleet(factory)
    user = factory.user("OVERVIEW")
    headers = {"Authorization": f"Token token={factory.token(user)}"}
    q = {
        "filters": [
            {"or": [
                {"name": "product_type__name", "op": "==", "val": "Lamp Kit"},
                {"name": "parts__serial_number", "op": "like", "val": "PTX%"},
            ]},
            {"name": "gps_lat", "op": "<", "val": -1.15},
        ],
        "order_by": [{"field": "serial_number", "direction": "desc"}],
    }  # fmt: skip

    sign_in(page, user.username, f"#/fleet?q={quote(json.dumps(q))}&page=2&per_page=5")
    expected = _api_page(api, headers, q, page=2, results_per_page=5)
    page.wait_for_selector("#units tbody tr")
    assert expected["num_results"] > 5  # the second page is a real one
    assert page.inner_text("#num-results") == str(expected["num_results"])
    assert _imeis_shown(page) == [u["product_imei"] for u in expected["objects"]]
    assert json.loads(page.inner_text("#q-sent")) == q
    curl = page.inner_text("#curl")
    assert f"{page.url.split('/console')[0]}/v1/products" in curl
    compact = json.dumps(q, separators=(",", ":"))
    assert f"--data-urlencode 'q={compact}'" in curl.replace("\\\n     ", "")
    assert "--data-urlencode 'page=2'" in curl
    shoot(page, "fleet", "#units tbody tr")


def test_sorting_by_a_column_and_paging_ask_the_api(
    page: Any, api: httpx.Client, factory: Factory
) -> None:
    _fleet(factory)
    user = factory.user("OVERVIEW")
    headers = {"Authorization": f"Token token={factory.token(user)}"}
    sign_in(page, user.username, "#/fleet?per_page=10")
    page.wait_for_selector("#units tbody tr")
    page.click("#units th button:has-text('Lat')")
    page.wait_for_function("location.hash.includes('gps_lat')")
    page.wait_for_selector("#units th[aria-sort=ascending]")
    q = {"order_by": [{"field": "gps_lat", "direction": "asc"}]}
    first = _api_page(api, headers, q, page=1, results_per_page=10)
    assert _imeis_shown(page) == [u["product_imei"] for u in first["objects"]]
    page.click("text=Next ›")
    page.wait_for_function("location.hash.includes('page=2')")
    page.wait_for_selector("#units tbody tr")
    second = _api_page(api, headers, q, page=2, results_per_page=10)
    assert _imeis_shown(page) == [u["product_imei"] for u in second["objects"]]


def test_the_filter_builder_writes_the_q_into_the_url(page: Any, factory: Factory) -> None:
    _fleet(factory)
    user = factory.user("OVERVIEW")
    sign_in(page, user.username)
    page.wait_for_selector("#units tbody tr")
    rows = page.locator(".filter-row")
    rows.nth(0).locator("input").nth(0).fill("gps_lat")
    rows.nth(0).locator("select").select_option("<")
    rows.nth(0).locator("input").nth(1).fill("-1.5")
    page.click("text=+ group")  # a nested OR group under the top AND
    inner = page.locator("fieldset.group fieldset.group .filter-row")
    inner.nth(0).locator("input").nth(0).fill("product_type__name")
    inner.nth(0).locator("input").nth(1).fill("Lamp Kit")
    page.locator("fieldset.group fieldset.group >> text=+ condition").click()
    inner.nth(1).locator("input").nth(0).fill("parts__serial_number")
    inner.nth(1).locator("select").select_option("in")
    inner.nth(1).locator("input").nth(1).fill("PTX0000, PTX0003")
    page.click("text=Apply")
    page.wait_for_function("location.hash.includes('q=')")
    q = json.loads(page.evaluate("new URLSearchParams(location.hash.split('?')[1]).get('q')"))
    assert q == {
        "filters": [
            {"name": "gps_lat", "op": "<", "val": "-1.5"},
            {"or": [
                {"name": "product_type__name", "op": "==", "val": "Lamp Kit"},
                {"name": "parts__serial_number", "op": "in", "val": ["PTX0000", "PTX0003"]},
            ]},
        ]
    }  # fmt: skip
    page.wait_for_selector("#num-results")
    # The rebuilt builder shows the same q (the URL is the state).
    assert json.loads(page.inner_text("#q-preview")) == q


def test_the_csv_export_holds_every_page_of_the_filtered_set(
    page: Any, api: httpx.Client, factory: Factory
) -> None:
    _fleet(factory)
    user = factory.user("OVERVIEW")
    headers = {"Authorization": f"Token token={factory.token(user)}"}
    q = {"filters": [{"name": "product_type__name", "op": "==", "val": "Home 50"}]}
    sign_in(page, user.username, f"#/fleet?q={quote(json.dumps(q))}&per_page=10")
    page.wait_for_selector("#units tbody tr")
    with page.expect_download() as download:
        page.click("#export")
    text = Path(download.value.path()).read_text(encoding="utf-8").splitlines()
    expected = _api_page(api, headers, q, results_per_page=1000)["objects"]
    assert text[0].startswith("product_imei,serial_number,")
    assert [line.split(",")[0] for line in text[1:]] == [u["product_imei"] for u in expected]
    assert page.inner_text("#export-status") == f"{len(expected)} rows exported"
