"""Moved to ``apps.core.ratelimit`` (profiles, the API and uploads use it too); kept so existing
imports keep working."""

from apps.core.ratelimit import RateLimited, hit

__all__ = ["RateLimited", "hit"]
