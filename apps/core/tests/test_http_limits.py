"""The HTTP body cap at the ASGI level (item 10b of #8): project/http_limits.py in front of
Django, driven with hand-made scopes and body chunks the way a server delivers them."""

import logging

import pytest
from asgiref.testing import ApplicationCommunicator
from django.conf import settings

from project.asgi import application
from project.http_limits import BodySizeLimitMiddleware

from .asgi_http import asgi_request, http_scope

CAP = 1000


def recording_app():
    """An app that reads its body the way Django's handler does (until the last chunk, or a
    disconnect) and counts what it was given."""
    seen = {"called": False, "bytes": 0, "disconnected": False}

    async def app(scope, receive, send):
        seen["called"] = True
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                seen["disconnected"] = True
                return  # Django: RequestAborted, no response
            seen["bytes"] += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return app, seen


def _post(length: int | None = None, **kwargs) -> dict:
    headers = [(b"content-type", b"application/octet-stream")]
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    return http_scope(method="POST", path="/accounts/login/", headers=headers, **kwargs)


def _header(response, name: bytes) -> bytes | None:
    return dict(response["headers"]).get(name)


async def test_a_declared_length_over_the_cap_is_413_at_once_without_reading():
    app, seen = recording_app()
    communicator = ApplicationCommunicator(
        BodySizeLimitMiddleware(app, max_body=CAP), _post(length=CAP + 1)
    )
    # No body is sent at all: the answer must not wait for one.
    start = await communicator.receive_output(timeout=2)
    assert start["status"] == 413
    assert (b"connection", b"close") in start["headers"]
    body = await communicator.receive_output(timeout=2)
    assert b"too large" in body["body"]
    await communicator.wait(timeout=2)
    assert seen["called"] is False


async def test_a_declared_length_at_the_cap_passes_through():
    app, seen = recording_app()
    response = await asgi_request(
        BodySizeLimitMiddleware(app, max_body=CAP), _post(length=CAP), [b"x" * CAP]
    )
    assert response["status"] == 200
    assert seen["bytes"] == CAP


@pytest.mark.parametrize("chunk", [1, 100, 999, 4096])
async def test_a_chunked_body_without_length_stops_at_the_cap_with_413(chunk):
    app, seen = recording_app()
    chunks = [b"y" * chunk] * (3 * CAP // chunk + 2)
    response = await asgi_request(BodySizeLimitMiddleware(app, max_body=CAP), _post(), chunks)
    assert response["status"] == 413
    assert seen["bytes"] <= CAP
    assert seen["disconnected"] is True


async def test_a_false_smaller_length_followed_by_more_bytes_is_refused():
    app, seen = recording_app()
    response = await asgi_request(
        BodySizeLimitMiddleware(app, max_body=CAP), _post(length=10), [b"z" * 10, b"z" * 500]
    )
    assert response["status"] == 400
    assert seen["bytes"] <= 10


async def test_a_false_smaller_length_followed_by_bytes_past_the_cap_is_413():
    app, seen = recording_app()
    chunks = [b"z" * 10, b"z" * (2 * CAP)]
    response = await asgi_request(
        BodySizeLimitMiddleware(app, max_body=CAP), _post(length=10), chunks
    )
    assert response["status"] == 413
    assert seen["bytes"] <= 10


@pytest.mark.parametrize("value", [b"abc", b"-1", b"1e3", b""])
async def test_an_unusable_content_length_is_400(value):
    app, seen = recording_app()
    scope = http_scope(method="POST", headers=[(b"content-length", value)])
    response = await asgi_request(BodySizeLimitMiddleware(app, max_body=CAP), scope)
    assert response["status"] == 400
    assert seen["called"] is False


async def test_conflicting_content_lengths_are_400():
    app, seen = recording_app()
    headers = [(b"content-length", b"5"), (b"content-length", b"5000")]
    response = await asgi_request(
        BodySizeLimitMiddleware(app, max_body=CAP), http_scope(method="POST", headers=headers)
    )
    assert response["status"] == 400
    assert seen["called"] is False


# --- the real application ------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_the_application_answers_413_for_a_stream_past_the_cap(settings, caplog):
    caplog.set_level(logging.INFO)
    settings.PARLEY_HTTP_MAX_BODY = CAP
    chunks = [b"login=" + b"a" * 600, b"a" * 600, b"a" * 600]
    response = await asgi_request(application, _post(), chunks)
    assert response["status"] == 413
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


@pytest.mark.django_db(transaction=True)
async def test_the_application_answers_413_for_a_declared_length_past_the_cap(settings):
    settings.PARLEY_HTTP_MAX_BODY = CAP
    response = await asgi_request(application, _post(length=CAP + 1), [b""])
    assert response["status"] == 413


@pytest.mark.django_db(transaction=True)
async def test_a_body_under_the_cap_reaches_django(settings):
    settings.PARLEY_HTTP_MAX_BODY = CAP
    body = b"login=a&password=b"
    scope = http_scope(
        method="POST",
        path="/accounts/login/",
        headers=[
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"content-length", str(len(body)).encode()),
        ],
    )
    response = await asgi_request(application, scope, [body])
    assert response["status"] == 403  # Django's CSRF check ran: the request got through


def test_the_default_cap_leaves_room_for_an_avatar_upload():
    multipart_overhead = 64 * 1024
    assert settings.PARLEY_AVATAR_MAX_BYTES + multipart_overhead <= settings.PARLEY_HTTP_MAX_BODY
    assert settings.PARLEY_HTTP_MAX_BODY >= settings.DATA_UPLOAD_MAX_MEMORY_SIZE


@pytest.mark.parametrize("path", ["/csp-report/", "/csp-report"])
async def test_the_csp_report_path_has_its_own_smaller_cap(path):
    """The anonymous, CSRF-exempt report endpoint is capped at PARLEY_CSP_REPORT_MAX_BYTES,
    before the app reads anything; other paths keep the general cap."""
    small = settings.PARLEY_CSP_REPORT_MAX_BYTES
    headers = [(b"content-length", str(small + 1).encode())]
    app, seen = recording_app()
    middleware = BodySizeLimitMiddleware(app, max_body=small * 10)

    refused = await asgi_request(middleware, http_scope(method="POST", path=path, headers=headers))
    assert refused["status"] == 413
    assert not seen["called"]

    body = b"x" * (small + 1)
    other = http_scope(method="POST", path="/accounts/login/", headers=headers)
    assert (await asgi_request(middleware, other, [body]))["status"] == 200
    assert seen["bytes"] == small + 1


async def test_the_csp_report_cap_holds_for_a_stream_without_length():
    small = settings.PARLEY_CSP_REPORT_MAX_BYTES
    app, seen = recording_app()
    middleware = BodySizeLimitMiddleware(app, max_body=small * 10)
    chunks = [b"x" * (small // 2)] * 3

    response = await asgi_request(
        middleware, http_scope(method="POST", path="/csp-report/"), chunks
    )

    assert response["status"] == 413
    assert seen["bytes"] <= small
