"""The API server's answers that are not objects: Status errors (reason, message, details) as the
apiserver words them. A handler raises ApiError; the core turns it into the HTTP answer."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from . import validation as val
from .resources import ResourceType
from .store import dumps

REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
           406: "NotAcceptable", 409: "Conflict", 410: "Expired", 415: "UnsupportedMediaType", 422: "Invalid",
           429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout"}


class ApiError(Exception):
    def __init__(self, code: int, message: str, reason: str | None = "", details: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = REASONS.get(code, "") if reason == "" else reason
        self.details = details
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return status_body(self.code, self.reason, self.message, self.details)

    def response(self) -> web.Response:
        return web.Response(status=self.code, body=dumps(self.body()), content_type="application/json",
                            headers=self.headers)


def status_body(code: int, reason: str | None, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    b: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                         "message": message}
    if reason:
        b["reason"] = reason
    if details is not None:
        b["details"] = details
    b["code"] = code
    return b


def status_details(rt: ResourceType, name: str | None, **kw: Any) -> dict[str, Any]:
    d: dict[str, Any] = {}
    if name:
        d["name"] = name
    if rt.group:
        d["group"] = rt.group
    d["kind"] = rt.plural
    d.update(kw)
    return d


def not_found(rt: ResourceType, name: str) -> ApiError:
    return ApiError(404, f'{rt.qualified()} "{name}" not found', details=status_details(rt, name))


def invalid_error(rt: ResourceType, name: str, causes: list[val.Cause]) -> ApiError:
    kind = f"{rt.kind}.{rt.group}" if rt.group else rt.kind
    if len(causes) == 1:
        summary = causes[0].text()
    else:
        summary = "[" + ", ".join(c.text() for c in causes) + "]"
    return ApiError(422, f'{kind} "{name}" is invalid: {summary}',
                    details={"name": name, **({"group": rt.group} if rt.group else {}), "kind": rt.kind,
                             "causes": [c.as_dict() for c in causes]})


def conflict(rt: ResourceType, name: str, why: str) -> ApiError:
    return ApiError(409, f'Operation cannot be fulfilled on {rt.qualified()} "{name}": {why}',
                    details=status_details(rt, name))


def namespace_type_error(ns: str) -> ApiError:
    return ApiError(404, f'namespaces "{ns}" not found', details={"name": ns, "kind": "namespaces"})


NOT_FOUND_PAGE = ApiError(404, "the server could not find the requested resource", details={})
