"""OpenAPI links for the schema (a drf-spectacular postprocessing hook).

drf-spectacular describes each operation alone. Links say how the answer of one operation feeds
the path of the next (``POST /api/rooms/`` → ``GET /api/rooms/{id}/`` with the new room's id):
API clients and readers follow them, and schemathesis's stateful phase
(fuzz/) chains calls through them, so it reaches real rooms, messages, tokens,
bots and webhooks instead of guessing ids.

Operations are named by operationId; a link to an operation that no longer exists fails
``make schema`` instead of quietly vanishing."""

ROOM_BY_ID = {"id": "$response.body#/id"}
ROOM_BY_ROOM_PK = {"room_pk": "$response.body#/id"}

# A room's answer (create, DM, join): everything under /api/rooms/{id}/ and {room_pk}.
_ROOM_TARGETS = {
    "rooms_retrieve": ROOM_BY_ID,
    "rooms_partial_update": ROOM_BY_ID,
    "rooms_destroy": ROOM_BY_ID,
    "rooms_join_create": ROOM_BY_ID,
    "rooms_leave_create": ROOM_BY_ID,
    "rooms_members_list": ROOM_BY_ID,
    "rooms_members_add": ROOM_BY_ID,
    "rooms_membership_partial_update": ROOM_BY_ID,
    "rooms_messages_list": ROOM_BY_ID,
    "rooms_messages_send": ROOM_BY_ID,
    "rooms_read_create": ROOM_BY_ID,
    "rooms_receipts_list": ROOM_BY_ID,
    "attachments_upload": ROOM_BY_ROOM_PK,
    "rooms_webhooks_list": ROOM_BY_ROOM_PK,
    "rooms_webhooks_create": ROOM_BY_ROOM_PK,
}
_MESSAGE = {"room_pk": "$response.body#/room", "id": "$response.body#/id"}
_BOT = {"id": "$response.body#/id"}
_TOKEN = {"id": "$response.body#/id"}

# source operationId → {target operationId: {path parameter: runtime expression}}
LINKS: dict[str, dict[str, dict[str, str]]] = {
    "rooms_create": _ROOM_TARGETS,
    "dm_create": _ROOM_TARGETS,
    "rooms_join_create": _ROOM_TARGETS,
    "rooms_list": {"rooms_retrieve": {"id": "$response.body#/results/0/id"}},
    "rooms_messages_send": {
        "messages_retrieve": _MESSAGE,
        "messages_edit": _MESSAGE,
        "messages_delete": _MESSAGE,
        "reactions_add": _MESSAGE,
    },
    "reactions_add": {
        "reactions_remove": {
            "room_pk": "$request.path.room_pk",
            "id": "$request.path.id",
            "emoji": "$request.body#/emoji",
        },
        "messages_retrieve": {"room_pk": "$request.path.room_pk", "id": "$request.path.id"},
    },
    "rooms_members_add": {
        "rooms_members_remove": {"room_pk": "$request.path.id", "user_id": "$response.body#/id"}
    },
    "attachments_upload": {
        "attachments_discard": {"room_pk": "$request.path.room_pk", "id": "$response.body#/id"}
    },
    "rooms_webhooks_create": {
        "rooms_webhooks_revoke": {"room_pk": "$request.path.room_pk", "id": "$response.body#/id"}
    },
    "tokens_create": {"tokens_retrieve": _TOKEN, "tokens_revoke": _TOKEN},
    "bots_create": {
        "bots_retrieve": _BOT,
        "bots_update": _BOT,
        "bots_delete": _BOT,
        "bots_tokens_list": _BOT,
        "bots_tokens_create": _BOT,
    },
    "bots_tokens_create": {
        "bots_tokens_revoke": {"id": "$request.path.id", "token_id": "$response.body#/id"}
    },
    "profiles_me_retrieve": {"profiles_retrieve": {"id": "$response.body#/id"}},
}

_METHODS = ("get", "post", "put", "patch", "delete")


def _link_name(operation_id: str) -> str:
    return "".join(part.capitalize() for part in operation_id.split("_"))


def add_links(result, generator, request, public):
    """POSTPROCESSING_HOOKS entry: every 2xx answer of a LINKS source gets its ``links``."""
    operations = {}
    for item in result.get("paths", {}).values():
        for method in _METHODS:
            if method in item:
                operations[item[method]["operationId"]] = item[method]
    for source, targets in LINKS.items():
        missing = [name for name in (source, *targets) if name not in operations]
        if missing:
            raise ValueError(f"apps/api/schema_links.py names unknown operations: {missing}")
        links = {
            _link_name(target): {"operationId": target, "parameters": dict(parameters)}
            for target, parameters in targets.items()
        }
        for code, response in operations[source]["responses"].items():
            if code.startswith("2") and code != "204":
                response["links"] = links
    return result
