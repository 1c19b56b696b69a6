"""The HTML pages and their forms. Every action goes through its one service function (the
access check, validation, saving and events live there); each view only maps the outcome:
success -> redirect (or, for htmx, the fragment to swap), ``ValidationError``/``RateLimited`` ->
the form again with the error, ``RoomNotFound`` -> 404, ``NotAllowed`` -> 403 with its text.
Every form works without JavaScript."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from apps.profiles import selectors as profile_selectors

from . import emoji, errors, presence, receipts, selectors, services, webhooks
from . import search as search_
from .forms import (
    MemberAddForm,
    MessageForm,
    NotifyForm,
    ReadForm,
    RoomCreateForm,
    RoomUpdateForm,
    WebhookForm,
)
from .models import Membership, Room

# The members field's suggestions (a <datalist>): enough for a small team's server; beyond it
# people type the username.
MEMBER_OPTIONS = 300
# The settings page lists at most this many members of a public room ("and N more" after
# them); a private group's or a conversation's members are listed in full (they are few).
MEMBER_LIST_LIMIT = 200
# The room page opens at the viewer's first unread message when it is among the newest
# UNREAD_PAGE_LIMIT messages (a longer page than usual), with UNREAD_CONTEXT read ones above it.
UNREAD_PAGE_LIMIT = 200
UNREAD_CONTEXT = 5
# ``?around=<seq>`` (a search result, a reply's original): this many messages on each side.
AROUND_CONTEXT = 25


def _room_or_404(request, pk: int) -> Room:
    try:
        return selectors.room_get_for_user(user=request.user, pk=pk)
    except Room.DoesNotExist:
        raise Http404(_("No such room.")) from None


def _refused(request, room: Room | None, exc: errors.ServiceError, *, status: int = 403):
    """A refusal the page cannot show in a form (not allowed here): a page that says why."""
    context = {"room": room, "error": errors.describe(exc)}
    return render(request, "chat/refused.html", context, status=status)


def _member_options():
    return profile_selectors.profile_list()[:MEMBER_OPTIONS]


# --- Home: the directory of public rooms, and creating a room or a private group ---------------
def _directory_context(user) -> dict:
    return {"public_rooms": selectors.directory(user=user)}


@login_required
@require_GET
def home(request):
    context = {
        "form": RoomCreateForm(),
        "member_options": _member_options(),
        **_directory_context(request.user),
    }
    return render(request, "chat/home.html", context)


@login_required
@require_GET
def room_list(request):
    """The directory alone (refetched by parley.js on a "directory" frame)."""
    return render(request, "chat/home.html#room-list", _directory_context(request.user))


@login_required
@require_GET
def sidebar(request):
    """The sidebar's rooms and conversations alone (refetched by parley.js on a "sidebar"
    frame). ``?current=<room id>`` marks the room the page shows."""
    current = request.GET.get("current", "")
    current_id = int(current) if current.isascii() and current.isdigit() else None
    return render(request, "chat/sidebar.html", {"current_room_id": current_id})


@login_required
@require_POST
def room_create(request):
    form = RoomCreateForm(request.POST)
    if form.is_valid():
        private = form.cleaned_data["private"]
        try:
            room = services.room_create(
                name=form.cleaned_data["name"],
                creator=request.user,
                private=private,
                members=form.member_names() if private else (),
            )
        except (ValidationError, services.RateLimited) as exc:
            field = "members" if getattr(exc, "code", None) == "members" else "name"
            form.add_error(field, errors.describe(exc))
        else:
            if request.htmx:
                return HttpResponseClientRedirect(room.get_absolute_url())
            return redirect(room)
    if request.htmx:
        return render(request, "chat/home.html#room-create-form", {"form": form})
    context = {
        "form": form,
        "member_options": _member_options(),
        **_directory_context(request.user),
    }
    return render(request, "chat/home.html", context, status=400)


# --- The room page ------------------------------------------------------------------------------
def _history_context(room: Room, message_list: list) -> dict:
    # Not "messages": that name belongs to django.contrib.messages in every template.
    has_older = bool(message_list) and message_list[0].seq > 1
    return {"room": room, "message_list": message_list, "has_older": has_older}


def _membership_state(room: Room, user):
    """The viewer's UnreadState in this room (pointer, notify, role), None when not a member."""
    return selectors.unread_states(user_id=user.pk, room_ids=[room.pk]).get(room.pk)


def _default_notify(room: Room) -> str:
    return Membership.Notify.ALL if room.kind == Room.Kind.DM else Membership.Notify.MENTIONS


def _sidebar_with_entry(room: Room, user):
    """The page's sidebar (passed to the template, so the context processor does not read it
    again) and the viewer's entry for this room in it (pointer, notify, role): None when they
    are not a member. One read for both."""
    side = selectors.sidebar(user=user)
    entry = next((e for e in (*side.rooms, *side.dms) if e.room_id == room.pk), None)
    return side, entry


def _page_size_for(membership) -> int | None:
    """How many of the newest messages the room page opens with: the usual page, or, when the
    viewer's first unread message is further back, enough to start just before it (at most
    UNREAD_PAGE_LIMIT; beyond that room.js loads older pages until it finds it). Seqs are
    dense in a room (a deleted message keeps its row), so ``through - pointer`` is the number
    of messages after the pointer."""
    if membership is None:
        return None
    wanted = membership.through - membership.pointer + UNREAD_CONTEXT
    if membership.unread <= 0 or wanted <= settings.PARLEY_HISTORY_PAGE_SIZE:
        return None
    return min(wanted, UNREAD_PAGE_LIMIT)


def _dm_partner(room, user) -> dict:
    """A DM's other participant and their presence, for the header's dot (one cache read; the
    members were loaded for the title)."""
    if room.dm_key is None:
        return {}
    members = getattr(room, "member_list", None)
    if members is None:
        members = list(room.memberships.select_related("user__profile"))
    other = next((m.user for m in members if m.user_id != user.pk), None)
    if other is None:
        return {}
    state = presence.states_for([other.profile])[other.pk]
    return {"dm_partner_id": other.pk, "dm_presence": state}


def _around(request, room: Room):
    """``?around=<seq>``: the messages around that one, or None (no such parameter, garbage,
    or out of the room's range: the page opens at the latest messages)."""
    raw = request.GET.get("around")
    if raw is None:
        return None
    try:
        seq = errors.parse_seq(raw, name="around")
    except ValidationError:
        return None
    if not 1 <= seq <= room.last_seq:
        return None
    return selectors.message_list_around(
        room=room, seq=seq, before=AROUND_CONTEXT, after=AROUND_CONTEXT
    )


def _render_room(request, room: Room, *, form=None, error=None, status=200, around=None):
    side, membership = _sidebar_with_entry(room, request.user)
    if around is not None:
        page = around.messages
    else:
        page = selectors.message_list_latest(room=room, limit=_page_size_for(membership))
    context = {
        **_history_context(room, page),
        "around": around,
        "title": selectors.room_title_for(room=room, user=request.user),
        **_dm_partner(room, request.user),
        "form": form or MessageForm(),
        "error": error,
        "can_manage": selectors.room_is_managed_by(room=room, user=request.user),
        "sidebar": side,
        "membership": membership,
        "default_notify": _default_notify(room),
        "notify_choices": Membership.Notify.choices,
        "emoji_common": emoji.COMMON,
        "emoji_all": emoji.all_emoji(),
        **_receipts_context(room, request.user),
        # The composer refuses what the upload API would (issue 12), before uploading.
        "attachment_max_bytes": settings.PARLEY_ATTACHMENT_MAX_BYTES,
        "attachments_per_message": settings.PARLEY_ATTACHMENTS_PER_MESSAGE,
    }
    return render(request, "chat/room_detail.html", context, status=status)


def _receipts_context(room: Room, user) -> dict:
    """Read receipts (issue 11), rendered once in the page: the members of a room with
    receipts (at most 10: their names and small avatars, for room.js to clone) and the
    pointers this viewer may see (None when they send no receipts: they see nobody's). One
    query (two for a non-member's own setting)."""
    people = receipts.receipt_people(room=room)
    if not people:
        return {"receipt_people": [], "receipt_reads": None}
    mine = next((p for p in people if p["id"] == user.pk), None)
    sends = mine["sends"] if mine is not None else receipts.sends_receipts(user.pk)
    reads = [[p["id"], p["seq"]] for p in people if p["sends"]] if sends else None
    return {"receipt_people": people, "receipt_reads": reads}


@login_required
@require_GET
def room_detail(request, pk: int):
    """The room page; ``?around=<seq>`` opens it at that message (search results, replies)."""
    room = _room_or_404(request, pk)
    return _render_room(request, room, around=_around(request, room))


@login_required
@require_GET
def room_history(request, pk: int):
    """History pages, keyset-paginated on seq: ``?before=<seq>`` (older) or ``?after=<seq>``
    (newer, below a page opened ``?around=``)."""
    room = _room_or_404(request, pk)
    if "after" in request.GET:
        if "before" in request.GET:
            return HttpResponse(_("Use either before or after, not both."), status=400)
        try:
            after = errors.parse_seq(request.GET["after"], name="after")
        except ValidationError as exc:
            return HttpResponse(errors.describe(exc), status=400)
        size = settings.PARLEY_HISTORY_PAGE_SIZE
        page = selectors.message_list_after(room=room, after_seq=after, limit=size + 1)
        context = {
            "room": room,
            "message_list": page[:size],
            "has_newer": len(page) > size,
        }
        return render(request, "chat/room_detail.html#newer-page", context)
    try:
        before = errors.parse_seq(request.GET.get("before", ""), name="before")
    except ValidationError as exc:
        return HttpResponse(errors.describe(exc), status=400)
    message_list = selectors.message_list_before(room=room, before_seq=before)
    return render(
        request, "chat/room_detail.html#message-page", _history_context(room, message_list)
    )


@login_required
@require_GET
def search(request):
    """``/search/?q=``: messages in the rooms you may see (apps/chat/search.py); ``before=``
    pages on (htmx: the next page's items alone). A bad query is the form's error (400)."""
    q = request.GET.get("q", "")
    context = {
        "q": q,
        "page": None,
        "error": None,
        "page_start": bool(request.htmx) and "before" in request.GET,
    }
    status = 200
    if q.strip() or "before" in request.GET:
        try:
            context["page"] = search_.search_messages(
                user=request.user, q=q, before=request.GET.get("before") or None
            )
        except ValidationError as exc:
            context["error"], status = errors.describe(exc), 400
        except services.RateLimited as exc:
            context["error"], status = errors.describe(exc), 429
    if request.htmx and context["page"] is not None and "before" in request.GET:
        return render(request, "chat/search.html#results-page", context)
    return render(request, "chat/search.html", context, status=status)


@login_required
@require_POST
def message_send(request, pk: int):
    """HTML fallback for sending without a websocket (and for htmx POSTs)."""
    room = _room_or_404(request, pk)
    form = MessageForm(request.POST)
    form.is_valid()  # raw text fields, always valid: the service does the validating
    error = None
    try:
        services.message_send(
            room=room,
            author=request.user,
            body=form.cleaned_data["body"],
            client_id=form.cleaned_data["client_id"] or None,
            reply_to=form.cleaned_data.get("reply_to") or None,
        )
    except services.RoomNotFound:
        raise Http404 from None
    except (ValidationError, services.RateLimited) as exc:
        error = errors.describe(exc)
        form.add_error("body", error)
    if error is None:
        return redirect(room)
    return _render_room(request, room, form=form, error=error, status=400)


@login_required
@require_POST
def dm_open(request, user_id: int):
    """Get or create the private room with another user, then open it."""
    other = get_object_or_404(get_user_model(), pk=user_id, is_active=True)
    try:
        room, _created = services.dm_get_or_create(user=request.user, other=other)
    except ValidationError:
        raise Http404 from None
    return redirect(room)


# --- Membership: join, leave, notifications, the read pointer -----------------------------------
@login_required
@require_POST
def room_join(request, pk: int):
    """Join a public room: from the directory (back there; htmx: the directory again) or from
    the room's header (back into the room)."""
    room = _room_or_404(request, pk)
    from_directory = request.POST.get("next") == "directory"
    try:
        services.room_join(room=room, user=request.user)
    except services.RoomNotFound:
        raise Http404 from None
    except errors.NotAllowed as exc:
        return _refused(request, room, exc)
    if from_directory and request.htmx:
        return render(request, "chat/home.html#room-list", _directory_context(request.user))
    return redirect("chat:home" if from_directory else room)


@login_required
@require_POST
def room_leave(request, pk: int):
    room = _room_or_404(request, pk)
    title = selectors.room_title_for(room=room, user=request.user)
    try:
        left = services.room_leave(room=room, user=request.user)
    except services.RoomNotFound:
        raise Http404 from None
    except errors.NotAllowed as exc:
        return _refused(request, room, exc)
    if left:
        messages.success(request, _("You left %(room)s.") % {"room": title})
    return redirect("chat:home")


@login_required
@require_POST
def room_notify(request, pk: int):
    """A member's notification setting: All messages / Mentions only / Nothing."""
    room = _room_or_404(request, pk)
    form = NotifyForm(request.POST)
    form.is_valid()
    notify = form.cleaned_data.get("notify", "")
    back = request.POST.get("next")
    context = {
        "room": room,
        "notify_choices": Membership.Notify.choices,
        "next": back,
        "notify": notify,
    }
    try:
        membership = services.membership_set_notify(room=room, user=request.user, notify=notify)
    except services.RoomNotFound:
        raise Http404 from None
    except errors.NotAllowed as exc:
        return _refused(request, room, exc)
    except ValidationError as exc:
        state = _membership_state(room, request.user)
        context.update(notify=state.notify if state else "", notify_error=errors.describe(exc))
        if request.htmx:
            return render(request, "chat/notify_form.html", context, status=400)
        return _render_settings(request, room, notify_error=context["notify_error"], status=400)
    if request.htmx:
        context.update(notify=membership.notify, notify_saved=True)
        return render(request, "chat/notify_form.html", context)
    if back == "settings":
        return redirect("chat:room_settings", pk=room.pk)
    return redirect(room)


@login_required
@require_POST
def room_read(request, pk: int):
    """The read pointer without JavaScript: "Mark all as read" (seq = the room's last) and
    "Mark as unread from here" (force)."""
    room = _room_or_404(request, pk)
    form = ReadForm(request.POST)
    form.is_valid()
    try:
        services.room_mark_read(
            room=room,
            user=request.user,
            seq=form.cleaned_data.get("seq", ""),
            force=bool(form.cleaned_data.get("force")),
        )
    except services.RoomNotFound:
        raise Http404 from None
    except errors.NotAllowed as exc:
        return _refused(request, room, exc)
    except services.RateLimited as exc:
        response = _refused(request, room, exc, status=429)
        response["Retry-After"] = str(exc.retry_after)
        return response
    except ValidationError as exc:
        return _refused(request, room, exc, status=400)
    return redirect(room)


# --- Room settings (owners manage; members see the members and their own setting) -------------
def _member_count(room: Room, user) -> int:
    """The room's number of members: one query (the annotation the directory uses)."""
    rooms = selectors.with_membership(Room.objects.filter(pk=room.pk), user=user)
    return rooms.values_list("member_count", flat=True).first() or 0


def _members_context(room: Room, user) -> dict:
    """The members to list: all of a private group's or a conversation's; of a public room's,
    the first MEMBER_LIST_LIMIT (owners first) and how many more there are."""
    if room.is_private:
        members = selectors.room_members(room=room)
        return {"members": members, "member_count": len(members), "members_more": 0}
    members = selectors.room_members(room=room, limit=MEMBER_LIST_LIMIT + 1)
    if len(members) <= MEMBER_LIST_LIMIT:
        return {"members": members, "member_count": len(members), "members_more": 0}
    members = members[:MEMBER_LIST_LIMIT]
    count = _member_count(room, user)
    return {"members": members, "member_count": count, "members_more": count - len(members)}


def _with_presence(context: dict) -> dict:
    """The listed members' presence dots: one cache get_many for the list."""
    members = context["members"]
    states = presence.states_for(m.user.profile for m in members)
    for m in members:
        m.presence = states[m.user_id]
    return context


def _render_settings(request, room: Room, *, update_form=None, add_form=None, status=200, **extra):
    can_manage = selectors.room_is_managed_by(room=room, user=request.user)
    if update_form is None:
        update_form = RoomUpdateForm(
            initial={"name": room.name, "topic": room.topic, "room_mentions": room.room_mentions}
        )
    side, membership = _sidebar_with_entry(room, request.user)
    context = {
        "room": room,
        "title": selectors.room_title_for(room=room, user=request.user),
        **_dm_partner(room, request.user),
        "can_manage": can_manage,
        "sidebar": side,
        "membership": membership,
        **_with_presence(_members_context(room, request.user)),
        "notify_choices": Membership.Notify.choices,
        "update_form": update_form,
        "add_form": add_form or MemberAddForm(),
        "member_options": _member_options() if can_manage and room.is_private else (),
        "saved": request.GET.get("saved") == "1",
        "webhooks": webhooks.webhook_list_for_room(room=room, user=request.user)
        if can_manage
        else (),
        "webhook_form": extra.pop("webhook_form", None) or WebhookForm(),
        **extra,
    }
    return render(request, "chat/room_settings.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def room_settings(request, pk: int):
    """GET: the settings page. POST: rename, topic, @room policy (owners)."""
    room = _room_or_404(request, pk)
    if request.method == "GET":
        return _render_settings(request, room)
    form = RoomUpdateForm(request.POST)
    if not form.is_valid():  # an @room policy that is not one of the choices
        if not selectors.room_is_managed_by(room=room, user=request.user):
            refusal = errors.NotAllowed(_("Only the room's owners may do that."))
            return _refused(request, room, refusal)
        return _render_settings(request, room, update_form=form, status=400)
    data = form.cleaned_data
    try:
        services.room_update(
            room=room,
            user=request.user,
            name=data.get("name"),
            topic=data.get("topic"),
            room_mentions=data.get("room_mentions") or None,
        )
    except services.RoomNotFound:
        raise Http404 from None
    except errors.NotAllowed as exc:
        return _refused(request, room, exc)
    except (ValidationError, services.RateLimited) as exc:
        code = getattr(exc, "code", None)
        field = code if code in ("topic", "room_mentions") else "name"
        form.add_error(field, errors.describe(exc))
        return _render_settings(request, room, update_form=form, status=400)
    return redirect(reverse("chat:room_settings", kwargs={"pk": room.pk}) + "?saved=1")


@login_required
@require_POST
def member_add(request, pk: int):
    room = _room_or_404(request, pk)
    form = MemberAddForm(request.POST)
    form.is_valid()
    try:
        services.member_add(
            room=room, user=request.user, username=form.cleaned_data.get("username", "")
        )
    except services.RoomNotFound:
        raise Http404 from None
    except errors.NotAllowed as exc:
        return _refused(request, room, exc)
    except (ValidationError, services.RateLimited) as exc:
        form.add_error("username", errors.describe(exc))
        return _render_settings(request, room, add_form=form, status=400)
    return redirect("chat:room_settings", pk=room.pk)


@login_required
@require_POST
def member_remove(request, pk: int, user_id: int):
    room = _room_or_404(request, pk)
    try:
        services.member_remove(room=room, user=request.user, member_id=user_id)
    except services.RoomNotFound:
        raise Http404 from None
    except errors.NotAllowed as exc:
        return _refused(request, room, exc)
    except (ValidationError, services.RateLimited) as exc:
        return _render_settings(request, room, remove_error=errors.describe(exc), status=400)
    return redirect("chat:room_settings", pk=room.pk)


@login_required
@require_http_methods(["GET", "POST"])
def room_delete(request, pk: int):
    """GET: "Delete this room?" (owners). POST: delete it, for everyone."""
    room = _room_or_404(request, pk)
    title = selectors.room_title_for(room=room, user=request.user)
    if request.method == "GET":
        if not selectors.room_is_managed_by(room=room, user=request.user):
            refusal = errors.NotAllowed(_("Only the room's owners may do that."))
            return _refused(request, room, refusal)
        context = {
            "room": room,
            "title": title,
            "member_count": _member_count(room, request.user),
        }
        return render(request, "chat/room_delete.html", context)
    try:
        services.room_delete(room=room, user=request.user)
    except services.RoomNotFound:
        raise Http404 from None
    except errors.NotAllowed as exc:
        return _refused(request, room, exc)
    messages.success(request, _("%(room)s was deleted.") % {"room": title})
    return redirect("chat:home")


# --- Incoming webhooks (owners; apps/chat/webhooks.py) -----------------------------------------
@never_cache  # the answer holds the webhook's secret URL: no cache may keep it
@login_required
@require_POST
def webhook_create(request, pk: int):
    """Make a webhook and show its URL, this once (the settings page, no redirect)."""
    room = _room_or_404(request, pk)
    form = WebhookForm(request.POST)
    form.is_valid()
    try:
        webhook, secret = webhooks.webhook_create(
            room=room, user=request.user, name=form.cleaned_data.get("name", "")
        )
    except services.RoomNotFound:
        raise Http404 from None
    except (ValidationError, services.RateLimited) as exc:
        form.add_error("name", errors.describe(exc))
        return _render_settings(request, room, webhook_form=form, status=400)
    url = request.build_absolute_uri(reverse("webhook_incoming", kwargs={"secret": secret}))
    return _render_settings(request, room, webhook_created=webhook, webhook_url=url)


@login_required
@require_POST
def webhook_revoke(request, pk: int, webhook_id: int):
    room = _room_or_404(request, pk)
    try:
        webhook = webhooks.webhook_revoke(room=room, user=request.user, webhook_id=webhook_id)
    except (services.RoomNotFound, webhooks.WebhookNotFound):
        raise Http404 from None
    messages.success(request, _("The webhook “%(name)s” was revoked.") % {"name": webhook.name})
    return redirect("chat:room_settings", pk=room.pk)
