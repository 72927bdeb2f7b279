#!/usr/bin/env bash
# Set up and run the whole test suite: scripts/bootstrap-tests.sh (idempotent: the tool's
# virtualenv, the test packages, PostgreSQL, pinned helm and kubectl), ruff, mypy (the
# package, tests/ and the loopback API server in testing/: [tool.mypy] in pyproject.toml), then
# pytest. Arguments are passed to pytest, e.g. scripts/test.sh -k pgserver -x
# The pinned helm/kubectl in .tools/bin come first on PATH, so tests and any program
# they start find those rather than whatever the machine has.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
bash scripts/bootstrap-tests.sh
export PATH="$here/.tools/bin:$here/.venv/bin:$PATH"
export RUNAI_DR_TEST_SH=1
echo "== ruff check" >&2
ruff check .
echo "== mypy" >&2
mypy
echo "== pytest" >&2
pytest "$@"
