"""A strict Kubernetes API server on loopback, for tests.

    srv = ApiServer(); srv.start(); srv.url
    srv.write_kubeconfig(path, context="loopback", token="admin-token", namespace=None)
    srv.add_user(token, username, groups=()); srv.deny(verb=, resource=, group="", namespace=None, user=None)
    srv.install_crds(paths_or_dicts); srv.seed(obj); srv.get/list/delete_object(...)
    srv.requests / srv.clear_requests(); srv.inject_fault(...); srv.set_pod_exec(ns, pod, env=, cwd=)
    srv.expire_continue_tokens(); srv.namespaces_linger; srv.finalize_namespace(name)
    srv.exec_stdin_hang_timeout; srv.stop()
    srv.pod_schedule_delay / pod_start_delay / pod_ready_delay / crd_establish_delay  (seconds)
    srv.add_pod_backend(ns, name_regex, start, starting_env=None); srv.pod_backend(ns, pod)
    srv.wait_for(api_version, kind, name, ns, until=fn); srv.wait_pod_ready(ns, pod)
    pgbackend.add_postgres_backend(srv) -> PostgresBackend (.current, .server_for(ns, pod))

What the server does (controllers, kubelet, delays, strictness): see the docstring of server.py.
"""

from .server import ApiError, ApiServer, DenyRule, Fault, RequestRecord

__all__ = ["ApiError", "ApiServer", "DenyRule", "Fault", "RequestRecord"]
