"""Reference servers the benchmark compares Parley with."""
