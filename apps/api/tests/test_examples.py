"""The schema's example objects (apps/api/examples.py) have exactly the fields their serializers
answer, so /api/docs/ never shows a field the API does not send, or misses one it does."""

import pytest

from apps.api import bot_views, examples, serializers, token_views


def _fields(serializer_class) -> set[str]:
    return set(serializer_class().fields)


@pytest.mark.parametrize(
    ("serializer_class", "example"),
    [
        (serializers.MessageSerializer, examples.MESSAGE),
        (serializers.AttachmentSerializer, examples.ATTACHMENT),
        (serializers.RoomSerializer, examples.ROOM),
        (serializers.RoomSerializer, examples.DM_ROOM),
        (serializers.PersonSerializer, examples.ALICE),
        (serializers.ProfileSerializer, examples.PROFILE),
        (serializers.MyProfileSerializer, examples.MY_PROFILE),
        (serializers.MemberSerializer, examples.MEMBER),
        (serializers.UnreadStateSerializer, examples.UNREAD),
        (serializers.ReceiptSerializer, examples.RECEIPT),
        (serializers.SearchResultSerializer, examples.SEARCH_RESULT),
        (token_views.TokenSerializer, examples.TOKEN),
        (token_views.TokenCreatedSerializer, token_views._CREATED_EXAMPLE.value),
        (bot_views.BotSerializer, examples.BOT),
        (bot_views.WebhookSerializer, examples.WEBHOOK),
        (serializers.PersonSerializer, examples.WEBHOOK["bot"]),
        (serializers.PersonSerializer, examples.MESSAGE["author"]),
    ],
)
def test_an_example_has_its_serializers_fields(serializer_class, example):
    assert set(example) == _fields(serializer_class)


def test_every_operation_answering_a_body_has_an_example(client):
    schema = client.get("/api/schema/?format=json").json()
    missing = []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if path == "/api/" or method not in {"get", "post", "patch", "put", "delete"}:
                continue
            bodies = [
                content
                for code, answer in operation["responses"].items()
                if code.startswith("2")
                for content in answer.get("content", {}).values()
            ]
            if bodies and not any("examples" in body for body in bodies):
                missing.append(f"{method.upper()} {path}")
    assert missing == []
