"""The loopback API server answers like a real one: CRUD, status codes, selectors, pagination, validation;
and a bug of its own fails the test instead of becoming a 500 that retries hide."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubeapi import ApiServer, ServerBug
from kubeapi.seed import crd_paths
from kubeapi.validation import check_rule_supported, collect_rules
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from tests.models import as_dict, json_of, some


@pytest.fixture
def api(kubeconfig: Path) -> client.ApiClient:
    api: client.ApiClient = config.new_client_from_config(str(kubeconfig))  # untyped
    return api


def raw(srv: ApiServer, method: str, path: str, body: object = None, ctype: str = "application/json",
        query: list[tuple[str, str]] | None = None, token: str = "admin-token") -> tuple[int, Any, dict[str, str]]:
    """A plain HTTP request: (status, JSON body, headers)."""
    import urllib.error
    import urllib.parse
    import urllib.request

    url = srv.url + path + ("?" + urllib.parse.urlencode(query) if query else "")
    data = None if body is None else (body.encode() if isinstance(body, str) else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": ctype})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.loads(r.read() or b"null"), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null"), dict(e.headers)


def status_of(exc: ApiException) -> Any:
    assert exc.body is not None
    return json.loads(exc.body)


def ns_obj(name: str, **labels: str) -> client.V1Namespace:
    return client.V1Namespace(api_version="v1", kind="Namespace",
                              metadata=client.V1ObjectMeta(name=name, labels=labels))


def cm(name: str | None, data: dict[str, str] | None = None, *, namespace: str | None = None,
       labels: dict[str, str] | None = None, resource_version: str | None = None) -> client.V1ConfigMap:
    return client.V1ConfigMap(data=data, metadata=client.V1ObjectMeta(
        name=name, namespace=namespace, labels=labels, resource_version=resource_version))


def secret(name: str, *, api_version: str | None = None, kind: str | None = None, type: str | None = None,
           data: dict[str, bytes | str] | None = None,
           string_data: dict[str, str] | None = None) -> client.V1Secret:
    return client.V1Secret(api_version=api_version, kind=kind, metadata=client.V1ObjectMeta(name=name),
                           type=type, data=data, string_data=string_data)


def test_discovery_endpoints(apiserver: ApiServer, api: client.ApiClient) -> None:
    for path in ("/version", "/version/", "/api", "/api/v1", "/apis", "/apis/", "/apis/run.ai/v2",
                 "/apis/rbac.authorization.k8s.io/v1"):
        status, _, _ = raw(apiserver, "GET", path)
        assert status == 200, path
    core = raw(apiserver, "GET", "/api/v1")[1]
    by_name = {r["name"]: r for r in core["resources"]}
    assert by_name["namespaces"]["shortNames"] == ["ns"] and not by_name["namespaces"]["namespaced"]
    assert by_name["configmaps"]["kind"] == "ConfigMap" and "deletecollection" in by_name["configmaps"]["verbs"]
    assert "pods/exec" in by_name
    projects = client.ApisApi(api).get_api_versions()
    run_ai = next(g for g in projects.groups if g.name == "run.ai")
    assert {v.version for v in run_ai.versions} >= {"v1", "v2", "v2alpha1", "v2alpha2"}


def test_create_get_list_replace_delete(api: client.ApiClient, apiserver: ApiServer) -> None:
    core = client.CoreV1Api(api)
    ns = core.create_namespace(ns_obj("team-a", env="x"))
    assert some(ns.metadata).uid and some(ns.metadata).resource_version and some(ns.status).phase == "Active"
    c1 = core.create_namespaced_config_map("team-a", cm("c1", {"k": "v"}, labels={"a": "1"}))
    assert c1.kind == "ConfigMap" and some(c1.metadata).namespace == "team-a"
    with pytest.raises(ApiException) as e:
        core.create_namespaced_config_map("team-a", cm("c1"))
    assert e.value.status == 409 and status_of(e.value)["reason"] == "AlreadyExists"
    with pytest.raises(ApiException) as e:
        core.read_namespace("nope")
    assert status_of(e.value) == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                  "message": 'namespaces "nope" not found', "reason": "NotFound",
                                  "details": {"name": "nope", "kind": "namespaces"}, "code": 404}
    with pytest.raises(ApiException) as e:
        core.create_namespaced_config_map("missing", cm("x"))
    assert e.value.status == 404 and status_of(e.value)["message"] == 'namespaces "missing" not found'
    # replace: stale resourceVersion conflicts, name mismatch is rejected
    c1.data = {"k": "v2"}
    c2 = core.replace_namespaced_config_map("c1", "team-a", c1)
    assert int(some(some(c2.metadata).resource_version)) > int(some(some(c1.metadata).resource_version))
    with pytest.raises(ApiException) as e:
        core.replace_namespaced_config_map("c1", "team-a", c1)  # c1 still has the old resourceVersion
    assert e.value.status == 409 and status_of(e.value)["reason"] == "Conflict"
    with pytest.raises(ApiException) as e:
        core.replace_namespaced_config_map("other", "team-a", cm("c1", {}))
    assert e.value.status == 400
    with pytest.raises(ApiException) as e:
        core.replace_namespaced_config_map("nothere", "team-a", cm("nothere"))
    assert e.value.status == 404
    # namespace in body must match the URL
    with pytest.raises(ApiException) as e:
        core.create_namespaced_config_map("team-a", cm("c9", namespace="default"))
    assert e.value.status == 400
    # a built-in list: kind set, items without kind/apiVersion
    listed = json_of(core.list_namespaced_config_map("team-a", _preload_content=False))
    assert listed["kind"] == "ConfigMapList" and listed["apiVersion"] == "v1" and listed["metadata"]["resourceVersion"]
    assert "kind" not in listed["items"][0] and "apiVersion" not in listed["items"][0]
    assert len(core.list_config_map_for_all_namespaces().items) == 1
    deleted = json_of(core.delete_namespaced_config_map("c1", "team-a", _preload_content=False))
    assert deleted["kind"] == "Status" and deleted["status"] == "Success"
    assert apiserver.get("v1", "ConfigMap", "c1", "team-a") is None
    # resourceVersion on create is refused like a real server does
    with pytest.raises(ApiException) as e:
        core.create_namespaced_config_map("team-a", cm("c2", resource_version="5"))
    assert e.value.status == 500 and "resourceVersion should not be set" in status_of(e.value)["message"]


def test_validation_errors(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    with pytest.raises(ApiException) as e:
        core.create_namespace(ns_obj("Bad_Name"))
    st = status_of(e.value)
    assert e.value.status == 422 and st["reason"] == "Invalid"
    assert st["details"]["causes"][0]["field"] == "metadata.name"
    with pytest.raises(ApiException) as e:
        core.create_namespace(ns_obj("a.b"))  # a subdomain, but namespaces must be labels
    assert e.value.status == 422
    with pytest.raises(ApiException) as e:
        core.create_namespaced_config_map("default", cm(None, labels={"a": "b"}))
    assert e.value.status == 422 and "name or generateName is required" in status_of(e.value)["message"]
    with pytest.raises(ApiException) as e:
        core.create_namespaced_config_map("default", cm("x", labels={"a": "b c"}))
    assert e.value.status == 422
    with pytest.raises(ApiException) as e:
        core.create_namespaced_secret("default", secret("t", type="kubernetes.io/tls", data={}))
    assert e.value.status == 422
    # kind from another endpoint
    with pytest.raises(ApiException) as e:
        core.create_namespaced_secret("default", secret("x", api_version="v1", kind="ConfigMap"))
    assert e.value.status == 400
    # stringData is folded into data; type defaults to Opaque
    s = core.create_namespaced_secret("default", secret("s", string_data={"a": "b"}))
    assert s.data == {"a": "Yg=="} and s.type == "Opaque" and s.string_data is None
    rbac = client.RbacAuthorizationV1Api(api)
    rb = client.V1RoleBinding(metadata=client.V1ObjectMeta(name="rb"), subjects=[], role_ref=client.V1RoleRef(
        api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="view"))
    rbac.create_namespaced_role_binding("default", rb)
    with pytest.raises(ApiException) as e:
        rbac.patch_namespaced_role_binding("rb", "default", {"roleRef": {"name": "edit"}})
    assert e.value.status == 422 and "cannot change roleRef" in status_of(e.value)["message"]


def test_patch_types_and_dry_run(api: client.ApiClient, apiserver: ApiServer) -> None:
    apps = client.AppsV1Api(api)
    dep = client.V1Deployment(metadata=client.V1ObjectMeta(name="d"), spec=client.V1DeploymentSpec(
        selector=client.V1LabelSelector(match_labels={"app": "d"}),
        template=client.V1PodTemplateSpec(metadata=client.V1ObjectMeta(labels={"app": "d"}), spec=client.V1PodSpec(
            containers=[client.V1Container(name="a", image="a:1", env=[client.V1EnvVar(name="X", value="1")]),
                        client.V1Container(name="b", image="b:1")]))))
    created = apps.create_namespaced_deployment("default", dep)
    assert some(created.metadata).generation == 1
    # strategic merge: containers merged by name
    p = apps.patch_namespaced_deployment("d", "default", {"spec": {"template": {"spec": {"containers": [
        {"name": "a", "env": [{"name": "Y", "value": "2"}]}]}}}})
    cs = {c.name: c for c in some(some(p.spec).template.spec).containers}
    assert set(cs) == {"a", "b"} and [e.name for e in some(cs["a"].env)] == ["X", "Y"] and cs["a"].image == "a:1"
    assert some(p.metadata).generation == 2
    # merge patch replaces lists
    apiserver.clear_requests()
    code, out, _ = raw(apiserver, "PATCH", "/apis/apps/v1/namespaces/default/deployments/d",
                       {"metadata": {"labels": {"x": "y"}}}, "application/merge-patch+json")
    assert code == 200 and out["metadata"]["labels"] == {"x": "y"}
    assert apiserver.requests[-1].content_type == "application/merge-patch+json"
    # json patch
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map("default", cm("c", {"a": "1"}))
    patched = core.patch_namespaced_config_map("c", "default", [{"op": "add", "path": "/data/b", "value": "2"}])
    assert patched.data == {"a": "1", "b": "2"}
    # unsupported patch type
    assert raw(apiserver, "PATCH", "/api/v1/namespaces/default/configmaps/c", {}, "application/xml")[0] == 415
    # server-side apply needs a field manager, creates when missing
    body = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\ndata:\n  k: v\n"
    path = "/api/v1/namespaces/default/configmaps/applied"
    assert raw(apiserver, "PATCH", path, body, "application/apply-patch+yaml")[0] == 400
    code, _, _ = raw(apiserver, "PATCH", path, body, "application/apply-patch+yaml", [("fieldManager", "test")])
    assert code == 201 and some(apiserver.get("v1", "ConfigMap", "applied", "default"))["data"] == {"k": "v"}
    # dryRun validates and answers without storing
    dry = core.create_namespaced_config_map("default", cm("dry"), dry_run="All")
    assert some(dry.metadata).name == "dry" and apiserver.get("v1", "ConfigMap", "dry", "default") is None
    with pytest.raises(ApiException) as e:
        core.create_namespaced_config_map("default", cm("BAD"), dry_run="All")
    assert e.value.status == 422
    core.delete_namespaced_config_map("c", "default", dry_run="All")
    assert apiserver.get("v1", "ConfigMap", "c", "default") is not None


def test_selectors(api: client.ApiClient, apiserver: ApiServer) -> None:
    core = client.CoreV1Api(api)
    for i, labels in enumerate([{"a": "1", "b": "x"}, {"a": "2"}, {"b": "y"}, {}]):
        apiserver.seed({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c{i}", "namespace": "default",
                                                                             "labels": labels}})

    def names(label_selector: str | None = None, field_selector: str | None = None) -> list[str]:
        listed = core.list_namespaced_config_map("default", label_selector=label_selector,
                                                 field_selector=field_selector)
        return [some(some(c.metadata).name) for c in listed.items]

    assert names(label_selector="a=1") == ["c0"]
    assert names(label_selector="a==2") == ["c1"]
    assert names(label_selector="a!=1") == ["c1", "c2", "c3"]
    assert names(label_selector="a in (1,2)") == ["c0", "c1"]
    assert names(label_selector="a notin (1)") == ["c1", "c2", "c3"]
    assert names(label_selector="b") == ["c0", "c2"]
    assert names(label_selector="!b") == ["c1", "c3"]
    assert names(label_selector="a,b") == ["c0"]
    assert names(field_selector="metadata.name=c2") == ["c2"]
    assert names(field_selector="metadata.name!=c2,metadata.namespace=default") == ["c0", "c1", "c3"]
    with pytest.raises(ApiException) as e:
        core.list_namespaced_config_map("default", field_selector="data.k=v")
    assert e.value.status == 400 and "field label not supported" in status_of(e.value)["message"]
    with pytest.raises(ApiException) as e:
        core.list_namespaced_config_map("default", label_selector="a in 1")
    assert e.value.status == 400
    core.create_namespaced_secret("default", secret("s1", type="kubernetes.io/basic-auth",
                                                    data={"username": "dQ=="}))
    core.create_namespaced_secret("default", secret("s2"))
    got = core.list_namespaced_secret("default", field_selector="type=kubernetes.io/basic-auth").items
    assert [some(s.metadata).name for s in got] == ["s1"]
    # deletecollection with a label selector
    core.delete_collection_namespaced_config_map("default", label_selector="b")
    assert names() == ["c1", "c3"]


def test_pagination_is_a_consistent_snapshot(api: client.ApiClient, apiserver: ApiServer) -> None:
    core = client.CoreV1Api(api)
    for i in range(25):
        apiserver.seed({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm-{i:02d}", "namespace": "default"}})
    page = core.list_namespaced_config_map("default", limit=10)
    assert len(page.items) == 10 and some(page.metadata).remaining_item_count == 15 and some(page.metadata)._continue
    core.create_namespaced_config_map("default", cm("cm-99"))  # after the first page
    core.delete_namespaced_config_map("cm-24", "default")
    seen = [some(c.metadata).name for c in page.items]
    token = some(page.metadata)._continue
    while token:
        page = core.list_namespaced_config_map("default", limit=10, _continue=token)
        seen += [some(c.metadata).name for c in page.items]
        token = some(page.metadata)._continue
    assert seen == [f"cm-{i:02d}" for i in range(25)]
    with pytest.raises(ApiException) as e:
        core.list_namespaced_config_map("default", limit=10, _continue="not-a-token")
    assert e.value.status == 400
    first = core.list_namespaced_config_map("default", limit=5)
    apiserver.expire_continue_tokens()
    with pytest.raises(ApiException) as e:
        core.list_namespaced_config_map("default", limit=5, _continue=some(first.metadata)._continue)
    assert e.value.status == 410 and status_of(e.value)["reason"] == "Expired"


def test_custom_resources_validation_pruning_and_versions(api: client.ApiClient, apiserver: ApiServer) -> None:
    co = client.CustomObjectsApi(api)
    proj = {"apiVersion": "run.ai/v2", "kind": "Project", "metadata": {"name": "p1"},
            "spec": {"namespace": "runai-p1", "unknownField": 1, "queues": [{"name": "p1", "nodepool": "default"}]},
            "status": {"namespace": "ignored"}}
    created = as_dict(co.create_cluster_custom_object("run.ai", "v2", "projects", proj))
    assert created["metadata"]["uid"] and "unknownField" not in created["spec"]  # pruned silently
    assert "status" not in created  # status subresource: main resource ignores .status
    with pytest.raises(ApiException) as e:
        co.create_cluster_custom_object("run.ai", "v2", "projects", {
            "apiVersion": "run.ai/v2", "kind": "Project", "metadata": {"name": "p2"}, "spec": {"namespace": 5}})
    st = status_of(e.value)
    assert e.value.status == 422 and {c["field"] for c in st["details"]["causes"]} == {"spec.namespace", "spec.queues"}
    # status only through /status
    created["status"] = {"namespace": "runai-p1"}
    st = as_dict(co.replace_cluster_custom_object_status("run.ai", "v2", "projects", "p1", created))
    assert st["status"] == {"namespace": "runai-p1"}
    # served at every version, without conversion
    v1 = as_dict(co.get_cluster_custom_object("run.ai", "v1", "projects", "p1"))
    assert v1["apiVersion"] == "run.ai/v1" and v1["spec"]["namespace"] == "runai-p1"
    items = as_dict(co.list_cluster_custom_object("run.ai", "v2", "projects"))
    assert items["kind"] == "ProjectList" and items["items"][0]["kind"] == "Project"
    # replace of a custom resource needs a resourceVersion
    body = dict(v1)
    body["apiVersion"] = "run.ai/v2"
    body["metadata"] = {"name": "p1"}
    with pytest.raises(ApiException) as e:
        co.replace_cluster_custom_object("run.ai", "v2", "projects", "p1", body)
    assert e.value.status == 422
    # strategic merge patch is not for custom resources
    assert raw(apiserver, "PATCH", "/apis/run.ai/v2/projects/p1", {"spec": {}},
               "application/strategic-merge-patch+json")[0] == 415
    # preserve-unknown-fields keeps everything
    co.create_namespaced_custom_object("run.ai", "v1", "default", "runaiconfigs", {
        "apiVersion": "run.ai/v1", "kind": "RunaiConfig", "metadata": {"name": "runai"}, "spec": {"any": {"x": 1}}})
    assert some(apiserver.get("run.ai/v1", "RunaiConfig", "runai", "default"))["spec"] == {"any": {"x": 1}}


def test_cel_rules_of_the_seeded_crds_are_all_implemented() -> None:
    rules = []
    for path in crd_paths():
        for doc in yaml.safe_load_all(path.read_text()):
            for v in doc["spec"]["versions"]:
                rules += collect_rules(v.get("schema", {}).get("openAPIV3Schema", {}))
    assert rules
    for _, rule in rules:
        check_rule_supported(rule["rule"])  # raises on a rule the server does not implement


def test_cel_rules_volume_snapshot(api: client.ApiClient) -> None:
    co = client.CustomObjectsApi(api)

    def vs(name: str, source: dict[str, str]) -> dict[str, Any]:
        return {"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot", "metadata": {"name": name},
                "spec": {"volumeSnapshotClassName": "csi-aws-vsc", "source": source}}

    with pytest.raises(ApiException) as e:
        co.create_namespaced_custom_object("snapshot.storage.k8s.io", "v1", "default", "volumesnapshots",
                                           vs("both", {"persistentVolumeClaimName": "a", "volumeSnapshotContentName": "b"}))
    assert e.value.status == 422 and "exactly one of" in status_of(e.value)["message"]
    with pytest.raises(ApiException) as e:
        co.create_namespaced_custom_object("snapshot.storage.k8s.io", "v1", "default", "volumesnapshots",
                                           {**vs("empty", {"persistentVolumeClaimName": "a"}),
                                            "spec": {"volumeSnapshotClassName": "", "source": {"persistentVolumeClaimName": "a"}}})
    assert e.value.status == 422
    ok = as_dict(co.create_namespaced_custom_object("snapshot.storage.k8s.io", "v1", "default", "volumesnapshots",
                                                    vs("snap", {"persistentVolumeClaimName": "data"})))
    ok["spec"]["source"]["persistentVolumeClaimName"] = "other"
    with pytest.raises(ApiException) as e:
        co.replace_namespaced_custom_object("snapshot.storage.k8s.io", "v1", "default", "volumesnapshots", "snap", ok)
    assert e.value.status == 422 and "immutable" in status_of(e.value)["message"]


def test_crd_lifecycle_over_http(api: client.ApiClient, apiserver: ApiServer) -> None:
    ext = client.ApiextensionsV1Api(api)
    schema = client.V1JSONSchemaProps(type="object", properties={"spec": client.V1JSONSchemaProps(
        type="object", properties={"size": client.V1JSONSchemaProps(type="string", enum=["S", "M"])})})
    crd = client.V1CustomResourceDefinition(
        api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition",
        metadata=client.V1ObjectMeta(name="widgets.example.com"),
        spec=client.V1CustomResourceDefinitionSpec(
            group="example.com", scope="Namespaced",
            names=client.V1CustomResourceDefinitionNames(plural="widgets", singular="widget", kind="Widget"),
            versions=[client.V1CustomResourceDefinitionVersion(
                name="v1", served=True, storage=True,
                schema=client.V1CustomResourceValidation(open_apiv3_schema=schema))]))
    created = ext.create_custom_resource_definition(crd)
    conds = {c.type: c.status for c in some(some(created.status).conditions)}
    assert conds == {"NamesAccepted": "True", "Established": "False"}  # served only once Established
    co = client.CustomObjectsApi(api)
    assert raw(apiserver, "GET", "/apis/example.com/v1")[0] == 404
    deadline = time.time() + 10
    while raw(apiserver, "GET", "/apis/example.com/v1")[0] != 200 and time.time() < deadline:
        time.sleep(0.02)
    rl = raw(apiserver, "GET", "/apis/example.com/v1")[1]
    assert rl["resources"][0]["name"] == "widgets"
    with pytest.raises(ApiException) as e:
        co.create_namespaced_custom_object("example.com", "v1", "default", "widgets", {
            "apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": "XL"}})
    assert e.value.status == 422 and "Unsupported value" in status_of(e.value)["message"]
    co.create_namespaced_custom_object("example.com", "v1", "default", "widgets", {
        "apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": "S"}})
    ext.delete_custom_resource_definition("widgets.example.com")
    with pytest.raises(ApiException) as e:
        co.list_namespaced_custom_object("example.com", "v1", "default", "widgets")
    assert e.value.status == 404


def test_namespace_deletion_cascade_and_terminating(api: client.ApiClient, apiserver: ApiServer) -> None:
    core = client.CoreV1Api(api)
    core.create_namespace(ns_obj("gone"))
    core.create_namespaced_config_map("gone", cm("c"))
    core.delete_namespace("gone")
    deadline = time.time() + 5
    while apiserver.get("v1", "Namespace", "gone") is not None and time.time() < deadline:
        time.sleep(0.01)
    assert apiserver.get("v1", "Namespace", "gone") is None and apiserver.get("v1", "ConfigMap", "c", "gone") is None
    apiserver.namespaces_linger = True
    core.create_namespace(ns_obj("stuck"))
    core.create_namespaced_config_map("stuck", cm("c"))
    core.delete_namespace("stuck")
    time.sleep(0.05)
    ns = core.read_namespace("stuck")
    assert some(ns.status).phase == "Terminating" and some(ns.metadata).deletion_timestamp
    assert apiserver.get("v1", "ConfigMap", "c", "stuck") is None
    with pytest.raises(ApiException) as e:
        core.create_namespaced_config_map("stuck", cm("new"))
    assert e.value.status == 403 and "because it is being terminated" in status_of(e.value)["message"]
    apiserver.finalize_namespace("stuck")
    assert apiserver.get("v1", "Namespace", "stuck") is None


def test_auth_401_403_and_ssar(apiserver: ApiServer, tmp_path: Path) -> None:
    bad = config.new_client_from_config(str(apiserver.write_kubeconfig(tmp_path / "bad", token="wrong")))
    with pytest.raises(ApiException) as e:
        client.CoreV1Api(bad).list_namespace()
    assert e.value.status == 401 and status_of(e.value)["reason"] == "Unauthorized"
    apiserver.add_user("readonly-token", "viewer")
    apiserver.deny(verb="list", resource="secrets", namespace="runai", user="viewer")
    apiserver.deny(verb="create", resource="namespaces", user="viewer")
    viewer = config.new_client_from_config(str(apiserver.write_kubeconfig(tmp_path / "v", token="readonly-token")))
    core = client.CoreV1Api(viewer)
    with pytest.raises(ApiException) as e:
        core.list_namespaced_secret("runai")
    assert e.value.status == 403
    assert status_of(e.value)["message"] == ('secrets is forbidden: User "viewer" cannot list resource "secrets" in '
                                             'API group "" in the namespace "runai"')
    core.list_namespaced_secret("default")
    with pytest.raises(ApiException) as e:
        core.create_namespace(ns_obj("n"))
    # a create is authorized before the body is read: no name in the message
    assert status_of(e.value)["message"] == ('namespaces is forbidden: User "viewer" cannot create resource '
                                             '"namespaces" in API group "" at the cluster scope')
    authz = client.AuthorizationV1Api(viewer)

    def review(namespace: str) -> client.V1SelfSubjectAccessReview:
        return authz.create_self_subject_access_review(client.V1SelfSubjectAccessReview(
            spec=client.V1SelfSubjectAccessReviewSpec(resource_attributes=client.V1ResourceAttributes(
                verb="list", resource="secrets", namespace=namespace))))

    assert some(review("runai").status).allowed is False
    assert some(review("default").status).allowed is True
    assert any(req.user == "viewer" and req.status == 403 for req in apiserver.requests)


def test_fault_injection(api: client.ApiClient, apiserver: ApiServer) -> None:
    core = client.CoreV1Api(api)
    apiserver.inject_fault(method="GET", path_regex=r"/api/v1/namespaces$", status=429, retry_after=1, times=1)
    apiserver.clear_requests()
    core.list_namespace()  # urllib3 honours Retry-After on 429 and retries by itself
    assert [r.status for r in apiserver.requests] == [429, 200]
    code, body, headers = raw(apiserver, "GET", "/api/v1/namespaces")
    assert code == 200  # the fault fired only once
    apiserver.inject_fault(path_regex=r"/api/v1/namespaces$", status=429, retry_after=3)
    code, body, headers = raw(apiserver, "GET", "/api/v1/namespaces")
    assert code == 429 and headers["Retry-After"] == "3" and body["reason"] == "TooManyRequests"
    apiserver.inject_fault(path_regex=r"/configmaps", status=None, delay=0.4)  # slow, then served
    t = time.time()
    assert raw(apiserver, "GET", "/api/v1/namespaces/default/configmaps")[0] == 200
    assert time.time() - t >= 0.4
    apiserver.inject_fault(path_regex=r"/secrets", status=503, times=None, message="etcd is down")
    for _ in range(2):
        with pytest.raises(ApiException) as e:
            core.list_namespaced_secret("default")
        assert e.value.status == 503 and status_of(e.value)["message"] == "etcd is down"


def test_watch_streams_events(api: client.ApiClient, apiserver: ApiServer) -> None:
    core = client.CoreV1Api(api)
    rv = some(core.list_namespaced_config_map("default").metadata).resource_version
    events: list[tuple[str, str]] = []

    def watcher() -> None:
        w = watch.Watch()
        for ev in w.stream(core.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=2):
            events.append((ev["type"], ev["object"].metadata.name))
            if len(events) == 3:
                w.stop()

    th = threading.Thread(target=watcher)
    th.start()
    time.sleep(0.2)
    core.create_namespaced_config_map("default", cm("w1"))
    core.patch_namespaced_config_map("w1", "default", {"data": {"a": "b"}})
    core.delete_namespaced_config_map("w1", "default")
    th.join(5)
    assert events == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")]
    t = time.time()
    got = list(watch.Watch().stream(core.list_namespace, timeout_seconds=1))
    assert {e["type"] for e in got} == {"ADDED"} and 0.9 < time.time() - t < 3


def test_request_log(api: client.ApiClient, apiserver: ApiServer) -> None:
    apiserver.clear_requests()
    client.CoreV1Api(api).list_namespaced_config_map("default", label_selector="a=b", limit=3)
    (rec,) = apiserver.requests
    assert (rec.method, rec.path, rec.user, rec.status) == ("GET", "/api/v1/namespaces/default/configmaps", "admin", 200)
    assert rec.query["labelSelector"] == ["a=b"] and rec.query["limit"] == ["3"]


def test_large_list_is_fast(apiserver: ApiServer, api: client.ApiClient) -> None:
    from kubeapi.seed import seed_runai

    t = time.time()
    info = seed_runai(apiserver, projects=2000)
    seeded = time.time() - t
    assert len(info.rolebindings) == 14000 and seeded < 10
    t = time.time()
    resp = client.RbacAuthorizationV1Api(api).list_role_binding_for_all_namespaces(_preload_content=False)
    items = json_of(resp)["items"]
    assert len(items) >= 14000 and time.time() - t < 3


# -- a bug of the server fails the test --------------------------------------------------------


def test_a_bug_in_a_handler_fails_stop_with_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    srv = ApiServer().start()

    def planted_bug(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("planted in the list handler")

    monkeypatch.setattr(srv, "_list_response", planted_bug)
    code, body, _ = raw(srv, "GET", "/api/v1/namespaces")
    assert code == 500 and body["message"] == "Internal error occurred: ZeroDivisionError: planted in the list handler"
    assert raw(srv, "GET", "/api/v1/namespaces/default")[0] == 200  # it keeps serving
    assert len(srv.bugs) == 1
    with pytest.raises(ServerBug) as e:
        srv.stop()
    text = str(e.value)
    assert "had 1 bug(s)" in text and "-- GET /api/v1/namespaces\n" in text
    assert "Traceback (most recent call last)" in text and "in planted_bug" in text
    assert "ZeroDivisionError: planted in the list handler" in text
    assert e.value.bugs == [text.split("\n\n", 1)[1]]
    srv.stop()  # reported once


def test_deliberate_500s_are_not_bugs(apiserver: ApiServer) -> None:
    apiserver.inject_fault(path_regex=r"/api/v1/namespaces$", method="GET", status=500, times=None)
    code, body, _ = raw(apiserver, "GET", "/api/v1/namespaces")
    assert (code, body["message"]) == (500, "Internal error occurred: injected fault")
    # a Status the handlers answer on purpose (the apiserver's own 500 for this create)
    obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "with-rv", "resourceVersion": "7"}}
    code, body, _ = raw(apiserver, "POST", "/api/v1/namespaces", obj)
    assert (code, body["message"]) == (500, "resourceVersion should not be set on objects to be created")
    assert apiserver.bugs == []
    apiserver.stop()  # no ServerBug


def test_the_apiserver_fixture_fails_the_test_at_teardown(tmp_path: Path) -> None:
    """Through pytest itself: a test whose server had a bug passes its body, then errors at the
    fixture's teardown with the bug's traceback; a test that injected a 500 passes."""
    (tmp_path / "test_planted.py").write_text(textwrap.dedent("""
        import urllib.error
        import urllib.request

        import pytest


        def get(srv, path):
            req = urllib.request.Request(srv.url + path, headers={"Authorization": "Bearer admin-token"})
            try:
                with urllib.request.urlopen(req) as r:
                    return r.status
            except urllib.error.HTTPError as e:
                return e.code


        def test_planted_bug(apiserver, monkeypatch):
            def planted_bug(*args, **kwargs):
                raise KeyError("planted in the get handler")

            monkeypatch.setattr(apiserver, "_get_response", planted_bug)
            assert get(apiserver, "/api/v1/namespaces/default") == 500


        def test_injected_fault(apiserver):
            apiserver.inject_fault(path_regex="/api/v1/namespaces/default$", status=500)
            assert get(apiserver, "/api/v1/namespaces/default") == 500
    """))
    r = subprocess.run([sys.executable, "-m", "pytest", "-p", "kubeapi.fixtures", "-p", "no:cacheprovider",
                        "-q", "test_planted.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                       check=False)
    out = r.stdout
    assert r.returncode == 1, out + r.stderr
    assert "2 passed, 1 error" in out
    assert "ERROR at teardown of test_planted_bug" in out
    assert "ServerBug: the loopback API server had 1 bug(s)" in out
    assert "-- GET /api/v1/namespaces/default" in out and "in planted_bug" in out
    assert "KeyError: 'planted in the get handler'" in out
    assert "test_injected_fault" not in out.split("short test summary info")[-1]

