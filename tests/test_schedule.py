"""`schedule`: the manifests (golden YAML), install / re-install / dry run / uninstall against the
loopback API server, bad input refused before any write, RBAC equal to the permission table's
backup rows (checked by running the CronJob's backup as its ServiceAccount with RBAC enforced),
run-now followed to its end with its log, and the command line the CronJob runs parsed by the
real `backup` command."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import typer
import yaml
from kubeapi import ApiServer
from kubeapi.pgserver import PgServer

from kubectl_runai_dr.cli.app import app
from kubectl_runai_dr.components import registry
from kubectl_runai_dr.model import Names
from kubectl_runai_dr.plan import cron
from kubectl_runai_dr.plan import permissions as perm
from kubectl_runai_dr.plan import schedule as plan
from tests.e2e import ROOT, cli
from tests.test_database import PASSWORD, load_data, set_exec

GOLDEN = Path(__file__).parent / "golden"
IMAGE = "runai-dr/kubectl-runai-dr:0.1.0@sha256:" + "ab" * 32
NS = "runai-dr"
SA_TOKEN = "runai-dr-backup-sa-token"
KINDS = [("v1", "ServiceAccount"), ("rbac.authorization.k8s.io/v1", "Role"),
         ("rbac.authorization.k8s.io/v1", "RoleBinding"),
         ("rbac.authorization.k8s.io/v1", "ClusterRole"),
         ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"), ("batch/v1", "CronJob")]


def spec(**kw: Any) -> plan.ScheduleSpec:
    base: dict[str, Any] = {"schedule": "30 2 * * *",
                            "location": plan.parse_location("pvc://backups/nightly/"),
                            "image": IMAGE}
    return plan.ScheduleSpec(**{**base, **kw})


# -- pure ------------------------------------------------------------------------------------
@pytest.mark.parametrize("expr, why", [
    ("61 * * * *", "out of range 0-59"), ("* * *", "expected 5 fields"),
    ("*/0 * * * *", "step"), ("5-1 * * * *", "backwards"), ("0 0 * foo *", "not a number"),
    ("TZ=UTC 0 0 * * *", "time zone")])
def test_cron_errors(expr: str, why: str) -> None:
    with pytest.raises(cron.CronError, match=why):
        cron.parse(expr)


def test_cron_next_run() -> None:
    at = datetime(2024, 2, 28, 3, 0, tzinfo=timezone.utc)  # a Wednesday, leap year
    assert cron.next_run(cron.parse("30 2 * * *"), at) == at.replace(day=29, hour=2, minute=30)
    assert cron.next_run(cron.parse("*/15 3 * * *"), at) == at.replace(minute=15)
    assert cron.next_run(cron.parse("0 0 * * MON"), at) == datetime(2024, 3, 4, tzinfo=timezone.utc)
    # both days restricted: either matches, as cron does
    assert cron.next_run(cron.parse("0 0 1 * sun"), at) == datetime(2024, 3, 1, tzinfo=timezone.utc)
    assert cron.next_run(cron.parse("@monthly"), at) == datetime(2024, 3, 1, tzinfo=timezone.utc)
    assert cron.next_run(cron.parse("0 0 31 2 *"), at) is None


@pytest.mark.parametrize("text, scheme, to", [
    ("s3://my-bucket/runai/prod", "s3", "s3://my-bucket/runai/prod/"),
    ("s3://my-bucket", "s3", "s3://my-bucket/"),
    ("pvc://backups", "pvc", "/backups/runai-dr/"),
    ("pvc://backups/a/b/", "pvc", "/backups/a/b/")])
def test_locations(text: str, scheme: str, to: str) -> None:
    loc = plan.parse_location(text)
    assert (loc.scheme, loc.to) == (scheme, to)


@pytest.mark.parametrize("text, why", [
    ("/backups/", "not a location the cluster can write to"), ("gs://b/x", "unknown location scheme"),
    ("s3://A_B/x", "not a valid bucket name"), ("pvc://c/../x", "no '..'")])
def test_bad_locations(text: str, why: str) -> None:
    with pytest.raises(Exception, match=why):
        plan.parse_location(text)


class UnknownFlag(AssertionError):
    """The real backup command does not have a flag the CronJob passes."""


def _parse_backup(argv: list[str]) -> dict[str, Any]:
    """The CronJob's arguments as the real `backup` command parses them (typer's click)."""
    assert argv[0] == "backup"
    group: Any = typer.main.get_command(app)
    try:
        ctx = group.commands["backup"].make_context("backup", list(argv[1:]))
    except Exception as exc:
        if type(exc).__name__ == "NoSuchOption":
            raise UnknownFlag(str(exc)) from exc
        raise
    return dict(ctx.params)


def test_cronjob_command_line_is_a_valid_backup() -> None:
    """The CronJob's arguments mean what the schedule says to the real backup command."""
    s = spec(keep=14, snapshots=True, include_secrets=True,
             names=Names(cluster_namespace="runai-x", control_plane_namespace="cp"))
    params = _parse_backup(plan.backup_argv(s))
    assert params["to"] == "/backups/nightly/" and params["keep"] == 14
    assert params["snapshots"] and params["include_secrets"] and params["no_color"]
    assert params["namespace"] == "runai-x" and params["control_plane_namespace"] == "cp"
    args = plan.cronjob_manifest(s)["spec"]["jobTemplate"]["spec"]["template"]["spec"][
        "containers"][0]["args"]
    assert args == plan.backup_argv(s)
    with pytest.raises(UnknownFlag):  # the parse is not vacuous
        _parse_backup(["backup", "--no-such-flag"])


def test_cronjob_command_line_s3_and_encryption() -> None:
    """The CronJob's s3 and encryption flags are the backup command's own."""
    s = spec(location=plan.parse_location("s3://bucket/runai/"), s3_credentials_secret="s3",
             s3_endpoint="https://minio.example:9000", encrypt_to=("age1" + "q" * 58,))
    params = _parse_backup(plan.backup_argv(s))
    assert params["to"] == "s3://bucket/runai/"
    assert params["s3_endpoint"] == "https://minio.example:9000"
    assert params["encrypt_to"] == ["age1" + "q" * 58]


def test_grants_are_the_tables_backup_rows() -> None:
    """Every need of every backup step that applies is granted, in its namespace; nothing else
    is; no wildcard; secrets only with --include-secrets."""
    for include_secrets in (False, True):
        for snapshots in (False, True):
            s = spec(include_secrets=include_secrets, snapshots=snapshots)
            grants = plan.backup_grants(registry.PERMISSIONS, s)
            granted = {(ns, g, res, v) for ns, rules in grants.items() for rule in rules
                       for g in rule["apiGroups"] for res in rule["resources"]
                       for v in rule["verbs"]}
            assert not any("*" in x for t in granted for x in t if x)
            wanted = set()
            for step in registry.PERMISSIONS:
                if step.command != "backup":
                    continue
                if step.step == "secrets" and not include_secrets:
                    continue
                if step.step == "volumes" and not snapshots:
                    continue
                for n in step.needs:
                    wanted.add((perm.namespace_of(n.scope, Names()), n.group, n.resource, n.verb))
            assert granted == wanted
            secrets_everywhere = (None, "", "secrets", "list") in granted
            assert secrets_everywhere == include_secrets


# -- against the loopback server -------------------------------------------------------------
@pytest.fixture
def env(runai_server: ApiServer, tmp_path: Path) -> tuple[ApiServer, dict[str, str]]:
    kc = runai_server.write_kubeconfig(tmp_path / "kubeconfig")
    return runai_server, {"KUBECONFIG": str(kc)}


def writes(srv: ApiServer) -> list[str]:
    return [f"{r.method} {r.path}" for r in srv.requests
            if r.method not in ("GET", "HEAD") and "selfsubjectaccessreviews" not in r.path]


def installed(srv: ApiServer) -> set[tuple[str, str | None, str]]:
    out = set()
    for api_version, kind in KINDS:
        for obj in srv.list(api_version, kind):
            labels = obj["metadata"].get("labels") or {}
            if labels.get(plan.SCHEDULE_LABEL) == NS:
                out.add((kind, obj["metadata"].get("namespace"), obj["metadata"]["name"]))
    return out


INSTALL = ("schedule", "install", "--schedule", "30 2 * * *", "--to", "s3://backups/runai/",
           "--s3-credentials-secret", "s3-creds", "--s3-endpoint", "https://minio.example:9000",
           "--keep", "14", "--image", IMAGE)


def seed_secret(srv: ApiServer, keys: tuple[str, ...] = plan.REQUIRED_S3_KEYS) -> None:
    srv.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    srv.seed({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s3-creds", "namespace": NS},
              "data": {k: base64.b64encode(b"not-a-real-key").decode() for k in keys}})


def test_dry_run_prints_the_manifests_and_writes_nothing(env: tuple[ApiServer, dict[str, str]]) -> None:
    srv, e = env
    seed_secret(srv)
    srv.clear_requests()
    r = cli(*INSTALL, "--dry-run", "-o", "yaml", env=e)
    assert r.code == 0, r.stderr
    assert writes(srv) == []
    golden = GOLDEN / "schedule-install.yaml"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(r.stdout)
    assert r.stdout == golden.read_text()
    docs = list(yaml.safe_load_all(r.stdout))
    assert [d["kind"] for d in docs] == ["Namespace", "ServiceAccount", "Role", "RoleBinding", "Role",
                                         "RoleBinding", "ClusterRole", "ClusterRoleBinding", "CronJob"]
    assert "not-a-real-key" not in r.stdout and "bm90LWEt" not in r.stdout  # referenced, never copied
    r = cli(*INSTALL, "--dry-run", "-o", "json", env=e)
    assert r.code == 0 and writes(srv) == []


def test_install_reinstall_uninstall(env: tuple[ApiServer, dict[str, str]]) -> None:
    srv, e = env
    seed_secret(srv)
    r = cli(*INSTALL, "-o", "json", env=e)
    assert r.code == 0, r.stderr
    docs = list(yaml.safe_load_all((GOLDEN / "schedule-install.yaml").read_text()))
    want = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]) for d in docs
            if d["kind"] != "Namespace"}
    assert installed(srv) == want  # exactly the golden objects
    for d in docs:
        live = srv.get(d["apiVersion"], d["kind"], d["metadata"]["name"], d["metadata"].get("namespace"))
        assert live is not None
        for key in ("rules", "subjects", "roleRef"):
            assert live.get(key) == d.get(key)
    cj = srv.get("batch/v1", "CronJob", plan.NAME, NS)
    assert cj is not None and cj["spec"]["schedule"] == "30 2 * * *"
    # again: nothing changes, nothing is written
    srv.clear_requests()
    r = cli(*INSTALL, "-o", "json", env=e)
    assert r.code == 0, r.stderr
    assert {c["action"] for c in yaml.safe_load(r.stdout)["changes"]} == {"unchanged"}
    assert writes(srv) == []
    # a new schedule updates the CronJob in place, and says what changed
    args = list(INSTALL)
    args[args.index("30 2 * * *")] = "15 1 * * *"
    r = cli(*args, "-o", "json", env=e)
    changes = {c["kind"]: c for c in yaml.safe_load(r.stdout)["changes"]}
    assert changes["CronJob"]["action"] == "updated" and changes["CronJob"]["changed"] == ["spec.schedule"]
    assert "-  schedule: 30 2 * * *" in changes["CronJob"]["diff"]
    assert {c["action"] for k, c in changes.items() if k != "CronJob"} == {"unchanged"}
    assert srv.get("batch/v1", "CronJob", plan.NAME, NS)["spec"]["schedule"] == "15 1 * * *"  # type: ignore[index]
    # suspend / resume
    assert cli("schedule", "suspend", env=e).code == 0
    assert srv.get("batch/v1", "CronJob", plan.NAME, NS)["spec"]["suspend"] is True  # type: ignore[index]
    assert cli("schedule", "resume", env=e).code == 0
    assert srv.get("batch/v1", "CronJob", plan.NAME, NS)["spec"]["suspend"] is False  # type: ignore[index]
    # uninstall: everything it created goes; the namespace existed before, it stays, with the Secret
    r = cli("schedule", "uninstall", env=e)
    assert r.code == 0, r.stderr
    assert installed(srv) == set()
    assert srv.get("v1", "Namespace", NS) is not None
    assert srv.get("v1", "Secret", "s3-creds", NS) is not None


def test_uninstall_removes_the_namespace_it_created(env: tuple[ApiServer, dict[str, str]]) -> None:
    srv, e = env
    r = cli("schedule", "install", "--schedule", "@daily", "--to", "pvc://backups/",
            "--schedule-namespace", "fresh", "--image", IMAGE, env=e)
    assert r.code == 2 and 'claim "backups"' in r.stderr  # the claim must be in the schedule's namespace
    assert srv.get("v1", "Namespace", "fresh") is None
    r = cli("schedule", "install", "--schedule", "@daily", "--to", "s3://bkt/x/",
            "--service-account-annotation", "eks.amazonaws.com/role-arn=arn:aws:iam::1:role/b",
            "--schedule-namespace", "fresh", "--image", IMAGE, env=e)
    assert r.code == 0, r.stderr
    sa = srv.get("v1", "ServiceAccount", plan.NAME, "fresh")
    assert sa is not None and sa["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/b"}
    assert cli("schedule", "uninstall", "--schedule-namespace", "fresh", env=e).code == 0
    ns = srv.get("v1", "Namespace", "fresh")
    assert ns is None or ns["metadata"].get("deletionTimestamp")


@pytest.mark.parametrize("args, message", [
    (("--schedule", "30 25 * * *", "--to", "s3://b-1/x", "--s3-credentials-secret", "s3-creds"),
     "not a valid cron expression"),
    (("--schedule", "@daily", "--to", "ftp://host/x", "--s3-credentials-secret", "s3-creds"),
     "unknown location scheme"),
    (("--schedule", "@daily", "--to", "s3://b-1/x", "--s3-credentials-secret", "missing"),
     'credentials Secret "missing" does not exist'),
    (("--schedule", "@daily", "--to", "s3://b-1/x"), "needs credentials"),
    (("--schedule", "@daily", "--to", "s3://b-1/x", "--s3-credentials-secret", "half"),
     "lacks the key(s) AWS_SECRET_ACCESS_KEY"),
])
def test_bad_input_creates_nothing(env: tuple[ApiServer, dict[str, str]], args: tuple[str, ...],
                                   message: str) -> None:
    srv, e = env
    seed_secret(srv)
    srv.seed({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "half", "namespace": NS},
              "data": {"AWS_ACCESS_KEY_ID": "eA=="}})
    srv.clear_requests()
    r = cli("schedule", "install", *args, "--image", IMAGE, env=e)
    assert r.code == 2, r.stderr
    assert message in " ".join(r.stderr.split())
    assert writes(srv) == []


def test_foreign_object_of_the_same_name_stops_the_install(env: tuple[ApiServer, dict[str, str]]) -> None:
    srv, e = env
    seed_secret(srv)
    srv.seed({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
              "metadata": {"name": f"{plan.NAME}-{NS}"}, "rules": []})
    srv.clear_requests()
    r = cli(*INSTALL, env=e)
    assert r.code == 2 and "was not created by this schedule" in r.stderr
    assert writes(srv) == []


def test_status_reads_the_job_history(env: tuple[ApiServer, dict[str, str]]) -> None:
    srv, e = env
    seed_secret(srv)
    assert cli(*INSTALL, env=e).code == 0
    cj = srv.get("batch/v1", "CronJob", plan.NAME, NS)
    assert cj is not None
    # what the CronJob controller leaves: two Jobs it created, one failed, one succeeded
    for name, created, cond, finished in (
            ("runai-dr-backup-1", "2024-05-01T02:30:00Z", "Failed", "2024-05-01T02:31:10Z"),
            ("runai-dr-backup-2", "2024-05-02T02:30:00Z", "Complete", "2024-05-02T02:42:00Z")):
        job = plan.manual_job(cj, name)
        del job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"]
        srv.seed({**job, "metadata": {**job["metadata"], "creationTimestamp": created},
                  "status": {"startTime": created, "conditions": [
                      {"type": cond, "status": "True", "lastTransitionTime": finished,
                       **({"reason": "BackoffLimitExceeded", "message": "Job has reached the specified "
                           "backoff limit"} if cond == "Failed" else {})}],
                      **({"completionTime": finished} if cond == "Complete" else {})}})
    r = cli("schedule", "status", "-o", "json", env=e)
    assert r.code == 0, r.stderr
    doc = yaml.safe_load(r.stdout)
    assert doc["schedule"] == "30 2 * * *" and doc["suspended"] is False
    assert doc["location"] == "s3://backups/runai/" and doc["nextRun"].endswith("02:30:00Z")
    runs = doc["runs"]
    assert [(x["name"], x["result"], x["durationSeconds"], x["manual"]) for x in runs] == [
        ("runai-dr-backup-2", "succeeded", 720.0, False), ("runai-dr-backup-1", "failed", 70.0, False)]
    assert "BackoffLimitExceeded" in runs[1]["message"]
    r = cli("schedule", "status", env=e)
    assert r.code == 0 and "runai-dr-backup-2" in r.stdout and "12m" in r.stdout
    r = cli("schedule", "status", "--schedule-namespace", "nowhere", env=e)
    assert r.code == 1 and "no scheduled backup" in r.stderr


# -- the CronJob's backup, as its ServiceAccount, in a pod of the loopback cluster --------------
@pytest.fixture(scope="module")
def pg() -> Iterator[PgServer]:
    with PgServer(password=PASSWORD, host_auth="scram-sha-256") as server:
        yield server


def container_runner(srv: ApiServer, tmp_path: Path, mounts: dict[str, Path]) -> Any:
    """Runs a Job pod's container as the kubelet would: the tool as a process (the image's
    entrypoint), its args, the pod's env, the in-cluster service-account environment (token
    file, CA, KUBERNETES_SERVICE_HOST/PORT) and no kubeconfig; volume mounts mapped to local
    directories."""
    from kubeapi.server import _tls_files

    sa = tmp_path / "serviceaccount"
    sa.mkdir()
    (sa / "token").write_text(SA_TOKEN)
    (sa / "ca.crt").write_bytes(Path(_tls_files()[0]).read_bytes())
    url = urlparse(srv.https_url)
    # The kubelet mounts the token at the well-known path; this process is told the path instead.
    launcher = ("import sys; from kubernetes.config import incluster_config as c; "
                f"c.SERVICE_TOKEN_FILENAME={str(sa / 'token')!r}; "
                f"c.SERVICE_CERT_FILENAME={str(sa / 'ca.crt')!r}; "
                "from kubectl_runai_dr.cli.app import run; run(sys.argv[1:])")

    def run(pod: dict[str, Any], timeout: float | None) -> tuple[int, bytes]:
        c = pod["spec"]["containers"][0]
        assert pod["spec"]["serviceAccountName"] == plan.NAME
        args = list(c["args"])
        for m in c.get("volumeMounts") or []:
            if m["mountPath"] in mounts:
                args = [a.replace(m["mountPath"], str(mounts[m["mountPath"]]), 1)
                        if a.startswith(m["mountPath"]) else a for a in args]
        env = {e["name"]: e["value"] for e in c.get("env") or [] if "value" in e}
        for e in c.get("env") or []:  # the kubelet resolves secretKeyRefs from the Secret
            ref = (e.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                secret = srv.get("v1", "Secret", ref["name"], pod["metadata"]["namespace"])
                data = (secret or {}).get("data") or {}
                if ref["key"] in data:
                    env[e["name"]] = base64.b64decode(data[ref["key"]]).decode()
                elif not ref.get("optional"):
                    return 1, f"secret key {ref['key']} not found".encode()
        env.update({"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{ROOT}:{ROOT / 'testing'}",
                    "KUBERNETES_SERVICE_HOST": str(url.hostname),
                    "KUBERNETES_SERVICE_PORT": str(url.port), "TMPDIR": str(tmp_path),
                    "HOME": str(tmp_path), "COLUMNS": "200"})
        p = subprocess.run([sys.executable, "-c", launcher, *args], env=env, capture_output=True,
                           timeout=timeout or 300, cwd=tmp_path)
        return p.returncode, p.stdout + p.stderr

    return run


def _cluster_with_database(srv: ApiServer, pg: PgServer, tmp_path: Path) -> dict[str, str]:
    """A seeded installation whose database pod execs against ``pg``, and the schedule's
    namespace; the environment that points the CLI at it."""
    load_data(pg)
    set_exec(srv, pg)
    kc = srv.write_kubeconfig(tmp_path / "kubeconfig")
    srv.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    return {"KUBECONFIG": str(kc)}


def test_run_now_runs_the_backup_as_the_service_account(runai_server: ApiServer, pg: PgServer,
                                                         tmp_path: Path) -> None:
    """The whole chain: install, run-now creates a Job from the CronJob's template, the Job's pod
    runs the backup with only the service-account identity (RBAC enforced: exactly the installed
    Roles), the bundle lands on the mounted claim, run-now shows the log and the result, status
    lists the run and the in-cluster record."""
    srv = runai_server
    e = _cluster_with_database(srv, pg, tmp_path)
    srv.seed({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
              "metadata": {"name": "backups", "namespace": NS}, "spec": {}})
    volume = tmp_path / "volume"
    volume.mkdir(mode=0o700)
    srv.add_service_account_token(SA_TOKEN, NS, plan.NAME)
    srv.add_pod_runner(NS, rf"{plan.NAME}-.*", container_runner(srv, tmp_path, {"/backups": volume}))
    r = cli("schedule", "install", "--schedule", "@daily", "--to", "pvc://backups/nightly/",
            "--keep", "3", "--image", IMAGE, env=e)
    assert r.code == 0, r.stderr
    srv.clear_requests()
    r = cli("schedule", "run-now", "--timeout", "5m", env=e)
    assert r.code == 0, r.stdout + r.stderr
    forbidden = [f"{x.method} {x.path}" for x in srv.requests if x.status == 403]
    assert forbidden == []  # the granted RBAC is enough for the whole backup
    sa_requests = [x for x in srv.requests if x.user == f"system:serviceaccount:{NS}:{plan.NAME}"]
    assert len(sa_requests) > 10
    assert "succeeded" in r.stdout and "log of pod" in r.stdout
    bundles = sorted((volume / "nightly").glob("runai-dr-in-cluster-*.tar.gz"))
    assert len(bundles) == 1
    with tarfile.open(bundles[0]) as tar:
        names = tar.getnames()
    assert "manifest.json" in names and any(n.startswith("database/") for n in names)
    st = cli("schedule", "status", "-o", "json", env=e)
    doc = yaml.safe_load(st.stdout)
    assert doc["runs"][0]["result"] == "succeeded" and doc["runs"][0]["manual"] is True
    assert doc["lastBackupRecord"]["result"] == "complete"


def test_run_now_writes_an_encrypted_bundle_to_s3(runai_server: ApiServer, pg: PgServer,
                                                  s3_server: Any, tmp_path: Path) -> None:
    """The CronJob's backup as a process with only the in-cluster identity, its S3 keys from
    the referenced Secret (resolved as the kubelet does), writing an encrypted bundle to
    the loopback S3 server."""
    from kubectl_runai_dr.storage.age import keygen

    srv = runai_server
    e = _cluster_with_database(srv, pg, tmp_path)
    creds = s3_server.env()
    srv.seed({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s3", "namespace": NS},
              "data": {k: base64.b64encode(creds[k].encode()).decode()
                       for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}})
    srv.add_service_account_token(SA_TOKEN, NS, plan.NAME)
    srv.add_pod_runner(NS, rf"{plan.NAME}-.*", container_runner(srv, tmp_path, {}))
    bucket = s3_server.bucket()
    identity, recipient = keygen()
    r = cli("schedule", "install", "--schedule", "@daily", "--to", f"s3://{bucket}/nightly/",
            "--s3-credentials-secret", "s3", "--s3-endpoint", s3_server.endpoint,
            "--encrypt-to", recipient, "--keep", "3", "--image", IMAGE, env=e)
    assert r.code == 0, r.stderr
    r = cli("schedule", "run-now", "--timeout", "5m", env=e)
    assert r.code == 0, r.stdout + r.stderr
    assert creds["AWS_SECRET_ACCESS_KEY"] not in r.stdout + r.stderr
    (key,) = s3_server.keys(bucket)
    assert key.startswith("nightly/runai-dr-in-cluster-") and key.endswith(".tar.gz.age")
    ident = tmp_path / "key.txt"
    ident.write_text(identity + "\n")
    v = cli("verify", f"s3://{bucket}/{key}", "--identity", str(ident), "-o", "json",
            env={**creds})
    assert v.code == 0, v.stderr
    assert yaml.safe_load(v.stdout)["files"] > 3


def test_rbac_is_least_privilege(env: tuple[ApiServer, dict[str, str]], tmp_path: Path) -> None:
    """As the ServiceAccount: what the backup needs is allowed; secrets and other writes are not
    (without --include-secrets), as the RBAC objects say (SelfSubjectAccessReview)."""
    from kubectl_runai_dr.kube import resources as r
    from kubectl_runai_dr.kube.client import ConnectOptions, connect

    srv, e = env
    seed_secret(srv)
    assert cli(*INSTALL, env=e).code == 0
    srv.add_service_account_token(SA_TOKEN, NS, plan.NAME)
    kc = srv.write_kubeconfig(tmp_path / "sa-kubeconfig", token=SA_TOKEN)
    kube = connect(ConnectOptions(kubeconfig=str(kc)))
    needed: set[tuple[perm.Need, str | None]] = set()
    optional: set[tuple[perm.Need, str | None]] = set()
    for step, need, ns in perm.checks(registry.PERMISSIONS, ["backup"], Names()):
        (optional if step.step in ("secrets", "volumes") else needed).add((need, ns))
    assert len(optional - needed) > 3
    for need, ns in needed | optional:
        res = r.Resource(need.group, "v1", need.plural, "", ns is not None)
        allowed, _ = kube.can_i(need.verb, res, ns, subresource=need.subresource)
        assert allowed == ((need, ns) in needed), (need, ns)
    assert not kube.can_i("list", r.SECRETS, None)[0]
    assert not kube.can_i("delete", r.CONFIGMAPS, "runai-backend")[0]
    assert not kube.can_i("create", r.ROLEBINDINGS, "runai")[0]


def test_status_flags_a_failed_or_stale_schedule(env: tuple[ApiServer, dict[str, str]]) -> None:
    """The top-level `status`: the schedule is shown; its last scheduled run failing is critical,
    and so is no success within --max-age; a suspended schedule is a warning."""
    srv, e = env
    seed_secret(srv)
    assert cli(*INSTALL, env=e).code == 0
    cj = srv.get("batch/v1", "CronJob", plan.NAME, NS)
    assert cj is not None

    def problems(*extra: str) -> list[dict[str, Any]]:
        r = cli("status", "--no-exec", "-o", "json", *extra, env=e)
        return [p for p in yaml.safe_load(r.stdout)["problems"] if p["section"] == "schedule"]

    assert problems() == []  # just installed: nothing to say yet
    job = plan.manual_job(cj, "runai-dr-backup-28000000")
    del job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"]
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    srv.seed({**job, "status": {"startTime": now, "conditions": [
        {"type": "Failed", "status": "True", "lastTransitionTime": now, "reason": "BackoffLimitExceeded",
         "message": "Job has reached the specified backoff limit"}]}})
    found = problems()
    assert [(p["severity"], "failed" in p["message"]) for p in found] == [("critical", True)]
    assert "runai-dr-backup-28000000" in found[0]["message"]
    r = cli("status", "--no-exec", env=e)
    assert "Scheduled backups" in r.stdout and r.code == 8
    assert cli("schedule", "suspend", env=e).code == 0
    assert {p["severity"] for p in problems()} == {"critical", "warning"}
    # never succeeded, installed longer ago than --max-age
    srv.delete_object("batch/v1", "Job", "runai-dr-backup-28000000", NS)
    assert cli("schedule", "resume", env=e).code == 0
    old = srv.get("batch/v1", "CronJob", plan.NAME, NS)
    assert old is not None
    old["metadata"]["creationTimestamp"] = "2020-01-01T00:00:00Z"
    srv.seed(old)
    assert [p["message"] for p in problems()] == [
        f"the scheduled backup in namespace {NS} (30 2 * * *) has not succeeded within 1d "
        "(never succeeded)"]
