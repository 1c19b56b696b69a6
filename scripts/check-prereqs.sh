#!/usr/bin/env bash
# Check what `make run` / `make test` need before doing anything slow, and say exactly what to
# install when something is missing.
#
#   scripts/check-prereqs.sh python node [chromium]
#
# Environment: PYTHON (default python3), CHROMIUM_PATH (a Chromium/Chrome binary to use).
set -uo pipefail

PYTHON="${PYTHON:-python3}"
PYTHON_MIN="3.11"   # pyproject.toml: requires-python
NODE_MIN=20         # @tailwindcss/oxide: engines.node ">= 20"
failed=0

fail() {
  failed=1
  if [ -t 2 ]; then
    printf '\n\033[1;31mMissing prerequisite:\033[0m %s\n' "$1" >&2
  else
    printf '\nMissing prerequisite: %s\n' "$1" >&2
  fi
  shift
  for line in "$@"; do printf '  %s\n' "$line" >&2; done
}

check_python() {
  if ! command -v "$PYTHON" >/dev/null 2>&1; then
    fail "Python ${PYTHON_MIN} or newer ('${PYTHON}' was not found)." \
      "Debian/Ubuntu: apt-get install python3 python3-venv" \
      "Or point PYTHON at another interpreter: make PYTHON=/path/to/python3.12 ..."
    return
  fi
  if ! "$PYTHON" -c "import sys; sys.exit(sys.version_info < (${PYTHON_MIN/./, }))" 2>/dev/null; then
    local found
    found="$("$PYTHON" -V 2>/dev/null)" || found=""
    fail "Python ${PYTHON_MIN} or newer ('${PYTHON}' is ${found:-not a working interpreter})." \
      "Install a newer Python and run: make PYTHON=/path/to/python3.11 ..."
    return
  fi
  # Debian and Ubuntu ship venv's pip bootstrap (ensurepip) in a separate package.
  if ! "$PYTHON" -c "import venv, ensurepip" >/dev/null 2>&1; then
    fail "Python's venv module with ensurepip (needed to create .venv)." \
      "Debian/Ubuntu: apt-get install python3-venv"
  fi
}

check_node() {
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    fail "Node.js ${NODE_MIN} or newer with npm (builds the CSS and vendors htmx)." \
      "Debian 13 / Ubuntu 24.10 and newer: apt-get install nodejs npm" \
      "Older releases ship Node 18: install Node.js ${NODE_MIN} LTS from nodejs.org (or: nvm install ${NODE_MIN})"
    return
  fi
  local major
  major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
  if [ "${major:-0}" -lt "$NODE_MIN" ]; then
    fail "Node.js ${NODE_MIN} or newer (found $(node --version 2>/dev/null); Tailwind CSS 4 needs ${NODE_MIN})." \
      "Debian 13 / Ubuntu 24.10 and newer: apt-get install nodejs npm" \
      "Otherwise install Node.js ${NODE_MIN} LTS from nodejs.org (or: nvm install ${NODE_MIN})"
  fi
}

check_chromium() {
  if [ -n "${CHROMIUM_PATH:-}" ]; then
    if [ ! -x "$CHROMIUM_PATH" ]; then
      fail "Chromium for the end-to-end tests (CHROMIUM_PATH=${CHROMIUM_PATH} is not an executable)." \
        "Debian/Ubuntu: apt-get install chromium   (or unset CHROMIUM_PATH)"
    fi
    return
  fi
  local name
  for name in chromium chromium-browser google-chrome-stable google-chrome; do
    if command -v "$name" >/dev/null 2>&1; then return; fi
  done
  fail "Chromium for the end-to-end tests (Playwright drives the system browser)." \
    "Debian: apt-get install chromium" \
    "Or set CHROMIUM_PATH=/path/to/chromium (any Chromium or Chrome binary)."
}

for what in "$@"; do
  case "$what" in
    python) check_python ;;
    node) check_node ;;
    chromium) check_chromium ;;
    *) echo "check-prereqs.sh: unknown check '$what'" >&2; exit 2 ;;
  esac
done

if [ "$failed" -ne 0 ]; then
  printf '\nInstall the above, then run the same make command again.\n' >&2
  exit 1
fi
