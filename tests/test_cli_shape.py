"""One shape for every verb: the shared options come from one declaration, ``-o`` is the
output format everywhere, verb modules do not draw, help has no noise, and every finished
operation maps to the documented exit code in one place."""

from __future__ import annotations

import ast
import io
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import pytest
import typer

from kubectl_runai_dr.cli import options as o
from kubectl_runai_dr.cli.app import app
from kubectl_runai_dr.cli.db_options import DB_OPTIONS
from kubectl_runai_dr.cli.outcome import exit_code
from kubectl_runai_dr.errors import ExitCode
from tests.e2e import ROOT, cli

CLI = ROOT / "kubectl_runai_dr" / "cli"
SHARED = {p.name: p for p in (*o.KUBE_OPTIONS, *o.NAME_OPTIONS, *o.OUTPUT_OPTIONS,
                              *DB_OPTIONS)}
# Declared in more than one verb on purpose: the same name, a different meaning.
SAME_NAME_OTHER_MEANING = {
    "--keep": "backup keeps N bundles of a context; snapshot prune keeps N snapshots per claim",
    "--dry-run": "each verb says what its dry run shows",
    "--skip": "backup leaves out components, restore leaves out steps",
    "--to": "backup and snapshot write a local file; schedule install names where the cluster "
            "writes (s3://, pvc://)",
    "--timeout": "each verb says what it waits for (snapshots, a scheduled run, following it)",
    "--include-secrets": "backup reads Secrets; schedule install grants that and passes it on",
    "--snapshots": "backup takes snapshots; schedule install grants that and passes it on",
    "--only": "restore runs only these steps, diff compares only these components",
}


def commands(cmd: Any = None, path: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    """Every command of the tree (groups with a callback included), by its command line."""
    cmd = cmd or typer.main.get_command(app)
    is_verb = cmd.callback is not None and not getattr(cmd, "commands", None)
    if path and (is_verb or getattr(cmd, "invoke_without_command", False)):
        yield " ".join(path), cmd
    for name, sub in sorted(getattr(cmd, "commands", {}).items()):
        yield from commands(sub, (*path, name))


COMMANDS = dict(commands())


def options(cmd: Any) -> dict[str, Any]:
    return {opt: p for p in cmd.params if p.param_type_name == "option" for opt in p.opts}


def help_text(*args: str) -> str:
    r = cli(*args, "--help")
    assert r.code == 0, r.stderr
    return r.stdout


def test_every_verb_is_found() -> None:
    assert {"backup", "inspect", "restore", "restore-database", "namespaces", "helm values",
            "snapshot", "snapshot list", "snapshot prune", "protect", "status", "verify",
            "version", "bundles", "keygen"} <= set(COMMANDS)


# -- one declaration ---------------------------------------------------------------------------
def _declared_options(path: Path) -> Iterator[str]:
    """The option strings a module declares with typer.Option(...)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "Option":
            for arg in node.args:
                if isinstance(arg, ast.Constant) and str(arg.value).startswith("-"):
                    yield str(arg.value)


def verb_modules() -> list[Path]:
    return [p for p in sorted(CLI.glob("*.py"))
            if p.stem not in ("__init__", "app", "options", "db_options", "command", "outcome")
            and not p.stem.endswith("_view")]


def test_no_verb_module_declares_a_shared_option() -> None:
    shared = {d for p in SHARED.values() for d in o._decls([p])}
    found = {(p.name, d) for p in verb_modules() for d in _declared_options(p) if d in shared}
    assert not found, f"re-declared (use @verb instead): {sorted(found)}"


def test_no_option_is_declared_twice() -> None:
    seen: dict[str, list[str]] = {}
    for path in sorted(CLI.glob("*.py")):
        for decl in _declared_options(path):
            seen.setdefault(decl, []).append(path.name)
    twice = {d: where for d, where in seen.items()
             if len(where) > 1 and d not in SAME_NAME_OTHER_MEANING}
    assert not twice, f"declare these once in options.py: {twice}"


def test_the_decorator_refuses_a_re_declared_shared_option() -> None:
    def verb(context: Annotated[str, typer.Option("--cluster-context")] = "",
             *, common: o.Common) -> None: ...

    def verb2(ctx_name: Annotated[str, typer.Option("--context")] = "",
              *, common: o.Common) -> None: ...

    with pytest.raises(TypeError, match="context"):
        o.verb()(verb)
    with pytest.raises(TypeError, match="--context"):
        o.verb()(verb2)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_shared_options_are_the_shared_ones_and_come_last(name: str) -> None:
    cmd = COMMANDS[name]
    opts = options(cmd)
    assert "--output" in opts and "-o" in opts and "--no-color" in opts and "-v" in opts
    for param in cmd.params:
        if param.name in SHARED:
            shared = SHARED[param.name].annotation.__metadata__[0]
            assert param.help == shared.help, (name, param.name)
    # accepted after the verb's own arguments, as kubectl users type them
    if "--context" in opts:
        assert "--context" in " ".join(opts["--context"].opts)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_o_means_the_output_format(name: str) -> None:
    opts = options(COMMANDS[name])
    fmt = opts["-o"]
    assert fmt is opts["--output"] and fmt.name == "output" and "--format" not in opts
    r = cli(*name.split(), "-o", "/backups/")
    assert r.code == 2 and "'table', 'json', 'yaml'" in r.stderr, r.stderr


def test_shared_flags_after_the_verb(tmp_path: Path) -> None:
    """`backup --context prod -o json`: the flags after the verb reach the connection."""
    kc = tmp_path / "kubeconfig"
    kc.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    r = cli("backup", "--kubeconfig", str(kc), "--context", "prod", "-o", "json",
            "--to", str(tmp_path))
    assert r.code == 5 and 'context "prod" not found' in r.stderr, r.stderr


def test_every_list_flag_takes_a_comma_list() -> None:
    """`--skip a,b --skip c`: every list-valued option splits on commas, but for those
    whose values may hold commas (keys, file names), which say so with ``as_given``."""
    missing = []
    for path in sorted(CLI.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Subscript) and getattr(node.value, "id", "") == "Annotated":
                assert isinstance(node.slice, ast.Tuple), ast.dump(node)  # Annotated[kind, *meta]
                kind, *meta = node.slice.elts
                calls = [m for m in meta if isinstance(m, ast.Call)
                         and getattr(m.func, "attr", "") == "Option"]
            elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "shared_option":
                kind = next(k.value for k in node.keywords if k.arg == "type")
                calls = [node]
            else:
                continue
            if not ast.unparse(kind).startswith("list["):
                continue
            for call in calls:
                callback = [ast.unparse(k.value) for k in call.keywords if k.arg == "callback"]
                if not callback or not callback[0].endswith(("comma_list", "as_given")):
                    missing.append(f"{path.name}: {ast.unparse(call)[:60]}")
    assert not missing, missing


# -- verbs do not draw -------------------------------------------------------------------------
def test_verb_modules_import_no_rich_and_hold_no_markup() -> None:
    for path in verb_modules():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert not any(a.name.split(".")[0] == "rich" for a in node.names), path
            elif isinstance(node, ast.ImportFrom):
                assert (node.module or "").split(".")[0] != "rich", path
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert not re.search(r"\[/\]|\[(bold|dim|red|green|yellow)", node.value), \
                    f"{path.name}: markup {node.value!r}"


# -- help without noise ------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_has_no_noise(name: str) -> None:
    out = help_text(*name.split())
    assert "<bool>" not in out and "<list[" not in out
    usage = next(ln for ln in out.splitlines() if "Usage:" in ln)
    assert "{" not in usage and "[[" not in usage, usage
    verbose = next(ln for ln in out.splitlines() if "--verbose" in ln)
    assert "<int>" not in verbose and "default" not in verbose, verbose


def test_restore_usage() -> None:
    usage = next(ln for ln in help_text("restore").splitlines() if "Usage:" in ln)
    assert usage.split("restore", 1)[1].split() == ["[OPTIONS]", "[database]", "BUNDLE"]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_summary_is_one_line(name: str) -> None:
    cmd = COMMANDS[name]
    summary = (cmd.help or "").split("\n\n")[0]
    assert summary and "\n" not in summary, summary
    root = help_text()
    first = name.split()[0]
    row = next(ln for ln in root.splitlines() if re.match(rf"\W*{re.escape(first)}\s", ln))
    nxt = root.splitlines()[root.splitlines().index(row) + 1]
    # at 200 columns every summary fits its row: the next row starts a new command
    assert re.match(r"\W*[a-z-]+\s{2,}\S", nxt) or nxt.strip("│╰─╯ ") == "", (row, nxt)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_option_help_names_only_options_the_verb_has(name: str) -> None:
    cmd = COMMANDS[name]
    opts = options(cmd)
    for param in cmd.params:
        for flag in re.findall(r"(?<![\w-])--[a-z][a-z-]+", param.help or ""):
            assert flag in opts, f"{name} {param.opts[0]}: help names {flag}"


def test_plan_table_has_a_label_for_every_column() -> None:
    from rich.console import Console

    from kubectl_runai_dr.cli.restore_view import show_preflight
    from kubectl_runai_dr.components import registry
    from kubectl_runai_dr.ops.restore import Preflight
    from kubectl_runai_dr.plan.restore import PlannedStep

    plan = [PlannedStep(s, run=i % 2 == 0, why_not="" if i % 2 == 0 else "not asked for")
            for i, s in enumerate(registry.RESTORE_STEPS)]
    buf = io.StringIO()
    show_preflight(Console(file=buf, width=200, no_color=True),
                   Preflight("ctx", "https://k", "v1.30", {}, "2026-01-01T00:00:00Z", plan))
    header = next(ln for ln in buf.getvalue().splitlines() if "STEP" in ln)
    assert header.replace("┃", " ").replace("│", " ").split() == ["STEP", "RUN", "WHY"], header


# -- exit codes: one mapping ------------------------------------------------------------------
@dataclass
class _Fake:
    """Stands for an operation's result type (module and class name are what count)."""

    partial: bool = False
    failed: bool = False
    interrupted: bool = False
    ok: bool = True
    errors: tuple[str, ...] = ()


def _as(module: str, cls: str, **fields: Any) -> Any:
    kind = type(cls, (_Fake,), {"__module__": module, "__qualname__": cls})
    return kind(**fields)


@pytest.mark.parametrize("result,code", [
    (None, ExitCode.OK),
    (_as("kubectl_runai_dr.ops.backup", "BackupOutcome"), ExitCode.OK),
    (_as("kubectl_runai_dr.ops.backup", "BackupOutcome", partial=True), ExitCode.PARTIAL),
    (_as("kubectl_runai_dr.ops.restore", "RestoreOutcome", failed=True), ExitCode.PARTIAL),
    (_as("kubectl_runai_dr.ops.restore", "RestoreOutcome", failed=True, interrupted=True),
     ExitCode.ABORTED),
    (_as("kubectl_runai_dr.model", "Result", failed=True),
     ExitCode.PARTIAL),
    (_as("kubectl_runai_dr.components.database", "DatabaseRestoreResult", ok=False),
     ExitCode.PARTIAL),
    (_as("kubectl_runai_dr.components.volumes", "ProtectOutcome", errors=("x",)),
     ExitCode.PARTIAL),
    (_as("kubectl_runai_dr.components.volumes", "ProtectOutcome"), ExitCode.OK),
    (_as("kubectl_runai_dr.components.volumes", "PruneOutcome", errors=("x",)),
     ExitCode.PARTIAL),
    (_as("kubectl_runai_dr.ops.volumes", "SnapshotOutcome"), ExitCode.OK),
])
def test_exit_code_of_a_finished_operation(result: Any, code: ExitCode) -> None:
    assert exit_code(result) == code


def test_every_rule_names_a_real_type() -> None:
    import importlib

    from kubectl_runai_dr.cli.outcome import _RULES

    for kind in _RULES:
        module, _, cls = kind.rpartition(".")
        assert hasattr(importlib.import_module(module), cls), kind


def test_verify_and_status_results() -> None:
    from kubectl_runai_dr.bundle.reader import Problem
    from kubectl_runai_dr.cli.status import StatusReport
    from kubectl_runai_dr.cli.verify import VerifyResult
    from kubectl_runai_dr.plan.status import Problem as Finding

    bad = VerifyResult(Path("b"), [Problem("manifest.json", "bad")], "complete", 1, 1)
    assert exit_code(bad) == ExitCode.INVALID_BUNDLE
    drilled = VerifyResult(Path("b"), [], "complete", 1, 1, drill=_as(
        "kubectl_runai_dr.components.database", "DatabaseRestoreResult", ok=False))
    assert exit_code(drilled) == ExitCode.PARTIAL
    assert exit_code(StatusReport({}, [])) == ExitCode.OK
    assert exit_code(StatusReport({}, [Finding("warning", "s", "m", "h")])) == \
        ExitCode.STATUS_WARNING


def test_a_result_without_a_rule_is_a_bug() -> None:
    with pytest.raises(TypeError, match="no exit code"):
        exit_code(object())


# -- a reader that goes away -------------------------------------------------------------------
@pytest.mark.parametrize("args", [["version"], ["inspect", "{bundle}"],
                                  ["inspect", "{bundle}", "-o", "json"],
                                  ["verify", "{bundle}"],
                                  ["--help"], ["backup", "--help"], ["snapshot", "--help"],
                                  ["snapshot", "list", "-h"]])
def test_broken_pipe_is_quiet(args: list[str], tmp_path: Path, bundle_file: Path) -> None:
    """`inspect big.tar.gz | head -1`, `--help | head`: no traceback, no error message,
    exit 0 or 141."""
    argv = [a.format(bundle=bundle_file) for a in args]
    p = subprocess.Popen([sys.executable, "-m", "kubectl_runai_dr", *argv], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env={"PYTHONPATH": str(ROOT), "NO_COLOR": "1", "PATH": "/usr/bin"})
    assert p.stdout is not None and p.stderr is not None
    p.stdout.close()  # the reader is gone before the first line is written
    err = p.stderr.read().decode()
    assert p.wait(timeout=60) in (0, 141), err
    assert err == "", err


@pytest.fixture
def bundle_file(tmp_path: Path) -> Path:
    """A small valid bundle, written by the bundle writer (no cluster needed)."""
    from kubectl_runai_dr.bundle.writer import BundleWriter
    from tests.test_bundle import MANIFEST

    w = BundleWriter(tmp_path / "b.tar.gz")
    w.write_json("a/b.json", {"hello": "world"})
    return w.finalize(dict(MANIFEST), mtime=0)
