"""The Kubernetes client as the rest of the tool sees it: a Protocol, so components and
operations are typed against what they use, never against the kubernetes package.
``kube.client.Kube`` implements it; tests may pass any object that does."""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from kubectl_runai_dr.kube.resources import Resource


class KubeApi(Protocol):
    context: str
    server: str
    request_timeout: float | None

    def get(self, res: Resource, name: str, namespace: str | None = None) -> dict[str, Any]: ...

    def get_or_none(self, res: Resource, name: str,
                    namespace: str | None = None) -> dict[str, Any] | None: ...

    def list(self, res: Resource, *, namespace: str | None = None,
             label_selector: str | None = None, field_selector: str | None = None,
             limit: int = 500, ahead: int = 0) -> Iterator[dict[str, Any]]: ...

    def create(self, res: Resource, obj: Mapping[str, Any], *, namespace: str | None = None,
               dry_run: bool = False) -> dict[str, Any]: ...

    def replace(self, res: Resource, obj: Mapping[str, Any], *, namespace: str | None = None,
                dry_run: bool = False) -> dict[str, Any]: ...

    def pod_log(self, name: str, namespace: str, *, container: str | None = None,
                tail_lines: int = 50, limit_bytes: int = 64 * 1024) -> str: ...

    def patch(self, res: Resource, name: str, patch: Any, *, namespace: str | None = None,
              patch_type: str = "merge", subresource: str | None = None,
              dry_run: bool = False) -> dict[str, Any]: ...

    def delete(self, res: Resource, name: str, *, namespace: str | None = None,
               propagation: str | None = None) -> None: ...

    def server_version(self) -> dict[str, Any]: ...

    def group_versions(self, group: str) -> builtins.list[str]: ...

    def served(self, res: Resource) -> Resource | None: ...

    def refresh_discovery(self) -> None: ...

    def can_i(self, verb: str, res: Resource, namespace: str | None = None,
              name: str | None = None, subresource: str | None = None) -> tuple[bool, str]: ...
