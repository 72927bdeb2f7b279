"""The two helm releases, control plane and cluster: their values backed up through the
helm storage bridge, and the releases re-installed from them.

Backup reads helm's own release storage (no helm binary needed) and keeps what
``helm get values`` and ``helm get values --all`` print. Restore builds the exact
commands as argument lists with pure functions (tested without helm): the chart's
repository, chart, version, namespace, the saved values file and, for the control plane on
a restored database volume, ``--set postgresql.primary.persistence.existingClaim=<claim>``.
No value from the values file is ever put on a command line (they hold secrets). With
``--run-helm`` and helm on PATH they are run; then the release storage is polled through
the helm bridge until the release is deployed.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubectl_runai_dr import conventions
from kubectl_runai_dr.bundle import layout
from kubectl_runai_dr.components import helm
from kubectl_runai_dr.components.base import BackupContext, Component
from kubectl_runai_dr.components.restore_base import RestoreContext, failure
from kubectl_runai_dr.errors import DrError
from kubectl_runai_dr.kube.api import KubeApi
from kubectl_runai_dr.localfs import write_private_file
from kubectl_runai_dr.model import Names, ObjectResult, Outcome, Result
from kubectl_runai_dr.plan import permissions as perm


# -- backup ------------------------------------------------------------------------------------
def _backup(ctx: BackupContext, result: Result, release: str, namespace: str) -> None:
    rel = helm.backup_release(ctx.kube, ctx.out, release, namespace, result)
    if rel is not None:
        ctx.releases[release] = rel.info()


def backup_control_plane(ctx: BackupContext, result: Result) -> None:
    _backup(ctx, result, ctx.names.control_plane_release, ctx.names.control_plane_namespace)


def backup_cluster(ctx: BackupContext, result: Result) -> None:
    _backup(ctx, result, ctx.names.cluster_release, ctx.names.cluster_namespace)


# -- restore -----------------------------------------------------------------------------------
EXISTING_CLAIM_KEY = "postgresql.primary.persistence.existingClaim"


@dataclass(frozen=True)
class ChartSource:
    """Where a chart comes from: a repository (name + URL) or a local path/URL ref."""

    chart_ref: str  # "runai-backend/control-plane", or a path / oci:// reference
    repo_name: str = ""
    repo_url: str = ""


# chart name (from the release) -> (repository name, repository URL), as in the Run:ai docs
KNOWN_REPOSITORIES: dict[str, tuple[str, str]] = {
    "control-plane": ("runai-backend", "https://runai.jfrog.io/artifactory/cp-charts-prod"),
    "runai-backend": ("runai-backend", "https://backend-charts.storage.googleapis.com"),
    "runai-cluster": ("runai", "https://runai.jfrog.io/artifactory/api/helm/run-ai-charts"),
}


def chart_source(chart: str, *, chart_override: str | None = None,
                 repo_override: str | None = None) -> ChartSource:
    """The chart to install. ``chart_override``: a local chart directory/archive or a full
    reference; ``repo_override``: a repository URL (mirrors, air-gapped sites)."""
    if chart_override:
        return ChartSource(chart_override)
    repo_name, repo_url = KNOWN_REPOSITORIES.get(chart, ("", ""))
    if repo_override:
        repo_url = repo_override
        repo_name = repo_name or "runai-dr-" + chart
    if not repo_url:
        return ChartSource(chart)  # unknown chart without a repository: the user says where
    return ChartSource(f"{repo_name}/{chart}", repo_name, repo_url)


def connection_args(kube_context: str | None, kubeconfig: str | None) -> list[str]:
    args: list[str] = []
    if kubeconfig:
        args += ["--kubeconfig", kubeconfig]
    if kube_context and kube_context != "in-cluster":
        args += ["--kube-context", kube_context]
    return args


def repo_add_command(src: ChartSource) -> list[str] | None:
    if not src.repo_url:
        return None
    return ["helm", "repo", "add", src.repo_name, src.repo_url, "--force-update"]


def upgrade_command(*, release: str, namespace: str, src: ChartSource, version: str,
                    values_file: Path, existing_claim: str | None = None,
                    kube_context: str | None = None, kubeconfig: str | None = None,
                    create_namespace: bool = True) -> list[str]:
    """``helm upgrade --install`` of ``release`` with the saved values file."""
    cmd = ["helm", "upgrade", "--install", release, src.chart_ref, "--namespace", namespace]
    if create_namespace:
        cmd.append("--create-namespace")
    if version and not _is_local(src.chart_ref):
        cmd += ["--version", version]
    cmd += ["--values", str(values_file)]
    if existing_claim:
        cmd += ["--set", f"{EXISTING_CLAIM_KEY}={existing_claim}"]
    return cmd + connection_args(kube_context, kubeconfig)


def _is_local(ref: str) -> bool:
    return ref.startswith(("/", "./", "../")) or Path(ref).exists()


def reinstall_commands(*, release: str, namespace: str, chart: str, version: str,
                       values_file: Path, existing_claim: str | None = None,
                       kube_context: str | None = None, kubeconfig: str | None = None,
                       chart_override: str | None = None,
                       repo_override: str | None = None) -> list[list[str]]:
    """Every command, in order: ``helm repo add`` (and update) when the chart comes from a
    repository, then ``helm upgrade --install``."""
    src = chart_source(chart, chart_override=chart_override, repo_override=repo_override)
    cmds: list[list[str]] = []
    add = repo_add_command(src)
    if add:
        cmds += [add, ["helm", "repo", "update", src.repo_name]]
    cmds.append(upgrade_command(release=release, namespace=namespace, src=src, version=version,
                                values_file=values_file, existing_claim=existing_claim,
                                kube_context=kube_context, kubeconfig=kubeconfig))
    return cmds


def shell_line(cmd: list[str]) -> str:
    return " ".join(shlex.quote(c) for c in cmd)


# -- running ----------------------------------------------------------------------------------
Runner = Callable[[list[str]], "subprocess.CompletedProcess[str]"]


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False,
                          stdin=subprocess.DEVNULL)


def wait_deployed(kube: KubeApi, release: str, namespace: str, *, timeout: float,
                  interval: float = 1.0, min_revision: int = 0) -> helm.HelmRelease:
    """Poll the release storage until the latest revision (newer than ``min_revision``)
    is deployed. Raises DrError when it fails or the time runs out."""
    deadline = time.monotonic() + timeout
    last: helm.HelmRelease | None = None
    while True:
        last = helm.release_state(kube, release, namespace)
        if last is not None and last.revision > min_revision:
            if last.status == "deployed":
                return last
            if last.status in ("failed", "superseded", "uninstalled"):
                raise DrError(f'helm release "{release}" revision {last.revision} is '
                              f"{last.status}",
                              hint=f"`helm history {release} -n {namespace}` and `helm status`"
                                   " show why; fix it and run again")
        if time.monotonic() >= deadline:
            state = f"revision {last.revision} is {last.status}" if last else "no release yet"
            raise DrError(f'helm release "{release}" is not deployed after {timeout:.0f}s '
                          f"({state})", hint=f"`helm status {release} -n {namespace}`")
        time.sleep(interval)


@dataclass(frozen=True)
class SavedRelease:
    release: str
    namespace: str
    chart: str
    version: str
    values: dict[str, Any]
    values_text: str


def saved_release(bundle: Any, release: str, default_namespace: str) -> SavedRelease:
    info = bundle.read_json(layout.helm_release_info(release)) \
        if bundle.has(layout.helm_release_info(release)) else {}
    text = helm.bundle_values(bundle, release)
    import yaml  # on use: the registry is imported by help and completion

    values = yaml.safe_load(text) or {}
    return SavedRelease(release, str(info.get("namespace") or default_namespace),
                        str(info.get("chart") or ""), str(info.get("chartVersion") or ""),
                        values if isinstance(values, dict) else {}, text)


def write_values_file(directory: Path, release: str, text: str) -> Path:
    """The values file (values hold secrets): 0600 in a directory of this user that no one
    else may write to (created 0700), replacing an earlier file atomically, never through
    a link (:func:`kubectl_runai_dr.localfs.write_private_file`)."""
    return write_private_file(directory / f"{release}-values.yaml", text.encode())


def reinstall_step(ctx: RestoreContext, step: Result, *, release: str, namespace: str,
                   existing_claim: str | None = None, runner: Runner = _run) -> None:
    """The plan's ``control-plane`` / ``cluster`` step."""
    s = ctx.settings
    saved = saved_release(ctx.bundle, release, namespace)
    ns = saved.namespace

    def result(outcome: Outcome, message: str = "", diff: str = "") -> ObjectResult:
        return step.add(ObjectResult(step.name, "HelmRelease", release, ns, outcome, message,
                                     diff))

    values_dir = s.values_dir or Path.cwd() / conventions.VALUES_DIR
    values_path = values_dir / f"{release}-values.yaml"
    cmds = reinstall_commands(
        release=release, namespace=ns, chart=saved.chart, version=saved.version,
        values_file=values_path, existing_claim=existing_claim, kube_context=ctx.kube.context,
        kubeconfig=s.kubeconfig, chart_override=s.chart_overrides.get(release),
        repo_override=s.repo_overrides.get(release))
    try:
        live = helm.release_state(ctx.kube, release, ns)
    except DrError as exc:
        result(Outcome.FAILED, failure(exc))
        return
    if live is not None and live.status == "deployed":
        same = live.chart_version == saved.version and live.config == saved.values
        if same and not existing_claim:
            result(Outcome.UNCHANGED, f"revision {live.revision} deployed (chart "
                   f"{live.chart} {live.chart_version}) with the saved values")
            return
        if s.existing.value == "skip":
            what = (f"chart {live.chart_version} (bundle: {saved.version})"
                    if live.chart_version != saved.version else "values differ from the bundle")
            result(Outcome.DRIFT, f"revision {live.revision} is deployed: {what}; left alone "
                   "(--existing update re-installs it)")
            return
    if not s.dry_run:  # the commands below name the values file: write it first
        try:
            write_values_file(values_dir, release, saved.values_text)
        except DrError as exc:
            result(Outcome.FAILED, failure(exc))
            return
    step.notes.append(f"values file: {values_path} (holds secrets: keep it private)")
    step.notes.extend(shell_line(c) for c in cmds)
    would = Outcome.WOULD_UPDATE if live is not None else Outcome.WOULD_CREATE
    if s.dry_run:
        result(would, "helm upgrade --install (see the commands)")
        return
    if not s.run_helm:
        result(Outcome.SKIPPED, "run the commands above to re-install it (or pass --run-helm), "
               f"then run the restore again with --skip {step.name}")
        return
    if shutil.which("helm") is None:
        result(Outcome.FAILED, "--run-helm: no helm on PATH; install helm or run the commands "
               "above yourself")
        return
    for cmd in cmds:
        done = runner(cmd)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout or "").strip().splitlines()[-3:]
            result(Outcome.FAILED, f"`{shell_line(cmd[:4])} …` exited {done.returncode}: "
                   + " / ".join(tail))
            return
    try:
        deployed = wait_deployed(ctx.kube, release, ns, timeout=s.wait_timeout,
                                 min_revision=live.revision if live else 0)
    except DrError as exc:
        result(Outcome.FAILED, failure(exc))
        return
    result(Outcome.UPDATED if live is not None else Outcome.CREATED,
           f"revision {deployed.revision} deployed (chart {deployed.chart} "
           f"{deployed.chart_version})")


def restore_control_plane(ctx: RestoreContext, step: Result) -> None:
    names = ctx.settings.names
    claim = ctx.settings.existing_claim or ctx.database_claim
    reinstall_step(ctx, step, release=names.control_plane_release,
                   namespace=names.control_plane_namespace, existing_claim=claim)


def restore_cluster(ctx: RestoreContext, step: Result) -> None:
    names = ctx.settings.names
    reinstall_step(ctx, step, release=names.cluster_release, namespace=names.cluster_namespace)


# -- the components ----------------------------------------------------------------------------
def _holds_control_plane(files: Collection[str], names: Names) -> bool:
    return layout.helm_values(names.control_plane_release) in files


def _holds_cluster(files: Collection[str], names: Names) -> bool:
    return layout.helm_values(names.cluster_release) in files


CONTROL_PLANE = Component(
    name="control-plane", aliases=("helm-control-plane",), title="control plane (helm)",
    saves="the control plane release's values (`helm get values`, and `--all`), chart, "
          "version and revision of its latest deployed revision, read from helm's storage",
    reason="re-install the control plane with its saved values, on the restored database "
           "volume",
    backup=backup_control_plane, restore=restore_control_plane,
    holds_data=_holds_control_plane, control_plane=True, changes_api=True,
    backup_needs=perm.helm_storage(perm.CONTROL_PLANE, write=False),
    restore_needs=perm.helm_install(perm.CONTROL_PLANE),
    restore_note="helm install also creates every object of the chart",
)
CLUSTER = Component(
    name="cluster", aliases=("helm-cluster",), title="cluster (helm)",
    saves="the cluster release's values (its identity: `cluster.uid`, `clientSecret`), "
          "chart, version and revision, read from helm's storage",
    reason="re-install the cluster with its saved values: they hold its identity "
           "(cluster.uid, clientSecret) and install the RunaiConfig CRD",
    backup=backup_cluster, restore=restore_cluster, holds_data=_holds_cluster,
    changes_api=True,
    backup_needs=perm.helm_storage(perm.CLUSTER, write=False),
    restore_needs=perm.helm_install(perm.CLUSTER),
    restore_note="helm install also creates every object of the chart",
)
