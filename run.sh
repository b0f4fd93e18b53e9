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

.venv/bin/feeds-server migrate
.venv/bin/feeds-server demo
exec .venv/bin/feeds-server serve --no-migrate "$@"
