"""Load and latency benchmarks (issue 4). Run with ``make bench`` or ``make bench-quick``."""
