"""The helm bridge: read helm 3 release storage directly, with no helm binary.

A revision is a Secret (driver "secret", helm's default) or a ConfigMap (driver
"configmap") named ``sh.helm.release.v1.<release>.v<revision>``, labelled ``owner=helm``,
``name=<release>``. Its ``release`` field is base64 of gzip of the release JSON (a Secret
adds its own base64 layer). The pure functions here decode a revision, pick the one to
use, and compute values exactly as ``helm get values [--all]`` does.
"""

from __future__ import annotations

import base64
import binascii
import copy
import gzip
import json
from dataclasses import dataclass
from typing import Any

from kubectl_runai_dr.bundle import layout
from kubectl_runai_dr.errors import ComponentError
from kubectl_runai_dr.kube.api import KubeApi
from kubectl_runai_dr.model import Result, Status

_GZIP_MAGIC = b"\x1f\x8b\x08"


@dataclass(frozen=True)
class HelmRelease:
    """One decoded revision and where it was stored."""

    name: str
    namespace: str
    revision: int
    status: str
    chart: str
    chart_version: str
    app_version: str
    driver: str
    storage_object: str
    raw: dict[str, Any]

    @property
    def config(self) -> dict[str, Any]:
        """User-supplied values: ``helm get values``."""
        return copy.deepcopy(self.raw.get("config") or {})

    def computed_values(self) -> dict[str, Any]:
        """``helm get values --all``: chart defaults coalesced with the user values."""
        chart_values = (self.raw.get("chart") or {}).get("values") or {}
        return coalesce_values(chart_values, self.raw.get("config") or {})

    def info(self) -> dict[str, Any]:
        info = self.raw.get("info") or {}
        return {
            "name": self.name,
            "namespace": self.namespace,
            "revision": self.revision,
            "status": self.status,
            "chart": self.chart,
            "chartVersion": self.chart_version,
            "appVersion": self.app_version,
            "firstDeployed": info.get("first_deployed", ""),
            "lastDeployed": info.get("last_deployed", ""),
            "description": info.get("description", ""),
            "storage": {"driver": self.driver, "object": self.storage_object},
        }


def decode_release_payload(payload: str | bytes, *, from_secret: bool) -> dict[str, Any]:
    """Decode the ``release`` field of a storage object into the release JSON.

    ``from_secret``: the value comes from ``Secret.data`` and carries Kubernetes' own base64
    layer on top of helm's.
    """
    data = payload.encode() if isinstance(payload, str) else payload
    try:
        if from_secret:
            data = base64.b64decode(data, validate=True)
        data = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"release data is not base64 ({exc})") from exc
    if data[:3] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise ValueError(f"release data is not valid gzip ({exc})") from exc
    try:
        out = json.loads(data)
    except ValueError as exc:
        raise ValueError(f"release data is not JSON ({exc})") from exc
    if not isinstance(out, dict):
        raise ValueError("release data is not a JSON object")
    return out


def encode_release_payload(release: dict[str, Any], *, for_secret: bool) -> str:
    """The inverse of :func:`decode_release_payload` (used to write releases back)."""
    data = base64.b64encode(gzip.compress(json.dumps(release).encode()))
    if for_secret:
        data = base64.b64encode(data)
    return data.decode()


def release_from_object(obj: dict[str, Any]) -> HelmRelease:
    kind = obj.get("kind", "Secret")
    from_secret = kind == "Secret"
    meta = obj.get("metadata") or {}
    payload = (obj.get("data") or {}).get("release")
    if not payload:
        raise ValueError(f'{kind} "{meta.get("name")}" holds no release data')
    raw = decode_release_payload(payload, from_secret=from_secret)
    chart_meta = (raw.get("chart") or {}).get("metadata") or {}
    return HelmRelease(
        name=str(raw.get("name") or (meta.get("labels") or {}).get("name", "")),
        namespace=str(raw.get("namespace") or meta.get("namespace", "")),
        revision=int(raw.get("version") or (meta.get("labels") or {}).get("version", 0)),
        status=str((raw.get("info") or {}).get("status", "unknown")),
        chart=str(chart_meta.get("name", "")),
        chart_version=str(chart_meta.get("version", "")),
        app_version=str(chart_meta.get("appVersion", "")),
        driver="secret" if from_secret else "configmap",
        storage_object=f"{kind.lower()}/{meta.get('name', '')}",
        raw=raw,
    )


def pick_revision(releases: list[HelmRelease]) -> tuple[HelmRelease | None, HelmRelease | None]:
    """(latest deployed revision, latest revision of any status)."""
    if not releases:
        return None, None
    ordered = sorted(releases, key=lambda r: r.revision)
    deployed = [r for r in ordered if r.status == "deployed"]
    return (deployed[-1] if deployed else None), ordered[-1]


# -- helm's value coalescing (helm 3.17 pkg/chartutil/coalesce.go semantics) -------------
def coalesce_values(chart_values: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """Chart defaults coalesced under user values, as ``helm get values --all`` prints.

    Maps merge recursively, user values win, a user ``null`` removes a chart key.
    Subcharts are not part of the stored release, so helm coalesces only the top chart.
    """
    dest = copy.deepcopy(config) if config else {}
    for key, val in copy.deepcopy(chart_values).items():
        if key in dest:
            value = dest[key]
            if value is None:
                del dest[key]
            elif isinstance(value, dict) and isinstance(val, dict):
                _coalesce_tables(value, val)
        else:
            dest[key] = val
    return dest


def _coalesce_tables(dst: dict[str, Any], src: dict[str, Any]) -> dict[str, Any]:
    for key, val in list(dst.items()):
        if val is None:
            src[key] = None
    for key, val in src.items():
        if key in dst and dst[key] is None:
            del dst[key]
        elif key not in dst:
            dst[key] = val
        elif isinstance(val, dict) and isinstance(dst[key], dict):
            _coalesce_tables(dst[key], val)
    return dst


def dump_values(values: dict[str, Any]) -> str:
    import yaml  # on use: the registry is imported by help and completion

    return yaml.safe_dump(values, default_flow_style=False, sort_keys=True, allow_unicode=True)


# -- reading from the cluster ------------------------------------------------------------
def read_releases(kube: KubeApi, release: str, namespace: str) -> list[HelmRelease]:
    """Every stored revision of ``release`` (secret driver first, then configmap)."""
    from kubectl_runai_dr.kube import resources as r

    selector = f"owner=helm,name={release}"
    out: list[HelmRelease] = []
    for res in (r.SECRETS, r.CONFIGMAPS):
        objs = list(kube.list(res, namespace=namespace, label_selector=selector))
        for obj in objs:
            try:
                out.append(release_from_object(obj))
            except ValueError as exc:
                name = (obj.get("metadata") or {}).get("name")
                raise ComponentError(
                    f"helm release storage {res.kind} {namespace}/{name} is unreadable: {exc}",
                    hint="the release record is damaged; `helm history` shows its revisions",
                ) from exc
        if out:
            break
    return out


def deployed_revision(kube: KubeApi, release: str, namespace: str
                      ) -> tuple[HelmRelease, HelmRelease] | None:
    """(latest deployed revision, latest revision) of ``release``; None when there is no
    such release. A release with no deployed revision is an error (failed or pending)."""
    deployed, latest = pick_revision(read_releases(kube, release, namespace))
    if latest is None:
        return None
    if deployed is None:
        raise ComponentError(
            f'helm release "{release}" has no deployed revision (latest is revision '
            f"{latest.revision}, {latest.status})",
            hint=f"fix the release first (`helm history {release} -n {namespace}`)",
        )
    return deployed, latest


def backup_release(kube: KubeApi, out: Any, release: str, namespace: str,
                   result: Result) -> HelmRelease | None:
    """Write release info, user values and computed values of the latest deployed revision."""
    found = deployed_revision(kube, release, namespace)
    if found is None:
        result.status = Status.NOT_PRESENT
        result.reason = f'no helm release "{release}" in namespace "{namespace}"'
        return None
    deployed, latest = found
    if latest.revision != deployed.revision:
        result.warnings.append(
            f"latest revision {latest.revision} is {latest.status}; backed up revision "
            f"{deployed.revision}, the latest deployed one")
    out.write_json(layout.helm_release_info(release), deployed.info())
    out.write_text(layout.helm_values(release), dump_values(deployed.config))
    out.write_text(layout.helm_values_all(release), dump_values(deployed.computed_values()))
    result.files += [layout.helm_release_info(release), layout.helm_values(release),
                     layout.helm_values_all(release)]
    result.count = 1
    result.details = {"revision": deployed.revision, "chart": deployed.chart,
                      "chartVersion": deployed.chart_version,
                      "appVersion": deployed.app_version, "status": deployed.status,
                      "driver": deployed.driver}
    return deployed


# -- values for re-installation (`kubectl runai-dr helm values`) ---------------------------
def bundle_values(bundle: Any, release: str, *, computed: bool = False) -> str:
    """The values file of ``release`` saved in a bundle (``--all``: the computed values)."""
    from kubectl_runai_dr.errors import BundleError

    rel = layout.helm_values_all(release) if computed else layout.helm_values(release)
    if not bundle.has(rel):
        raise BundleError(f'{bundle.path} holds no helm values of release "{release}"',
                          hint="`kubectl runai-dr inspect BUNDLE` lists what it holds; "
                               "check --release")
    data: bytes = bundle.read_bytes(rel)
    return data.decode()


def live_values(kube: KubeApi, release: str, namespace: str, *, computed: bool = False) -> str:
    """The values of the latest deployed revision in the cluster, with no helm binary."""
    found = deployed_revision(kube, release, namespace)
    if found is None:
        raise ComponentError(f'no helm release "{release}" in namespace "{namespace}"',
                             hint="check --release and the namespace (-n / "
                                  "--control-plane-namespace)")
    deployed = found[0]
    return dump_values(deployed.computed_values() if computed else deployed.config)


def release_state(kube: KubeApi, release: str, namespace: str) -> HelmRelease | None:
    """The latest revision of ``release`` in the cluster (any status), or None."""
    return pick_revision(read_releases(kube, release, namespace))[1]
