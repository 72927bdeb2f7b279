"""Kubeconfig resolution with kubectl's rules, as pure functions.

kubectl merges the files of ``KUBECONFIG`` so that the *first* file to define a cluster,
context, user or ``current-context`` wins; ``--kubeconfig`` names a single file and
replaces ``KUBECONFIG``. Relative paths in a file are relative to that file. The official
Python client differs (the last ``current-context`` wins), so the merge is done here and
the client only gets the merged dictionary.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from kubectl_runai_dr.errors import ConfigError

_PATH_FIELDS = {
    "clusters": ("certificate-authority",),
    "users": ("client-certificate", "client-key", "tokenFile"),
}


def kubeconfig_paths(kubeconfig: str | None, environ: Mapping[str, str]) -> list[Path]:
    """The files kubectl would read, in order."""
    if kubeconfig:
        return [Path(kubeconfig).expanduser()]
    env = environ.get("KUBECONFIG", "")
    if env:
        return [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    return [Path(environ.get("HOME", "~")).expanduser() / ".kube" / "config"]


def _absolutise(entry: dict[str, Any], fields: Sequence[str], base: Path) -> dict[str, Any]:
    out = dict(entry)
    for f in fields:
        value = out.get(f)
        if isinstance(value, str) and value and not os.path.isabs(value):
            out[f] = str(base / value)
    exec_cfg = out.get("exec")
    if isinstance(exec_cfg, dict):
        cmd = exec_cfg.get("command")
        if isinstance(cmd, str) and os.sep in cmd and not os.path.isabs(cmd):
            out["exec"] = {**exec_cfg, "command": str(base / cmd)}
    return out


def merge_kubeconfigs(documents: Sequence[tuple[Path, Mapping[str, Any]]]) -> dict[str, Any]:
    """Merge parsed kubeconfig files with kubectl's first-wins rule."""
    merged: dict[str, Any] = {"apiVersion": "v1", "kind": "Config", "clusters": [],
                              "contexts": [], "users": []}
    seen: dict[str, set[str]] = {"clusters": set(), "contexts": set(), "users": set()}
    for path, doc in documents:
        base = path.resolve().parent
        for section in ("clusters", "contexts", "users"):
            for item in doc.get(section) or []:
                name = item.get("name")
                if not isinstance(name, str) or name in seen[section]:
                    continue
                seen[section].add(name)
                key = section[:-1]
                body = item.get(key) or {}
                fields = _PATH_FIELDS.get(section, ())
                merged[section].append({"name": name, key: _absolutise(body, fields, base)})
        if "current-context" not in merged and doc.get("current-context"):
            merged["current-context"] = doc["current-context"]
    return merged


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """What the parser found wrong and where, without quoting the file."""
    problem = str(getattr(exc, "problem", "") or "syntax error")
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        problem += f" (line {mark.line + 1}, column {mark.column + 1})"
    return problem


def read_kubeconfig(paths: Sequence[Path], *, explicit: bool) -> dict[str, Any] | None:
    """Read and merge the files; None when none exists (the caller may go in-cluster)."""
    documents: list[tuple[Path, Mapping[str, Any]]] = []
    for path in paths:
        if not path.exists():
            if explicit:
                raise ConfigError(
                    f"kubeconfig file {path} does not exist",
                    hint="check the --kubeconfig path",
                )
            continue
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except OSError as exc:
            raise ConfigError(
                f"cannot read kubeconfig {path}: {(exc.strerror or 'error').lower()}",
                hint="fix the file, or point --kubeconfig/KUBECONFIG at a valid one",
            ) from exc
        except yaml.YAMLError as exc:
            # Not chained: the parser's message quotes the offending line, which may be a
            # credential (a token, a key); the position is enough to find it.
            raise ConfigError(
                f"cannot read kubeconfig {path}: not valid YAML: {_yaml_problem(exc)}",
                hint="fix the file, or point --kubeconfig/KUBECONFIG at a valid one",
            ) from None
        if not isinstance(doc, dict):
            raise ConfigError(f"kubeconfig {path} is not a kubeconfig document",
                              hint="point --kubeconfig/KUBECONFIG at a valid kubeconfig")
        documents.append((path, doc))
    if not documents:
        return None
    return merge_kubeconfigs(documents)


def select_context(config: Mapping[str, Any], context: str | None) -> tuple[str, dict[str, Any],
                                                                           dict[str, Any]]:
    """Return (context name, context body, cluster body) for the chosen context."""
    name = context or config.get("current-context")
    contexts = {c["name"]: c.get("context") or {} for c in config.get("contexts", [])}
    if not name:
        raise ConfigError(
            "no current context is set in the kubeconfig",
            hint="pass --context NAME, or run `kubectl config use-context NAME`",
        )
    if name not in contexts:
        known = ", ".join(sorted(contexts)) or "none"
        raise ConfigError(
            f'context "{name}" not found in the kubeconfig (known contexts: {known})',
            hint="run `kubectl config get-contexts` to list them",
        )
    ctx = contexts[name]
    clusters = {c["name"]: c.get("cluster") or {} for c in config.get("clusters", [])}
    cluster_name = ctx.get("cluster")
    if cluster_name not in clusters:
        raise ConfigError(
            f'context "{name}" refers to cluster "{cluster_name}", which the kubeconfig '
            "does not define",
            hint="fix the kubeconfig (`kubectl config view`)",
        )
    cluster = clusters[cluster_name]
    if not cluster.get("server"):
        raise ConfigError(f'cluster "{cluster_name}" has no server URL',
                          hint="fix the kubeconfig (`kubectl config view`)")
    return name, ctx, cluster
