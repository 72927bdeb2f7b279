"""The scheduling objects component: departments, node pools and access rules (queues where
that CRD exists) are backed up as records at the version discovery prefers, counted in the
manifest, and never written by a restore (record-only)."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

from kubeapi import ApiServer

from kubectl_runai_dr.bundle.reader import Bundle
from kubectl_runai_dr.components import registry, scheduling
from kubectl_runai_dr.components.restore_base import RestoreSettings
from kubectl_runai_dr.kube.client import ConnectOptions, connect
from kubectl_runai_dr.ops.backup import BackupOptions, run_backup
from kubectl_runai_dr.ops.restore import RestoreOptions, run_restore

WRITES = {"POST", "PUT", "PATCH", "DELETE"}


def _seed(srv: ApiServer) -> None:
    for i in range(3):
        srv.seed({"apiVersion": "scheduling.run.ai/v2alpha2", "kind": "Department",
                  "metadata": {"name": f"dep-{i}"}, "spec": {"deservedGpus": i}})
    srv.seed({"apiVersion": "run.ai/v1alpha1", "kind": "NodePool",
              "metadata": {"name": "default"}, "spec": {}})


def test_backed_up_as_records_and_never_restored(apiserver: ApiServer, tmp_path: Path) -> None:
    _seed(apiserver)
    kube = connect(ConnectOptions(kubeconfig=str(apiserver.write_kubeconfig(tmp_path / "kc"))))
    out = run_backup(kube, BackupOptions(output=tmp_path / "b.tar.gz", only=("scheduling",),
                                         record=False))
    comp = next(r for r in out.results if r.name == "scheduling")
    assert comp.status.value == "ok", comp.reason
    assert comp.count == 4
    assert comp.details["departments"] == 3 and comp.details["nodepools"] == 1
    assert comp.details["accessrules"] == 0
    # no queues CRD in 2.16: noted, not an error
    assert comp.details["notInstalled"] == ["queues.scheduling.run.ai"]
    assert comp.details["departmentsApiVersion"].startswith("scheduling.run.ai/")
    assert isinstance(out.path, Path)  # a local bundle
    with closing(Bundle.open(out.path)) as b:
        deps = list(b.iter_list(scheduling.file_of(scheduling.TYPES[0])))
        assert sorted(d["metadata"]["name"] for d in deps) == ["dep-0", "dep-1", "dep-2"]
        assert all("managedFields" not in d["metadata"] for d in deps)

    # a restore has no step for it, so nothing of it is written
    assert "scheduling" not in registry.RESTORABLE
    for name in ("dep-0", "dep-1", "dep-2"):
        apiserver.delete_object("scheduling.run.ai/v2alpha2", "Department", name)
    apiserver.clear_requests()
    outcome = run_restore(kube, RestoreOptions(bundle=out.path, assume_yes=True,
                                               settings=RestoreSettings()))
    assert [s.name for s in outcome.steps if s.ran] == ["preflight"]
    assert not [r for r in apiserver.requests if r.method in WRITES
                and "selfsubjectaccessreviews" not in r.path]
    kube.close()


def test_not_present_without_any_crd(tmp_path: Path) -> None:
    srv = ApiServer()
    srv.start()
    try:
        kube = connect(ConnectOptions(kubeconfig=str(srv.write_kubeconfig(tmp_path / "kc"))))
        out = run_backup(kube, BackupOptions(output=tmp_path / "b.tar.gz",
                                             only=("scheduling",), record=False))
        comp = next(r for r in out.results if r.name == "scheduling")
        assert comp.status.value == "not present"
        assert "departments.scheduling.run.ai" in comp.reason
        kube.close()
    finally:
        srv.stop()
