"""``python -m apps.core.preflight``: run by scripts/serve before it starts uvicorn.

The production server refuses to start with DEBUG on or with a development/weak secret key
(DEBUG is on whenever DJANGO_SECRET_KEY is unset, so a deploy that forgets both would run
with the public development key and debug pages). ``PARLEY_ALLOW_INSECURE=1`` is the
operator's explicit "I know" (the fault suite runs that way): the server then starts with a
warning. Only the settings module is imported, not the apps: this costs a fraction of a second
of startup, where ``manage.py check`` would load everything."""

import os
import sys

# sysexits.h EX_CONFIG: "something was found in an unconfigured or misconfigured state".
EXIT_CONFIG = 78
OPT_IN = "PARLEY_ALLOW_INSECURE"


def _weak_secret_key(key: str) -> bool:
    """Django's own test (check --deploy's security.W009), with its thresholds: its generated
    development keys carry the prefix, and a short key or one of few characters is guessable."""
    from django.core.checks.security.base import (
        SECRET_KEY_INSECURE_PREFIX,
        SECRET_KEY_MIN_LENGTH,
        SECRET_KEY_MIN_UNIQUE_CHARACTERS,
    )

    return (
        key.startswith(SECRET_KEY_INSECURE_PREFIX)
        or len(key) < SECRET_KEY_MIN_LENGTH
        or len(set(key)) < SECRET_KEY_MIN_UNIQUE_CHARACTERS
    )


def problems() -> list[str]:
    """What makes this configuration unfit for production, in words for the operator."""
    from django.conf import settings

    found = []
    if settings.DEBUG:
        found.append(
            "DEBUG is on (DJANGO_DEBUG=1, or DJANGO_SECRET_KEY unset): error pages would show "
            "settings and source code to anyone."
        )
    if _weak_secret_key(settings.SECRET_KEY):
        found.append(
            "the secret key is the development key or too weak: set DJANGO_SECRET_KEY to 50+ "
            "random characters (sessions and CSRF tokens are signed with it)."
        )
    return found


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    from django.core.exceptions import ImproperlyConfigured

    try:
        found = problems()
    except ImproperlyConfigured as exc:
        print(f"scripts/serve: refusing to start: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if not found:
        return 0
    allowed = os.environ.get(OPT_IN, "").strip().lower() in {"1", "true", "yes", "on"}
    for problem in found:
        label = "WARNING (allowed by PARLEY_ALLOW_INSECURE)" if allowed else "refusing to start"
        print(f"scripts/serve: {label}: {problem}", file=sys.stderr)
    if allowed:
        return 0
    print(
        "scripts/serve is the production server. Set DJANGO_DEBUG=0 and DJANGO_SECRET_KEY, "
        f"or set {OPT_IN}=1 to run it insecurely on purpose (tests, benchmarks; never in "
        "production). For development use `make run`.",
        file=sys.stderr,
    )
    return EXIT_CONFIG


if __name__ == "__main__":
    sys.exit(main())
