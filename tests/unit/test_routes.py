"""The route table is what the app serves and what its OpenAPI document describes:
the Chalice routes and the served document are both made from ``ROUTES``."""

from __future__ import annotations

import json
from typing import Any

import pytest
from chalice.app import Chalice

from chalicelib.api import routes
from chalicelib.api.routes import ROUTES
from tests.unit.test_template import PUBLIC


def _served() -> dict[tuple[str, str], Any]:
    import app

    return {(p, m): entry for p, methods in app.app.routes.items() for m, entry in methods.items()}


def test_the_app_serves_each_route_of_the_table_with_its_view() -> None:
    served = _served()
    assert set(served) == {(r.path, r.method) for r in ROUTES}
    assert len(served) == len(ROUTES)  # no route declared twice
    for route in ROUTES:
        entry = served[(route.path, route.method)]
        assert entry.view_function.__wrapped__ is route.view, route
        assert entry.content_types == ["*/*"]  # the views answer a wrong media type: 415


def test_one_view_for_several_methods_of_a_path_is_one_chalice_route() -> None:
    served = _served()
    path = "/documents/{doc_id}/content"
    assert served[(path, "GET")].view_function is served[(path, "HEAD")].view_function
    assert served[(path, "GET")].view_function is not served[(path, "POST")].view_function


def test_only_health_and_the_openapi_document_are_public() -> None:
    assert {(r.path, r.method) for r in ROUTES if r.public} == PUBLIC


def test_a_public_route_needs_no_token_and_the_others_do() -> None:
    from chalice.test import Client

    import app

    with Client(app.app) as client:
        assert client.http.get("/openapi.json").status_code == 200
        for route in ROUTES:
            if route.public:
                continue
            path = route.path.format(
                doc_id="d1", n="1", user="bob", job_id="j1", webhook_id="w1", delivery_id="m1"
            )
            response = client.http.request(route.method, path, body=b"{}")
            assert response.status_code == 401, route


def test_a_table_that_names_one_path_and_method_twice_cannot_be_registered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(routes, "ROUTES", (*ROUTES, ROUTES[0]))
    with pytest.raises(ValueError, match="Duplicate method"):
        routes.register(Chalice(app_name="twice"))


def test_the_openapi_document_has_one_operation_per_route() -> None:
    from chalicelib.api.openapi import openapi_document

    spec = openapi_document(ROUTES)
    documented = {(p, m.upper()) for p, ops in spec["paths"].items() for m in ops}
    assert documented == {(r.path, r.method) for r in ROUTES}
    for route in ROUTES:
        op = spec["paths"][route.path][route.method.lower()]
        assert op["summary"] == route.summary
        assert str(route.ok) in op["responses"]
        assert (op.get("security") == []) == route.public
        if not route.public:
            assert {"401", "429", "503"} <= set(op["responses"]), route


def test_every_schema_and_link_the_document_names_exists() -> None:
    from chalicelib.api.openapi import openapi_document

    spec = openapi_document(ROUTES)
    text = json.dumps(spec)
    schemas = spec["components"]["schemas"]
    for ref in {part.split('"')[0] for part in text.split('"$ref": "#/components/schemas/')[1:]}:
        assert ref in schemas, ref
    ids = [op["operationId"] for ops in spec["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    linked = {
        link["operationId"]
        for ops in spec["paths"].values()
        for op in ops.values()
        for response in op["responses"].values()
        for link in response.get("links", {}).values()
    }
    assert linked and linked <= set(ids)
