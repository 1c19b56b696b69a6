"""The OpenAPI schema's view of the API (drf-spectacular), served at /api/schema/ and committed
as docs/openapi.yaml (``make schema``).

Views say what is theirs with ``@extend_schema`` (a summary, their bodies, their examples);
this module adds what every view has in common, derived from the view itself so a new view is
described the same way without an annotation:

- the token authentication (``AccessTokenAuthentication``: ``bearerAuth``);
- the error answers, as ``apps/api/exceptions.py`` and DRF make them today: 400
  ``{"<field>": ["…"]}`` (or ``{"detail": "…"}``) when there is input to refuse; 401 when the
  view authenticates; 403 for unsafe methods (a session without the CSRF header, "not your
  message", "owners only"); 404 for a path with an object in it; 413 and 415 for a request
  body; 429 with ``Retry-After`` when the view is throttled. Every other answer is
  ``{"detail": "…"}``."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.plumbing import ResolvedComponent

__all__ = ["AutoSchema"]

_UNSAFE = ("POST", "PUT", "PATCH", "DELETE")

ERROR_SCHEMA = {
    "type": "object",
    "description": "Any error but a 400: one sentence, translated to the request's language.",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}
VALIDATION_ERROR_SCHEMA = {
    "type": "object",
    "description": (
        "A refused input: its messages by input field (a list of sentences; a nested object "
        'for a list or object input), or `{"detail": "…"}` for the request as a whole.'
    ),
    "additionalProperties": {
        "oneOf": [
            {"type": "string"},
            {"type": "array", "items": {"type": "string"}},
            {"type": "object"},
        ]
    },
}

_ERRORS = {
    "400": "Refused input (see the body for which field and why).",
    "401": "Not authenticated, or an invalid, expired or revoked token "
    "(`WWW-Authenticate: Bearer`).",
    "403": "Not allowed (not yours, owners only), or a session request without its CSRF token.",
    "404": "No such object, or one you may not see (the same answer).",
    "413": "The request body is too large.",
    "415": "Unsupported Content-Type.",
    "429": "Too many requests: retry after `Retry-After` seconds.",
}


class AccessTokenScheme(OpenApiAuthenticationExtension):
    target_class = "apps.api.authentication.AccessTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "A personal access token (API tokens page, `POST /api/tokens/` or "
                "`POST /api/auth/token/`): `Authorization: Bearer <token>`. The older "
                "`Authorization: Token <token>` is accepted too."
            ),
        }


class AutoSchema(SpectacularAutoSchema):
    def get_summary(self):
        # Views give theirs with @extend_schema(summary=…); a view without one still gets a
        # readable one (the schema check wants every operation to have a summary).
        return self.get_operation_id().replace("_", " ").capitalize()

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        self._type_path_ids(operation)
        responses = operation.setdefault("responses", {})
        codes = set(self._error_codes(operation)) | {code for code in responses if code in _ERRORS}
        for code in sorted(codes):
            described = self._error_response(code)
            # A view may describe an error in its own words: the body is still the usual one.
            responses[code] = {**described, **responses.get(code, {})}
            responses[code].setdefault("content", described["content"])
        operation["responses"] = dict(sorted(responses.items()))
        return operation

    def _error_codes(self, operation) -> list[str]:
        parameters = operation.get("parameters", [])
        has_body = "requestBody" in operation
        # DRF's page numbers: a page past the end (or not a number) is a 404, not a 400.
        has_query = any(p["in"] == "query" and p["name"] != "page" for p in parameters)
        has_path = any(p["in"] == "path" for p in parameters)
        paginated = any(p["in"] == "query" and p["name"] == "page" for p in parameters)
        authenticates = bool(self.view.get_authenticators())
        codes = []
        if has_body or has_query:
            codes.append("400")
        if authenticates:
            codes.append("401")
            if self.method in _UNSAFE:
                codes.append("403")
        if has_path or paginated:
            codes.append("404")
        if has_body:
            codes += ["413", "415"]
        if self.view.get_throttles():
            codes.append("429")
        return codes

    def _type_path_ids(self, operation) -> None:
        """A ViewSet's ``{id}`` (``lookup_value_regex = r"\\d+"``) is a positive integer; the
        generator cannot tell from a queryset that needs a user."""
        if getattr(self.view, "lookup_value_regex", None) != r"\d+":
            return
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path" and parameter["name"] == "id":
                parameter["schema"] = {"type": "integer", "minimum": 1}

    def _error_response(self, code: str) -> dict:
        if code == "400":
            ref = self._component("ValidationError", VALIDATION_ERROR_SCHEMA)
        else:
            ref = self._component("Error", ERROR_SCHEMA)
        response = {
            "description": _ERRORS[code],
            "content": {"application/json": {"schema": ref}},
        }
        if code == "401":
            response["headers"] = {
                "WWW-Authenticate": {"schema": {"type": "string"}, "description": "`Bearer`"}
            }
        if code == "429":
            response["headers"] = {
                "Retry-After": {
                    "schema": {"type": "integer"},
                    "description": "Seconds to wait before the next request.",
                }
            }
        return response

    def _component(self, name: str, schema: dict) -> dict:
        component = ResolvedComponent(
            name=name, type=ResolvedComponent.SCHEMA, object=name, schema=schema
        )
        self.registry.register_on_missing(component)
        return component.ref
