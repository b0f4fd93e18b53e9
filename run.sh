#!/usr/bin/env bash
# Set up and run feeds_server on this machine: venv, install, migrate, demo data on first run, serve.
# Configuration comes from FEEDS_* environment variables (docs/configuration.md).
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
if [ ! -f .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e .
  touch .venv/.installed
fi

# The web client's real-time SDK (the centrifuge npm package, never committed). Without npm the app
# is still served; its page then says that real-time updates are unavailable.
if [ ! -d feeds_server/web/node_modules/centrifuge ]; then
  if command -v npm >/dev/null 2>&1; then
    (cd feeds_server/web && npm ci --no-audit --no-fund --loglevel=error) ||
      echo "npm ci failed in feeds_server/web: the web client runs without real-time updates" >&2
  else
    echo "npm not found: the web client runs without real-time updates" >&2
  fi
fi

.venv/bin/feeds-server migrate
.venv/bin/feeds-server demo
exec .venv/bin/feeds-server serve --no-migrate "$@"
