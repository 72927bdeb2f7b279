"""Objects one at a time, as the apiserver: get, create (201), PUT, PATCH (json, merge, strategic
merge for built-ins, server-side apply which also creates), DELETE (preconditions,
propagationPolicy, finalizers, namespaces Terminating, garbage collection of dependents), the
status, finalize and scale subresources, dryRun=All, fieldValidation; the defaults the apiserver
fills and the validation (validation.py, CRD schemas). Lists are in lists.py.

The write paths run under the store's lock, which the caller holds."""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import random
import string
import uuid
from typing import TYPE_CHECKING, Any

import yaml
from aiohttp import web

from . import batch
from . import validation as val
from .core import ServerCore
from .patch import PatchError, apply_merge, json_patch, merge_patch, strategic_merge
from .request import Target
from .resources import CRD_GROUP, ResourceType, type_from_crd
from .status import (
    ApiError,
    conflict,
    invalid_error,
    namespace_type_error,
    not_found,
    status_details,
)
from .store import Entry, now

if TYPE_CHECKING:
    from .auth import User

PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json",
               "application/strategic-merge-patch+json", "application/apply-patch+yaml",
               "application/apply-patch+cbor")
FORGIVEN_FINALIZERS = {"kubernetes.io/pvc-protection", "kubernetes.io/pv-protection", "foregroundDeletion",
                       "orphan", "kubernetes", "customresourcecleanup.apiextensions.k8s.io"}


class CrudMixin(ServerCore):
    """Reads and writes of single objects, mixed into ApiServer (server.py)."""

    crd_establish_delay: float
    namespaces_linger: bool
    _cluster_ips: int

    def _get_response(self, t: Target) -> web.Response:
        assert t.name is not None
        with self.store.lock:
            e = self.store.get(t.rt.key, t.namespace or "", t.name)
            if e is None:
                raise not_found(t.rt, t.name)
            return web.Response(body=e.bytes_for(t.rt.api_version(t.version)), content_type="application/json")

    def _scale(self, request: web.Request, t: Target, user: User, body: bytes | None, q1: dict[str, str],
               dry_run: bool) -> web.Response:
        """The scale subresource: an autoscaling/v1 Scale view of spec.replicas (kubectl scale)."""
        assert t.name is not None
        method = request.method
        verb = {"GET": "get", "PUT": "update", "PATCH": "patch"}.get(method)
        if verb is None:
            raise ApiError(405, "the server does not allow this method on the requested resource")
        self._authorize(user, verb, t)
        with self.store.lock:
            e = self.store.get(t.rt.key, t.namespace or "", t.name)
            if e is None:
                raise not_found(t.rt, t.name)

            def view(obj: dict[str, Any]) -> dict[str, Any]:
                md = obj["metadata"]
                sel = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
                return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                        "metadata": {k: md[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                                        "creationTimestamp") if k in md},
                        "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 1)},
                        "status": {"replicas": (obj.get("status") or {}).get("replicas", 0),
                                   "selector": ",".join(f"{k}={v}" for k, v in sorted(sel.items()))}}

            cur = view(e.obj)
            if method == "GET":
                return self._json(cur)
            if method == "PUT":
                new = self._decode(body, request.content_type, t)
            else:
                ctype = (request.headers.get("Content-Type") or "").split(";")[0].strip()
                try:
                    patch = json.loads(body or b"null")
                    if ctype == "application/json-patch+json":
                        new = json_patch(cur, patch)
                    elif ctype in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
                        new = merge_patch(cur, patch)
                    else:
                        raise ApiError(415, f"the body of the request was in an unknown format: {ctype}")
                except (ValueError, PatchError) as err:
                    raise ApiError(400, f"error decoding patch: {err}") from err
            replicas = ((new or {}).get("spec") or {}).get("replicas")
            if not isinstance(replicas, int) or replicas < 0:
                raise invalid_error(t.rt, t.name, [val.invalid("spec.replicas", replicas,
                                                               "must be greater than or equal to 0")])
            rv = ((new.get("metadata") or {}).get("resourceVersion")) if method == "PUT" else None
            obj = copy.deepcopy(e.obj)
            obj["spec"]["replicas"] = replicas
            if rv:
                obj["metadata"]["resourceVersion"] = rv
            _code, entry = self._update(Target(t.group, t.version, t.rt, t.namespace, t.name, None), obj,
                                        dry_run=dry_run, from_patch=True)
            if not dry_run:
                self.workloads.after_api_write(t.rt.plural, entry, False, None)
            return self._json(view(entry.obj))

    def _obj_response(self, entry: Entry, t: Target, code: int) -> web.Response:
        return web.Response(status=code, body=entry.bytes_for(t.rt.api_version(t.version)),
                            content_type="application/json")

    def _decode(self, body: bytes | None, ctype: str, t: Target) -> dict[str, Any]:
        if not body:
            raise ApiError(400, "the body of the request was empty")  # like "Object 'Kind' is missing in ''"
        try:
            if ctype == "application/vnd.kubernetes.protobuf":
                from .protobuf import ProtobufError, decode

                try:
                    obj = decode(body)
                except ProtobufError as e:
                    raise ApiError(415, f"the body of the request could not be decoded: {e}") from e
            elif ctype in ("application/yaml", "application/apply-patch+yaml"):
                obj = yaml.safe_load(body)
            elif ctype in ("application/json", "", "text/plain", "application/octet-stream"):
                obj = json.loads(body)
            else:
                raise ApiError(415, 'the body of the request was in an unknown format - accepted media types '
                                    'include: application/json, application/yaml, application/vnd.kubernetes.protobuf')
        except ApiError:
            raise
        except ValueError as e:
            raise ApiError(400, f"couldn't get version/kind; json parse error: {e}") from e
        except yaml.YAMLError as e:
            raise ApiError(400, f"error converting YAML to JSON: {e}") from e
        if not isinstance(obj, dict):
            raise ApiError(400, "couldn't get version/kind; json parse error: expected an object")
        return obj

    def _check_type_fields(self, rt: ResourceType, version: str, obj: dict[str, Any]) -> None:
        av, kind = obj.get("apiVersion"), obj.get("kind")
        expected = rt.api_version(version)
        if rt.is_custom:
            if not kind:
                raise ApiError(400, f"Object 'Kind' is missing in '{json.dumps(obj)[:200]}'")
            if not av:
                raise ApiError(400, f"Object 'apiVersion' is missing in '{json.dumps(obj)[:200]}'")
        if av and av != expected:
            raise ApiError(400, f"the API version in the data ({av}) does not match the expected API version "
                                f"({expected})")
        if kind and kind != rt.kind:
            raise ApiError(400, f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})")
        obj["apiVersion"] = expected
        obj["kind"] = rt.kind

    def _check_namespace_for_create(self, t: Target, obj: dict[str, Any]) -> None:
        if not t.rt.namespaced or t.namespace is None:
            return
        ns = self.store.get(("", "namespaces"), "", t.namespace)
        if ns is None:
            raise namespace_type_error(t.namespace)
        if ns.obj["metadata"].get("deletionTimestamp"):
            name = (obj.get("metadata") or {}).get("name") or ""
            raise ApiError(403, f'{t.rt.qualified()} "{name}" is forbidden: unable to create new content in namespace '
                                f'{t.namespace} because it is being terminated',
                           details={"name": name, **({"group": t.group} if t.group else {}), "kind": t.rt.plural,
                                    "causes": [{"reason": "NamespaceTerminating",
                                                "message": f"namespace {t.namespace} is being terminated",
                                                "field": "metadata.namespace"}]})

    def _defaults(self, rt: ResourceType, obj: dict[str, Any], *, creating: bool) -> None:
        p = rt.plural
        if p == "secrets":
            obj.setdefault("type", "Opaque")
            sd = obj.pop("stringData", None)
            if sd:
                data = dict(obj.get("data") or {})
                for k, v in sd.items():
                    data[k] = base64.b64encode(str(v).encode()).decode()
                obj["data"] = data
        elif p == "namespaces":
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            # like kube-apiserver >= 1.21: the immutable name label, set on create and update
            md = obj.setdefault("metadata", {})
            if md.get("name"):
                md["labels"] = {**(md.get("labels") or {}), "kubernetes.io/metadata.name": md["name"]}
            if creating:
                obj.setdefault("status", {"phase": "Active"})
        elif p == "pods" and creating:
            obj.setdefault("status", {"phase": "Pending", "qosClass": "BestEffort"})
        elif (p == "persistentvolumeclaims" and creating) or (p == "persistentvolumes" and creating):
            obj.setdefault("status", {"phase": "Pending"})
        elif p == "storageclasses":
            obj.setdefault("reclaimPolicy", "Delete")
            obj.setdefault("volumeBindingMode", "Immediate")
        elif p in ("deployments", "statefulsets"):
            spec = obj.setdefault("spec", {})
            if creating:
                spec.setdefault("replicas", 1)
                spec.setdefault("revisionHistoryLimit", 10)
                obj.setdefault("status", {"replicas": 0} if p == "statefulsets" else {})
            if p == "statefulsets":
                spec.setdefault("podManagementPolicy", "OrderedReady")
                spec.setdefault("updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
                spec.setdefault("persistentVolumeClaimRetentionPolicy",
                                {"whenDeleted": "Retain", "whenScaled": "Retain"})
        elif p in ("cronjobs", "jobs"):
            batch.defaults(p, obj)
        elif p == "customresourcedefinitions" and creating:
            names = obj.get("spec", {}).get("names", {})
            accepted = {**names}
            accepted.setdefault("singular", names.get("kind", "").lower())
            accepted.setdefault("listKind", names.get("kind", "") + "List")
            storage = [v["name"] for v in obj.get("spec", {}).get("versions", []) if v.get("storage")]
            obj["status"] = {
                "acceptedNames": accepted, "storedVersions": storage,
                "conditions": [
                    {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                     "message": "no conflicts found", "lastTransitionTime": now()},
                    {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                     "message": "the initial names have been accepted", "lastTransitionTime": now()},
                ]}

    def _prepare(self, rt: ResourceType, version: str, obj: dict[str, Any], old: Entry | None,
                 validation: str | None, warnings: list[str] | None = None) -> dict[str, Any]:
        """Schema pruning/validation shared by create and update. Returns the object to store."""
        if rt.is_custom:
            schema = rt.schemas.get(version) or {}
            unknown: list[str] = []
            pruned = val.prune_and_default(obj, schema, "", unknown, root=True)
            if unknown and validation == "Strict":
                raise ApiError(400, "strict decoding error: " + ", ".join(f'unknown field "{u}"' for u in unknown))
            if unknown and validation == "Warn" and warnings is not None:
                warnings.extend(f'unknown field "{u}"' for u in unknown)
            obj = pruned
        return obj

    def _validate(self, rt: ResourceType, version: str, obj: dict[str, Any], old: Entry | None,
                  creating: bool) -> None:
        name = obj["metadata"].get("name") or ""
        causes = val.validate_metadata(obj, rt.plural, creating=creating)
        if rt.is_custom:
            schema = rt.schemas.get(version) or {}
            body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
            sch = {**schema, "properties": {k: v for k, v in (schema.get("properties") or {}).items()
                                            if k not in ("apiVersion", "kind", "metadata")}}
            val.validate_schema(body, sch, "", causes)
            if not causes:
                causes.extend(val.validate_cel(obj, old.obj if old else None, schema))
        else:
            causes.extend(val.validate_builtin(obj, rt.plural, old.obj if old else None))
            if rt.plural == "customresourcedefinitions":
                causes.extend(self._validate_crd(obj))
        if causes:
            raise invalid_error(rt, name, causes)

    def _validate_crd(self, obj: dict[str, Any]) -> list[val.Cause]:
        causes: list[val.Cause] = []
        spec = obj.get("spec") or {}
        names = spec.get("names") or {}
        want = f"{names.get('plural')}.{spec.get('group')}"
        if obj["metadata"].get("name") != want:
            causes.append(val.invalid("metadata.name", obj["metadata"].get("name"),
                                      'must be spec.names.plural+"."+spec.group'))
        if spec.get("scope") not in ("Namespaced", "Cluster"):
            causes.append(val.Cause("spec.scope", f'Unsupported value: "{spec.get("scope")}": supported values: '
                                    '"Cluster", "Namespaced"', "FieldValueNotSupported"))
        versions = spec.get("versions") or []
        if sum(1 for v in versions if v.get("storage")) != 1:
            causes.append(val.invalid("spec.versions", versions, "must have exactly one version marked as storage version"))
        for i, v in enumerate(versions):
            for _path, rule in val.collect_rules(((v.get("schema") or {}).get("openAPIV3Schema")) or {}):
                try:
                    val.check_rule_supported(rule["rule"])
                except val.UnsupportedRule:
                    causes.append(val.invalid(f"spec.versions[{i}].schema.openAPIV3Schema", rule["rule"],
                                              "rule not implemented by this test server"))
        return causes

    def _create(self, rt: ResourceType, version: str, ns: str | None, obj: dict[str, Any], *, dry_run: bool,
                field_manager: str | None = None, validation: str | None = None,
                via_api: bool = False) -> tuple[int, Entry]:
        self._check_type_fields(rt, version, obj)
        md = obj.get("metadata")
        if not isinstance(md, dict):
            md = obj["metadata"] = {}
        if rt.namespaced:
            if md.get("namespace") and ns is not None and md["namespace"] != ns:
                raise ApiError(400, "the namespace of the provided object does not match the namespace sent on "
                                    "the request")
            md["namespace"] = ns or md.get("namespace") or "default"
        else:
            md.pop("namespace", None)
        if md.get("resourceVersion") not in (None, "", "0"):
            raise ApiError(500, "resourceVersion should not be set on objects to be created", reason=None)
        if not md.get("name") and md.get("generateName"):
            md["name"] = md["generateName"] + "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
        obj = self._prepare(rt, version, obj, None, validation)
        md = obj["metadata"]
        self._validate(rt, version, obj, None, creating=True)
        if "status" in rt.subresources and rt.plural not in ("namespaces",):
            obj.pop("status", None)
        self._defaults(rt, obj, creating=True)
        establish_later = via_api and rt.plural == "customresourcedefinitions" and self.crd_establish_delay > 0 \
            and self._loop is not None
        if establish_later:
            for c in obj["status"]["conditions"]:
                if c["type"] == "Established":
                    c.update(status="False", reason="Installing", message="the initial names have been accepted")
        if via_api and rt.plural == "services":
            self._service_defaults(obj, None)
        if rt.plural == "customresourcedefinitions":
            crd_causes = []
            try:
                type_from_crd(obj)
            except (KeyError, TypeError) as err:
                crd_causes.append(val.invalid("spec", None, f"invalid CustomResourceDefinition: {err}"))
            if crd_causes:
                raise invalid_error(rt, md["name"], crd_causes)
        name = md["name"]
        if self.store.get(rt.key, md.get("namespace", "") if rt.namespaced else "", name) is not None:
            raise ApiError(409, f'{rt.qualified()} "{name}" already exists', reason="AlreadyExists",
                           details=status_details(rt, name))
        for k in ("deletionTimestamp", "deletionGracePeriodSeconds"):
            md.pop(k, None)
        md["uid"] = str(uuid.uuid4())
        if rt.plural == "jobs":
            batch.default_selector(obj)
        md["creationTimestamp"] = now()
        if rt.has_generation:
            md["generation"] = 1
        else:
            md.pop("generation", None)
        md.pop("managedFields", None)
        md["managedFields"] = [self._managed_entry(field_manager or "unknown", "Update", obj)]
        obj["apiVersion"] = rt.api_version()  # stored at the storage version
        if dry_run:
            md["resourceVersion"] = ""
            md.pop("resourceVersion")
            return 201, Entry(obj, self.store.rv)
        rv = self.store.next_rv()
        md["resourceVersion"] = str(rv)
        e = self.store.put(rt.key, obj, rv, "ADDED")
        if rt.plural == "customresourcedefinitions":
            if establish_later:
                self._establish_later(md["name"], md["uid"])
            else:
                self._register_crd(obj)
        return 201, e

    def _establish_later(self, name: str, uid: str) -> None:
        loop = self._loop
        if loop is None:
            return
        delay = self.crd_establish_delay

        def arm() -> None:
            loop.call_later(delay, self._establish_crd, name, uid)

        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(arm)

    def _establish_crd(self, name: str, uid: str) -> None:
        """A CRD created through HTTP turns Established: its resources are served from now on."""
        with self.store.lock:
            e = self.store.get((CRD_GROUP, "customresourcedefinitions"), "", name)
            if e is None or e.obj["metadata"].get("uid") != uid or _crd_established(e.obj):
                return
            obj = copy.deepcopy(e.obj)
            for c in (obj.get("status") or {}).get("conditions") or []:
                if c.get("type") == "Established":
                    c.update(status="True", reason="InitialNamesAccepted",
                             message="the initial names have been accepted", lastTransitionTime=now())
            rv = self.store.next_rv()
            obj["metadata"]["resourceVersion"] = str(rv)
            self.store.put((CRD_GROUP, "customresourcedefinitions"), obj, rv, "MODIFIED")
            self._register_crd(obj)

    def _service_defaults(self, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        """What the API server fills in a Service: type, a cluster IP (kept on update), port protocols."""
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        ospec = (old or {}).get("spec") or {}
        if spec["type"] != "ExternalName":
            if not spec.get("clusterIP") and ospec.get("clusterIP"):
                spec["clusterIP"] = ospec["clusterIP"]
                spec["clusterIPs"] = list(ospec.get("clusterIPs") or [ospec["clusterIP"]])
            if not spec.get("clusterIP"):
                self._cluster_ips += 1
                spec["clusterIP"] = f"10.96.{self._cluster_ips // 250 % 250}.{self._cluster_ips % 250 + 2}"
            spec.setdefault("clusterIPs", [spec["clusterIP"]])
            if spec["clusterIP"] != "None":
                spec.setdefault("ipFamilies", ["IPv4"])
                spec.setdefault("ipFamilyPolicy", "SingleStack")
            spec.setdefault("internalTrafficPolicy", "Cluster")
        spec.setdefault("sessionAffinity", "None")
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))

    @staticmethod
    def _managed_entry(manager: str, operation: str, obj: dict[str, Any]) -> dict[str, Any]:
        def fields(o: Any, depth: int) -> dict[str, Any]:
            if not isinstance(o, dict) or depth == 0:
                return {}
            return {f"f:{k}": fields(v, depth - 1) for k, v in o.items()
                    if k not in ("apiVersion", "kind", "status")}

        fv = fields({k: v for k, v in obj.items() if k != "metadata"}, 3)
        md = obj.get("metadata") or {}
        mdf = {f"f:{k}": fields(md[k], 1) for k in ("labels", "annotations") if md.get(k)}
        if mdf:
            fv["f:metadata"] = mdf
        return {"manager": manager, "operation": operation, "apiVersion": obj.get("apiVersion"), "time": now(),
                "fieldsType": "FieldsV1", "fieldsV1": fv}

    def _update(self, t: Target, obj: dict[str, Any], *, dry_run: bool, validation: str | None = None,
                from_patch: bool = False, field_manager: str | None = None) -> tuple[int, Entry]:
        rt = t.rt
        self._check_type_fields(rt, t.version, obj)
        md = obj.get("metadata")
        if not isinstance(md, dict):
            md = obj["metadata"] = {}
        if rt.namespaced and md.get("namespace") and md["namespace"] != t.namespace:
            raise ApiError(400, "the namespace of the provided object does not match the namespace sent on the "
                                "request")
        if md.get("name") and md["name"] != t.name:
            raise ApiError(400, f"the name of the object ({md['name']}) does not match the name on the URL "
                                f"({t.name})")
        md["name"] = t.name
        if rt.namespaced:
            md["namespace"] = t.namespace
        else:
            md.pop("namespace", None)
        assert t.name is not None
        old = self.store.get(rt.key, t.namespace or "", t.name)
        if old is None:
            raise not_found(rt, t.name)
        rv = md.get("resourceVersion")
        if rv:
            try:
                int(rv)
            except ValueError as err:
                raise invalid_error(rt, t.name, [val.invalid("metadata.resourceVersion", rv,
                                                              "must be a valid resourceVersion")]) from err
            if rv != old.obj["metadata"]["resourceVersion"]:
                raise conflict(rt, t.name, "the object has been modified; please apply your changes to the latest "
                                           "version and try again")
        elif rt.is_custom and not from_patch:
            raise invalid_error(rt, t.name, [val.invalid("metadata.resourceVersion", "0x0",
                                                          "must be specified for an update")])
        obj = self._prepare(rt, t.version, obj, old, validation)
        md = obj["metadata"]
        oldmd = old.obj["metadata"]
        if t.sub == "status":
            new = copy.deepcopy(old.obj)
            if "status" in obj:
                new["status"] = obj["status"]
            else:
                new.pop("status", None)
            obj = new
            md = obj["metadata"]
        elif t.sub == "finalize":
            new = copy.deepcopy(old.obj)
            new["spec"] = obj.get("spec") or {}
            obj = new
            md = obj["metadata"]
        elif t.sub == "ephemeralcontainers":
            new = copy.deepcopy(old.obj)
            added = (obj.get("spec") or {}).get("ephemeralContainers") or []
            causes = val.validate_ephemeral(old.obj, added)
            if causes:
                raise invalid_error(rt, t.name, causes)
            new["spec"]["ephemeralContainers"] = added
            obj = new
            md = obj["metadata"]
        else:
            if "status" in rt.subresources:
                if "status" in old.obj:
                    obj["status"] = copy.deepcopy(old.obj["status"])
                else:
                    obj.pop("status", None)
            self._defaults(rt, obj, creating=False)
            if rt.plural == "pods" and (obj.get("spec") or {}).get("ephemeralContainers") != (
                    old.obj.get("spec") or {}).get("ephemeralContainers"):
                raise invalid_error(rt, t.name, [val.forbidden(
                    "spec.ephemeralContainers", "cannot be changed by an update of the pod: use the "
                    "ephemeralcontainers subresource")])
            if rt.plural == "services":
                self._service_defaults(obj, old.obj)
        # system fields are not the client's to change
        for k in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"):
            if k in oldmd:
                md[k] = oldmd[k]
            else:
                md.pop(k, None)
        if "managedFields" not in md and "managedFields" in oldmd:
            md["managedFields"] = oldmd["managedFields"]
        if oldmd.get("deletionTimestamp"):
            added = set(md.get("finalizers") or []) - set(oldmd.get("finalizers") or [])
            if added:
                raise invalid_error(rt, t.name, [val.forbidden("metadata.finalizers",
                                                               f"no new finalizers can be added if the object is being "
                                                               f"deleted, found new finalizers {sorted(added)!r}")])
        self._validate(rt, t.version, obj, old, creating=False)
        obj["apiVersion"] = rt.api_version()
        md["resourceVersion"] = oldmd["resourceVersion"]
        if rt.has_generation and t.sub is None:
            strip = ("metadata", "status")
            if {k: v for k, v in obj.items() if k not in strip} != {k: v for k, v in old.obj.items() if k not in strip}:
                md["generation"] = int(oldmd.get("generation") or 0) + 1
        if obj == old.obj:
            return 200, old
        if dry_run:
            return 200, Entry(obj, old.rv)
        if oldmd.get("deletionTimestamp") and not self._blocking_finalizers(obj):
            gone = self.store.remove(rt.key, old, self.store.next_rv())
            self._after_delete(rt, gone)
            return 200, gone
        newrv = self.store.next_rv()
        md["resourceVersion"] = str(newrv)
        e = self.store.put(rt.key, obj, newrv, "MODIFIED")
        if rt.plural == "customresourcedefinitions" and _crd_established(obj):
            self._register_crd(obj)
        return 200, e

    def _patch(self, t: Target, ctype: str, body: bytes, *, dry_run: bool, q: dict[str, str]) -> tuple[int, Entry]:
        rt = t.rt
        assert t.name is not None
        if ctype not in PATCH_TYPES or ctype == "application/apply-patch+cbor":
            raise ApiError(415, 'the body of the request was in an unknown format - accepted media types include: '
                                'application/json-patch+json, application/merge-patch+json, '
                                'application/apply-patch+yaml' +
                                ("" if rt.is_custom else ", application/strategic-merge-patch+json"))
        if ctype == "application/strategic-merge-patch+json" and rt.is_custom:
            raise ApiError(415, "strategic merge patch is not supported for custom resources: use "
                                "application/merge-patch+json or application/json-patch+json")
        old = self.store.get(rt.key, t.namespace or "", t.name)
        try:
            if ctype == "application/apply-patch+yaml":
                patch = yaml.safe_load(body) if body else None
            else:
                patch = json.loads(body) if body else None
        except (ValueError, yaml.YAMLError) as e:
            raise ApiError(400, f"error decoding patch: {e}") from e
        if ctype == "application/apply-patch+yaml":
            fm = q.get("fieldManager")
            if not fm:
                raise ApiError(400, "PATCH, application/apply-patch+yaml requires fieldManager to be set")
            if not isinstance(patch, dict):
                raise ApiError(400, "error decoding YAML: expected an object")
            pmd = patch.get("metadata") or {}
            if pmd.get("name") and pmd["name"] != t.name:
                raise ApiError(400, f"the name of the object ({pmd['name']}) does not match the name on the URL "
                                    f"({t.name})")
            if old is None:
                if t.sub:
                    raise not_found(rt, t.name)
                obj = copy.deepcopy(patch)
                obj.setdefault("metadata", {})["name"] = t.name
                self._check_namespace_for_create(t, obj)
                return self._create(rt, t.version, t.namespace, obj, dry_run=dry_run, field_manager=fm,
                                    validation=q.get("fieldValidation"), via_api=True)
            cur = old.copy_obj(rt.api_version(t.version))
            new = apply_merge(cur, patch)
        else:
            if old is None:
                raise not_found(rt, t.name)
            cur = old.copy_obj(rt.api_version(t.version))
            try:
                if ctype == "application/json-patch+json":
                    new = json_patch(cur, patch)
                elif ctype == "application/merge-patch+json":
                    if not isinstance(patch, dict):
                        raise PatchError("merge patch must be an object")
                    new = merge_patch(cur, patch)
                else:
                    if not isinstance(patch, dict):
                        raise PatchError("strategic merge patch must be an object")
                    new = strategic_merge(cur, patch)
            except PatchError as e:
                raise invalid_error(rt, t.name, [val.Cause("", str(e))]) if ctype == "application/json-patch+json" \
                    else ApiError(400, str(e)) from e
        if not isinstance(new, dict):
            raise ApiError(422, "patched object is not an object")
        # a resourceVersion in the patch is a precondition; without one the patch applies to the current object
        prv = ((patch or {}).get("metadata") or {}).get("resourceVersion") if isinstance(patch, dict) else None
        new.setdefault("metadata", {})["resourceVersion"] = prv or old.obj["metadata"]["resourceVersion"]
        return self._update(t, new, dry_run=dry_run, validation=q.get("fieldValidation"), from_patch=True)

    def _blocking_finalizers(self, obj: dict[str, Any]) -> list[str]:
        return [f for f in obj["metadata"].get("finalizers") or [] if f not in FORGIVEN_FINALIZERS]

    def _delete(self, rt: ResourceType, ns: str | None, name: str, opts: dict[str, Any], *,
                dry_run: bool) -> Entry | dict[str, Any]:
        e = self.store.get(rt.key, ns or "", name)
        if e is None:
            raise not_found(rt, name)
        pre = opts.get("preconditions") or {}
        md = e.obj["metadata"]
        if pre.get("uid") and pre["uid"] != md["uid"]:
            raise conflict(rt, name, f"Precondition failed: UID in precondition: {pre['uid']}, UID in object "
                                     f"meta: {md['uid']}")
        if pre.get("resourceVersion") and pre["resourceVersion"] != md["resourceVersion"]:
            raise conflict(rt, name, f"Precondition failed: ResourceVersion in precondition: "
                                     f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                                     f"{md['resourceVersion']}")
        if rt.plural == "namespaces":
            if md.get("deletionTimestamp"):
                raise conflict(rt, name, "The system is ensuring all content is removed from this namespace.  "
                                         "Upon completion, this namespace will automatically be purged by the "
                                         "system.")
            if name in ("default", "kube-system", "kube-public"):
                raise ApiError(403, f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                               details={"name": name, "kind": "namespaces"})
            obj = copy.deepcopy(e.obj)
            obj["metadata"]["deletionTimestamp"] = now()
            obj["status"] = {"phase": "Terminating"}
            if dry_run:
                return Entry(obj, e.rv)
            rv = self.store.next_rv()
            obj["metadata"]["resourceVersion"] = str(rv)
            ne = self.store.put(rt.key, obj, rv, "MODIFIED")
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self._finalize_namespace_locked, name)
            else:
                self._finalize_namespace(name)
            return ne
        if dry_run:
            return e if rt.return_deleted_object else self._success_status(rt, e)
        if self._blocking_finalizers(e.obj):
            if md.get("deletionTimestamp"):
                return e
            obj = copy.deepcopy(e.obj)
            obj["metadata"]["deletionTimestamp"] = now()
            obj["metadata"]["deletionGracePeriodSeconds"] = 0
            rv = self.store.next_rv()
            obj["metadata"]["resourceVersion"] = str(rv)
            return self.store.put(rt.key, obj, rv, "MODIFIED")
        gone = self.store.remove(rt.key, e, self.store.next_rv())
        self._after_delete(rt, gone, orphan=opts.get("propagationPolicy") == "Orphan")
        if rt.return_deleted_object:
            return gone
        return self._success_status(rt, e)

    def _success_status(self, rt: ResourceType, e: Entry) -> dict[str, Any]:
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": status_details(rt, e.name, uid=e.obj["metadata"]["uid"])}

    def _after_delete(self, rt: ResourceType, gone: Entry, orphan: bool = False) -> None:
        if rt.plural == "customresourcedefinitions":
            spec = gone.obj["spec"]
            self.store.drop_resource((spec["group"], spec["names"]["plural"]))
            self._unregister_crd(gone.obj)
        uid = gone.obj["metadata"].get("uid")
        if not orphan and uid:
            # garbage collection of dependents
            for t in list(self.types.values()):
                if t.namespaced != rt.namespaced and rt.namespaced:
                    continue
                for d in list(self.store.data.get(t.key, {}).values()):
                    if rt.namespaced and d.namespace != gone.namespace:
                        continue
                    if any(r.get("uid") == uid for r in d.obj["metadata"].get("ownerReferences") or []):
                        with contextlib.suppress(ApiError):
                            self._delete(t, d.namespace or None, d.name, {}, dry_run=False)
        if rt.namespaced and gone.namespace:
            nse = self.store.get(("", "namespaces"), "", gone.namespace)
            if nse is not None and nse.obj["metadata"].get("deletionTimestamp") and self._loop is not None:
                self._loop.call_soon_threadsafe(self._finalize_namespace_locked, gone.namespace)

    def _finalize_namespace_locked(self, name: str) -> None:
        with self.store.lock:
            self._finalize_namespace(name)

    def _finalize_namespace(self, name: str, force: bool = False) -> None:
        nse = self.store.get(("", "namespaces"), "", name)
        if nse is None or not nse.obj["metadata"].get("deletionTimestamp"):
            return
        remaining = 0
        for t in list(self.types.values()):
            if not t.namespaced:
                continue
            bucket = self.store.data.get(t.key)
            if not bucket:
                continue
            for e in [e for e in bucket.values() if e.namespace == name]:
                if self._blocking_finalizers(e.obj):
                    remaining += 1
                    if not e.obj["metadata"].get("deletionTimestamp"):
                        self._delete(t, name, e.name, {}, dry_run=False)
                    continue
                self.store.remove(t.key, e, self.store.next_rv())
        if remaining or (self.namespaces_linger and not force):
            return
        self.store.remove(("", "namespaces"), nse, self.store.next_rv())


def _crd_established(crd: dict[str, Any]) -> bool:
    return any(c.get("type") == "Established" and c.get("status") == "True"
               for c in (crd.get("status") or {}).get("conditions") or [])
