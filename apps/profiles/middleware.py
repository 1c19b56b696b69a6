"""The signed-in user's saved language (issue 14): after LocaleMiddleware (which went by the
``django_language`` cookie or Accept-Language) and AuthenticationMiddleware, a profile's choice
wins. Order: saved choice, else the browser's Accept-Language, else settings.LANGUAGE_CODE.

It costs the signed-in user's profile row: pages read ``user.profile`` for the nav anyway (the
row is cached on the request's user, so a page makes the query once); a fragment endpoint
pays one primary-key lookup. A request without a session cookie costs nothing."""

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
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return ""
    profile = getattr(user, "profile", None)  # a user without a profile follows the browser
    language = getattr(profile, "language", "") or ""
    if language and translation.check_for_language(language):
        return language
    return ""
