"""The signed-in user's saved language (issue 14): after LocaleMiddleware (which went by the
``django_language`` cookie or Accept-Language) and AuthenticationMiddleware, a profile's choice
wins. Order: saved choice, else the browser's Accept-Language, else settings.LANGUAGE_CODE.

It costs the signed-in user's profile row: pages read ``user.profile`` for the nav anyway (the
row is cached on the request's user, so a page makes the query once); a fragment endpoint
pays one primary-key lookup. A request without a session cookie costs nothing."""

from types import SimpleNamespace

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.utils import translation


class ProfileLanguageMiddleware:
    # Sync and async capable like the rest of the chain: no sync/async switch per request.
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        _activate(request, profile_language(request) if _has_session(request) else "")
        return self.get_response(request)

    async def __acall__(self, request):
        if _has_session(request):
            # request.user and its profile load on the database thread, where the sync views
            # that follow find them cached.
            _activate(request, await sync_to_async(profile_language)(request))
        return await self.get_response(request)


def _has_session(request) -> bool:
    return settings.SESSION_COOKIE_NAME in request.COOKIES


def _activate(request, language: str) -> None:
    if language:
        translation.activate(language)
        request.LANGUAGE_CODE = language


def profile_language(request) -> str:
    """The signed-in user's saved language, or "" (none saved, anonymous, no profile)."""
    return saved_language(getattr(request, "user", None))


def saved_language(user) -> str:
    """``user``'s saved language if it is one we have, else "" (anonymous, none saved)."""
    if user is None or not user.is_authenticated:
        return ""
    profile = getattr(user, "profile", None)  # a user without a profile follows the browser
    language = getattr(profile, "language", "") or ""
    if language and translation.check_for_language(language):
        return language
    return ""


def socket_language(user, scope) -> str:
    """The language of what a websocket sends its own user (error fragments, notices): the
    same order as a page's, from the handshake's cookie and Accept-Language header. Broadcast
    fragments never use it (apps/chat/realtime.py renders them in the site's language)."""
    saved = saved_language(user)
    if saved:
        return saved
    headers = dict(scope.get("headers") or [])
    handshake = SimpleNamespace(
        COOKIES=scope.get("cookies") or {},
        META={"HTTP_ACCEPT_LANGUAGE": headers.get(b"accept-language", b"").decode("latin-1")},
        path_info="/",
    )
    return translation.get_language_from_request(handshake)
