"""Candidates for shell completion: component and step names, kubeconfig contexts, bundles.

Completion runs the plugin on every <TAB> (kubectl's plugin completion convention, see
``kubectl_complete-runai_dr``), and `--help` uses the same names, so this module imports
nothing heavy. Importing the component registry would double the start-up time of both
(about 0.1 s of the tool's own modules), so its names are mirrored below, in its order;
``tests/test_completion.py`` fails when the two differ.

Each function takes the click context (what was parsed so far, e.g. ``--kubeconfig``) and
the word being completed, and returns ``(value, description)`` pairs. A comma list
(``--skip secrets,data``) completes its last item and offers no name twice.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Sequence

import typer

# components/registry.py's COMPONENTS: (name, title, restored by `restore`)
COMPONENTS: tuple[tuple[str, str, bool], ...] = (
    ("volumes", "volumes from snapshots", True),
    ("secrets", "secrets", True),
    ("control-plane", "control plane (helm)", True),
    ("database", "database", True),
    ("cluster", "cluster (helm)", True),
    ("runaiconfig", "RunaiConfig", True),
    ("templates", "templates", True),
    ("namespaces", "namespaces and role bindings", True),
    ("scheduling", "scheduling objects (records)", False),
)
NAMES: tuple[str, ...] = tuple(name for name, _, _ in COMPONENTS)
RESTORABLE: tuple[str, ...] = tuple(name for name, _, restored in COMPONENTS if restored)
TITLES: dict[str, str] = {name: title for name, title, _ in COMPONENTS}
BUNDLE_SUFFIX = ".tar.gz"  # what `backup` and `snapshot` write

Candidates = list[tuple[str, str]]


def _given(ctx: typer.Context, *params: str) -> set[str]:
    """Names already given to these list-valued parameters (repeated or comma lists)."""
    out: set[str] = set()
    for name in params:
        for value in ctx.params.get(name) or ():
            out.update(part.strip() for part in str(value).split(","))
    return out


def names_in_list(incomplete: str, names: Sequence[str], taken: Iterable[str] = ()
                  ) -> Candidates:
    """``secrets,data`` → ``secrets,database``: the last item of a comma list completed
    with the names not given yet."""
    head, comma, last = incomplete.rpartition(",")
    done = {*(p.strip() for p in head.split(",")), *taken}
    return [(f"{head}{comma}{name}", TITLES[name]) for name in names
            if name.startswith(last) and name not in done]


def backup_components(ctx: typer.Context, incomplete: str) -> Candidates:
    """``backup COMPONENT...``."""
    return names_in_list(incomplete, NAMES, _given(ctx, "components", "skip"))


def backup_skip(ctx: typer.Context, incomplete: str) -> Candidates:
    """``backup --skip COMPONENT,...``."""
    return names_in_list(incomplete, NAMES, _given(ctx, "skip", "components"))


def diff_components(ctx: typer.Context, incomplete: str) -> Candidates:
    """``diff --only/--skip COMPONENT,...``."""
    return names_in_list(incomplete, NAMES, _given(ctx, "only", "skip"))


def restore_steps(ctx: typer.Context, incomplete: str) -> Candidates:
    """``restore --only/--skip STEP,...``: the components a restore restores."""
    return names_in_list(incomplete, RESTORABLE, _given(ctx, "only", "skip"))


def contexts(ctx: typer.Context, incomplete: str) -> Candidates:
    """``--context``: the contexts of the kubeconfig kubectl would read (``--kubeconfig``
    given earlier on the line, else KUBECONFIG, else ~/.kube/config)."""
    from kubectl_runai_dr.errors import DrError
    from kubectl_runai_dr.kube.kubeconfig import kubeconfig_paths, read_kubeconfig

    given = ctx.params.get("kubeconfig")
    try:
        config = read_kubeconfig(kubeconfig_paths(given, os.environ), explicit=bool(given))
    except (DrError, OSError, ValueError):
        return []
    if not config:
        return []
    current = config.get("current-context")
    out: Candidates = []
    for entry in config.get("contexts", []):
        name = entry["name"]
        if name.startswith(incomplete):
            cluster = (entry.get("context") or {}).get("cluster", "?")
            out.append((name, f"cluster {cluster}" + (" (current)" if name == current
                                                      else "")))
    return out


def bundles(ctx: typer.Context, incomplete: str) -> Candidates:
    """A bundle file: the ``*.tar.gz`` files and the directories that start with the
    word (hidden ones only when the word starts with a dot)."""
    head, slash, prefix = incomplete.rpartition("/")
    directory = os.path.expanduser((head or "/") if slash else ".")
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError:
        return []
    out: Candidates = []
    for entry in entries:
        name = entry.name
        if not name.startswith(prefix) or (name.startswith(".") and not prefix.startswith(".")):
            continue
        value = f"{head}{slash}{name}"
        try:
            mode = entry.stat().st_mode
        except OSError:
            continue
        if stat.S_ISDIR(mode):
            out.append((value + "/", "directory"))
        elif name.endswith((BUNDLE_SUFFIX, BUNDLE_SUFFIX + ".age")):
            out.append((value, "bundle"))
    return out


def restore_args(ctx: typer.Context, incomplete: str) -> Candidates:
    """``restore [database] BUNDLE``: `database` first, then a bundle."""
    given = ctx.params.get("args") or []
    first = [("database", "restore only the database: restore database BUNDLE")]
    if not given and "database".startswith(incomplete):
        return first + bundles(ctx, incomplete)
    return bundles(ctx, incomplete)
