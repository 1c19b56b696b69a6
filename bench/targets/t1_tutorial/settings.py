"""The smallest Django settings for the Channels-tutorial consumer.

channels-redis is configured as the tutorial does (default pool, capacity and expiry) except
for the socket timeout (see below); the prefix is unique per run so the run can clean up."""

import os

SECRET_KEY = "bench-t1-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "channels",
]
ROOT_URLCONF = "bench.targets.t1_tutorial.urls"
ASGI_APPLICATION = "bench.targets.t1_tutorial.asgi.application"
# Sessions are only read when a cookie is sent; the benchmark sends none, so no table is needed.
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
USE_TZ = True
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            # The tutorial writes ("127.0.0.1", 6379). With redis-py 8 that dies: its 5 s read
            # timeout equals channels-redis's 5 s BZPOPMIN, so an idle receive raises
            # TimeoutError and kills the consumer. The one change: a longer socket timeout.
            # The pool keeps the tutorial's default size (redis-py's 100-connection cap).
            "hosts": [{"address": "redis://127.0.0.1:6379", "socket_timeout": 15}],
            "prefix": os.environ.get("BENCH_CHANNEL_PREFIX", "bench-t1"),
        },
    }
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
