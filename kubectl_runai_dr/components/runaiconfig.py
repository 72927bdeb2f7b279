"""The RunaiConfig object ``runai``: the cluster's configuration."""

from __future__ import annotations

import json

from kubectl_runai_dr.bundle import layout
from kubectl_runai_dr.components.base import BackupContext
from kubectl_runai_dr.kube import resources as r
from kubectl_runai_dr.model import ComponentResult, Status
from kubectl_runai_dr.sanitize import clean


def spec_json(spec: object) -> str:
    """The spec as `kubectl get runaiconfig runai -o jsonpath='{.spec}'` prints it."""
    return json.dumps(spec, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def backup(ctx: BackupContext, result: ComponentResult) -> None:
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
    result.objects = 1
