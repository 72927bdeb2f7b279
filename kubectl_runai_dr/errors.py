"""The tool's own exceptions and the exit codes they map to (one place for both).

Every error carries a one-line message saying what failed and a hint saying what to do.
The CLI prints ``error: <message>`` and ``hint: <hint>`` and exits with ``exit_code``;
tracebacks only appear with ``-v``.
"""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # re-exported below; they live with the client (kube/errors.py)
    from kubectl_runai_dr.kube.errors import AlreadyExists as AlreadyExists
    from kubectl_runai_dr.kube.errors import ClientError as ClientError
    from kubectl_runai_dr.kube.errors import Conflict as Conflict
    from kubectl_runai_dr.kube.errors import Forbidden as Forbidden
    from kubectl_runai_dr.kube.errors import Gone as Gone
    from kubectl_runai_dr.kube.errors import Invalid as Invalid
    from kubectl_runai_dr.kube.errors import KubeError as KubeError
    from kubectl_runai_dr.kube.errors import NotFound as NotFound
    from kubectl_runai_dr.kube.errors import ServerError as ServerError
    from kubectl_runai_dr.kube.errors import TooManyRequests as TooManyRequests
    from kubectl_runai_dr.kube.errors import Unauthorized as Unauthorized
    from kubectl_runai_dr.kube.errors import Unreachable as Unreachable


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


class NotPermitted(DrError):
    """The preflight found that the user may not do what the run needs (RBAC): the same
    exit code as a request the API server refuses."""

    exit_code = ExitCode.FORBIDDEN


class ComponentError(DrError):
    """A component (database, helm values, ...) could not be backed up or restored."""


_KUBE_ERRORS = frozenset({
    "KubeError", "ClientError", "NotFound", "AlreadyExists", "Conflict", "Invalid",
    "Forbidden", "Unauthorized", "Gone", "TooManyRequests", "ServerError", "Unreachable"})


def __getattr__(name: str) -> Any:
    """The Kubernetes errors, re-exported for callers that import them from here (loaded
    on first use: kube/errors.py itself builds on this module)."""
    if name in _KUBE_ERRORS:
        from kubectl_runai_dr.kube import errors

        return getattr(errors, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class StorageError(DrError):
    """Object storage (an s3:// location) failed: unreachable, unknown bucket, TLS,
    clock skew, credentials. The message names the action, bucket and key, never a
    credential."""


class StorageDenied(StorageError):
    """Object storage refused an action (credentials rejected, or no permission)."""

    exit_code = ExitCode.FORBIDDEN
