"""Test helpers for the API's one error shape (apps/api/exceptions.py)."""

__all__ = ["error_of"]


def error_of(response) -> dict:
    """The ``{"code", "message", "fields"}`` of an error answer, after checking that the body
    is exactly ``{"error": {…}}`` in JSON with those three keys (``fields``: name → list of
    strings; ``message``: a non-empty string)."""
    content_type = response.get("Content-Type") if hasattr(response, "get") else None
    assert content_type is None or content_type.startswith("application/json"), content_type
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "fields"}, error
    assert isinstance(error["code"], str) and error["code"], error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["fields"], dict), error
    for name, messages in error["fields"].items():
        assert isinstance(name, str) and name, error
        assert isinstance(messages, list) and messages, error
        assert all(isinstance(message, str) and message for message in messages), error
    return error


def inputs_of(response) -> list[str]:
    """The inputs an error answer refuses, without their dotted tails (``attachments.0`` →
    ``attachments``), in order and each once."""
    names = [name.split(".")[0] for name in error_of(response)["fields"]]
    return list(dict.fromkeys(names))
