#!/usr/bin/env bash
# Build the self-contained plugin binary and its krew archive:
#   dist/kubectl-runai_dr                         one executable (PyInstaller --onefile)
#   dist/kubectl-runai_dr_linux_amd64.tar.gz      kubectl-runai_dr, kubectl_complete-runai_dr, LICENSE
# The version comes from pyproject.toml (through the package metadata, copied into the
# binary); the git commit is stamped into the build copy of kubectl_runai_dr/_version.py
# (BUILD_COMMIT), never into the source tree.
#
# Options (environment):
#   BUILD_MODE=onefile|onedir   onedir builds dist/kubectl-runai_dr.dir/ (an executable
#                               beside its _internal/ folder); used by bench/ to compare
#                               start-up. The release build is onefile.
#   BUILD_STRIP=0               keep symbols in bundled libraries (default: strip them)
#   BUILD_COMMIT=<text>         commit to stamp (default: git HEAD, "-dirty" if the
#                               package or pyproject.toml has uncommitted changes)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
mode=${BUILD_MODE:-onefile}
name=kubectl-runai_dr
archive=dist/${name}_linux_amd64.tar.gz

bash scripts/bootstrap.sh
if ! .venv/bin/python -c 'import PyInstaller' 2>/dev/null; then
  .venv/bin/pip install -q -e ".[build]"
fi
# PyInstaller reads shared-library dependencies with objdump (binutils).
if ! command -v objdump >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends binutils >/dev/null
  else
    echo "build: PyInstaller needs objdump: apt-get install binutils" >&2
    exit 1
  fi
fi

# PyInstaller bundles the shared libpython; Debian's python3 is built without it, and
# the library comes in its own package.
pyver=$(.venv/bin/python -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
if [ "$(.venv/bin/python -c 'import sys; print(sys.base_prefix)')" = /usr ] &&
   ! ldconfig -p 2>/dev/null | grep -q "libpython$pyver.so.1.0"; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      "libpython$pyver" >/dev/null
  else
    echo "build: PyInstaller needs the shared Python library: apt-get install libpython$pyver" >&2
    exit 1
  fi
fi

if [ -z "${BUILD_COMMIT:-}" ]; then
  BUILD_COMMIT=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
  if [ "$BUILD_COMMIT" != unknown ] &&
     [ -n "$(git status --porcelain -- kubectl_runai_dr pyproject.toml 2>/dev/null)" ]; then
    BUILD_COMMIT="$BUILD_COMMIT-dirty"
  fi
fi
version=$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("kubectl-runai-dr"))')
pyproject_version=$(.venv/bin/python -c \
  'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
if [ "$version" != "$pyproject_version" ]; then
  echo "build: installed metadata says $version, pyproject.toml says $pyproject_version;" \
       "re-run scripts/bootstrap.sh" >&2
  exit 1
fi

# A build copy of the package with the commit stamped in.
work=build/pyinstaller
rm -rf "$work"
mkdir -p "$work/src"
cp -r kubectl_runai_dr "$work/src/"
find "$work/src" -name __pycache__ -prune -exec rm -rf {} +
.venv/bin/python - "$work/src/kubectl_runai_dr/_version.py" "$BUILD_COMMIT" <<'PY'
import re, sys
path, commit = sys.argv[1], sys.argv[2]
text = open(path).read()
new, n = re.subn(r'^BUILD_COMMIT = ""$', f'BUILD_COMMIT = {commit!r}', text, flags=re.M)
if n != 1:
    sys.exit(f'build: no line BUILD_COMMIT = "" in {path} to stamp')
open(path, "w").write(new)
PY
cat > "$work/entry.py" <<'PY'
from kubectl_runai_dr.__main__ import main

main()
PY

mkdir -p dist
if [ "$mode" = onefile ]; then
  rm -rf "dist/$name" "$archive"
  bundle=(--onefile --distpath dist)
else
  rm -rf "dist/$name.dir"
  bundle=(--onedir --contents-directory _internal --distpath "$work/onedir")
fi
# Stripping symbols from the bundled libraries (libpython above all) makes the binary
# a third smaller and --help ~30% faster, since --onefile unpacks it on every start.
strip=(--strip)
[ "${BUILD_STRIP:-1}" = 0 ] && strip=()
# Modules that nothing in the tool uses at run time, left out to keep the binary small
# and quick to unpack (pydantic's mypy plugin would pull in all of mypy).
excludes=()
for m in tkinter _tkinter unittest pydoc_data lib2to3 sqlite3 xmlrpc pytest _pytest \
         setuptools pkg_resources pip IPython numpy mypy mypyc ast_serialize \
         pydantic.mypy pydantic.v1.mypy curses _curses; do
  excludes+=(--exclude-module "$m")
done
# Modules imported by name are invisible to PyInstaller's import scan: every module of
# the tool is named explicitly (components are loaded from a table of names, and some
# folders are namespace packages, which --collect-submodules does not walk), and
# shellingham is collected whole (typer's --show-completion imports its posix module by
# name).
hidden=()
while IFS= read -r mod; do
  hidden+=(--hidden-import "$mod")
done < <(cd "$work/src" && find kubectl_runai_dr -name '*.py' ! -name '__main__.py' |
         sed -e 's|/__init__\.py$||' -e 's|\.py$||' -e 's|/|.|g' | sort)
.venv/bin/pyinstaller --noconfirm --clean --log-level WARN \
  "${bundle[@]}" --name "$name" \
  --paths "$work/src" \
  --copy-metadata kubectl-runai-dr \
  --collect-submodules shellingham \
  "${hidden[@]}" \
  "${strip[@]}" \
  "${excludes[@]}" \
  --workpath "$work/work" --specpath "$work" \
  "$work/entry.py"
if [ "$mode" = onedir ]; then
  mv "$work/onedir/$name" "dist/$name.dir"
  echo "build: dist/$name.dir/$name ($mode, v$version, commit $BUILD_COMMIT)" >&2
  exit 0
fi

# The archive krew installs: flat, reproducible ownership and order.
stage=$work/archive
rm -rf "$stage"
mkdir -p "$stage"
cp "dist/$name" kubectl_complete-runai_dr LICENSE "$stage/"
chmod 0755 "$stage/$name" "$stage/kubectl_complete-runai_dr"
chmod 0644 "$stage/LICENSE"
mtime=$(git log -1 --format=%ct 2>/dev/null || date +%s)
tar -C "$stage" --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$mtime" \
  -cf - "$name" kubectl_complete-runai_dr LICENSE | gzip -n -9 > "$archive"
printf 'version=%s\ncommit=%s\n' "$version" "$BUILD_COMMIT" > dist/build-info.txt
echo "build: dist/$name ($(du -h "dist/$name" | cut -f1), v$version, commit $BUILD_COMMIT)" >&2
echo "build: $archive sha256 $(sha256sum "$archive" | cut -d' ' -f1)" >&2
