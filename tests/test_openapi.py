"""The OpenAPI document is valid and describes every route, query parameters included."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from openapi_spec_validator import validate

from solarfleet.resources import REGISTRY


def test_openapi_document_is_valid(client: TestClient) -> None:
    r = client.get("/openapi.json")
    assert r.status_code == 200
    validate(r.json())


ACTIONS = {
    "/v1/auth/login": {"post"},
    "/v1/auth/logout": {"post"},
    "/v1/auth/validate_user": {"get"},
    "/v1/products/{imei}/assign_entity": {"put"},
    "/v1/products/{imei}/change_entity": {"put"},
    "/v1/products/{imei}/remove_entity": {"put"},
    "/v1/products/{imei}/parts": {"get", "post"},
    "/v1/products/{imei}/parts/{part_id}": {"delete"},
    "/v1/products/{imei}/parameters": {"post"},
    "/v1/parts/{part_id}/parameters": {"post"},
    "/v1/products/{imei}/parameters/history": {"get"},
    "/v1/products/{imei}/parameters/diff": {"get"},
    "/v1/products/{imei}/parameters/notes": {"get"},
    "/v1/rc_data": {"get", "post"},
    "/v1/products/{imei}/data": {"get", "post"},
    "/v1/rm_data": {"post"},
    "/v1/migration/backlog": {"get"},
    "/v1/parameter_rollouts/{key}/pause": {"put"},
    "/v1/parameter_rollouts/{key}/resume": {"put"},
    "/v1/parameter_rollouts/{key}/cancel": {"put"},
    "/v1/parameter_rollouts/{key}/units": {"get"},
}


def expected_paths() -> dict[str, set[str]]:
    paths = {k: set(v) for k, v in ACTIONS.items()}
    for spec in REGISTRY.specs:
        methods = {m.lower() for m in spec.methods}
        paths[f"/v1/{spec.name}"] = methods & {"get", "post"}
        paths[f"/v1/{spec.name}/{{key}}"] = methods & {"get", "put", "delete"}
    return paths


def test_every_route_is_documented(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    documented = {path: set(ops) for path, ops in paths.items()}
    assert documented == expected_paths()


def test_list_endpoints_document_the_query_parameters(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for spec in REGISTRY.specs:
        params = {p["name"] for p in paths[f"/v1/{spec.name}"]["get"]["parameters"]}
        expected = {"q", "page", "results_per_page"} | ({"as_of"} if spec.as_of else set())
        assert params == expected, spec.name


def test_write_bodies_are_documented(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    body = doc["paths"]["/v1/products"]["post"]["requestBody"]["content"]["application/json"]
    schema = doc["components"]["schemas"][body["schema"]["$ref"].rsplit("/", 1)[1]]
    assert schema["additionalProperties"] is False
    assert "product_imei" in schema["required"] and "product_type_id" in schema["required"]
    login = doc["paths"]["/v1/auth/login"]["post"]["requestBody"]["content"]
    assert set(login) == {"application/json", "application/x-www-form-urlencoded"}


def test_interactive_docs_are_served(client: TestClient) -> None:
    r = client.get("/docs")
    assert r.status_code == 200
    assert "swagger" in r.text.lower()


def test_error_statuses_are_the_ones_the_app_sends(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            responses = operation["responses"]
            assert "422" not in responses, where  # validation errors are 400s
            assert "503" in responses, where  # the database can be down under any route
            assert "Retry-After" in responses["503"]["headers"], where
            if "requestBody" in operation:
                assert {"400", "413"} <= set(responses), where
    login = document["paths"]["/v1/auth/login"]["post"]["responses"]
    assert "Retry-After" in login["429"]["headers"]


def test_a_validation_error_is_a_documented_400(client: TestClient) -> None:
    r = client.get("/v1/products", params={"page": "x"})
    assert r.status_code == 401  # authentication comes first
    r = client.post("/v1/auth/login", json={"username": 5})
    assert r.status_code == 400 and r.json()["status"] == "error"
    documented = client.get("/openapi.json").json()["paths"]["/v1/auth/login"]["post"]
    assert "400" in documented["responses"]


PUBLIC = {("/v1/auth/login", "post"), ("/v1/auth/validate_user", "get")}
UNIT_ROUTES = {("/v1/rc_data", "get"), ("/v1/rc_data", "post"), ("/v1/rm_data", "post")}


def test_security_schemes_are_declared_so_that_authorize_works(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    assert document["components"]["securitySchemes"] == {
        "Token": {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Token token=<API_token>`, the API_token from POST /v1/auth/login",
        },
        "UnitBasic": {
            "type": "http",
            "scheme": "basic",
            "description": "Units: HTTP Basic with the IMEI as user name and the unit's device_key",
        },
    }
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if (path, method) in PUBLIC:
                expected = None
            elif (path, method) in UNIT_ROUTES:
                expected = [{"UnitBasic": []}]
            else:
                expected = [{"Token": []}]
            assert operation.get("security") == expected, (path, method)


def test_docs_fetch_nothing_from_the_internet(client: TestClient) -> None:
    for page in ("/docs", "/redoc"):
        html = client.get(page)
        assert html.status_code == 200
        assert "https://" not in html.text and "http://" not in html.text, page
        for asset in re.findall(r'(?:src|href)="([^"]+)"', html.text):
            assert asset.startswith("/static-offline-docs/"), (page, asset)
            assert client.get(asset).status_code == 200, asset
