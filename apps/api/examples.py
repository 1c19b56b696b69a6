"""Example objects for the OpenAPI schema (``/api/docs/`` shows them beside each answer): one per
object the API returns, attached to its serializer with ``extend_schema_serializer`` so every
operation answering that object carries it. The values follow the serializers' fields (a test
renders each serializer's declared fields and compares the keys)."""

from drf_spectacular.utils import OpenApiExample

ALICE = {
    "id": 7,
    "username": "alice",
    "display_name": "Alice",
    "name": "Alice",
    "avatar": "https://chat.example.org/media/avatars/7/a1b2c3.webp",
    "is_bot": False,
}

ATTACHMENT = {
    "id": 31,
    "name": "diagram.png",
    "size": 48213,
    "content_type": "image/png",
    "kind": "image",
    "width": 1200,
    "height": 800,
    "url": "https://chat.example.org/files/31/diagram.png",
    "thumbnail_url": "https://chat.example.org/files/31/thumbnail/",
}

MESSAGE = {
    "id": 42,
    "room": 1,
    "seq": 17,
    "version": 23,
    "author": ALICE,
    "body": "see **this**",
    "html": "<p>see <strong>this</strong></p>",
    "client_id": "9b2f7c1e-5d1a-4c1e-9a57-3f0d2b8e6a41",
    "created_at": "2026-11-30T09:15:02.114Z",
    "edited_at": "2026-11-30T09:16:40.002Z",
    "deleted": False,
    "reply_to": 40,
    "reactions": [{"emoji": "👍", "count": 2, "users": [7, 9], "me": True}],
    "mentions": [9],
    "attachments": [ATTACHMENT],
}

ROOM = {
    "id": 1,
    "url": "https://chat.example.org/api/rooms/1/",
    "kind": "public",
    "name": "design",
    "is_private": False,
    "title": "design",
    "topic": "Icons and colours",
    "room_mentions": "members",
    "created_at": "2026-10-02T12:00:00Z",
    "last_message_at": "2026-11-30T09:15:02.114Z",
    "last_seq": 120,
    "member_count": 12,
    "is_member": True,
    "role": "member",
    "notify": "mentions",
    "last_read_seq": 117,
    "unread_count": 3,
    "mention_count": 1,
    "messages_url": "https://chat.example.org/api/rooms/1/messages/",
    "members_url": "https://chat.example.org/api/rooms/1/members/",
}

DM_ROOM = {
    **ROOM,
    "id": 9,
    "url": "https://chat.example.org/api/rooms/9/",
    "kind": "dm",
    "name": "",
    "is_private": True,
    "title": "Bob",
    "topic": "",
    "member_count": 2,
    "role": "owner",
    "notify": "all",
    "messages_url": "https://chat.example.org/api/rooms/9/messages/",
    "members_url": "https://chat.example.org/api/rooms/9/members/",
}

PROFILE = {**ALICE, "presence": "online"}
MY_PROFILE = {**PROFILE, "show_presence": True, "send_read_receipts": True, "language": "ru"}
MEMBER = {**ALICE, "role": "owner"}
UNREAD = {"room": 1, "last_read_seq": 117, "unread_count": 3, "mention_count": 1}
RECEIPT = {"user": 9, "last_read_seq": 117}
SEARCH_RESULT = {
    "id": 42,
    "room": 1,
    "seq": 17,
    "author": ALICE,
    "created_at": "2026-11-30T09:15:02.114Z",
    "snippet": "see this diagram of the new icons",
    "highlights": [[4, 8]],
    "url": "https://chat.example.org/chat/room/1/?around=17#message-42",
}
TOKEN = {
    "id": 3,
    "name": "deploy script",
    "prefix": "pat_Xk3v9QaB",
    "created_at": "2026-11-01T08:00:00Z",
    "last_used_at": "2026-11-30T09:00:12Z",
    "expires_at": "2027-11-01T08:00:00Z",
}
BOT = {
    "id": 12,
    "username": "deploy-bot",
    "display_name": "Deploy",
    "name": "Deploy",
    "avatar": None,
    "is_bot": True,
    "created_at": "2026-11-01T08:00:00Z",
}
WEBHOOK = {
    "id": 5,
    "name": "Deploys",
    "prefix": "hook_AbCdEf",
    "bot": {**BOT, "id": 13, "username": "deploys-bot", "display_name": "Deploys"},
    "created_at": "2026-11-01T08:00:00Z",
    "last_used_at": None,
}
del WEBHOOK["bot"]["created_at"]


def example(name: str, value: dict) -> OpenApiExample:
    """An answer's example (never offered as a request body)."""
    return OpenApiExample(name, value=value, response_only=True)
