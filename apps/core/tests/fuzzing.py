"""Shared hypothesis settings for the fuzz passes (frames and forms).

Derandomized when CI is set, so a CI failure reproduces exactly on a rerun; locally each run
explores new inputs and a failure prints its @reproduce_failure blob. No example database:
nothing is written into the working tree."""

import os

from hypothesis import HealthCheck, settings

FUZZ = settings(
    deadline=None,  # database round trips vary on a shared 2-core machine
    database=None,
    derandomize=bool(os.environ.get("CI")),
    print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
