"""HTTP answers become one clear message with what failed and what to do."""

from __future__ import annotations

import json

import pytest

from kubectl_runai_dr import errors as e
from kubectl_runai_dr.kube import errors as ke
from kubectl_runai_dr.kube.errors import error_from_response


def _status(code: int, reason: str, message: str) -> bytes:
    return json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                       "message": message, "reason": reason, "code": code}).encode()


def _err(code: int, body: bytes, *, verb: str = "list",
         resource: str = "rolebindings.rbac.authorization.k8s.io", namespace: str | None = None,
         name: str | None = None, retry_after: str | None = None) -> ke.KubeError:
    return error_from_response(code, body, verb=verb, resource=resource, namespace=namespace,
                               name=name, context="prod", server="https://k:6443",
                               retry_after=retry_after)


def test_forbidden_names_verb_resource_scope_context_and_exit_code() -> None:
    err = _err(403, _status(403, "Forbidden", 'rolebindings is forbidden: User "bob" cannot'))
    assert isinstance(err, ke.Forbidden)
    assert err.exit_code == e.ExitCode.FORBIDDEN
    assert "not allowed to list rolebindings.rbac.authorization.k8s.io at cluster scope" in \
        err.message
    assert 'context "prod" (https://k:6443)' in err.message
    assert err.hint and "permission" in err.hint


def test_unauthorized_is_a_credentials_problem() -> None:
    err = _err(401, _status(401, "Unauthorized", "Unauthorized"))
    assert isinstance(err, ke.Unauthorized)
    assert err.exit_code == e.ExitCode.CLUSTER_UNREACHABLE
    assert "rejected the credentials" in err.message
    assert err.hint and "log in again" in err.hint


def test_conflict_kinds_and_retry_after() -> None:
    assert isinstance(_err(409, _status(409, "AlreadyExists", "exists")), ke.AlreadyExists)
    assert isinstance(_err(409, _status(409, "Conflict", "modified")), ke.Conflict)
    throttled = _err(429, _status(429, "TooManyRequests", "slow down"), retry_after="7")
    assert isinstance(throttled, ke.TooManyRequests) and throttled.retry_after == 7.0


def test_non_status_body_is_quoted_not_crashed() -> None:
    err = _err(502, b"<html>bad gateway</html>", verb="get", namespace="runai", name="x")
    assert isinstance(err, ke.ServerError)
    assert "bad gateway" in err.message
    notfound = _err(404, b"", verb="get", resource="configmaps", namespace="runai", name="x")
    assert notfound.message.startswith('configmaps "x" in namespace "runai" not found')


def test_requests_keep_the_server_path_prefix_and_proxies_use_the_pool_manager() -> None:
    from kubernetes import client as k8s

    from kubectl_runai_dr.kube.client import Kube

    cfg = k8s.Configuration(host="https://rancher.example.com/k8s/clusters/c-m-1")
    kube = Kube(k8s.ApiClient(cfg), context="c", server=cfg.host)
    assert kube._direct is not None and kube._direct.host == "rancher.example.com"
    assert kube._base_path == "/k8s/clusters/c-m-1"
    proxied = k8s.Configuration(host="https://k8s.example.com:6443")
    proxied.proxy = "http://proxy.example.com:3128"
    kube = Kube(k8s.ApiClient(proxied), context="c", server=proxied.host)
    assert kube._direct is None  # the proxy manager knows how to tunnel


# -- the hierarchy ----------------------------------------------------------------------------
def test_client_and_server_errors_have_their_own_intermediate_types() -> None:
    for code, cls in ((400, ke.ClientError), (401, ke.Unauthorized), (403, ke.Forbidden),
                      (404, ke.NotFound), (410, ke.Gone), (418, ke.ClientError),
                      (422, ke.Invalid), (429, ke.TooManyRequests)):
        err = _err(code, _status(code, "", "no"))
        assert type(err) is cls and isinstance(err, ke.ClientError), code
        assert not isinstance(err, ke.ServerError)
    for code in (500, 502, 503, 504):
        err = _err(code, b"")
        assert type(err) is ke.ServerError and not isinstance(err, ke.ClientError)
    assert issubclass(ke.AlreadyExists, ke.ClientError) and issubclass(ke.Conflict,
                                                                     ke.ClientError)
    assert issubclass(ke.Unreachable, ke.KubeError) and not issubclass(ke.Unreachable,
                                                                      ke.ClientError)
    assert issubclass(ke.KubeError, e.DrError)
    # the tool-level module still answers for callers that import them from there (at run time:
    # errors.py imports them for type checkers without re-exporting them explicitly)
    assert e.NotFound is ke.NotFound and e.KubeError is ke.KubeError


# -- server text ------------------------------------------------------------------------------
HOSTILE = ("denied by webhook\x1b]0;owned title\x07: \x1b[2J\x1b[31mred\x1b[0m, "
           "\x9b2Jc1\u202eright-to-left\u202c\r\nsecond\tline\x00\x7f\x08")


def test_clean_text_removes_terminal_control_and_bounds_length() -> None:
    from kubectl_runai_dr.kube.errors import clean_text

    out = clean_text(HOSTILE)
    assert out == "denied by webhook: red, c1right-to-left\nsecond\tline"
    assert clean_text(HOSTILE, multiline=False) == (
        "denied by webhook: red, c1right-to-left second line")
    assert clean_text("\x1b]0;unterminated title\nnext") == "\nnext"
    long = clean_text("x" * 5000 + "END", limit=100)
    assert len(long) < 130 and long.startswith("x" * 100) and "cut" in long
    tail = clean_text("START" + "y" * 5000, limit=100, keep_end=True)
    assert tail.endswith("y" * 100) and "START" not in tail


def test_status_messages_are_cleaned_before_they_reach_a_message() -> None:
    err = _err(400, _status(400, "BadRequest\x1b[2J", HOSTILE + "z" * 10000))
    assert "\x1b" not in err.message and "\x9b" not in err.message
    assert "\u202e" not in err.message and "\x07" not in err.message
    assert "denied by webhook: red" in err.message and len(err.message) < 2300
    assert err.reason == "BadRequest"
    raw = _err(502, b"<html>\x1b]0;t\x07gateway\x1b[5m</html>")
    assert "\x1b" not in raw.message and "gateway" in raw.message


def test_exec_status_and_stderr_are_cleaned() -> None:
    from kubectl_runai_dr.kube.exec import _Tail, parse_status

    code, msg = parse_status(json.dumps({"status": "Failure", "message": HOSTILE}).encode())
    assert code is None and "\x1b" not in msg and "denied by webhook: red" in msg
    tail = _Tail(limit=64)
    tail.write(b"pg_dump: error: \x1b]0;x\x07lock \x1b[2Jtimeout\n" * 20)
    text = tail.text()
    assert "\x1b" not in text and "\x07" not in text and text.endswith("lock timeout\n")
    assert len(text) <= 100


# -- no answer --------------------------------------------------------------------------------
def test_connection_failures_name_their_cause_without_python_reprs() -> None:
    import socket

    import urllib3

    from kubectl_runai_dr.kube.errors import connection_failure

    def cause(url: str, timeout: float = 2.0) -> str:
        pool = urllib3.PoolManager()
        try:
            pool.request("GET", url, retries=False,
                         timeout=urllib3.Timeout(connect=timeout, read=None))
        except urllib3.exceptions.HTTPError as exc:
            failure = connection_failure(exc, connect_timeout=timeout)
            assert "object at 0x" not in failure.cause and "Errno" not in failure.cause
            return f"{failure.what}: {failure.cause}"
        raise AssertionError("no error")

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    assert cause(f"https://127.0.0.1:{port}/version") == "cannot connect: connection refused"
    assert cause("https://no-such-host.invalid/version") == "cannot connect: DNS name not found"
    with socket.socket() as mute:  # accepts TCP, never speaks TLS
        mute.bind(("127.0.0.1", 0))
        mute.listen(4)
        url = f"https://127.0.0.1:{mute.getsockname()[1]}/version"
        assert cause(url, timeout=0.5) == "cannot connect: TLS handshake timed out after 0.5s"


def test_version_and_access_review_text_is_cleaned(monkeypatch: pytest.MonkeyPatch) -> None:
    from kubernetes import client as k8s

    from kubectl_runai_dr.kube.client import Kube
    from kubectl_runai_dr.kube.resources import PODS

    kube = Kube(k8s.ApiClient(k8s.Configuration(host="https://k:6443")), context="c",
                server="https://k:6443")
    answers = {"/version": {"gitVersion": "v1.30.2\x1b]0;owned\x07\x1b[2J", "major": "1"},
               "ssar": {"status": {"allowed": False, "reason": "RBAC: \x1b[31mno\x1b[0m\nrule"}}}

    def request(method: str, path: str, **kw: object) -> object:
        return answers["/version" if path == "/version" else "ssar"]

    monkeypatch.setattr(kube, "request", request)
    assert kube.server_version() == {"gitVersion": "v1.30.2", "major": "1"}
    assert kube.can_i("create", PODS, "ns", subresource="exec") == (False, "RBAC: no rule")
