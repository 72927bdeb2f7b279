"""Discovery: /version, /api, /apis (with or without a trailing slash), /apis/<group>,
/apis/<group>/<version>, /api/v1, and a minimal OpenAPI v3 (/openapi/v3 and per group-version).
Aggregated discovery is not served (clients fall back to the above). A CRD's group and version
appear once it is Established."""

from __future__ import annotations

import base64
from typing import Any

from aiohttp import web

from .core import ServerCore
from .resources import CRD_GROUP, ResourceType, sort_versions
from .status import NOT_FOUND_PAGE

SERVER_VERSION = {
    "major": "1", "minor": "32", "gitVersion": "v1.32.3", "gitCommit": "32cc146f75aad04beaaa245a7157eb35063a9f99",
    "gitTreeState": "clean", "buildDate": "2025-03-11T19:52:21Z", "goVersion": "go1.23.6",
    "compiler": "gc", "platform": "linux/amd64",
}


def split_api_path(path: str) -> tuple[str, str, list[str]]:
    """/api/v1/<rest> or /apis/<group>/<version>/<rest> -> (group, version, rest); 404 otherwise."""
    parts = [p for p in path.split("/") if p]
    if parts and parts[0] == "api":
        if len(parts) < 2 or parts[1] != "v1":
            raise NOT_FOUND_PAGE
        return "", "v1", parts[2:]
    if parts and parts[0] == "apis" and len(parts) >= 3:
        return parts[1], parts[2], parts[3:]
    raise NOT_FOUND_PAGE


class DiscoveryMixin(ServerCore):
    """The discovery documents, mixed into ApiServer (server.py)."""

    port: int

    def _discovery(self, path: str) -> web.Response | None:
        """The answer to a discovery path; None for a path that names resources."""
        if path in ("/version", "/version/"):
            return web.json_response(SERVER_VERSION)
        if path in ("/api", "/api/"):
            return self._json({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": f"127.0.0.1:{self.port}"}]})
        if path in ("/apis", "/apis/"):
            return self._json(self._group_list())
        if path.startswith("/openapi/v3"):
            return self._openapi_v3(path)
        if path.startswith("/openapi/"):
            raise NOT_FOUND_PAGE
        parts = [p for p in path.split("/") if p]
        if len(parts) == 2 and parts[0] == "apis":
            g = self._group_entry(parts[1])
            if g is None:
                raise NOT_FOUND_PAGE
            return self._json({"kind": "APIGroup", "apiVersion": "v1", **g})
        group, version, rest = split_api_path(path)
        if rest:
            return None
        rl = self._resource_list(group, version)
        if rl is None:
            raise NOT_FOUND_PAGE
        return self._json(rl)

    def _served_groups(self) -> dict[str, list[str]]:
        groups: dict[str, set[str]] = {}
        for t in self.types.values():
            if t.group:
                groups.setdefault(t.group, set()).update(t.versions)
        return {g: sort_versions(list(vs)) for g, vs in groups.items()}

    def _group_entry(self, group: str) -> dict[str, Any] | None:
        vs = self._served_groups().get(group)
        if not vs:
            return None
        versions = [{"groupVersion": f"{group}/{v}", "version": v} for v in vs]
        return {"name": group, "versions": versions, "preferredVersion": versions[0]}

    def _group_list(self) -> dict[str, Any]:
        with self.store.lock:
            order = ["apps", "authorization.k8s.io", "rbac.authorization.k8s.io", "storage.k8s.io", CRD_GROUP]
            groups = self._served_groups()
            names = [g for g in order if g in groups] + sorted(g for g in groups if g not in order)
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [self._group_entry(g) for g in names]}

    def _resource_list(self, group: str, version: str) -> dict[str, Any] | None:
        with self.store.lock:
            types = [t for t in self.types.values() if t.group == group and version in t.versions]
            if not types:
                return None
            resources = []
            for t in sorted(types, key=lambda t: t.plural):
                r: dict[str, Any] = {"name": t.plural, "singularName": t.singular, "namespaced": t.namespaced,
                                     "kind": t.kind, "verbs": sorted(t.verbs)}
                if t.short_names:
                    r["shortNames"] = t.short_names
                if t.categories:
                    r["categories"] = t.categories
                if not t.is_custom and t.verbs != ["create"]:
                    r["storageVersionHash"] = base64.b64encode(t.plural.encode()[:8]).decode()
                resources.append(r)
                for s in t.subresources:
                    verbs = {"status": ["get", "patch", "update"], "exec": ["create", "get"], "log": ["get"],
                             "scale": ["get", "patch", "update"], "finalize": ["update"],
                             "ephemeralcontainers": ["get", "patch", "update"]}[s]
                    sk = {"exec": "PodExecOptions", "log": "Pod", "scale": "Scale"}.get(s, t.kind)
                    sub = {"name": f"{t.plural}/{s}", "singularName": "", "namespaced": t.namespaced,
                           "kind": sk, "verbs": verbs}
                    if s == "scale":
                        sub.update(group="autoscaling", version="v1")
                    resources.append(sub)
            gv = f"{group}/{version}" if group else version
            return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}

    def _openapi_v3(self, path: str) -> web.Response:
        """A minimal OpenAPI v3: the index and per group-version documents with the operations and their
        query parameters (kubectl reads them to learn that the server validates fields itself)."""
        with self.store.lock:
            gvs: dict[str, list[ResourceType]] = {}
            for t in self.types.values():
                for v in t.versions:
                    gvs.setdefault(f"apis/{t.group}/{v}" if t.group else f"api/{v}", []).append(t)
            rest = path[len("/openapi/v3"):].strip("/")
            if not rest:
                return self._json({"paths": {gv: {"serverRelativeURL": f"/openapi/v3/{gv}?hash=0"} for gv in sorted(gvs)}})
            if rest not in gvs:
                raise NOT_FOUND_PAGE
            version = rest.rsplit("/", 1)[1]
            paths: dict[str, Any] = {}
            for t in gvs[rest]:
                gvk = {"group": t.group, "version": version, "kind": t.kind}
                base = f"/{rest}/namespaces/{{namespace}}/{t.plural}" if t.namespaced else f"/{rest}/{t.plural}"
                write_params = [{"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
                                for n in ("dryRun", "fieldManager", "fieldValidation")]

                def op(action: str, params: list[dict[str, Any]] | None = None) -> dict[str, Any]:
                    return {"operationId": f"{action}{t.kind}", "x-kubernetes-action": action,  # noqa: B023
                            "x-kubernetes-group-version-kind": gvk, "parameters": params or [],  # noqa: B023
                            "responses": {"200": {"description": "OK"}}}

                paths[base] = {"get": op("list"), "post": op("post", write_params),
                               "delete": op("deletecollection")}
                paths[base + "/{name}"] = {"get": op("get"), "put": op("put", write_params),
                                           "patch": op("patch", [*write_params, {"name": "force", "in": "query", "schema": {"type": "boolean"}}]),
                                           "delete": op("delete")}
            return self._json({"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.32.3"},
                               "paths": paths, "components": {"schemas": {}}})
