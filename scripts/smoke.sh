#!/usr/bin/env bash
# Build the plugin binary and smoke-test it as a user would, with no Python on PATH:
#   1. build dist/kubectl-runai_dr/ and its archive (scripts/build.sh): a build failure
#      fails the smoke test, it is never skipped;
#   2. render the krew manifest from krew/plugin.yaml.in for the archive, as a release
#      does, and check it (name, version, sha256, every field krew requires, the archive's
#      members, no placeholder left);
#   3. install the archive as krew would, into a temporary KREW_ROOT;
#   4. with PATH holding only that KREW_ROOT/bin, kubectl and a few shell tools (no
#      python3 there): kubectl plugin discovery, `kubectl runai-dr version` / `--help`,
#      kubectl's plugin completion (`kubectl __complete runai-dr ...` and real bash
#      completion through `kubectl completion bash`);
#   5. a full backup (database included: a real PostgreSQL behind the loopback pod exec),
#      inspect and verify against the loopback API server (testing/kubeapi);
#   6. the start-up benchmark (bench/startup.py), failing only on a gross regression.
# Options (environment): SMOKE_NO_BUILD=1 reuses dist/; SMOKE_BACKUP_ARGS adds
# arguments to `backup`; SMOKE_HELP_LIMIT (seconds, default 1.0) for step 6.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
name=kubectl-runai_dr
archive=dist/${name}_linux_amd64.tar.gz

step() { printf '\n== smoke: %s\n' "$*" >&2; }
fail() { echo "smoke: FAIL: $*" >&2; exit 1; }
passed=0
ok() { passed=$((passed + 1)); echo "smoke: ok: $*" >&2; }

bash scripts/bootstrap-tests.sh
py=.venv/bin/python

step "build"
if [ "${SMOKE_NO_BUILD:-}" != 1 ]; then
  bash scripts/build.sh || fail "scripts/build.sh failed: the binary could not be built"
fi
[ -x "dist/$name/$name" ] || fail "dist/$name/$name was not built"
[ -f "$archive" ] || fail "$archive was not built"
version=$($py -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
commit=$(sed -n 's/^commit=//p' dist/build-info.txt)
[ -n "$commit" ] || fail "dist/build-info.txt names no commit"
if [ "${SMOKE_NO_BUILD:-}" != 1 ]; then
  # The stamped commit is the checkout's HEAD (or its ancestor, when commits landed
  # during the build).
  git merge-base --is-ancestor "${commit%-dirty}" HEAD 2>/dev/null ||
    fail "built commit $commit is not this checkout's HEAD"
fi

tmp=$(mktemp -d)
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

step "krew manifest"
# A release's URLs (names under .test, reserved for testing, are not placeholders).
$py krew/manifest.py render "$archive" --out "$tmp/manifests" \
  --base-url 'https://downloads.runai-dr.test/kubectl-runai-dr/v{version}' \
  --homepage https://runai-dr.test/ || fail "rendering the manifest for $archive failed"
index_manifest=$tmp/manifests/krew-index/plugins/runai-dr.yaml
$py krew/manifest.py check --archive "$archive" "$index_manifest" "$tmp/manifests/plugin.yaml" ||
  fail "the rendered manifest does not match the archive"
ok "manifest: name, version v$version, sha256 of $archive, krew fields, no placeholder"

step "install as krew would"
krew_root=$tmp/krew
$py krew/manifest.py install "$index_manifest" "$archive" "$krew_root" ||
  fail "krew-style install failed"
# The caveats tell users to link the completion helper; do the same, with their command.
link_cmd=$($py -c 'import sys, yaml; c = yaml.safe_load(open(sys.argv[1]))["spec"]["caveats"]
print(c[c.index("ln -s"):].replace("\\\n", " "))' "$index_manifest")
KREW_ROOT=$krew_root sh -c "$link_cmd" || fail "the caveats' completion link failed: $link_cmd"
[ -x "$krew_root/bin/kubectl_complete-runai_dr" ] || fail "no completion helper after: $link_cmd"
[ -x "$krew_root/bin/$name" ] || fail "no $name in KREW_ROOT/bin"
ok "installed into KREW_ROOT/store/runai-dr/v$version"

# PATH for the user: the krew bin folder, kubectl, and the few programs the completion
# helper (a POSIX sh script) and this test's bash completion use. No Python.
mkdir -p "$tmp/kubectl-bin" "$tmp/sys" "$tmp/home"
cp .tools/bin/kubectl "$tmp/kubectl-bin/kubectl"
for prog in sh bash env sed readlink dirname cat; do
  p=$(command -v "$prog") || fail "$prog not found"
  ln -s "$p" "$tmp/sys/$prog"
done
user_path=$krew_root/bin:$tmp/kubectl-bin:$tmp/sys
as_user() {
  env -i HOME="$tmp/home" PATH="$user_path" TERM=dumb NO_COLOR=1 COLUMNS=120 \
    ${KUBECONFIG_FOR_USER:+KUBECONFIG="$KUBECONFIG_FOR_USER"} "$@"
}
step "no Python on the user's PATH"
for p in python3 python; do
  if as_user sh -c "command -v $p" >/dev/null 2>&1; then fail "$p is resolvable on the user's PATH"; fi
done
ok "python3 and python are not on PATH ($user_path)"

step "kubectl plugin discovery"
out=$(as_user kubectl plugin list 2>&1) || fail "kubectl plugin list: $out"
grep -q "$krew_root/bin/$name" <<<"$out" || fail "kubectl plugin list does not show $name: $out"
ok "kubectl plugin list finds $name"

out=$(as_user kubectl runai-dr version 2>&1) || fail "kubectl runai-dr version: $out"
grep -qF "$version" <<<"$out" || fail "version output lacks $version: $out"
grep -qF "$commit" <<<"$out" || fail "version output lacks commit $commit: $out"
ok "kubectl runai-dr version: $out"
out=$(as_user kubectl runai_dr version 2>&1) || fail "kubectl runai_dr version: $out"
ok "kubectl runai_dr version works too"

out=$(as_user kubectl runai-dr --help 2>&1) || fail "kubectl runai-dr --help: $out"
for word in "kubectl runai-dr" backup inspect verify version; do
  grep -qF -- "$word" <<<"$out" || fail "--help lacks '$word': $out"
done
as_user kubectl runai-dr -h >/dev/null 2>&1 || fail "kubectl runai-dr -h failed"
ok "kubectl runai-dr --help lists backup, inspect, verify, version"

step "completion (kubectl's plugin completion convention)"
out=$(as_user kubectl __complete runai-dr '' 2>/dev/null) || fail "kubectl __complete: $out"
for word in backup inspect verify version; do
  grep -q "^$word	" <<<"$out" || fail "completion of subcommands lacks $word: $out"
done
[ "$(tail -n1 <<<"$out")" = ":4" ] || fail "completion should end with :4 (no file names): $out"
out=$(as_user kubectl __complete runai-dr backup --o 2>/dev/null)
grep -q "^--output	" <<<"$out" || fail "completion of backup flags lacks --output: $out"
out=$(as_user kubectl __complete runai-dr ver 2>/dev/null)
[ "$(grep -c -v '^:' <<<"$out")" = 2 ] || fail "'ver' should complete to verify and version: $out"
ok "kubectl __complete runai-dr: subcommands and flags"

# Real bash completion, as a user's shell does it after `source <(kubectl completion bash)`
# (kubectl's script needs the bash-completion package, as it says).
bash_completion=/usr/share/bash-completion/bash_completion
if [ ! -f "$bash_completion" ] && [ "$(id -u)" = 0 ]; then
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q bash-completion >/dev/null
fi
[ -f "$bash_completion" ] || fail "bash-completion is needed: apt-get install bash-completion"
as_user kubectl completion bash > "$tmp/kubectl-completion.bash"
cat > "$tmp/complete.bash" <<EOS
source "$bash_completion"
source "$tmp/kubectl-completion.bash"
COMP_LINE="kubectl runai-dr ba"
COMP_WORDS=(kubectl runai-dr ba)
COMP_CWORD=2
COMP_POINT=\${#COMP_LINE}
__start_kubectl kubectl ba kubectl
printf '%s\n' "\${COMPREPLY[@]}"
EOS
out=$(as_user bash --norc --noprofile "$tmp/complete.bash" 2>&1) || fail "bash completion: $out"
grep -q "^backup" <<<"$out" || fail "bash completion of 'kubectl runai-dr ba' gave: $out"
ok "bash: kubectl runai-dr ba<TAB> -> backup"

step "backup, inspect, verify against the loopback API server"
kubeconfig=$tmp/kubeconfig
# The loopback API server seeded with a Run:ai installation (what `python -m kubeapi serve`
# does), plus a real PostgreSQL 15 behind the database pod's exec, so the
# database component runs pg_dump for real.
cat > "$tmp/serve.py" <<'PY'
import signal
import sys
from pathlib import Path

from kubeapi import ApiServer
from kubeapi.pgserver import PgServer
from kubeapi.seed import crd_paths, seed_runai

PASSWORD = "smoke-pg-password"
kubeconfig = Path(sys.argv[1])
# Blocked, so that sigwait receives them and the servers below are stopped cleanly
# (otherwise SIGTERM ends the process and leaves PostgreSQL running).
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
with PgServer(password=PASSWORD, host_auth="scram-sha-256") as pg:
    for db in ("backend", "keycloak"):
        pg.create_database(db)
    pg.psql("CREATE TABLE projects (id serial PRIMARY KEY, name text);"
            "INSERT INTO projects (name) SELECT 'p' || g FROM generate_series(1, 300) g;",
            db="backend")
    srv = ApiServer()
    srv.install_crds(crd_paths())
    info = seed_runai(srv, postgres_password=PASSWORD)
    srv.start()
    assert info.postgres_pod is not None
    ns, pod = info.postgres_pod
    srv.set_pod_exec(ns, pod, env={"PGHOST": pg.host, "PGPORT": str(pg.port),
                                   "PATH": f"{pg.bindir}:/usr/bin:/bin"})
    tmp = kubeconfig.with_suffix(".tmp")
    srv.write_kubeconfig(tmp)
    tmp.rename(kubeconfig)
    print(f"export KUBECONFIG={kubeconfig}", flush=True)
    signal.sigwait({signal.SIGINT, signal.SIGTERM})
    srv.stop()
PY
$py "$tmp/serve.py" "$kubeconfig" >"$tmp/serve.out" 2>"$tmp/serve.err" &
server_pid=$!
for _ in $(seq 300); do
  [ -s "$kubeconfig" ] && break
  kill -0 "$server_pid" 2>/dev/null || fail "loopback API server exited: $(cat "$tmp/serve.err")"
  sleep 0.2
done
[ -s "$kubeconfig" ] || fail "loopback API server wrote no kubeconfig within 60 s"
KUBECONFIG_FOR_USER=$kubeconfig
mkdir -p "$tmp/work"
bundle=$tmp/work/backup.tar.gz
# shellcheck disable=SC2086
if ! (cd "$tmp/work" && as_user kubectl runai-dr backup --to "$bundle" ${SMOKE_BACKUP_ARGS:-} \
      >"$tmp/backup.out" 2>"$tmp/backup.err"); then
  cat "$tmp/backup.out" "$tmp/backup.err" >&2
  fail "kubectl runai-dr backup failed"
fi
[ -s "$bundle" ] || fail "backup wrote no bundle"
ok "backup: $(tail -n1 "$tmp/backup.out")"
out=$(as_user kubectl runai-dr inspect "$bundle" 2>&1) || fail "inspect: $out"
for word in runaiconfig control-plane cluster namespaces database; do
  grep -Eq "^ *$word +[│|] +ok" <<<"$out" || fail "inspect: component $word is not ok: $out"
done
ok "inspect: runaiconfig, helm values, projects and database ok"
out=$(as_user kubectl runai-dr inspect -o json "$bundle" 2>&1) || fail "inspect -o json: $out"
ok "inspect -o json"
out=$(as_user kubectl runai-dr verify "$bundle" 2>&1) || fail "verify: $out"
ok "verify: $(head -n1 <<<"$out")"
# A corrupted bundle must fail verification.
cp "$bundle" "$tmp/work/corrupt.tar.gz"
size=$(stat -c %s "$tmp/work/corrupt.tar.gz")
printf 'XXXXXXXX' | dd of="$tmp/work/corrupt.tar.gz" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
if as_user kubectl runai-dr verify "$tmp/work/corrupt.tar.gz" >/dev/null 2>&1; then
  fail "verify accepted a corrupted bundle"
fi
ok "verify rejects a corrupted bundle"

# Encryption (age) is in the binary: a key, an encrypted bundle, read back with the key,
# and opened by the age tool itself when it is installed.
as_user kubectl runai-dr keygen --to "$tmp/work/key.txt" -o json >"$tmp/keygen.json" \
  || fail "keygen failed"
recipient=$($py -c 'import json,sys; print(json.load(open(sys.argv[1]))["recipient"])' \
  "$tmp/keygen.json")
sealed_dir=$tmp/work/sealed
mkdir -m 700 "$sealed_dir"
if ! (cd "$tmp/work" && as_user kubectl runai-dr backup --to "$sealed_dir/" --skip database \
      --encrypt-to "$recipient" --no-record >"$tmp/sealed.out" 2>"$tmp/sealed.err"); then
  cat "$tmp/sealed.out" "$tmp/sealed.err" >&2
  fail "encrypted backup failed"
fi
sealed=$(ls "$sealed_dir"/*.tar.gz.age)
out=$(as_user kubectl runai-dr verify "$sealed" --identity "$tmp/work/key.txt" 2>&1) \
  || fail "verify of the encrypted bundle: $out"
if command -v age >/dev/null 2>&1; then
  age -d -i "$tmp/work/key.txt" "$sealed" | gzip -t || fail "age could not open the bundle"
fi
ok "encrypted backup (age): written, verified with the identity, opened by age"

step "start-up benchmark"
$py bench/startup.py -n 11 --binary "dist/$name/$name" --kubectl .tools/bin/kubectl \
  --limit "${SMOKE_HELP_LIMIT:-1.0}" || fail "start-up benchmark over the limit"
ok "start-up benchmark"

echo >&2
echo "smoke: $passed passed, 0 failed"
