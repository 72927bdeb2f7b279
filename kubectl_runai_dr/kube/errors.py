"""The Kubernetes client's own errors, and the mapping of what the API server (or the way to
it) answers onto them (pure; tested without a server).

Callers catch these types, never the HTTP library's: the original exception is chained as
the cause (``raise ... from exc``), so the transport can change without touching them.

    KubeError
    ├── ClientError (4xx): NotFound, AlreadyExists, Conflict, Invalid, Forbidden,
    │                      Unauthorized, Gone, TooManyRequests
    ├── ServerError (5xx)
    └── Unreachable (connection refused, DNS, TLS, timeouts)

Text the server controls (Status messages, admission webhook messages, exec stderr) goes
through :func:`clean_text` before it reaches a message: no terminal control sequences,
bounded length.
"""

from __future__ import annotations

import json
import os
import re
import socket
import ssl
from typing import Any, NamedTuple

from kubectl_runai_dr.errors import DrError, ExitCode

MESSAGE_LIMIT = 2000  # characters of server text kept in one message

# Escape sequences, removed whole (their parameters would otherwise remain as garbage):
# CSI (ESC [ ... final), OSC (ESC ] ... BEL or ST), DCS/SOS/PM/APC strings, two-byte
# escapes; and the single-byte C1 forms of CSI and OSC.
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]?"
    r"|\x9b[0-?]*[ -/]*[@-~]?"
    r"|\x1b\][^\x07\x1b\x9c\n]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x9d[^\x07\x1b\x9c\n]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[PX^_][^\x1b\x9c\n]*(?:\x1b\\|\x9c)?"
    r"|\x1b[ -/]*[0-~]?"
)
# What is left: C0 controls but tab and newline, DEL, C1 controls, and the Unicode
# bidirectional overrides (which reorder what a terminal shows).
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def clean_text(text: str, *, limit: int = MESSAGE_LIMIT, multiline: bool = True,
               keep_end: bool = False) -> str:
    """Server-controlled text made safe to print: escape sequences and control characters
    removed (newlines and tabs kept when ``multiline``, else folded into spaces), at most
    ``limit`` characters (the end kept when ``keep_end``: the tail of an error output)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROLS.sub("", _ESCAPES.sub("", text))
    if not multiline:
        text = " ".join(text.split())
    if len(text) > limit:
        cut = len(text) - limit
        text = (f"[{cut} characters cut] " + text[cut:] if keep_end
                else text[:limit] + f" [{cut} characters cut]")
    return text


# -- the types ------------------------------------------------------------------------------
class KubeError(DrError):
    """An error answered by (or on the way to) the Kubernetes API server.

    ``verb`` and ``resource`` name the request (``list rolebindings in runai-foo``), so a
    message always says what was being done when it failed.
    """

    status: int | None = None

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        verb: str = "",
        resource: str = "",
        namespace: str | None = None,
        name: str | None = None,
        status: int | None = None,
        reason: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.verb = verb
        self.resource = resource
        self.namespace = namespace
        self.name = name
        if status is not None:
            self.status = status
        self.reason = reason
        self.retry_after = retry_after


class ClientError(KubeError):
    """The server refused the request (4xx): it would refuse it again unchanged."""

    status = 400


class NotFound(ClientError):
    status = 404


class AlreadyExists(ClientError):
    status = 409


class Conflict(ClientError):
    status = 409


class Invalid(ClientError):
    status = 422


class Forbidden(ClientError):
    status = 403
    exit_code = ExitCode.FORBIDDEN


class Unauthorized(ClientError):
    status = 401
    exit_code = ExitCode.CLUSTER_UNREACHABLE


class Gone(ClientError):
    status = 410


class TooManyRequests(ClientError):
    status = 429


class ServerError(KubeError):
    """The server (or a webhook or proxy on the way) failed (5xx)."""

    status = 500


class Unreachable(KubeError):
    """No answer: connection refused, DNS failure, TLS failure, timeout."""

    exit_code = ExitCode.CLUSTER_UNREACHABLE


_BY_STATUS: dict[int, type[ClientError]] = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    410: Gone,
    422: Invalid,
    429: TooManyRequests,
}


# -- HTTP answers ---------------------------------------------------------------------------
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


def error_class(status: int, reason: str = "") -> type[KubeError]:
    if status == 409:
        return AlreadyExists if reason == "AlreadyExists" else Conflict
    if 400 <= status < 500:
        return _BY_STATUS.get(status, ClientError)
    if status >= 500:
        return ServerError
    return KubeError


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
) -> KubeError:
    """Build the exception for a non-2xx answer, with a message and a hint for people."""
    st = parse_status(body)
    reason = clean_text(str(st.get("reason", "")), limit=100, multiline=False)
    server_msg = clean_text(str(st.get("message") or "")).strip()
    if not server_msg:
        snippet = clean_text((body or b"")[:400].decode("utf-8", "replace"), limit=200,
                             multiline=False)
        server_msg = snippet or f"HTTP {status}"
    target = resource + (f' "{name}"' if name else "")
    on = f'context "{context}" ({server})'
    cls = error_class(status, reason)

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
            try:
                after = float(details["retryAfterSeconds"])
            except (TypeError, ValueError):
                after = None
    return cls(message, hint=hint, verb=verb, resource=resource, namespace=namespace, name=name,
               status=status, reason=reason, retry_after=after)


# -- no answer ------------------------------------------------------------------------------
_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-fA-F]+>:?\s*")


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and every exception it wraps (causes, contexts, ``reason``, exception args),
    outermost first."""
    out: list[BaseException] = []
    todo = [exc]
    while todo:
        cur = todo.pop(0)
        if any(cur is seen for seen in out):
            continue
        out.append(cur)
        inner = [getattr(cur, "reason", None), cur.__cause__, cur.__context__, *cur.args]
        todo += [x for x in inner if isinstance(x, BaseException)]
    return out


def _first(chain: list[BaseException], kind: type[BaseException] | tuple[type[BaseException], ...]
           ) -> Any:
    return next((x for x in chain if isinstance(x, kind)), None)


def _seconds(value: float | None) -> str:
    return f" after {value:g}s" if value else ""


class Failure(NamedTuple):
    """Why a request got no answer: ``what`` happened (``cannot connect``, ``TLS failed``,
    ``timed out``), its ``cause`` in words (no Python reprs), and a ``hint``."""

    what: str
    cause: str
    hint: str


def connection_failure(exc: BaseException, *, connect_timeout: float | None = None,
                       read_timeout: float | None = None) -> Failure:
    """Understands the exceptions of urllib3, websocket-client, ``ssl`` and ``socket``."""
    chain = _causes(exc)
    names = {type(x).__name__ for x in chain}
    texts = " ".join(str(x) for x in chain).lower()
    reach = ("check that the cluster is up and reachable from here (VPN, proxy, firewall), "
             "and that `kubectl config current-context` is the cluster you mean")
    tls_hint = ("check the cluster's certificate-authority (and tls-server-name) in the "
                "kubeconfig, and that the server URL is the API server's")
    verify = _first(chain, ssl.SSLCertVerificationError)
    if verify is not None:
        why = clean_text(str(verify.verify_message or verify.reason or "rejected"),
                         limit=200, multiline=False)
        return Failure("TLS failed", f"certificate verification failed ({why})", tls_hint)
    if "handshake" in texts and "timed out" in texts:
        return Failure("cannot connect", f"TLS handshake timed out{_seconds(connect_timeout)}",
                       "the server accepts connections but does not complete TLS (a proxy, "
                       "load balancer or firewall in the way?); " + reach)
    ssl_err = _first(chain, ssl.SSLError)
    if ssl_err is not None:
        what = str(ssl_err.reason or "").lower().replace("_", " ")
        if ssl_err.library == "PEM" or "pem lib" in texts or "key values mismatch" in what:
            return Failure("TLS failed", "the client certificate or key could not be used",
                           "check client-certificate and client-key (or their -data) in the "
                           "kubeconfig")
        return Failure("TLS failed",
                       f"handshake failed ({clean_text(what or 'rejected', limit=200)})",
                       tls_hint)
    gai = _first(chain, socket.gaierror)
    if gai is not None or "NameResolutionError" in names or "WebSocketAddressException" in names:
        if gai is not None and gai.errno == socket.EAI_AGAIN:
            return Failure("cannot connect",
                           "DNS lookup failed (temporary failure in name resolution)", reach)
        return Failure("cannot connect", "DNS name not found",
                       reach + "; check the server's host name")
    if _first(chain, ConnectionRefusedError) is not None or "connection refused" in texts:
        return Failure("cannot connect", "connection refused", reach)
    if "ConnectTimeoutError" in names and "NewConnectionError" not in names:
        return Failure("cannot connect", f"timed out connecting{_seconds(connect_timeout)}",
                       reach)
    if "ReadTimeoutError" in names or "WebSocketTimeoutException" in names or _first(
            chain, TimeoutError) is not None:
        return Failure("timed out", f"no answer{_seconds(read_timeout)}",
                       "the server is slow or unreachable; check the network/VPN, or raise "
                       "--request-timeout")
    if _first(chain, ConnectionResetError) is not None:
        return Failure("cannot connect", "connection reset by the server", reach)
    if "RemoteDisconnected" in names or "ProtocolError" in names:
        return Failure("cannot connect", "the server closed the connection without answering",
                       reach)
    if "ProxyError" in names:
        return Failure("cannot connect", "the proxy failed",
                       "check the proxy (proxy-url in the kubeconfig, HTTPS_PROXY)")
    os_err = next((x for x in chain if isinstance(x, OSError) and x.errno), None)
    if os_err is not None and os_err.errno:
        return Failure("cannot connect", os.strerror(os_err.errno).lower(), reach)
    last = _REPR.sub("", str(chain[-1])) or type(chain[-1]).__name__
    return Failure("cannot connect", clean_text(last, limit=300, multiline=False), reach)


def unreachable(exc: BaseException, *, server: str, context: str, verb: str, resource: str,
                namespace: str | None = None, name: str | None = None,
                connect_timeout: float | None = None,
                read_timeout: float | None = None) -> Unreachable:
    """The error for a request that got no answer, its cause in words."""
    what, cause, hint = connection_failure(exc, connect_timeout=connect_timeout,
                                           read_timeout=read_timeout)
    target = resource + (f' "{name}"' if name else "")
    if namespace:
        target += f' in namespace "{namespace}"'
    message = (f'{what}: API server {server} (context "{context}") while trying to {verb} '
               f"{target}: {cause}")
    return Unreachable(message, hint=hint, verb=verb, resource=resource, namespace=namespace,
                       name=name)
