"""Drive an ASGI application with a hand-made HTTP scope, as a server would."""

from asgiref.testing import ApplicationCommunicator


def http_scope(
    *,
    method: str = "GET",
    path: str = "/",
    raw_path: bytes | None = None,
    query_string: bytes = b"",
    headers=(),
) -> dict:
    names = {name.lower() for name, _ in headers}
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode() if raw_path is None else raw_path,
        "query_string": query_string,
        "root_path": "",
        "headers": ([] if b"host" in names else [(b"host", b"testserver")]) + list(headers),
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }


async def asgi_request(app, scope: dict, chunks=(b"",), timeout: float = 10) -> dict:
    """Send the body in ``chunks`` (``more_body`` on all but the last); return the response
    as ``{"status", "headers", "body"}``."""
    communicator = ApplicationCommunicator(app, scope)
    for i, chunk in enumerate(chunks):
        more = i < len(chunks) - 1
        await communicator.send_input({"type": "http.request", "body": chunk, "more_body": more})
    start = await communicator.receive_output(timeout)
    assert start["type"] == "http.response.start", start
    body = b""
    while True:
        message = await communicator.receive_output(timeout)
        assert message["type"] == "http.response.body", message
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    await communicator.wait(timeout)
    return {"status": start["status"], "headers": start.get("headers", []), "body": body}
