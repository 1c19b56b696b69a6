"""A channels-redis core layer that loses every third message it receives: the at-most-once
layer at its worst, for the fault-injection suite (PARLEY_CHANNEL_BACKEND points a server at it).
Each loss is logged, so a test can tell that the fault really happened."""

import logging

from channels_redis.core import RedisChannelLayer

logger = logging.getLogger(__name__)

DROP_MARK = "lossy layer dropped a message"
EVERY = 3


class LossyChannelLayer(RedisChannelLayer):
    received = 0

    async def receive(self, channel):
        while True:
            message = await super().receive(channel)
            self.received += 1
            if self.received % EVERY:
                return message
            logger.warning("%s (%s)", DROP_MARK, message.get("type"))
