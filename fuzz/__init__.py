"""The API fuzz suite (schemathesis against a real server); see fuzz/test_api.py."""

# One line per run of the suite, printed at the end of the pytest session (fuzz/conftest.py).
SUMMARY: list[str] = []
