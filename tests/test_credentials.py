"""Kubeconfig credentials: read as kubectl reads them, and never printed.

A kubeconfig holds recognisable secrets (a token in a token file, a client key, a basic-auth
password); every error path that can be provoked runs, with and without -v (tracebacks),
and nothing the tool prints may contain one of them.
"""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubeapi import ApiServer

from tests.e2e import ROOT, cli

TOKEN = "canary-Token-7f3a9c2e51d04b8aa6e1"
PASSWORD = "canary-Passw0rd-c41d9e"
USERNAME = "canary-user"


@pytest.fixture(scope="module")
def client_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    """A client certificate and its key (PEM), made with openssl."""
    d = tmp_path_factory.mktemp("client-cert")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(d / "k.pem"),
                    "-out", str(d / "c.pem"), "-days", "1", "-subj", "/CN=canary"],
                   check=True, capture_output=True)
    return (d / "c.pem").read_bytes(), (d / "k.pem").read_bytes()


def _secrets(key_pem: bytes) -> list[str]:
    """Every form in which a planted secret could leak."""
    body = "".join(key_pem.decode().splitlines()[1:-1])
    return [TOKEN, PASSWORD, base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode(),
            base64.b64encode(key_pem).decode()[:40], body[8:48]]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _kubeconfig(srv: ApiServer, path: Path, cert: bytes, key: bytes,
                plugin: Path) -> Path:
    """One context per way to fail; all of them carry the planted secrets."""
    base = yaml.safe_load(srv.write_kubeconfig(path).read_text())
    cluster = base["clusters"][0]["cluster"]
    token_ok = path.parent / "token-newline"
    token_ok.write_text(TOKEN + "\n")  # echo "$TOKEN" > file
    token_bad = path.parent / "token-two-lines"
    token_bad.write_text(TOKEN + "\nsecond line\n")
    other_ca = base64.b64encode(cert).decode()  # not the server's CA: TLS fails
    kd = base64.b64encode(key).decode()
    cd = base64.b64encode(cert).decode()
    clusters = {
        "good": cluster,
        "refused": {**cluster, "server": f"https://127.0.0.1:{_closed_port()}"},
        "untrusted": {**cluster, "certificate-authority-data": other_ca},
    }
    users = {
        "token-file": {"tokenFile": str(token_ok), "client-certificate-data": cd,
                       "client-key-data": kd},
        "token-file-bad": {"tokenFile": str(token_bad)},
        "revoked": {"token": TOKEN + "-revoked", "client-certificate-data": cd,
                    "client-key-data": kd},
        "basic": {"username": USERNAME, "password": PASSWORD},
        "plugin": {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1",
                            "command": str(plugin),
                            "env": [{"name": "CANARY", "value": TOKEN}]}},
    }
    contexts = {
        "ok": ("good", "token-file"), "bad-token-file": ("good", "token-file-bad"),
        "unauthorized": ("good", "revoked"), "basic-auth": ("good", "basic"),
        "forbidden": ("good", "token-file"), "refused": ("refused", "token-file"),
        "untrusted": ("untrusted", "token-file"), "plugin": ("good", "plugin"),
    }
    cfg = {"apiVersion": "v1", "kind": "Config", "current-context": "ok",
           "clusters": [{"name": n, "cluster": c} for n, c in clusters.items()],
           "users": [{"name": n, "user": u} for n, u in users.items()],
           "contexts": [{"name": n, "context": {"cluster": c, "user": u}}
                        for n, (c, u) in contexts.items()]}
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture
def canary(runai_server: ApiServer, tmp_path: Path, client_pair: tuple[bytes, bytes],
           monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ApiServer, Path, list[str]]]:
    monkeypatch.chdir(tmp_path)  # where bundles go
    cert, key = client_pair
    plugin = tmp_path / "login-plugin"
    plugin.write_text("#!/bin/sh\n"
                      'printf "\\033]0;owned\\007\\033[2Jerror: refresh token expired, '
                      'run: corp-login\\n" >&2\nexit 3\n')
    plugin.chmod(0o755)
    runai_server.add_user(TOKEN, "canary", groups=["system:masters"])
    yield runai_server, _kubeconfig(runai_server, tmp_path / "kubeconfig", cert, key,
                                    plugin), _secrets(key)


def _run(kc: Path, context: str, *extra: str) -> tuple[int, str]:
    """A backup (into the current directory) through ``context``."""
    r = cli("backup", "--kubeconfig", str(kc), "--context", context, "--no-record",
            "--no-database", "--force", *extra)
    return r.code, r.stdout + r.stderr


def test_token_file_ending_in_a_newline_works(canary: tuple[ApiServer, Path, list[str]],
                                             tmp_path: Path) -> None:
    srv, kc, _ = canary
    code, out = _run(kc, "ok")
    assert code == 0, out
    assert any(r.user == "canary" for r in srv.requests)


def test_no_error_path_prints_a_credential(canary: tuple[ApiServer, Path, list[str]],
                                          tmp_path: Path) -> None:
    srv, kc, planted = canary
    srv.deny(verb="*", resource="*", user="canary", namespace="runai-backend")
    expected = {
        "bad-token-file": (5, "holds a line break"),
        "unauthorized": (5, "rejected the credentials"),
        "basic-auth": (5, "rejected the credentials"),
        "forbidden": (3, "not allowed to"),
        "refused": (5, "connection refused"),
        "untrusted": (5, "certificate verification failed"),
        "plugin": (5, "failed (exit code 3)"),
    }
    for context, (code, needle) in expected.items():
        for extra in ((), ("-v",), ("-vv",)):
            got, out = _run(kc, context, *extra)
            assert got == code and needle in out, (context, extra, out)
            for secret in planted:
                assert secret not in out, (context, extra, secret, out)
            assert "unexpected" not in out and "ERROR:root" not in out, out


def test_a_kubeconfig_that_is_not_yaml_is_not_quoted(tmp_path: Path) -> None:
    kc = tmp_path / "kubeconfig"
    kc.write_text("apiVersion: v1\nusers:\n- name: u\n  user:\n"
                  f"    token: {TOKEN}: oops\n")
    for extra in ((), ("-v",)):
        r = cli("backup", "--kubeconfig", str(kc), "--no-record", *extra)
        out = r.stdout + r.stderr
        assert r.code == 5, out
        assert "not valid YAML: mapping values are not allowed here (line 5, column" in out
        assert TOKEN not in out


def _plugin_run(kc: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "kubectl_runai_dr", "backup", "--kubeconfig",
                           str(kc), "--context", "plugin", "--no-record"],
                          capture_output=True, text=True, env=env, timeout=120, cwd=cwd,
                          stdin=subprocess.DEVNULL)


def test_failing_exec_plugin_is_reported_as_such(canary: tuple[ApiServer, Path, list[str]],
                                                 tmp_path: Path) -> None:
    """A real process: no logging noise, the plugin's own words without its escapes."""
    _srv, kc, planted = canary
    r = _plugin_run(kc, tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode == 5, out
    assert 'the credential plugin "' in out and "failed (exit code 3)" in out
    assert "error: refresh token expired, run: corp-login" in out
    assert "\x1b" not in out and "\x07" not in out
    assert "ERROR:root" not in out and "rejected the credentials" not in out
    assert not any(s in out for s in planted)
    assert not list(tmp_path.glob("*.tar.gz*"))


def test_exec_plugin_token_is_used(canary: tuple[ApiServer, Path, list[str]],
                                   tmp_path: Path) -> None:
    srv, kc, _ = canary
    plugin = tmp_path / "good-plugin"
    plugin.write_text("#!/bin/sh\n"
                      'test -n "$KUBERNETES_EXEC_INFO" || exit 9\n'
                      'printf \'{"apiVersion": "client.authentication.k8s.io/v1beta1", '
                      '"kind": "ExecCredential", "status": {"token": "%s"}}\' "$CANARY"\n')
    plugin.chmod(0o755)
    cfg: dict[str, Any] = yaml.safe_load(kc.read_text())
    for u in cfg["users"]:
        if u["name"] == "plugin":
            u["user"]["exec"]["command"] = str(plugin)
    kc.write_text(yaml.safe_dump(cfg))
    code, out = _run(kc, "plugin")
    assert code == 0, out
    assert any(r.user == "canary" for r in srv.requests)
