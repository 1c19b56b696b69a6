"""The OpenAPI schema (issue 13, item 2): it validates without a warning, the committed
docs/openapi.yaml is what the code generates, it describes every route with a summary, its
errors and its authentication, and the docs pages are public and run under the site's CSP (no
inline script, every asset from our own origin)."""

import json
import re
from html.parser import HTMLParser
from io import StringIO
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.core.management import call_command
from django.urls import URLPattern, URLResolver, get_resolver

from apps.api.testing import error_of

COMMITTED = Path(settings.BASE_DIR) / "docs" / "openapi.yaml"


@pytest.fixture(scope="module")
def generated() -> str:
    out = StringIO()
    # --validate: against the OpenAPI 3 JSON schema; --fail-on-warn: no guessed serializer,
    # no unresolved field or authenticator, no operationId collision.
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)
    return out.getvalue()


@pytest.fixture(scope="module")
def schema(generated) -> dict:
    return yaml.safe_load(generated)


def _operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


def test_the_committed_schema_is_the_generated_one(generated):
    assert COMMITTED.exists(), "docs/openapi.yaml is missing: run `make schema` and commit it"
    assert COMMITTED.read_text() == generated, (
        "docs/openapi.yaml is not what the code generates: run `make schema` and commit it"
    )


def _api_routes(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _api_routes(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern


def test_every_api_route_is_in_the_schema(schema):
    """Every route under /api/ but the docs themselves and the catch-all 404."""
    undocumented = {"api:schema", "api:docs", "api:redoc", "api:not-found"}
    paths = {re.sub(r"\{[^}]+\}", "{}", path) for path in schema["paths"]}
    missing = []
    for route, pattern in _api_routes(get_resolver().url_patterns):
        if not route.startswith("api/") or f"api:{pattern.name}" in undocumented:
            continue
        if route.startswith("api/^"):  # a router's regex route (format-suffix-free here)
            route = "api/" + route[5:].rstrip("$")
            route = re.sub(r"\(\?P<[^>]+>[^)]*\)", "{}", route)
        route = "/" + re.sub(r"<[^>]+>", "{}", route)
        if route not in paths:
            missing.append(route)
    assert not missing


def test_every_operation_has_a_summary_and_its_error_answers(schema):
    for method, path, operation in _operations(schema):
        assert operation.get("summary"), (method, path)
        responses = operation["responses"]
        assert any(code.startswith("2") for code in responses), (method, path)
        assert "429" in responses, (method, path)  # every view is throttled
        assert "Retry-After" in responses["429"]["headers"], (method, path)
        if "{" in path:
            assert "404" in responses, (method, path)
        if "requestBody" in operation:
            assert {"400", "413", "415"} <= set(responses), (method, path)
        for code, response in responses.items():
            if code.startswith("4"):
                assert "application/json" in response["content"], (method, path, code)


def test_authentication_is_a_bearer_token_or_the_session(schema):
    schemes = schema["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {**schemes["bearerAuth"], "type": "http", "scheme": "bearer"}
    assert schemes["cookieAuth"]["in"] == "cookie"
    for method, path, operation in _operations(schema):
        if (method, path) in {("POST", "/api/auth/token/")}:
            # The password in the body is the credential; a header is ignored.
            assert operation["security"] == [{}]
            assert "401" not in operation["responses"]
            continue
        assert {"bearerAuth": []} in operation["security"], (method, path)
        assert {"cookieAuth": []} in operation["security"], (method, path)
        assert "401" in operation["responses"], (method, path)


def test_errors_are_documented_as_the_api_answers_them(schema, as_alice, anon):
    """One Error component, {"error": {"code", "message", "fields"}}, for every documented 4xx,
    each with an example of that shape; and the API answers it."""
    error = schema["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]
    inner = error["properties"]["error"]
    assert set(inner["properties"]) == set(inner["required"]) == {"code", "message", "fields"}
    assert "ValidationError" not in schema["components"]["schemas"]
    for method, path, operation in _operations(schema):
        for status, response in operation["responses"].items():
            if not status.startswith("4"):
                continue
            content = response["content"]["application/json"]
            assert content["schema"] == {"$ref": "#/components/schemas/Error"}, (path, status)
            assert content["examples"] == {
                f"Error{status}": {"$ref": f"#/components/examples/Error{status}"}
            }, (path, status)
    examples = schema["components"]["examples"]
    for name, example in examples.items():
        assert set(example["value"]) == {"error"}, name
        assert set(example["value"]["error"]) == {"code", "message", "fields"}, name
    assert examples["Error404"]["value"] == {
        "error": {"code": "not_found", "message": "No such room.", "fields": {}}
    }
    value = examples["Error400"]["value"]
    assert value["error"]["code"] == "invalid" and value["error"]["fields"]

    assert error_of(anon.get("/api/rooms/"))["code"] == "not_authenticated"  # 401
    assert error_of(as_alice.get("/api/rooms/999999/"))["code"] == "not_found"  # 404
    refused = as_alice.post("/api/rooms/", {"name": 7}, format="json")
    assert refused.status_code == 400
    assert isinstance(error_of(refused)["fields"]["name"], list)


def test_the_schema_is_public_yaml_or_json(anon, schema):
    response = anon.get("/api/schema/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi")
    assert yaml.safe_load(response.content)["paths"].keys() == schema["paths"].keys()

    response = anon.get("/api/schema/?format=json")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi+json")
    assert json.loads(response.content)["openapi"].startswith("3.")


class _Assets(HTMLParser):
    """The page's scripts (src, or None for an inline one), stylesheets and inline styles."""

    def __init__(self):
        super().__init__()
        self.scripts, self.links, self.styles, self._in_script = [], [], 0, False
        self.inline_script = ""

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script":
            self.scripts.append(attrs.get("src"))
            self._in_script = attrs.get("src") is None
        elif tag == "link":
            self.links.append(attrs.get("href"))
        elif tag == "style":
            self.styles += 1
        assert "style" not in attrs, (tag, attrs)  # a style= attribute: blocked by the CSP

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.inline_script += data


def _same_origin(url: str) -> bool:
    return url.startswith("/") and not url.startswith("//")


@pytest.mark.parametrize("url", ["/api/docs/", "/api/redoc/"])
def test_the_docs_pages_load_only_same_origin_assets_and_no_inline_script(anon, url):
    response = anon.get(url)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    policy = response["Content-Security-Policy"]
    # 'self' (the nonce too when a page uses one: these do not, django-csp leaves it out).
    assert re.search(r"script-src 'self'( 'nonce-[^']+')?(;|$)", policy)
    assets = _Assets()
    assets.feed(response.content.decode())
    assert assets.scripts and None not in assets.scripts  # no inline <script>
    assert not assets.inline_script.strip()
    assert assets.styles == 0
    for src in [*assets.scripts, *assets.links]:
        assert _same_origin(src), src
    for src in assets.scripts:
        if src.startswith(settings.STATIC_URL) or src.startswith("/" + settings.STATIC_URL):
            assert "drf_spectacular_sidecar" in src


def test_swagger_ui_starts_from_a_same_origin_script(anon):
    page = anon.get("/api/docs/").content.decode()
    assets = _Assets()
    assets.feed(page)
    start = [src for src in assets.scripts if "script" in src.split("?", 1)[-1]]
    assert start == ["/api/docs/?script="]

    response = anon.get(start[0])

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/javascript")
    assert b"SwaggerUIBundle" in response.content
    assert b"/api/schema/" in response.content


def test_only_redoc_allows_inline_styles_and_never_inline_scripts(anon):
    """Redoc's styled-components insert <style> elements at run time (no nonce reaches them)."""
    redoc = anon.get("/api/redoc/")["Content-Security-Policy"]
    swagger = anon.get("/api/docs/")["Content-Security-Policy"]

    assert "style-src 'self' 'unsafe-inline'" in redoc
    assert "'unsafe-inline'" not in swagger
    for policy in (redoc, swagger):
        script_src = re.search(r"script-src ([^;]*)", policy).group(1)
        assert "'unsafe-inline'" not in script_src
        assert "'unsafe-eval'" not in script_src


def test_the_sidecar_assets_are_served_from_our_static_files():
    from django.contrib.staticfiles import finders

    for name in (
        "drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js",
        "drf_spectacular_sidecar/swagger-ui-dist/swagger-ui.css",
        "drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js",
        "api/docs.css",
    ):
        assert finders.find(name), name
