#!/usr/bin/env bash
# Set up what running the tool needs, and nothing more: a virtualenv in .venv holding the
# package (editable) and its runtime dependencies (typer, rich, kubernetes, pyyaml). Then
# .venv/bin/kubectl-runai_dr is the plugin; kubectl runs it as `kubectl runai-dr` when
# .venv/bin is on PATH.
#
# The test suite needs more (test packages, PostgreSQL, pinned helm and kubectl):
# scripts/bootstrap-tests.sh sets that up, and scripts/test.sh runs it.
#
# Idempotent: a second run only checks. On a fresh Debian 12 machine as root it installs
# python3-venv with apt-get when Python has no venv module.
# Environment: PYTHON (default python3).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
py=${PYTHON:-python3}

if [ ! -x .venv/bin/python ]; then
  if ! "$py" -c 'import ensurepip, venv' 2>/dev/null; then
    if [ "$(id -u)" != 0 ]; then
      echo "bootstrap: $py has no venv module; run as root or: sudo apt-get install -y python3-venv" >&2
      exit 1
    fi
    echo "bootstrap: $py has no venv module; installing python3-venv" >&2
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-venv >/dev/null
  fi
  rm -rf .venv
  "$py" -m venv .venv
fi
# Reinstalled when pyproject.toml changes (its dependencies or version).
stamp=.venv/.installed-tool-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q -e .
  rm -f .venv/.installed-tool-*
  touch "$stamp"
fi
