#!/usr/bin/env bash
# The whole suite, as `make test` runs it: unit/integration tests, then the browser tests in a
# process of their own (Playwright's sync API keeps an event loop running, which breaks
# pytest-asyncio tests that share its process), then the fault-injection suite in a third one
# (it starts a private Redis and several server processes, and kills them; see faults/), then
# schemathesis against a real server in a fourth (fuzz/).
#
#   scripts/run-tests.sh [extra pytest args...]
#
# PYTEST_ADDOPTS is honoured by pytest itself. A selection that collects no test (pytest exit
# code 5) is reported but not fatal; no test at all across the runs is a failure.
set -uo pipefail

cd "$(dirname "$0")/.."
PYTEST="${PYTEST:-.venv/bin/pytest}"

ran=0
status=0

run() {
  local label="$1"
  shift
  printf '\n== %s: pytest %s\n' "$label" "$*"
  "$PYTEST" "$@"
  local rc=$?
  case "$rc" in
    0) ran=$((ran + 1)) ;;
    5) echo "== ${label}: no tests were collected (pytest exit 5); continuing." ;;
    *) echo "== ${label}: FAILED (pytest exit ${rc})" >&2; status=1 ;;
  esac
}

# Consumers reach the database from worker threads; persistent connections there would keep
# PostgreSQL's test database "in use" when pytest-django drops it at the end.
# The cache's 0.5 s Redis timeout is for production (a hung Redis must not hold a request); on
# a busy 2-core test machine a healthy Redis can answer later than that once, which pauses the
# rate limits for 5 s and fails a rate-limit test. The outage tests set their own timeouts.
DJANGO_CONN_MAX_AGE=0 PARLEY_CACHE_TIMEOUT="${PARLEY_CACHE_TIMEOUT:-5}" \
  run "unit and integration tests" -m "not e2e and not faults and not fuzz" "$@"
run "end-to-end browser tests" -m e2e "$@"
run "fault-injection tests" -m faults "$@"
run "API fuzz tests (schemathesis)" -m fuzz "$@"

if [ "$status" -ne 0 ]; then
  echo "Some tests failed." >&2
  exit 1
fi
if [ "$ran" -eq 0 ]; then
  echo "No test was collected at all: treating that as a failure." >&2
  exit 1
fi
echo "All test runs passed."
