"""Map HTTP answers of the API server to the tool's exceptions (pure; tested without a server)."""

from __future__ import annotations

import json
from typing import Any

from kubectl_runai_dr import errors as e

_BY_STATUS: dict[int, type[e.KubeError]] = {
    401: e.Unauthorized,
    403: e.Forbidden,
    404: e.NotFound,
    410: e.Gone,
    422: e.Invalid,
    429: e.TooManyRequests,
}


def parse_status(body: bytes | None) -> dict[str, Any]:
    """The ``Status`` object of an error answer, or {} when the body is not one."""
    if not body:
        return {}
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) and data.get("kind") == "Status" else {}


def _where(namespace: str | None) -> str:
    return f'in namespace "{namespace}"' if namespace else "at cluster scope"


def error_from_response(
    status: int,
    body: bytes | None,
    *,
    verb: str,
    resource: str,
    namespace: str | None,
    name: str | None,
    context: str,
    server: str,
    retry_after: str | None = None,
) -> e.KubeError:
    """Build the exception for a non-2xx answer, with a message and a hint for people."""
    st = parse_status(body)
    reason = str(st.get("reason", ""))
    server_msg = str(st.get("message") or "").strip()
    if not server_msg:
        snippet = (body or b"")[:200].decode("utf-8", "replace").strip()
        server_msg = snippet or f"HTTP {status}"
    target = resource + (f' "{name}"' if name else "")
    on = f'context "{context}" ({server})'
    cls: type[e.KubeError]
    if status == 409:
        cls = e.AlreadyExists if reason == "AlreadyExists" else e.Conflict
    elif status >= 500:
        cls = e.ServerError
    else:
        cls = _BY_STATUS.get(status, e.KubeError)

    if status == 401:
        message = f"the API server of {on} rejected the credentials: {server_msg}"
        hint = ("the token or certificate is expired or invalid: log in again (refresh the "
                "kubeconfig credentials) and retry; `kubectl auth whoami` shows who you are")
    elif status == 403:
        message = f"not allowed to {verb} {target} {_where(namespace)} on {on}: {server_msg}"
        hint = (f'ask a cluster administrator for the "{verb}" permission on {resource}; '
                "the README lists the permissions each command needs, and "
                "`kubectl runai-dr status` checks them all")
    elif status == 404:
        message = f"{target} {_where(namespace)} not found on {on}"
        hint = "check the names and namespaces (flags override the documented defaults)"
    elif status == 429:
        message = f"the API server of {on} is throttling requests ({verb} {target})"
        hint = "retry later, or lower --workers"
    elif status >= 500:
        message = f"the API server of {on} failed to {verb} {target}: {server_msg}"
        hint = "the server or one of its webhooks is unhealthy; retry, and check the control plane"
    else:
        message = f"cannot {verb} {target} {_where(namespace)} on {on}: {server_msg}"
        hint = None
    after: float | None = None
    if retry_after:
        try:
            after = float(retry_after)
        except ValueError:
            after = None
    if after is None:
        details = st.get("details") or {}
        if isinstance(details, dict) and details.get("retryAfterSeconds"):
            after = float(details["retryAfterSeconds"])
    return cls(message, hint=hint, verb=verb, resource=resource, namespace=namespace, name=name,
               status=status, reason=reason, retry_after=after)
