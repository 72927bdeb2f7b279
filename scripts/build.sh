#!/usr/bin/env bash
# Build the self-contained plugin and the archive krew installs, reproducibly: the same
# commit, built with the same Python and packages, gives the same archive, byte for byte.
#
#   dist/kubectl-runai_dr/                       the plugin: one folder (PyInstaller --onedir)
#     kubectl-runai_dr                           the executable kubectl runs
#     kubectl_complete-runai_dr                  kubectl's completion helper for it
#     _internal/                                 Python and the libraries it loads
#   dist/kubectl-runai_dr_linux_amd64.tar.gz     LICENSE and kubectl-runai_dr/, for krew
#   dist/build-info.txt                          version, commit, sha256, toolchain
#
# The version comes from pyproject.toml; the git commit is stamped into the build copy of
# kubectl_runai_dr/_version.py (BUILD_COMMIT), never into the source tree.
#
# Reproducible: SOURCE_DATE_EPOCH is the commit's time (unless set), PYTHONHASHSEED is
# fixed, the package metadata is generated from pyproject.toml rather than copied from an
# install (which records the checkout's path), and the archive's members are sorted, owned
# by 0:0, with fixed modes and mtimes, compressed by gzip -n.
#
# Options (environment):
#   BUILD_MODE=onedir|onefile   onedir (default) is the release build. onefile builds only
#                               DIST_DIR/kubectl-runai_dr, one executable, no archive: it
#                               is kept to compare start-up (docs/packaging.md)
#   DIST_DIR=dist               where the results go
#   BUILD_DIR=build/pyinstaller PyInstaller's work folder (removed and rebuilt)
#   BUILD_STRIP=0               keep symbols in bundled libraries (default: strip them)
#   BUILD_COMMIT=<text>         commit to stamp (default: git HEAD, "-dirty" if the
#                               package or pyproject.toml has uncommitted changes)
#   SOURCE_DATE_EPOCH=<seconds> time stamped on every archive member (default: the commit's)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
mode=${BUILD_MODE:-onedir}
case "$mode" in onedir|onefile) ;; *) echo "build: BUILD_MODE must be onedir or onefile" >&2; exit 2;; esac
name=kubectl-runai_dr
dist=$(realpath -m "${DIST_DIR:-dist}")
work=$(realpath -m "${BUILD_DIR:-build/pyinstaller}")
archive=$dist/${name}_linux_amd64.tar.gz

# Nothing below may depend on the builder's locale, time zone, umask or hash seed.
export LC_ALL=C TZ=UTC PYTHONHASHSEED=0
umask 022

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
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || true)
  [ -n "$SOURCE_DATE_EPOCH" ] || { echo "build: not a git checkout: set SOURCE_DATE_EPOCH" >&2; exit 1; }
fi
export SOURCE_DATE_EPOCH
version=$(.venv/bin/python -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
installed=$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("kubectl-runai-dr"))')
if [ "$version" != "$installed" ]; then
  echo "build: installed metadata says $installed, pyproject.toml says $version;" \
       "re-run scripts/bootstrap.sh" >&2
  exit 1
fi

# A build copy of the package with the commit stamped in, and its metadata (what
# importlib.metadata reads for the version) generated from pyproject.toml alone.
rm -rf "$work"
mkdir -p "$work/src" "$work/meta"
cp -r kubectl_runai_dr "$work/src/"
find "$work/src" -name __pycache__ -prune -exec rm -rf {} +
.venv/bin/python - "$work" "$BUILD_COMMIT" <<'PY'
import re, sys, tomllib
from pathlib import Path
work, commit = Path(sys.argv[1]), sys.argv[2]
path = work / "src" / "kubectl_runai_dr" / "_version.py"
text = path.read_text()
new, n = re.subn(r'^BUILD_COMMIT = ""$', f'BUILD_COMMIT = {commit!r}', text, flags=re.M)
if n != 1:
    sys.exit(f'build: no line BUILD_COMMIT = "" in {path} to stamp')
path.write_text(new)
project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
info = work / "meta" / f"kubectl_runai_dr-{project['version']}.dist-info"
info.mkdir(parents=True)
(info / "METADATA").write_text(
    "Metadata-Version: 2.4\n"
    f"Name: {project['name']}\n"
    f"Version: {project['version']}\n"
    f"Summary: {project['description']}\n"
    f"License-Expression: {project['license']}\n"
    f"Requires-Python: {project['requires-python']}\n")
PY
cat > "$work/entry.py" <<'PY'
from kubectl_runai_dr.__main__ import main

main()
PY

mkdir -p "$dist"
rm -rf "${dist:?}/$name" "$archive" "$dist/build-info.txt"
if [ "$mode" = onefile ]; then
  bundle=(--onefile --distpath "$dist")
else
  bundle=(--onedir --contents-directory _internal --distpath "$work/onedir")
fi
# Stripping symbols from the bundled libraries (libpython above all) makes the bundle a
# third smaller and start-up faster.
strip=(--strip)
[ "${BUILD_STRIP:-1}" = 0 ] && strip=()
# Modules that nothing in the tool uses at run time, left out to keep the bundle small
# and quick to load (pydantic's mypy plugin would pull in all of mypy), and the tests'
# loopback API server (kubeapi), which the tool never imports.
excludes=()
for m in tkinter _tkinter unittest pydoc_data lib2to3 sqlite3 xmlrpc pytest _pytest \
         setuptools pkg_resources pip IPython numpy mypy mypyc ast_serialize \
         pydantic.mypy pydantic.v1.mypy curses _curses kubeapi; do
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
# PyInstaller copies the metadata of every distribution the code asks importlib.metadata
# about, from the first place the build's Python finds it: PYTHONPATH puts the generated
# one ahead of the editable install's.
PYTHONPATH="$work/meta${PYTHONPATH:+:$PYTHONPATH}" \
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
if [ "$mode" = onefile ]; then
  echo "build: $dist/$name (onefile, v$version, commit $BUILD_COMMIT)" >&2
  exit 0
fi

# The folder users run, with the completion helper beside the executable (the helper
# looks for the plugin next to itself).
mv "$work/onedir/$name" "$dist/$name"
cp kubectl_complete-runai_dr "$dist/$name/"

# The archive krew installs. krew unpacks regular files and folders only (no links) and
# refuses names containing "..": checked here so that a release cannot carry either.
bad=$(cd "$dist" && { find "$name" ! -type f ! -type d; find "$name" -name '*..*'; })
if [ -n "$bad" ]; then
  echo "build: krew cannot unpack these members (links or '..' in the name):" >&2
  echo "$bad" >&2
  exit 1
fi
stage=$work/archive
rm -rf "$stage"
mkdir -p "$stage"
cp -r "$dist/$name" "$stage/"
cp LICENSE "$stage/"
chmod -R u=rwX,go=rX "$stage"
chmod 0755 "$stage/$name/$name" "$stage/$name/kubectl_complete-runai_dr"
tar -C "$stage" --format=gnu --sort=name --owner=0 --group=0 --numeric-owner \
  --mtime="@$SOURCE_DATE_EPOCH" --no-acls --no-xattrs --no-selinux \
  -cf - LICENSE "$name" | gzip -n -9 > "$archive"
sha=$(sha256sum "$archive" | cut -d' ' -f1)
{
  printf 'version=%s\ncommit=%s\nmode=%s\nsource_date_epoch=%s\nsha256=%s\n' \
    "$version" "$BUILD_COMMIT" "$mode" "$SOURCE_DATE_EPOCH" "$sha"
  printf 'python=%s\npyinstaller=%s\n' "$(.venv/bin/python -c 'import platform; print(platform.python_version())')" \
    "$(.venv/bin/python -c 'import PyInstaller; print(PyInstaller.__version__)')"
} > "$dist/build-info.txt"
echo "build: $dist/$name/ ($(du -sh "$dist/$name" | cut -f1), v$version, commit $BUILD_COMMIT)" >&2
echo "build: $archive ($(du -h "$archive" | cut -f1)) sha256 $sha" >&2
