from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from . import emoji, errors, selectors, services
from .forms import MessageForm, RoomCreateForm
from .models import Room


def _room_or_404(request, pk: int) -> Room:
    try:
        return selectors.room_get_for_user(user=request.user, pk=pk)
    except Room.DoesNotExist:
        raise Http404(_("No such room.")) from None


def _room_list_context(user) -> dict:
    private_rooms = list(selectors.private_room_list(user=user))
    for room in private_rooms:
        room.title = selectors.room_title_for(room=room, user=user)
    return {"public_rooms": selectors.public_room_list(user=user), "private_rooms": private_rooms}


@login_required
@require_GET
def home(request):
    context = {"form": RoomCreateForm(), **_room_list_context(request.user)}
    return render(request, "chat/home.html", context)


@login_required
@require_GET
def room_list(request):
    """The room list alone (an htmx partial, polled to refresh last activity)."""
    return render(request, "chat/home.html#room-list", _room_list_context(request.user))


@login_required
@require_POST
def room_create(request):
    form = RoomCreateForm(request.POST)
    if form.is_valid():
        try:
            room = services.room_create(name=form.cleaned_data["name"], creator=request.user)
        except (ValidationError, services.RateLimited) as exc:
            form.add_error("name", errors.describe(exc))
        else:
            if request.htmx:
                return HttpResponseClientRedirect(room.get_absolute_url())
            return redirect(room)
    if request.htmx:
        return render(request, "chat/home.html#room-create-form", {"form": form})
    context = {"form": form, **_room_list_context(request.user)}
    return render(request, "chat/home.html", context, status=400)


def _history_context(room: Room, message_list: list) -> dict:
    # Not "messages": that name belongs to django.contrib.messages in every template.
    has_older = bool(message_list) and message_list[0].seq > 1
    return {"room": room, "message_list": message_list, "has_older": has_older}


def _render_room(request, room: Room, *, form=None, error=None, status=200):
    context = {
        **_history_context(room, selectors.message_list_latest(room=room)),
        "title": selectors.room_title_for(room=room, user=request.user),
        "form": form or MessageForm(),
        "error": error,
        "can_manage": selectors.room_is_managed_by(room=room, user=request.user),
        "emoji_common": emoji.COMMON,
        "emoji_all": emoji.all_emoji(),
    }
    return render(request, "chat/room_detail.html", context, status=status)


@login_required
@require_GET
def room_detail(request, pk: int):
    return _render_room(request, _room_or_404(request, pk))


@login_required
@require_GET
def room_history(request, pk: int):
    """Older messages, keyset-paginated on seq: ?before=<seq>."""
    room = _room_or_404(request, pk)
    try:
        before = errors.parse_seq(request.GET.get("before", ""), name="before")
    except ValidationError as exc:
        return HttpResponse(errors.describe(exc), status=400)
    message_list = selectors.message_list_before(room=room, before_seq=before)
    return render(
        request, "chat/room_detail.html#message-page", _history_context(room, message_list)
    )


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
