"""T1: the Channels tutorial chat consumer, as the tutorial writes it (daphne, channels-redis)."""
