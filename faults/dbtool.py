"""Fixtures for the fault suite, made in a subprocess against the fault database.

    python -m faults.dbtool setup '{"prefix": "load", "users": 50, "rooms": 5}'

prints JSON: ``{"users": [{"id", "username", "session"}], "rooms": [{"id", "name"}]}`` (and
each user's API ``token`` with ``"tokens": true``). Users
get an unusable password (hashing 50 passwords would take longer than the case) and a
database session made exactly as ``django.contrib.auth.login`` makes one, so the websocket's
``AuthMiddlewareStack`` accepts the cookie. Rooms are made with the real ``room_create``.
The environment (DATABASE_URL or PARLEY_SQLITE_PATH) names the database; REDIS_URL is unset by
the caller, so nothing here touches a Redis.
"""

import json
import os
import sys


def setup(spec: dict) -> dict:
    from django.contrib.auth import get_user_model
    from django.contrib.sessions.backends.db import SessionStore

    from apps.chat.services import room_create

    user_model = get_user_model()
    prefix = spec["prefix"]
    users = []
    for i in range(int(spec["users"])):
        user = user_model.objects.create_user(username=f"{prefix}-u{i}", password=None)
        session = SessionStore()
        session["_auth_user_id"] = str(user.pk)
        session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
        session["_auth_user_hash"] = user.get_session_auth_hash()
        session.create()
        users.append({"id": user.pk, "username": user.username, "session": session.session_key})
        if spec.get("tokens"):
            from apps.accounts.tokens import token_create

            users[-1]["token"] = token_create(user=user, name="faults")[1]
    creator = user_model.objects.get(pk=users[0]["id"])
    rooms = []
    for i in range(int(spec["rooms"])):
        room = room_create(name=f"{prefix}-room-{i}", creator=creator)
        rooms.append({"id": room.pk, "name": room.name})
    return {"users": users, "rooms": rooms}


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django

    django.setup()
    command, payload = sys.argv[1], json.loads(sys.argv[2])
    if command != "setup":
        raise SystemExit(f"unknown command {command!r}")
    print(json.dumps(setup(payload)))


if __name__ == "__main__":
    main()
