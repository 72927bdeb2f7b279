"""HTTP answers become one clear message with what failed and what to do."""

from __future__ import annotations

import json

from kubectl_runai_dr import errors as e
from kubectl_runai_dr.kube.errors import error_from_response


def _status(code: int, reason: str, message: str) -> bytes:
    return json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                       "message": message, "reason": reason, "code": code}).encode()


def _err(code: int, body: bytes, **kw: object) -> e.KubeError:
    args = {"verb": "list", "resource": "rolebindings.rbac.authorization.k8s.io",
            "namespace": None, "name": None, "context": "prod", "server": "https://k:6443"}
    args.update(kw)
    return error_from_response(code, body, **args)  # type: ignore[arg-type]


def test_forbidden_names_verb_resource_scope_context_and_exit_code() -> None:
    err = _err(403, _status(403, "Forbidden", 'rolebindings is forbidden: User "bob" cannot'))
    assert isinstance(err, e.Forbidden)
    assert err.exit_code == e.ExitCode.FORBIDDEN
    assert "not allowed to list rolebindings.rbac.authorization.k8s.io at cluster scope" in \
        err.message
    assert 'context "prod" (https://k:6443)' in err.message
    assert err.hint and "permission" in err.hint


def test_unauthorized_is_a_credentials_problem() -> None:
    err = _err(401, _status(401, "Unauthorized", "Unauthorized"))
    assert isinstance(err, e.Unauthorized)
    assert err.exit_code == e.ExitCode.CLUSTER_UNREACHABLE
    assert "rejected the credentials" in err.message
    assert err.hint and "log in again" in err.hint


def test_conflict_kinds_and_retry_after() -> None:
    assert isinstance(_err(409, _status(409, "AlreadyExists", "exists")), e.AlreadyExists)
    assert isinstance(_err(409, _status(409, "Conflict", "modified")), e.Conflict)
    throttled = _err(429, _status(429, "TooManyRequests", "slow down"), retry_after="7")
    assert isinstance(throttled, e.TooManyRequests) and throttled.retry_after == 7.0


def test_non_status_body_is_quoted_not_crashed() -> None:
    err = _err(502, b"<html>bad gateway</html>", verb="get", namespace="runai", name="x")
    assert isinstance(err, e.ServerError)
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
    from kubectl_runai_dr.kube import errors as ke

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
    # the tool-level module still answers for callers that import them from there
    assert e.NotFound is ke.NotFound and e.KubeError is ke.KubeError

