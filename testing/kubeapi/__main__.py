"""python -m kubeapi serve [--projects N] [--kubeconfig PATH] [--saas] [--helm-driver secret|configmap]

Starts the loopback API server seeded with a Run:ai installation, writes a kubeconfig and waits for Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
from pathlib import Path

from .seed import crd_paths, seed_runai
from .server import ApiServer


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m kubeapi")
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="serve a seeded Run:ai installation until interrupted")
    s.add_argument("--projects", type=int, default=30)
    s.add_argument("--rolebindings-per-project", type=int, default=7)
    s.add_argument("--kubeconfig", type=Path, default=None)
    s.add_argument("--saas", action="store_true", help="cluster half only: no control plane")
    s.add_argument("--helm-driver", choices=["secret", "configmap"], default="secret")
    s.add_argument("--version", default="2.16.79")
    s.add_argument("--plain-http", action="store_true", help="kubeconfig on http (kubectl/helm send no token)")
    args = ap.parse_args(argv)

    # Block the stop signals before any thread starts (threads inherit the mask), so that
    # sigwait below receives them and the server is stopped cleanly.
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    srv = ApiServer()
    srv.install_crds(crd_paths())
    info = seed_runai(srv, projects=args.projects, rolebindings_per_project=args.rolebindings_per_project,
                      control_plane=not args.saas, helm_driver=args.helm_driver, version=args.version)
    srv.start()
    path = args.kubeconfig or Path(tempfile.mkdtemp(prefix="kubeapi-")) / "kubeconfig"
    srv.write_kubeconfig(path, tls=not args.plain_http)
    print(f"# loopback Kubernetes API at {srv.https_url} (plain HTTP: {srv.url}), "
          f"{len(info.projects)} projects, {info.objects} objects", file=sys.stderr)
    print(f"export KUBECONFIG={path.resolve()}", flush=True)
    signal.sigwait(stop_signals)
    srv.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
