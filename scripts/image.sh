#!/usr/bin/env bash
# Build the tool's OCI image, daemonless (no Docker, no registry): the PyInstaller plugin
# folder (scripts/build.sh) on a minimal base holding only what the binary needs: the glibc
# libraries it and its bundled libraries load (copied from the build machine, found with
# ldd), the CA certificates, /etc/passwd and /etc/group with the non-root user nonroot
# (65532), and /tmp (1777). The image runs as 65532:65532; its entrypoint is the tool
# (/usr/local/bin/kubectl-runai_dr), its default argument --help.
#
#   dist/kubectl-runai_dr-<version>.oci-archive   the image (skopeo: oci-archive:PATH)
#   dist/image-ref.txt                            REPOSITORY:VERSION@sha256:<manifest digest>,
#                                                 the reference to give `schedule install --image`
#
# Tools: umoci (the OCI layout: one layer from the staged root, the config) and skopeo
# (layout -> oci-archive, and the digest), Debian packages that scripts/bootstrap-image-tools.sh
# installs. Timestamps come from SOURCE_DATE_EPOCH (default: the commit's time), file
# times in the layer too.
#
# Push to a registry (the digest stays: the manifest is copied as it is):
#   skopeo copy --preserve-digests oci-archive:dist/kubectl-runai_dr-<version>.oci-archive \
#     docker://<registry>/runai-dr/kubectl-runai-dr:<version>
# then install the schedule with the printed digest:
#   kubectl runai-dr schedule install --image "$(cat dist/image-ref.txt)" ...
# (with IMAGE_REPOSITORY set to where it was pushed when building, image-ref.txt names it).
#
# Environment: DIST_DIR (default dist), IMAGE_REPOSITORY (default runai-dr/kubectl-runai-dr),
# BUILD=1 to run scripts/build.sh first even when the plugin folder exists.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
export LC_ALL=C TZ=UTC
umask 022
name=kubectl-runai_dr
dist=$(realpath -m "${DIST_DIR:-dist}")
repo=${IMAGE_REPOSITORY:-runai-dr/kubectl-runai-dr}
version=$(python3 -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
archive=$dist/$name-$version.oci-archive

for tool in umoci skopeo ldd; do
  command -v "$tool" >/dev/null || {
    echo "image: $tool is missing: run scripts/bootstrap-image-tools.sh (as root)" >&2; exit 1; }
done
if [ "${BUILD:-0}" = 1 ] || [ ! -x "$dist/$name/$name" ]; then
  DIST_DIR="$dist" bash scripts/build.sh
fi
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s)
fi
created=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
mkdir -p "$root"/{usr/local/bin,usr/local/lib,etc/ssl/certs,tmp,home/nonroot}
chmod 1777 "$root/tmp"
cp -a "$dist/$name" "$root/usr/local/lib/$name"
ln -s "../lib/$name/$name" "$root/usr/local/bin/$name"

# glibc and the other system libraries the executable and its bundled libraries load.
libs=$work/libs
: >"$libs"
while IFS= read -r -d '' f; do
  if head -c 4 "$f" | grep -q $'\x7fELF'; then
    ldd "$f" 2>/dev/null | awk '/=> \// {print $3} /^\s*\/[^ ]+ \(/ {print $1}' >>"$libs" || true
  fi
done < <(find "$root/usr/local/lib/$name" -type f -print0)
sort -u "$libs" | while read -r lib; do
  case "$lib" in "$root"*) continue ;; esac  # bundled by PyInstaller already
  real=$(realpath "$lib")
  mkdir -p "$root$(dirname "$lib")" "$root$(dirname "$real")"
  cp -L "$real" "$root$real"
  [ "$lib" = "$real" ] || ln -sf "$real" "$root$lib"
done
# the dynamic loader at the path the executables name
interp=$(readelf -l "$root/usr/local/lib/$name/$name" 2>/dev/null | sed -n 's/.*interpreter: \(.*\)]/\1/p')
interp=${interp:-/lib64/ld-linux-x86-64.so.2}
if [ ! -e "$root$interp" ]; then
  mkdir -p "$root$(dirname "$interp")"
  cp -L "$interp" "$root$interp"
fi
cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$root/etc/group"
chown 65532:65532 "$root/home/nonroot"
find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

layout=$work/layout
umoci init --layout "$layout"
umoci new --image "$layout:$version"
umoci insert --image "$layout:$version" --history.created "$created" \
  --history.created_by "scripts/image.sh" --history.comment "kubectl-runai-dr $version" "$root" /
umoci config --image "$layout:$version" --history.created "$created" \
  --history.created_by "scripts/image.sh" \
  --author "kubectl-runai-dr" --created "$created" \
  --architecture amd64 --os linux \
  --config.user 65532:65532 \
  --config.entrypoint "/usr/local/bin/$name" --config.cmd --help \
  --config.workingdir /tmp \
  --config.env PATH=/usr/local/bin:/usr/bin:/bin \
  --config.env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
  --config.env HOME=/home/nonroot \
  --config.label "org.opencontainers.image.title=kubectl-runai-dr" \
  --config.label "org.opencontainers.image.version=$version" \
  --config.label "org.opencontainers.image.created=$created"
umoci gc --layout "$layout"
mkdir -p "$dist"
rm -f "$archive"
skopeo copy --quiet "oci:$layout:$version" "oci-archive:$archive:$repo:$version"
digest=$(skopeo inspect --format '{{.Digest}}' "oci-archive:$archive")
echo "$repo:$version@$digest" >"$dist/image-ref.txt"
echo "image: $archive"
echo "image: $repo:$version@$digest (dist/image-ref.txt)"
