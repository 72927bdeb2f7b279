"""Calibration of the loopback server's latency model against the real API server figures.

On a real API server (Kubernetes 1.36, etcd on the same 2-core machine) with 2,000
projects: raw HTTPS lists of the 2,000 namespaces and 14,000 role bindings (13.5 MB) took
0.24-0.39 s with curl, and the official Python client's paginated list of the role
bindings 1.17 s. This prints the same measurements against the loopback server with the
model off and on, so the defaults (kubeapi.LatencyModel) can be checked against them.

    PYTHONPATH=.:testing .venv/bin/python bench/calibrate_latency.py [--projects 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time

from common import add_latency_args, describe, latency_from, start_server
from kubeapi import ApiServer
from kubeapi.seed import seed_runai


def curl_lists(srv: ApiServer) -> tuple[float, int]:
    t = time.perf_counter()
    size = 0
    for path in ("/api/v1/namespaces", "/apis/rbac.authorization.k8s.io/v1/rolebindings"):
        out = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{size_download}",
                              "-H", "Authorization: Bearer admin-token", srv.url + path],
                             check=True, capture_output=True, text=True).stdout
        size += int(out)
    return time.perf_counter() - t, size


def python_client_list(srv: ApiServer) -> float:
    from kubernetes import client

    cfg = client.Configuration()
    cfg.host = srv.url
    cfg.api_key = {"authorization": "admin-token"}
    cfg.api_key_prefix = {"authorization": "Bearer"}
    api = client.RbacAuthorizationV1Api(client.ApiClient(cfg))
    t = time.perf_counter()
    cont = None
    n = 0
    while True:
        page = api.list_role_binding_for_all_namespaces(limit=500, _continue=cont)
        n += len(page.items)
        cont = page.metadata._continue
        if not cont:
            break
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--projects", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    add_latency_args(ap)
    args = ap.parse_args()
    srv = start_server(None)
    try:
        seed_runai(srv, projects=args.projects, rolebindings_per_project=7)
        for model in (None, latency_from(args)):
            srv.latency = model
            raw, client_t = [], []
            size = 0
            for _ in range(args.rounds):
                t, size = curl_lists(srv)
                raw.append(t)
                client_t.append(python_client_list(srv))
            print(f"{describe(model)}")
            print(f"  curl, namespaces + role bindings ({size / 1e6:.1f} MB): median "
                  f"{statistics.median(raw):.2f} s, range {min(raw):.2f}-{max(raw):.2f} "
                  f"(real server: 0.24-0.39 s)")
            print(f"  official Python client, role bindings in pages of 500: median "
                  f"{statistics.median(client_t):.2f} s, range {min(client_t):.2f}-"
                  f"{max(client_t):.2f} (real server: 1.17 s)")
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
