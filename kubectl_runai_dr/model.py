"""Plain data shared by the layers: component results and the names of a Run:ai installation."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Status(str, Enum):
    OK = "ok"
    NOT_PRESENT = "not present"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass
class ComponentResult:
    """What one component did: the status, why, and what it wrote."""

    name: str
    status: Status = Status.OK
    reason: str = ""
    objects: int = 0
    files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "status": self.status.value,
            "objects": self.objects,
            "files": sorted(self.files),
        }
        if self.reason:
            out["reason"] = self.reason
        if self.warnings:
            out["warnings"] = list(self.warnings)
        if self.details:
            out["details"] = self.details
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ComponentResult:
        return cls(
            name=str(data["name"]),
            status=Status(data["status"]),
            reason=str(data.get("reason", "")),
            objects=int(data.get("objects", 0)),
            files=list(data.get("files", [])),
            warnings=list(data.get("warnings", [])),
            details=dict(data.get("details", {})),
        )


@dataclass(frozen=True)
class Names:
    """Where the installation lives. Defaults are the documented ones; flags override them."""

    control_plane_namespace: str = "runai-backend"
    cluster_namespace: str = "runai"
    control_plane_release: str = "runai-backend"
    cluster_release: str = "runai-cluster"
    runaiconfig_name: str = "runai"
    database_statefulset: str = "runai-backend-postgresql"
