"""The message object, defined once: what the API's ``MessageSerializer`` answers and what a JSON
websocket frame carries (``{"type": "message", "room", "seq", "message": {…}}``).

``message_data(message)`` is a plain dict of str/int/bool/None/list/dict (msgpack-safe: it
travels inside the channel-layer event, built once per change by ``realtime.change_event``)
and is the same for every viewer: reactions carry no ``me``, URLs (avatar, attachment
``url``/``thumbnail_url``) are site-relative. The serializer adds what depends on the request:
``me`` on each reaction (``with_viewer``) and absolute URLs (``absolute_urls``).

Reads only what ``selectors.with_timeline`` loads (author profile, reactions, attachments,
mention ids): no query for a message read that way or handed over by the services."""

from collections.abc import Callable
from datetime import UTC, datetime

__all__ = ["absolute_urls", "message_data", "timestamp", "with_viewer"]


def timestamp(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z``, as DRF writes a DateTimeField with TIME_ZONE = "UTC"."""
    if value is None:
        return None
    text = value.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def person_data(profile) -> dict:
    """A message's ``author`` (the API's ``PersonSerializer``, avatar site-relative)."""
    return {
        "id": profile.user_id,
        "username": profile.user.username,
        "display_name": profile.display_name,
        "name": profile.name,
        "avatar": profile.avatar.url if profile.avatar else None,
        "is_bot": profile.is_bot,
    }


def attachment_data(attachment) -> dict:
    return {
        "id": attachment.pk,
        "name": attachment.name,
        "size": attachment.size,
        "content_type": attachment.content_type,
        "kind": attachment.kind,
        "width": attachment.width,
        "height": attachment.height,
        "url": attachment.url,
        "thumbnail_url": attachment.thumbnail_url,
    }


def reactions_data(message) -> list[dict]:
    """``[{"emoji", "count", "users"}]`` in first-reacted order (``Message.reaction_summary``
    without the names, which the article shows and the object does not)."""
    summary: dict[str, dict] = {}
    for reaction in message.reactions.all():
        entry = summary.get(reaction.emoji)
        if entry is None:
            entry = summary[reaction.emoji] = {"emoji": reaction.emoji, "count": 0, "users": []}
        entry["count"] += 1
        entry["users"].append(reaction.user_id)
    return list(summary.values())


def message_data(message) -> dict:
    """The message in its current state (see MessageSerializer's docstring for the fields)."""
    deleted = message.deleted_at is not None
    return {
        "id": message.pk,
        "room": message.room_id,
        "seq": message.seq,
        "version": message.version,
        "author": person_data(message.author.profile),
        "body": message.body,
        "html": message.html,
        "client_id": str(message.client_id) if message.client_id is not None else None,
        "created_at": timestamp(message.created_at),
        "edited_at": timestamp(message.edited_at),
        "deleted": deleted,
        "reply_to": message.reply_to_id,
        "reactions": reactions_data(message),
        "mentions": [] if deleted else list(message.mention_ids),
        "attachments": [attachment_data(a) for a in message.files],
    }


def with_viewer(data: dict, user_id) -> dict:
    """A copy of ``message_data`` with ``me`` on each reaction (did ``user_id`` react)."""
    reactions = [{**r, "me": user_id in r["users"]} for r in data["reactions"]]
    return {**data, "reactions": reactions}


def absolute_urls(data: dict, absolute: Callable[[str], str]) -> dict:
    """A copy of ``data`` with its URLs made absolute by ``absolute``
    (``request.build_absolute_uri``)."""
    data = {**data}
    author = data["author"]
    if author["avatar"] is not None:
        data["author"] = {**author, "avatar": absolute(author["avatar"])}
    if data["attachments"]:
        data["attachments"] = [
            {
                **a,
                "url": absolute(a["url"]),
                "thumbnail_url": absolute(a["thumbnail_url"]) if a["thumbnail_url"] else None,
            }
            for a in data["attachments"]
        ]
    return data
