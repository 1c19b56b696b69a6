"""The browsable API exists only with DEBUG (item 8a of #8).

The renderer list is computed when settings load (DRF views copy it at import), so each case
runs in a fresh interpreter with the environment production would have."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PROBE = """
import json, sys, django
django.setup()
from django.conf import settings
from django.test import Client
from rest_framework.settings import api_settings
url = sys.argv[1] if len(sys.argv) > 1 else "/api/rooms/"
response = Client().get(url, HTTP_ACCEPT="text/html", secure=True)
print(json.dumps({"status": response.status_code, "type": response["Content-Type"],
                  "body": response.content.decode(),
                  "renderers": [r.__name__ for r in api_settings.DEFAULT_RENDERER_CLASSES]}))
"""


def _get_api_rooms_as_a_browser(tmp_path, *, debug: bool, url: str = "/api/rooms/") -> dict:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "DJANGO_DEBUG": "1" if debug else "0",
        "DJANGO_SECRET_KEY": "a-production-like-key-for-this-test-only-0123456789",
        "PARLEY_SQLITE_PATH": str(tmp_path / "probe.sqlite3"),
    }
    env.pop("DATABASE_URL", None)  # the request is anonymous: no database is read
    done = subprocess.run(
        [sys.executable, "-c", PROBE, url],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("debug", [False, True])
def test_accept_text_html_gets_json_unless_debug(tmp_path, debug):
    answer = _get_api_rooms_as_a_browser(tmp_path, debug=debug)
    assert answer["status"] == 401
    if debug:  # the development aid is still there for `make run`
        assert answer["type"].startswith("text/html")
        assert "<html" in answer["body"]
    else:
        assert answer["type"] == "application/json"
        assert json.loads(answer["body"]) == {
            "error": {
                "code": "not_authenticated",
                "message": "Authentication credentials were not provided.",
                "fields": {},
            }
        }
        assert answer["renderers"] == ["JSONRenderer"]  # no browsable API with DEBUG off


@pytest.mark.parametrize(
    ("url", "status", "code"),
    [("/api/no/such/thing/", 404, "not_found"), ("/hooks/a/b/", 404, "not_found")],
)
def test_with_debug_off_errors_under_api_and_hooks_are_json_for_a_browser(
    tmp_path, url, status, code
):
    answer = _get_api_rooms_as_a_browser(tmp_path, debug=False, url=url)
    assert answer["status"] == status
    assert answer["type"] == "application/json"
    assert json.loads(answer["body"])["error"]["code"] == code
