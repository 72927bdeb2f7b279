#!/usr/bin/env bash
# Make a release: build the archive (scripts/build.sh), render the krew manifest for it
# from krew/plugin.yaml.in, check everything, and lay out what to publish in dist/release/:
#
#   dist/release/kubectl-runai_dr_linux_amd64.tar.gz   the archive, to upload to --base-url
#   dist/release/plugin.yaml                           its manifest (krew install --manifest)
#   dist/release/krew-index/plugins/runai-dr.yaml      the same, for the custom index repo
#   dist/release/SHA256SUMS
#
# Usage:
#   scripts/release.sh --base-url 'https://<host>/kubectl-runai-dr/v{version}' \
#                      --homepage 'https://<the project page>' [--archive A] [--out DIR]
#                      [--allow-dirty]
#
# --base-url: the https folder the archive will be downloaded from; {version} is replaced
#   by the version in pyproject.toml. --homepage: the plugin's page. Both also from
#   RELEASE_BASE_URL / RELEASE_HOMEPAGE.
# --archive: use an archive already built (default: build one now).
# --out: where to lay out the release (default dist/release; replaced whole).
# It refuses, writing nothing to dist/release/, when a URL is a placeholder (example.com,
# .invalid, <...>), when the rendered manifest still holds a placeholder or fails krew's
# checks against the archive, or when the build is of uncommitted changes (-dirty), unless
# --allow-dirty.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
base_url=${RELEASE_BASE_URL:-}
homepage=${RELEASE_HOMEPAGE:-}
archive=
out=dist/release
allow_dirty=
while [ $# -gt 0 ]; do
  case "$1" in
    --base-url) base_url=$2; shift 2;;
    --homepage) homepage=$2; shift 2;;
    --archive) archive=$2; shift 2;;
    --out) out=$2; shift 2;;
    --allow-dirty) allow_dirty=1; shift;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0;;
    *) echo "release: unknown argument $1 (see --help)" >&2; exit 2;;
  esac
done
[ -n "$base_url" ] || { echo "release: --base-url is required (see --help)" >&2; exit 2; }
[ -n "$homepage" ] || { echo "release: --homepage is required (see --help)" >&2; exit 2; }

if [ -z "$archive" ]; then
  bash scripts/build.sh
  archive=dist/kubectl-runai_dr_linux_amd64.tar.gz
  info=dist/build-info.txt
else
  bash scripts/bootstrap.sh  # krew/manifest.py runs in the tool's virtualenv (pyyaml)
  info=$(dirname "$archive")/build-info.txt
fi
[ -f "$archive" ] || { echo "release: no archive $archive" >&2; exit 1; }
if [ -f "$info" ]; then
  commit=$(sed -n 's/^commit=//p' "$info")
  if [[ "$commit" == *-dirty ]] && [ -z "$allow_dirty" ]; then
    echo "release: refused: $archive was built from uncommitted changes ($commit);" \
         "commit them and build again (or --allow-dirty)" >&2
    exit 1
  fi
fi

staging=$(mktemp -d "${TMPDIR:-/tmp}/release.XXXXXX")
trap 'rm -rf "$staging"' EXIT
# Render and check into a staging folder; dist/release/ is replaced only when all passed.
.venv/bin/python krew/manifest.py render "$archive" --base-url "$base_url" \
  --homepage "$homepage" --out "$staging" || {
  echo "release: refused: nothing written to $out" >&2
  exit 1
}
.venv/bin/python krew/manifest.py check --archive "$archive" \
  "$staging/plugin.yaml" "$staging/krew-index/plugins/runai-dr.yaml"
cp "$archive" "$staging/"
(cd "$staging" && sha256sum "$(basename "$archive")" > SHA256SUMS)
rm -rf "$out"
mkdir -p "$(dirname "$out")"
cp -r "$staging" "$out"
chmod 0755 "$out"
echo "release: $out is ready:" >&2
(cd "$out" && find . -type f | sort | sed 's|^\./|  |') >&2
echo "release: upload $(basename "$archive") to the uri in $out/plugin.yaml, and copy" \
     "$out/krew-index/plugins/ into the index repository" >&2
