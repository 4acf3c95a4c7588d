"""``/openapi.json`` and ``/docs``: every API route described, the document valid OpenAPI 3.1.

The document does not touch the store, so these run on SQLite only; what the
described replies look like on both backends is what schemathesis checks in
``.ci/schemathesis.sh``, against a live server.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator
from server_key import TEST_SECRETS

from loopgate.config import AuthConfig, Config, DatabaseConfig
from loopgate.web.app import create_app
from loopgate.web.describe import describe
from loopgate.web.openapi import api_routes, build_document, undescribed

Client = TestClient[Any, Any]


def make_config(tmp_path: Path, **auth: Any) -> Config:
    return Config(
        database=DatabaseConfig(url=f"sqlite:///{tmp_path / 'loopgate.db'}"),
        auth=AuthConfig(jwt_secret="openapi-test-secret-" + "0" * 32, **auth),
        secrets=TEST_SECRETS,
    )


@pytest.fixture
async def live(
    aiohttp_client: Callable[[web.Application], Awaitable[Client]], tmp_path: Path
) -> Client:
    return await aiohttp_client(create_app(make_config(tmp_path)))


def schema_for(document: dict[str, Any], name: str) -> Draft202012Validator:
    """A validator for one component, resolving ``#/components/...`` in ``document``."""
    return Draft202012Validator({**document, "$ref": f"#/components/schemas/{name}"})


def test_every_api_route_is_described(tmp_path: Path) -> None:
    app = create_app(make_config(tmp_path))
    covered = {f"{method.upper()} {path}" for path, method, _ in api_routes(app)}
    assert {
        "POST /hitl/request",
        "GET /v1/requests/{request_id}",
        "POST /api/auth/login",
    } <= covered
    assert undescribed(app) == []


def test_names_a_route_without_a_description(tmp_path: Path) -> None:
    app = create_app(make_config(tmp_path))

    async def handler(request: web.Request) -> web.Response:
        return web.Response()

    app.router.add_get("/v1/undocumented", handler)
    assert undescribed(app) == ["GET /v1/undocumented"]
    with pytest.raises(LookupError, match="/v1/undocumented"):
        build_document(app)


def test_a_described_route_appears_with_its_parameters(tmp_path: Path) -> None:
    app = create_app(make_config(tmp_path))

    async def handler(request: web.Request) -> web.Response:
        return web.Response()

    app.router.add_get("/v1/things/{thing_id}", describe("A thing", replies={200: str})(handler))
    operation = build_document(app)["paths"]["/v1/things/{thing_id}"]["get"]
    assert [p["name"] for p in operation["parameters"]] == ["thing_id"]
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "type": "string"
    }


async def test_the_served_document_is_valid_openapi_3_1(live: Client) -> None:
    response = await live.get("/openapi.json")
    assert response.status == 200
    document = await response.json()
    assert document["openapi"].startswith("3.1")
    OpenAPIV31SpecValidator(document).validate()


async def test_every_error_reply_is_the_error_shape(live: Client) -> None:
    document = await (await live.get("/openapi.json")).json()
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            errors = {s: r for s, r in operation["responses"].items() if s.startswith("4")}
            assert "400" in errors, (method, path)
            for reply in errors.values():
                schema = reply["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, (method, path)
    create = document["paths"]["/v1/requests"]["post"]["responses"]
    assert {"401", "404", "413", "415", "429"} <= create.keys()
    assert "Retry-After" in create["429"]["headers"]


async def test_security_follows_the_routes_auth(tmp_path: Path) -> None:
    open_doc = build_document(create_app(make_config(tmp_path)))
    keyed_doc = build_document(create_app(make_config(tmp_path, require_api_key="true")))
    assert {} in open_doc["paths"]["/hitl/request"]["post"]["security"]
    assert {} not in keyed_doc["paths"]["/hitl/request"]["post"]["security"]
    assert {"apiKeyHeader": []} in keyed_doc["paths"]["/hitl/request"]["post"]["security"]
    assert keyed_doc["paths"]["/api/user/apikeys"]["get"]["security"] == [{"loginToken": []}]
    assert keyed_doc["paths"]["/api/auth/login"]["post"]["security"] == []
    schemes = keyed_doc["components"]["securitySchemes"]
    assert schemes["loginToken"]["bearerFormat"] == "JWT"
    assert schemes["apiKeyHeader"] == {
        **schemes["apiKeyHeader"],
        "in": "header",
        "name": "X-API-Key",
    }


async def test_replies_match_their_documented_schemas(live: Client) -> None:
    document = await (await live.get("/openapi.json")).json()
    session = {"session_id": "s1", "client_id": "agent", "telegram_id": 7}
    assert (await live.post("/hitl/register", json=session)).status == 200
    ask = {**session, "message": "Deploy?", "options": ["Yes", {"label": "No", "approves": False}]}
    created = await live.post("/v1/requests", json=ask)
    schema_for(document, "PublicRequest").validate(await created.json())
    pending = await (await live.get("/hitl/pending")).json()
    schema_for(document, "Pending").validate(pending)
    missing = await live.get("/v1/requests/nope")
    schema_for(document, "Error").validate(await missing.json())
    refused = {**ask, "status": "answered"}
    assert not schema_for(document, "CreateRequestBody").is_valid(refused)
    assert (await live.post("/v1/requests", json=refused)).status == 400


async def test_docs_page_lists_every_route(live: Client) -> None:
    response = await live.get("/docs")
    assert response.status == 200
    assert response.content_type == "text/html"
    page = await response.text()
    document = await (await live.get("/openapi.json")).json()
    for path in document["paths"]:
        assert f'<span class="path">{path}</span>' in page
    assert 'href="#schema-PublicRequest"' in page
