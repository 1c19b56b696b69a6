"""Parley settings: one module, driven by the environment, with an embedded default.

No environment at all gives the single-process developer setup: a SQLite file, the in-memory
channel layer, the local-memory cache and DEBUG on. Production sets DJANGO_SECRET_KEY,
DJANGO_DEBUG=0, DJANGO_ALLOWED_HOSTS, DATABASE_URL (PostgreSQL) and REDIS_URL (channel layer,
cache and therefore every rate limit shared by all server processes).
"""

import os
import tempfile
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if not value:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG", default="DJANGO_SECRET_KEY" not in os.environ)

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off.")
    # Development only: a fixed, obviously-insecure key so sessions survive restarts.
    SECRET_KEY = "django-insecure-parley-development-key-do-not-use-in-production"

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",  # first: makes runserver serve ASGI (websockets)
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "csp",  # django-csp: its system checks (the middleware below sets the header)
    "django_htmx",
    "template_partials",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and Redoc as static files: no CDN
    "allauth",
    "allauth.account",
    "apps.accounts",
    "apps.profiles",
    "apps.chat",
    "apps.api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Early, so that every response below it (CSRF failures, redirects, 404s) carries the CSP.
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # A signed-in user's saved language beats the cookie and Accept-Language that
    # LocaleMiddleware went by (apps/profiles/middleware.py).
    "apps.profiles.middleware.ProfileLanguageMiddleware",
    # Sends the request's session revocations (logout, password change …) to open websockets,
    # keeping the session that changed its own password (apps/accounts/sessions.py).
    "apps.accounts.sessions.SessionRevocationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "project.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "apps.chat.context_processors.sidebar",
            ],
        },
    },
]

WSGI_APPLICATION = None
ASGI_APPLICATION = "project.asgi.application"

# --- Database -----------------------------------------------------------------------------
DATABASE_URL = os.environ.get("DATABASE_URL", "")
DATABASES = {
    "default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)
    if DATABASE_URL
    else {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("PARLEY_SQLITE_PATH", str(BASE_DIR / "db.sqlite3")),
        "OPTIONS": {
            # WAL + a busy timeout: the websocket thread and HTTP requests write concurrently.
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
        },
        # A file, not ":memory:": tests run websocket consumers and concurrent writers in other
        # threads, and SQLite's shared-cache memory mode fails those with "table is locked".
        # One file per test process, so parallel runs never share (and destroy) one database.
        "TEST": {
            "NAME": os.environ.get(
                "PARLEY_SQLITE_TEST_PATH",
                os.path.join(tempfile.gettempdir(), f"parley-test-{os.getpid()}.sqlite3"),
            )
        },
    }
}
if DATABASE_URL:
    # Async consumers reach the DB from worker threads; keep connections short-lived there.
    DATABASES["default"]["CONN_MAX_AGE"] = int(os.environ.get("DJANGO_CONN_MAX_AGE", "60"))
    test_name = os.environ.get("PARLEY_TEST_DB_NAME")
    if test_name:
        DATABASES["default"]["TEST"] = {"NAME": test_name}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: channel layer + cache (shared state across server processes) ---------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    # PARLEY_CHANNEL_LAYER=core (default): channels-redis's list-per-channel layer, with bounded
    # queues. =pubsub: one PUBLISH per message, fanned out to local sockets inside each
    # process. Both are at-most-once; the consumers' cursor and catch-up cover the losses.
    PARLEY_CHANNEL_LAYER = os.environ.get("PARLEY_CHANNEL_LAYER", "core")
    _redis_host = {
        "address": REDIS_URL,
        # channels-redis builds redis-py's pool without a size; redis-py then raises
        # "Too many connections" past 100 instead of waiting.
        "max_connections": int(os.environ.get("PARLEY_REDIS_MAX_CONNECTIONS", "500")),
        # redis-py 8 reads with a 5 s socket timeout by default, the same as channels-redis's
        # 5 s BZPOPMIN: every idle receive() then raises TimeoutError and kills its consumer.
        "socket_timeout": 15,
    }
    _prefix = os.environ.get("PARLEY_CHANNEL_PREFIX", "parley")
    if PARLEY_CHANNEL_LAYER == "pubsub":
        CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
                "CONFIG": {"hosts": [_redis_host], "prefix": _prefix},
            }
        }
    elif PARLEY_CHANNEL_LAYER == "core":
        CHANNEL_LAYERS = {
            "default": {
                # A subclass may stand in (the fault-injection suite's lossy layer does).
                "BACKEND": os.environ.get(
                    "PARLEY_CHANNEL_BACKEND", "channels_redis.core.RedisChannelLayer"
                ),
                "CONFIG": {
                    "hosts": [_redis_host],
                    "prefix": _prefix,
                    # These bound memory for a reader that stops reading.
                    "capacity": int(os.environ.get("PARLEY_CHANNEL_CAPACITY", "1000")),
                    "expiry": int(os.environ.get("PARLEY_CHANNEL_EXPIRY", "30")),
                    "group_expiry": int(os.environ.get("PARLEY_GROUP_EXPIRY", "300")),
                },
            }
        }
    else:
        raise ImproperlyConfigured("PARLEY_CHANNEL_LAYER must be 'core' or 'pubsub'.")
    CACHES = {
        "default": {
            # RedisCache that answers "miss" while Redis is unreachable, so throttles and rate
            # limits fail open with one warning per interval instead of 500s (project/cache.py).
            "BACKEND": "project.cache.ResilientRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": os.environ.get("PARLEY_CACHE_PREFIX", "parley"),
            "OPTIONS": {
                # Short: a hung Redis must not hold a request (and the process's one sync
                # thread) for long; the cache holds counters and presence.
                "socket_connect_timeout": float(os.environ.get("PARLEY_CACHE_TIMEOUT", "0.5")),
                "socket_timeout": float(os.environ.get("PARLEY_CACHE_TIMEOUT", "0.5")),
                "RETRY_AFTER": float(os.environ.get("PARLEY_CACHE_RETRY_AFTER", "5")),
                "WARNING_INTERVAL": float(os.environ.get("PARLEY_CACHE_WARNING_INTERVAL", "60")),
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    # One process: rate-limit counters and presence (one entry per online user; locmem's
    # default of 300 entries would evict people).
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "OPTIONS": {"MAX_ENTRIES": 100_000},
        }
    }

# --- Auth -----------------------------------------------------------------------------------
# The Django admin is routed only with PARLEY_ADMIN=1, and then signs in through the allauth
# login (and its rate limits), never through its own password form (project/urls.py).
PARLEY_ADMIN = env_bool("PARLEY_ADMIN", False)
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "/"
ACCOUNT_LOGOUT_REDIRECT_URL = "/accounts/login/"
ACCOUNT_LOGIN_METHODS = {"username"}
ACCOUNT_SIGNUP_FIELDS = ["username*", "email", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_USERNAME_MIN_LENGTH = 2
# "@room" mentions every member of a room, so nobody may be called "room" (allauth compares
# ignoring case).
ACCOUNT_USERNAME_BLACKLIST = ["room"]
ACCOUNT_LOGOUT_ON_GET = False
ACCOUNT_SESSION_REMEMBER = True
ACCOUNT_ADAPTER = "apps.accounts.adapters.AccountAdapter"
ACCOUNT_FORMS = {"reset_password": "apps.accounts.forms.ResetPasswordForm"}

# --- Sign-in limits (brute force without lock-out; apps/accounts/login_limits.py) -----------
# Client addresses: 0 = REMOTE_ADDR (X-Forwarded-For ignored; scripts/serve's uvicorn already
# puts a local proxy's client address there), N = the Nth X-Forwarded-For entry from the
# right (N trusted proxies in front of a server that sees the proxies' addresses). One number
# for allauth, DRF's throttles, Parley's login limits and the CSP report endpoint, so they
# count the same address: apps/core/clientaddr.py reads it (as ALLAUTH_TRUSTED_PROXY_COUNT).
PARLEY_TRUSTED_PROXY_COUNT = int(
    os.environ.get("PARLEY_TRUSTED_PROXY_COUNT", os.environ.get("PARLEY_API_NUM_PROXIES", "0"))
)
ALLAUTH_TRUSTED_PROXY_COUNT = PARLEY_TRUSTED_PROXY_COUNT
# Every per-address limit counts an IPv6 client by its /64 (one host usually owns the whole
# /64): allauth's setting, read by apps/core/clientaddr.py for all of them.
ALLAUTH_RATE_LIMIT_IPV6_PREFIX = 64
ACCOUNT_RATE_LIMITS = {
    # Replaced by PARLEY_LOGIN_LIMITS: allauth's per-username part refuses the right password
    # too, so anyone could keep a public username locked out.
    "login_failed": None,
    # Per address only; per e-mail is counted per address + e-mail (apps/accounts/forms.py).
    "reset_password": "20/m/ip",
    # allauth's default; the e2e server lifts it (every test browser signs up from 127.0.0.1).
    "signup": os.environ.get("PARLEY_SIGNUP_RATE", "20/m/ip"),
}
# Failures per fixed window (seconds); see login_limits for what each one refuses. The only
# place these values are set (login_limits has no defaults of its own).
PARLEY_LOGIN_LIMITS = {
    "window": int(os.environ.get("PARLEY_LOGIN_WINDOW", "900")),
    "per_address_username": int(os.environ.get("PARLEY_LOGIN_PER_ADDRESS_USERNAME", "5")),
    "per_address": int(os.environ.get("PARLEY_LOGIN_PER_ADDRESS", "30")),
    "per_username": int(os.environ.get("PARLEY_LOGIN_PER_USERNAME", "10")),
    "per_address_username_under_attack": 2,
    "reset_per_address_email": 3,
    "reset_per_email": 5,
}
EMAIL_BACKEND = os.environ.get(
    "DJANGO_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend"
)
DEFAULT_FROM_EMAIL = os.environ.get("DJANGO_DEFAULT_FROM_EMAIL", "parley@localhost")
# What e-mails (allauth's password reset, e-mail confirmation …) call the site: its name, not
# the host (apps/accounts/adapters.py).
PARLEY_SITE_NAME = os.environ.get("PARLEY_SITE_NAME", "Parley")
ACCOUNT_EMAIL_SUBJECT_PREFIX = f"[{PARLEY_SITE_NAME}] "

# --- REST framework -------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Personal access tokens (Bearer, and DRF's old "Token" scheme), first so an anonymous
        # API call gets 401 with a "WWW-Authenticate: Bearer" header.
        "apps.api.authentication.AccessTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # The browsable API (HTML forms, a page per endpoint) is a development aid: with DEBUG off
    # every answer is JSON, whatever the Accept header asks for.
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        *(["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
    ],
    # ... and an Accept header nothing matches (text/html) gets JSON rather than a 406.
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "apps.core.negotiation.FallbackContentNegotiation",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_PARSER_CLASSES": [
        "apps.api.parsers.JSONParser",  # DRF's, plus a size cap and a nesting guard
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    # Service exceptions (ValidationError, RateLimited, RoomNotFound) → JSON 400/429/404.
    "EXCEPTION_HANDLER": "apps.api.exceptions.exception_handler",
    # OpenAPI 3 (drf-spectacular): /api/schema/, /api/docs/, /api/redoc/; docs/openapi.yaml.
    "DEFAULT_SCHEMA_CLASS": "apps.api.schema.AutoSchema",
    # DRF's UserRateThrottle, with anonymous clients identified by the project's address rule
    # (apps/core/clientaddr.py: PARLEY_TRUSTED_PROXY_COUNT, IPv6 per /64), not DRF's get_ident.
    "DEFAULT_THROTTLE_CLASSES": ["apps.api.throttles.UserRateThrottle"],
    # Our throttles do not read it; set anyway so anything calling DRF's get_ident directly
    # does not trust a client's X-Forwarded-For (what NUM_PROXIES unset does).
    "NUM_PROXIES": PARLEY_TRUSTED_PROXY_COUNT,
    "DEFAULT_THROTTLE_RATES": {
        "user": os.environ.get("PARLEY_API_RATE", "600/min"),
        # /api/auth/token/ (a token for a username + password): guessing passwords stays slow.
        "token": os.environ.get("PARLEY_AUTH_TOKEN_RATE", "10/min"),
    },
}

# The OpenAPI schema (drf-spectacular; apps/api/schema.py). Public, like Zulip's and Slack's API
# docs: the schema describes routes, never data. `make schema` writes docs/openapi.yaml, which a
# test keeps equal to what the code generates.
SPECTACULAR_SETTINGS = {
    "TITLE": "Parley API",
    "DESCRIPTION": (
        "Parley's REST API. Authenticate with a personal access token "
        "(`Authorization: Bearer <token>`; the older `Token <token>` scheme works too) or, from "
        "a browser, with the session cookie (unsafe methods then need the `X-CSRFToken` "
        "header). Every error has one JSON body, the `Error` schema: "
        '`{"error": {"code": "…", "message": "…", "fields": {"<input>": ["…"]}}}` '
        "(`fields` is `{}` when the error is about the request as a whole); a 429 carries "
        "`Retry-After`, a 401 `WWW-Authenticate`."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": "/api/",
    # <object_id:…> (apps/api/urls.py): a positive BigAutoField id.
    "PATH_CONVERTER_OVERRIDES": {
        "object_id": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
    },
    # drf-spectacular's enum naming, then the OpenAPI links between operations (what the answer
    # of one feeds the path of the next; schemathesis's stateful phase follows them).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "apps.api.schema_links.add_links",
    ],
}

# --- Parley limits ----------------------------------------------------------------------------
# Personal access tokens (apps/accounts/tokens.py): new ones per user per window (the page,
# POST /api/tokens/ and POST /api/auth/token/ together), and how many a user may hold.
PARLEY_TOKEN_CREATE_RATE = (int(os.environ.get("PARLEY_TOKEN_CREATE_RATE_COUNT", "20")), 3600)
PARLEY_TOKENS_PER_USER_MAX = int(os.environ.get("PARLEY_TOKENS_PER_USER_MAX", "100"))
PARLEY_MESSAGE_MAX_LENGTH = 4000
PARLEY_ROOM_NAME_MAX_LENGTH = 64
PARLEY_HISTORY_PAGE_SIZE = 50
# Messages a user may send per window, per process-independent (cache-backed) counter.
PARLEY_MESSAGE_RATE = (int(os.environ.get("PARLEY_MESSAGE_RATE_COUNT", "30")), 10)  # 30 per 10 s
# Reactions are clicks, often several in a row: a looser limit of their own.
PARLEY_REACTION_RATE = (int(os.environ.get("PARLEY_REACTION_RATE_COUNT", "60")), 10)
# Different emoji on one message (Slack allows 50): bounds what each change re-renders.
PARLEY_REACTIONS_PER_MESSAGE = 20
# Names listed per reaction in its tooltip; past it "+N".
PARLEY_REACTION_NAMES_SHOWN = 10
PARLEY_ROOM_CREATE_RATE = (int(os.environ.get("PARLEY_ROOM_RATE_COUNT", "10")), 60)  # 10 per minute
# Read pointer moves per user (each tab sends a few a minute; a loop is cut off).
PARLEY_READ_RATE = (int(os.environ.get("PARLEY_READ_RATE_COUNT", "120")), 10)
# Renaming a room, setting its topic or @room policy, adding members: 30 per minute per user.
PARLEY_ROOM_ADMIN_RATE = (int(os.environ.get("PARLEY_ROOM_ADMIN_RATE_COUNT", "30")), 60)
# Bot accounts (apps/profiles/bots.py): how many a user may own (webhook bots included) and how
# many new ones per hour.
PARLEY_BOTS_PER_USER_MAX = int(os.environ.get("PARLEY_BOTS_PER_USER_MAX", "20"))
PARLEY_BOT_CREATE_RATE = (int(os.environ.get("PARLEY_BOT_CREATE_RATE_COUNT", "10")), 3600)
# Incoming webhooks (apps/chat/webhooks.py): posts per webhook per window, webhooks per room,
# and the body cap of POST /hooks/<secret>/ (project/http_limits.py).
PARLEY_WEBHOOK_RATE = (int(os.environ.get("PARLEY_WEBHOOK_RATE_COUNT", "30")), 60)
PARLEY_WEBHOOKS_PER_ROOM_MAX = int(os.environ.get("PARLEY_WEBHOOKS_PER_ROOM_MAX", "20"))
PARLEY_WEBHOOK_MAX_BYTES = 64 * 1024
# Bounds the work of parsing one frame, in characters of its text (scripts/serve caps the bytes
# at 256 KiB, closing with 1009); the message length is capped on the decoded text (4000
# characters). 64 Ki characters hold 4000 characters sent as \uXXXX escapes (6 each; 12 for
# an emoji's surrogate pair: 48,000) plus htmx's HEADERS and the client_id.
PARLEY_WS_MAX_FRAME = 64 * 1024
# Open websockets per user, across all processes when REDIS_URL is set (else per process);
# past it a socket is accepted and closed with 4429.
PARLEY_WS_MAX_PER_USER = int(os.environ.get("PARLEY_WS_MAX_PER_USER", "20"))
# Typing indicators (apps/chat/typing.py) are off in rooms with more members than this: the
# sender is told once. Each viewer gets at most one typing frame a second whatever the number of
# typers, so the cost grows with the typers' events, not with the room (bench S12: 500).
PARLEY_TYPING_MAX_MEMBERS = int(os.environ.get("PARLEY_TYPING_MAX_MEMBERS", "1000"))
PARLEY_AVATAR_MAX_BYTES = 5 * 1024 * 1024
PARLEY_AVATAR_MAX_SIDE = 4096
PARLEY_AVATAR_SIZE = 256

# --- Attachments (apps/chat/attachments.py) and search -----------------------------------------
# A file is refused above this size: by the page before uploading, by the server while reading
# (the attachment upload route's body cap is this plus the multipart framing).
PARLEY_ATTACHMENT_MAX_BYTES = int(
    os.environ.get("PARLEY_ATTACHMENT_MAX_BYTES", str(25 * 1024 * 1024))
)
PARLEY_ATTACHMENTS_PER_MESSAGE = 10
# Images above this many pixels are refused (decoding them would take too much memory).
PARLEY_IMAGE_MAX_PIXELS = int(os.environ.get("PARLEY_IMAGE_MAX_PIXELS", str(50_000_000)))
PARLEY_THUMBNAIL_SIZE = 400  # thumbnails fit in a square this many pixels wide
# Uploaded and never sent: deleted by `manage.py attachments_cleanup` after this many seconds.
PARLEY_ATTACHMENT_UNSENT_TTL = int(os.environ.get("PARLEY_ATTACHMENT_UNSENT_TTL", "86400"))
PARLEY_ATTACHMENT_RATE = (int(os.environ.get("PARLEY_ATTACHMENT_RATE_COUNT", "30")), 60)
# "" (default): Django streams the file. "nginx": the response is an X-Accel-Redirect to
# PARLEY_SENDFILE_PREFIX + the stored name, which nginx serves from an internal location.
PARLEY_SENDFILE = os.environ.get("PARLEY_SENDFILE", "").strip().lower()
if PARLEY_SENDFILE not in {"", "nginx"}:
    raise ImproperlyConfigured("PARLEY_SENDFILE must be empty or 'nginx'.")
PARLEY_SENDFILE_PREFIX = os.environ.get("PARLEY_SENDFILE_PREFIX", "/protected-media/")
PARLEY_SEARCH_RATE = (int(os.environ.get("PARLEY_SEARCH_RATE_COUNT", "30")), 10)
PARLEY_SEARCH_PAGE_SIZE = 20

DATA_UPLOAD_MAX_MEMORY_SIZE = 6 * 1024 * 1024
# An uploaded file larger than this is spooled to a temporary file as it is parsed (Django's
# TemporaryFileUploadHandler), so a 25 MB attachment never sits in memory whole.
FILE_UPLOAD_MAX_MEMORY_SIZE = int(os.environ.get("PARLEY_FILE_UPLOAD_MAX_MEMORY_SIZE", "2621440"))
# Every HTTP request body is capped while it arrives, before
# Django spools it to disk (project/http_limits.py). Above the upload limits, so a 5 MB
# avatar plus its multipart framing fits; the attachment upload route alone allows
# PARLEY_ATTACHMENT_MAX_BYTES + 64 KiB.
PARLEY_HTTP_MAX_BODY = int(os.environ.get("PARLEY_HTTP_MAX_BODY", str(7 * 1024 * 1024)))

# --- i18n -------------------------------------------------------------------------------------
LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("ru", _("Russian"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static and media -------------------------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("DJANGO_STATIC_ROOT", BASE_DIR / "staticfiles"))
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(os.environ.get("DJANGO_MEDIA_ROOT", BASE_DIR / "media"))
# Attachments are kept apart from MEDIA_ROOT: /media/ (avatars) is public, served by the proxy;
# an attachment is served only by the access-checked view (apps/chat/files.py), so a private
# room's files never sit where a public location could reach them. Point the "attachments"
# storage at S3 with django-storages (README, "Attachments") the same way.
PARLEY_ATTACHMENT_ROOT = Path(os.environ.get("PARLEY_ATTACHMENT_ROOT", BASE_DIR / "attachments"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "attachments": {"BACKEND": "apps.chat.storage.AttachmentStorage"},
}

# --- Content-Security-Policy (django-csp 4) ----------------------------------------------------
# One strict policy on every response. Scripts only from our origin (plus the per-response nonce
# that base.html puts on its <script> tags); no eval (htmx runs with allowEval=false, see the
# htmx-config meta in base.html) and no inline script or style anywhere, so an injected
# <script> or style= attribute does nothing. connect-src 'self' also covers same-origin ws:/wss:
# in CSP3 browsers. Violations are POSTed to our own endpoint and logged (project/csp_report.py).
# PARLEY_CSP_REPORT_ONLY=1 sends the same policy as Content-Security-Policy-Report-Only instead:
# nothing is blocked, every violation is still reported (for trying a change in production).
# Django's debug pages (404/500 under DEBUG) are left without a header by django-csp itself; the
# DRF browsable API (DEBUG only) keeps the policy too: its scripts are static files and work;
# only its inline <style> of syntax colours for code in view descriptions is blocked.
from csp.constants import NONCE, NONE, SELF  # noqa: E402

PARLEY_CSP_REPORT_URI = "/csp-report/"
PARLEY_CSP_REPORT_MAX_BYTES = 16 * 1024
_CSP_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        # The nonce admits the room page's one <style> block of per-viewer rules ("my
        # messages", "my reactions"); style= attributes stay blocked.
        "style-src": [SELF, NONCE],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
        "report-uri": [PARLEY_CSP_REPORT_URI],
    }
}
PARLEY_CSP_REPORT_ONLY = env_bool("PARLEY_CSP_REPORT_ONLY", False)
if PARLEY_CSP_REPORT_ONLY:
    CONTENT_SECURITY_POLICY = None
    CONTENT_SECURITY_POLICY_REPORT_ONLY = _CSP_POLICY
else:
    CONTENT_SECURITY_POLICY = _CSP_POLICY
    CONTENT_SECURITY_POLICY_REPORT_ONLY = None

# --- Security ---------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the <body hx-headers> instead
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", True)
    CSRF_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", True)
    SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Logging --------------------------------------------------------------------------------
# Client mistakes (a foreign Host, invalid UTF-8, a malformed body) are logged as one WARNING
# line without a traceback; see apps/core/log_filters.py. The filter must sit on each logger
# that emits: Django names its security loggers after the SuspiciousOperation subclass.
_CLIENT_ERROR_LOGGERS = [
    "django.request",
    *(
        f"django.security.{name}"
        for name in (
            "SuspiciousOperation",
            "DisallowedHost",
            "DisallowedRedirect",
            "DisallowedModelAdminLookup",
            "DisallowedModelAdminToField",
            "InvalidSessionKey",
            "SuspiciousSession",
            "SuspiciousFileOperation",
            "SuspiciousMultipartForm",
            "RequestDataTooBig",
            "TooManyFieldsSent",
            "TooManyFilesSent",
            "csrf",
        )
    ),
]
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"client_error": {"()": "apps.core.log_filters.ClientErrorFilter"}},
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("DJANGO_LOG_LEVEL", "WARNING")},
    "loggers": {name: {"filters": ["client_error"]} for name in _CLIENT_ERROR_LOGGERS},
}
