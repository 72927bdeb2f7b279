#!/usr/bin/env bash
# The daemonless OCI image tools that scripts/image.sh and its tests use, from Debian's
# packages: umoci (builds and unpacks an OCI image layout, as a non-root-owned rootfs
# where needed) and skopeo (turns the layout into an oci-archive, inspects it, and copies
# it to a registry). Idempotent: a second run only checks. Called by
# scripts/bootstrap-tests.sh; needs root (or the packages installed beforehand).
set -euo pipefail
missing=()
command -v umoci >/dev/null || missing+=(umoci)
command -v skopeo >/dev/null || missing+=(skopeo)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "bootstrap-image-tools: need the Debian package(s) ${missing[*]};" \
       "run as root or: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
