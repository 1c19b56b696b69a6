"""The OpenAPI schema's view of the API (drf-spectacular), served at /api/schema/ and committed
as docs/openapi.yaml (``make schema``).

Views say what is theirs with ``@extend_schema`` (a summary, their bodies, their examples);
this module adds what every view has in common, derived from the view itself so a new view is
described the same way without an annotation:

- the token authentication (``AccessTokenAuthentication``: ``bearerAuth``);
- the error answers, all one body, the ``Error`` component (apps/api/exceptions.py):
  ``{"error": {"code", "message", "fields"}}``, with an example for each status: 400 when
  there is input to refuse; 401 when the view authenticates; 403 for unsafe methods (a session
  without the CSRF header, "not your message", "owners only"); 404 for a path with an object
  in it; 413 and 415 for a request body; 429 with ``Retry-After`` when the view is
  throttled."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.plumbing import ResolvedComponent

__all__ = ["AutoSchema"]

_UNSAFE = ("POST", "PUT", "PATCH", "DELETE")

ERROR_SCHEMA = {
    "type": "object",
    "description": (
        "Every error (4xx, and a 500) under /api/ and /hooks/: a machine code, one sentence "
        "translated to the request's language, and the refused inputs."
    ),
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {
                    "type": "string",
                    "description": (
                        "What went wrong, for programs: `invalid` (refused input), "
                        "`parse_error` (a body that is not what it says), `not_authenticated`, "
                        "`authentication_failed`, `permission_denied`, `not_found`, "
                        "`method_not_allowed`, `payload_too_large`, `unsupported_media_type`, "
                        "`throttled`, `server_error`; a 400 refused by the chat's own rules "
                        "carries that rule's code (`required`, `max_length`, `too_many`, "
                        "`deleted`…), the same as the websocket's error frames: treat an "
                        "unknown 400 code as `invalid`."
                    ),
                },
                "message": {
                    "type": "string",
                    "description": (
                        "One sentence for people. For refused input: the error about the "
                        "request as a whole, else the first field's first message, prefixed "
                        'with its name ("body: This field is required.").'
                    ),
                },
                "fields": {
                    "type": "object",
                    "description": (
                        "Input name → its messages; `{}` when the error is about the request "
                        "as a whole. Inputs inside a list or an object have dotted names "
                        "(`attachments.0`)."
                    ),
                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                },
            },
            "required": ["code", "message", "fields"],
        }
    },
    "required": ["error"],
}


def _example(code: str, message: str, fields: dict | None = None) -> dict:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


_EXAMPLES = {
    "400": (
        "Refused input",
        _example("invalid", "body: This field is required.", {"body": ["This field is required."]}),
    ),
    "401": (
        "No credentials",
        _example("not_authenticated", "Authentication credentials were not provided."),
    ),
    "403": ("Not allowed", _example("permission_denied", "You are not allowed to do that.")),
    "404": ("Not found", _example("not_found", "No such room.")),
    "413": ("Too large", _example("payload_too_large", "The request body is too large.")),
    "415": (
        "Unsupported Content-Type",
        _example("unsupported_media_type", 'Unsupported media type "text/plain" in request.'),
    ),
    "429": (
        "Throttled",
        _example("throttled", "Request was throttled. Expected available in 30 seconds."),
    ),
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
        summary, value = _EXAMPLES[code]
        name = f"Error{code}"
        response = {
            "description": _ERRORS[code],
            "content": {
                "application/json": {
                    "schema": self._component("Error", ERROR_SCHEMA),
                    "examples": {name: self._example_ref(name, summary, value)},
                }
            },
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

    def _example_ref(self, name: str, summary: str, value: dict) -> dict:
        """One example per status in components/examples, referenced by every operation."""
        component = ResolvedComponent(
            name=name,
            type=ResolvedComponent.EXAMPLE,
            object=name,
            schema={"summary": summary, "value": value},
        )
        self.registry.register_on_missing(component)
        return component.ref

    def _component(self, name: str, schema: dict) -> dict:
        component = ResolvedComponent(
            name=name, type=ResolvedComponent.SCHEMA, object=name, schema=schema
        )
        self.registry.register_on_missing(component)
        return component.ref
