#!/usr/bin/env bash
# Set up and run the whole test suite: scripts/bootstrap-tests.sh (idempotent: the tool's
# virtualenv, the test packages, PostgreSQL, pinned helm and kubectl), ruff, mypy (the
# package, tests/ and the loopback API server in testing/: [tool.mypy] in pyproject.toml), then
# pytest. Arguments are passed to pytest, e.g. scripts/test.sh -k pgserver -x
# The pinned helm/kubectl in .tools/bin come first on PATH, so tests and any program
# they start find those rather than whatever the machine has.
# The loopback API server runs on uvloop's event loop (installed with it); the exec relay's
# tests run once more on asyncio's own loop (KUBEAPI_LOOP=asyncio), whose pipes and errors
# differ, before the whole suite (when no pytest arguments narrow the run).
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
if [ $# -eq 0 ]; then
  echo "== pytest: exec over asyncio's event loop" >&2
  KUBEAPI_LOOP=asyncio pytest -q -p no:cacheprovider tests/test_kubeapi_exec.py \
    tests/test_exec_protocol.py tests/test_database.py
fi
echo "== pytest" >&2
pytest "$@"
