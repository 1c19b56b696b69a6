"""The signed-in user's saved language (issue 14): after LocaleMiddleware (which read the
``django_language`` cookie or Accept-Language) and AuthenticationMiddleware, a profile's choice
wins. Order: saved choice, else the browser's Accept-Language, else settings.LANGUAGE_CODE.

Pages read ``user.profile`` for the nav anyway, so the lookup here is the one they would make
(the profile is cached on the request's user)."""

from django.utils import translation


class ProfileLanguageMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        language = profile_language(request)
        if language:
            translation.activate(language)
            request.LANGUAGE_CODE = language
        return self.get_response(request)


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
