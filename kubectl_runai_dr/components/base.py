"""What every backup component receives: the cluster, the bundle being written, the names."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from kubectl_runai_dr.bundle.writer import BundleWriter
from kubectl_runai_dr.model import Names


class Progress(Protocol):
    """Progress reporting as the components see it; the CLI draws it, tests ignore it."""

    def start(self, description: str, total: int | None = None) -> None: ...
    def advance(self, amount: int = 1) -> None: ...
    def update(self, *, completed: int | None = None, total: int | None = None,
               description: str | None = None) -> None: ...
    def finish(self) -> None: ...


class NullProgress:
    def start(self, description: str, total: int | None = None) -> None:
        pass

    def advance(self, amount: int = 1) -> None:
        pass

    def update(self, *, completed: int | None = None, total: int | None = None,
               description: str | None = None) -> None:
        pass

    def finish(self) -> None:
        pass


@dataclass
class BackupContext:
    kube: Any  # kubectl_runai_dr.kube.client.Kube (kept as Any: no kubernetes import here)
    out: BundleWriter
    names: Names
    include_secrets: bool = False
    progress: Progress = field(default_factory=NullProgress)
    options: dict[str, Any] = field(default_factory=dict)  # component-specific flags
    facts: dict[str, Any] = field(default_factory=dict)  # what components learned, shared

