"""Fault-injection suite (pytest -m faults): delivery under load, Redis and server crashes."""
