"""The RunaiConfig object ``runai``: the cluster's configuration."""

from __future__ import annotations

import copy
import json
from collections.abc import Collection
from typing import Any

from kubectl_runai_dr.bundle import layout
from kubectl_runai_dr.bundle.reader import Bundle
from kubectl_runai_dr.components.base import BackupContext, Component
from kubectl_runai_dr.components.restore_base import RestoreContext, failure
from kubectl_runai_dr.errors import DrError
from kubectl_runai_dr.kube import resources as r
from kubectl_runai_dr.model import Names, ObjectResult, Outcome, Result, Status
from kubectl_runai_dr.plan import permissions as perm
from kubectl_runai_dr.plan.diff import changed_paths, unified
from kubectl_runai_dr.plan.restore import CLUSTER_NAMESPACE, RUNAICONFIG_CRD
from kubectl_runai_dr.sanitize import clean


def spec_json(spec: object) -> str:
    """The spec as `kubectl get runaiconfig runai -o jsonpath='{.spec}'` prints it."""
    return json.dumps(spec, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def backup(ctx: BackupContext, result: Result) -> None:
    res = ctx.kube.served(r.RUNAICONFIGS)
    ns, name = ctx.names.cluster_namespace, ctx.names.runaiconfig_name
    if res is None:
        result.status = Status.NOT_PRESENT
        result.reason = "the RunaiConfig CRD (runaiconfigs.run.ai) is not installed"
        return
    obj = ctx.kube.get_or_none(res, name, ns)
    if obj is None:
        result.status = Status.NOT_PRESENT
        result.reason = f'no RunaiConfig "{name}" in namespace "{ns}"'
        return
    ctx.out.write_json(layout.RUNAICONFIG_OBJECT, clean(obj))
    ctx.out.write_text(layout.RUNAICONFIG_SPEC, spec_json(obj.get("spec") or {}))
    result.files += [layout.RUNAICONFIG_OBJECT, layout.RUNAICONFIG_SPEC]
    result.count = 1


# -- restore --------------------------------------------------------------------------------
def saved_object(bundle: Bundle, names: Names) -> dict[str, Any] | None:
    """The saved RunaiConfig (the whole object, or the spec wrapped back into one)."""
    if bundle.has(layout.RUNAICONFIG_OBJECT):
        obj: dict[str, Any] = bundle.read_json(layout.RUNAICONFIG_OBJECT)
    elif bundle.has(layout.RUNAICONFIG_SPEC):
        obj = wrap_spec(bundle.read_json(layout.RUNAICONFIG_SPEC), names)
    else:
        return None
    meta = obj.setdefault("metadata", {})
    meta["name"] = names.runaiconfig_name
    meta["namespace"] = names.cluster_namespace
    return clean(obj)


def wrap_spec(spec: dict[str, Any], names: Names) -> dict[str, Any]:
    """Wrap a bare spec (as the docs' jsonpath backup prints it) into an object."""
    return {"apiVersion": r.RUNAICONFIGS.api_version, "kind": r.RUNAICONFIGS.kind,
            "metadata": {"name": names.runaiconfig_name, "namespace": names.cluster_namespace},
            "spec": spec}


def merged_spec(live: dict[str, Any], saved: dict[str, Any]) -> dict[str, Any]:
    """The live spec with the saved one merged in (saved wins; maps merge; lists replace)."""
    out = copy.deepcopy(live)
    for key, value in saved.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged_spec(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def leaf_paths(tree: Any, prefix: str = "") -> set[str]:
    if isinstance(tree, dict) and tree:
        out: set[str] = set()
        for key, value in tree.items():
            out |= leaf_paths(value, f"{prefix}.{key}" if prefix else str(key))
        return out
    return {prefix} if prefix else set()


def chart_set_keys(spec: dict[str, Any], chart_values: dict[str, Any]) -> list[str]:
    """Spec keys that the cluster chart's values also set: a helm upgrade of the cluster
    overwrites them, so they belong in the helm values as well.

    The cluster chart renders RunaiConfig's spec from its values, either under the same
    paths (``global.*``) or under ``spec.*``; a spec leaf is chart-set when the values hold
    that path (or a parent of it as a leaf, or children of it).
    """
    values_leaves = leaf_paths(chart_values)
    out = []
    for path in sorted(leaf_paths(spec)):
        for candidate in (path, f"spec.{path}"):
            parts = candidate.split(".")
            prefixes = {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
            if prefixes & values_leaves or any(v.startswith(candidate + ".")
                                               for v in values_leaves):
                out.append(path)
                break
    return out


def _chart_values(bundle: Bundle, names: Names) -> dict[str, Any] | None:
    for rel in (layout.helm_values_all(names.cluster_release),
                layout.helm_values(names.cluster_release)):
        if bundle.has(rel):
            import yaml  # on use: the registry is imported by help and completion

            data = yaml.safe_load(bundle.read_bytes(rel)) or {}
            return data if isinstance(data, dict) else {}
    return None


def restore(ctx: RestoreContext, step: Result) -> None:
    """The plan's ``runaiconfig`` step: merge the saved spec into the live object, or
    create it when missing. Always a merge (never left alone as drift): the object exists
    by design once the cluster chart is installed, with the chart's defaults in it."""
    names, kube = ctx.settings.names, ctx.kube
    saved = saved_object(ctx.bundle, names)
    if saved is None:
        step.skip("the bundle has no RunaiConfig")
        return
    label_ns, label_name = names.cluster_namespace, names.runaiconfig_name

    def result(outcome: Outcome, message: str = "", diff: str = "") -> ObjectResult:
        return step.add(ObjectResult(step.name, "RunaiConfig", label_name, label_ns, outcome,
                                     message, diff))

    values = _chart_values(ctx.bundle, names)
    overlap = chart_set_keys(saved.get("spec") or {}, values or {})
    if overlap:
        shown = ", ".join(overlap[:12]) + (f" and {len(overlap) - 12} more"
                                           if len(overlap) > 12 else "")
        step.warn(f"the cluster chart also sets these RunaiConfig keys, so a helm upgrade of "
                  f"{names.cluster_release} overwrites them: {shown}; keep them in its values")
    after = ctx.after_step("runaiconfig-crd") or ctx.after_step("cluster-namespace")
    try:
        res = kube.served(r.RUNAICONFIGS)
        if after and (res is None or kube.get_or_none(r.NAMESPACES, label_ns) is None):
            result(Outcome.WOULD_CREATE, f"after {after}: the saved spec is merged into the "
                   "RunaiConfig once the cluster chart has installed its CRD")
            return
        if res is None:
            result(Outcome.FAILED, "the RunaiConfig CRD (runaiconfigs.run.ai) is not installed;"
                   " re-install the cluster first (step cluster), then run again with "
                   "--only runaiconfig")
            return
        if kube.get_or_none(r.NAMESPACES, label_ns) is None:
            result(Outcome.FAILED, f'namespace "{label_ns}" does not exist; re-install the '
                   "cluster first (step cluster), then run again with --only runaiconfig")
            return
        saved["apiVersion"] = res.api_version
        live = kube.get_or_none(res, label_name, label_ns)
        if live is None:
            if ctx.settings.dry_run:
                result(Outcome.WOULD_CREATE)
            else:
                kube.create(res, saved, namespace=label_ns)
                result(Outcome.CREATED)
            return
        live_spec = live.get("spec") or {}
        new_spec = merged_spec(live_spec, saved.get("spec") or {})
        if new_spec == live_spec:
            result(Outcome.UNCHANGED)
            return
        changed = changed_paths(new_spec, live_spec, "spec")
        diff = unified({"spec": live_spec}, {"spec": new_spec},
                       label=f"RunaiConfig/{label_ns}/{label_name}")
        if ctx.settings.dry_run:
            result(Outcome.WOULD_UPDATE, "merge " + ", ".join(changed), diff)
            return
        kube.patch(res, label_name, {"spec": saved.get("spec") or {}}, namespace=label_ns)
        result(Outcome.UPDATED, "merged " + ", ".join(changed), diff)
    except DrError as exc:
        result(Outcome.FAILED, failure(exc))


def _holds(files: Collection[str], names: Names) -> bool:
    return layout.RUNAICONFIG_OBJECT in files or layout.RUNAICONFIG_SPEC in files


COMPONENT = Component(
    name="runaiconfig", title="RunaiConfig",
    saves="the `RunaiConfig` `runai`, cleaned of server-set fields, and its spec alone as "
          "`kubectl get runaiconfig runai -o jsonpath='{.spec}'` prints it",
    reason="exists once the cluster chart is installed; the saved spec is always merged into "
           "it (the chart's defaults are there by design, so this is not drift: "
           "--existing does not apply)",
    backup=backup, restore=restore, holds_data=_holds,
    needs=(RUNAICONFIG_CRD, CLUSTER_NAMESPACE),
    backup_needs=(perm.need("get", perm.RUNAI, "runaiconfigs", perm.CLUSTER),),
    restore_needs=(perm.need("get", perm.RUNAI, "runaiconfigs", perm.CLUSTER),
                   perm.need("create", perm.RUNAI, "runaiconfigs", perm.CLUSTER, perm.WRITE),
                   perm.need("patch", perm.RUNAI, "runaiconfigs", perm.CLUSTER, perm.WRITE)),
)
