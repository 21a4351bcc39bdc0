from fastapi.testclient import TestClient

from tests.factories import Factory


def test_list_products_empty(client: TestClient, system: dict[str, str]) -> None:
    r = client.get("/v1/products", headers=system)
    assert r.status_code == 200
    assert r.json() == {"num_results": 0, "objects": [], "page": 1, "total_pages": 0}


def test_get_product(client: TestClient, factory: Factory, system: dict[str, str]) -> None:
    unit = factory.product("111010101010101")
    r = client.get(f"/v1/products/{unit.product_imei}", headers=system)
    assert r.status_code == 200
    assert r.json()["product_imei"] == "111010101010101"
