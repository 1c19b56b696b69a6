"""The real Redis: these run only with REDIS_URL set, and in CI a skip here is a failure."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings

pytestmark = pytest.mark.redis


def test_the_channel_layer_is_channels_redis():
    from channels_redis.core import RedisChannelLayer

    assert isinstance(get_channel_layer(), RedisChannelLayer)
    assert settings.CACHES["default"]["BACKEND"].endswith("RedisCache")


def test_a_message_sent_to_a_channel_comes_back():
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.send)(channel, {"type": "hello", "n": 1})
    assert async_to_sync(layer.receive)(channel) == {"type": "hello", "n": 1}


def test_the_seed_shell_check_works():
    """The README's check: in `manage.py shell`, send to 'test_channel' and receive it back."""
    code = (
        "from asgiref.sync import async_to_sync\n"
        "from channels.layers import get_channel_layer\n"
        "layer = get_channel_layer()\n"
        "async_to_sync(layer.send)('test_channel', {'type': 'hello'})\n"
        "print(async_to_sync(layer.receive)('test_channel'))\n"
    )
    root = Path(__file__).resolve().parents[3]
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=root,
        env={**os.environ},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "{'type': 'hello'}" in result.stdout
