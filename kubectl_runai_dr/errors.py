"""The tool's own exceptions and the exit codes they map to (one place for both).

Every error carries a one-line message saying what failed and a hint saying what to do.
The CLI prints ``error: <message>`` and ``hint: <hint>`` and exits with ``exit_code``;
tracebacks only appear with ``-v``.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes, documented in the README. Stable: scripts and monitoring rely on them."""

    OK = 0
    ERROR = 1  # unexpected failure or a failed operation
    USAGE = 2  # bad flags or arguments (typer/click also uses 2)
    PARTIAL = 3  # backup written but one or more components failed; restore with failures
    INVALID_BUNDLE = 4  # verify found a corrupt, truncated or tampered bundle
    CLUSTER_UNREACHABLE = 5  # kubeconfig, context, connection or authentication problem
    FORBIDDEN = 6  # the API server refused a request (RBAC)
    # `status` (monitoring): distinct from 1 so "status itself failed" stays recognisable.
    STATUS_WARNING = 7  # status found warnings only (recovery would be harder or partial)
    STATUS_CRITICAL = 8  # status found a critical problem (no recent backup, stuck release, ...)
    ABORTED = 130  # interrupted (Ctrl-C) or confirmation declined


class DrError(Exception):
    """Base class: a failure the user can act on."""

    exit_code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(DrError):
    exit_code = ExitCode.USAGE


class Aborted(DrError):
    exit_code = ExitCode.ABORTED


class ConfigError(DrError):
    """Kubeconfig missing or invalid, unknown context, no in-cluster configuration."""

    exit_code = ExitCode.CLUSTER_UNREACHABLE


class BundleError(DrError):
    """A bundle that cannot be read, or fails verification."""

    exit_code = ExitCode.INVALID_BUNDLE


class BundleExistsError(DrError):
    exit_code = ExitCode.USAGE


class ComponentError(DrError):
    """A component (database, helm values, ...) could not be backed up or restored."""


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


class NotFound(KubeError):
    status = 404


class AlreadyExists(KubeError):
    status = 409


class Conflict(KubeError):
    status = 409


class Invalid(KubeError):
    status = 422


class Forbidden(KubeError):
    status = 403
    exit_code = ExitCode.FORBIDDEN


class Unauthorized(KubeError):
    status = 401
    exit_code = ExitCode.CLUSTER_UNREACHABLE


class TooManyRequests(KubeError):
    status = 429


class Unreachable(KubeError):
    """Connection refused, DNS failure, TLS failure, timeout."""

    exit_code = ExitCode.CLUSTER_UNREACHABLE


class ServerError(KubeError):
    status = 500


class Gone(KubeError):
    status = 410
