"""What every concern gets about a request: its record in the request log, and its target (the
resource type, namespace, name and subresource that the URL names)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .resources import ResourceType


@dataclass
class RequestRecord:
    method: str
    path: str
    query: dict[str, list[str]]
    user: str | None
    status: int | None
    content_type: str | None
    body: bytes | None


RECORD_KEY: Any = getattr(web, "RequestKey", lambda name, t: name)("kubeapi_record", RequestRecord)


@dataclass
class Target:
    group: str
    version: str
    rt: ResourceType
    namespace: str | None
    name: str | None
    sub: str | None
    watch_path: bool = False
