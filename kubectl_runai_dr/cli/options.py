"""The options every verb shares, declared once, and the boundary every verb runs in.

A verb is a function decorated with ``@verb(...)``. The decorator adds the shared options
to its signature (after its own, so they are accepted after the verb, as kubectl users
type them: ``kubectl runai-dr backup --context prod -o json``) and calls it with one
``Common`` object instead:

- connection (``kube=True``): ``--kubeconfig``, ``--context``, ``--request-timeout``;
- names (``names=True``): ``-n/--namespace``, ``--control-plane-namespace``,
  ``--cluster-release``, ``--control-plane-release``;
- database (``db=True``): the ``--db-*`` options of ``db_options``;
- bundle storage (``storage="read"|"write"``): ``--s3-*`` and the age options of
  ``storage_options``;
- output (always): ``-o/--output`` (the format), ``--no-color``, ``-v/--verbose``.

The verb parses its own options, calls one operation, hands the result to its view and
returns it; ``outcome.exit_code`` turns that result into the exit code, and the tool's
errors become one message and their documented exit code here.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kubectl_runai_dr.cli import complete
from kubectl_runai_dr.errors import DrError, ExitCode, UsageError
from kubectl_runai_dr.model import Names

if TYPE_CHECKING:
    from kubectl_runai_dr.cli.db_options import DbFlags
    from kubectl_runai_dr.cli.storage_options import StorageFlags
    from kubectl_runai_dr.components.base import Progress
    from kubectl_runai_dr.kube.client import Kube
    from kubectl_runai_dr.plan.database import DbOptions


class OutputFormat(str, Enum):
    table = "table"
    json = "json"
    yaml = "yaml"


KUBE = "Kubernetes connection (as kubectl)"
OUT = "Output"
NAMES = "Run:ai installation"
BUNDLE = "Bundle"
RESTORE = "Restore"
HELM = "Helm"
VOLUMES = "Volumes"
BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a tool whose reader went away


def split_list(values: list[str] | None) -> list[str]:
    """A list-valued flag as users type it: repeated (``--skip a --skip b``), comma
    separated (``--skip a,b``) or both; blanks dropped, order kept, duplicates once."""
    out: list[str] = []
    for value in values or ():
        for part in value.split(","):
            part = part.strip()
            if part and part not in out:
                out.append(part)
    return out


def comma_list(value: list[str] | None) -> list[str] | None:
    """typer callback of every list-valued flag: ``--skip a,b --skip c``."""
    return split_list(value) if value else value


def as_given(value: list[str] | None) -> list[str] | None:
    """typer callback of a list flag whose values may hold commas (SSH public keys with
    comments, file names): repeated only, never split."""
    return value


_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(text: str, *, flag: str = "--request-timeout") -> float | None:
    """kubectl-style duration ("0", "30", "30s", "1m", "1h30m", "2d") in seconds; 0 → None."""
    text = text.strip()
    total = 0.0
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)?", text)
    if not text or "".join(a + b for a, b in parts) != text:
        raise UsageError(f'invalid {flag} "{text}"',
                         hint='use a number of seconds or a duration such as "30s" or "2m"')
    for number, unit in parts:
        total += float(number) * _UNIT[unit or None]
    return total or None


# -- the shared options, declared once -------------------------------------------------------
def shared_option(name: str, default: Any, *decls: str, type: Any,
                  **kwargs: Any) -> inspect.Parameter:
    """One shared option, as the parameter ``@verb`` adds to a verb's signature."""
    kwargs.setdefault("show_default", default not in (None, False))
    annotation = Annotated[type, typer.Option(*decls, **kwargs)]
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=annotation)


KUBE_OPTIONS = (
    shared_option("kubeconfig", None, "--kubeconfig", type=str | None, metavar="PATH",
            help="Path to the kubeconfig file (default: KUBECONFIG, then ~/.kube/config, "
            "then the in-cluster service account).", rich_help_panel=KUBE),
    shared_option("context", None, "--context", type=str | None, metavar="NAME",
            help="The kubeconfig context to use (default: the current context).",
            rich_help_panel=KUBE, autocompletion=complete.contexts),
    shared_option("request_timeout", "0", "--request-timeout", type=str, metavar="DURATION",
            help='Timeout of a single API request, e.g. "30s", "1m"; "0" waits forever.',
            rich_help_panel=KUBE),
)
NAME_OPTIONS = (
    shared_option("namespace", "runai", "-n", "--namespace", type=str, metavar="NAMESPACE",
            help="Namespace of the Run:ai cluster (RunaiConfig, templates).",
            rich_help_panel=NAMES),
    shared_option("control_plane_namespace", "runai-backend", "--control-plane-namespace", type=str,
            metavar="NAMESPACE", help="Namespace of the control plane.",
            rich_help_panel=NAMES),
    shared_option("cluster_release", "runai-cluster", "--cluster-release", type=str,
            metavar="RELEASE", help="Helm release of the cluster.", rich_help_panel=NAMES),
    shared_option("control_plane_release", "runai-backend", "--control-plane-release", type=str,
            metavar="RELEASE", help="Helm release of the control plane.",
            rich_help_panel=NAMES),
)
OUTPUT_OPTIONS = (
    shared_option("output", OutputFormat.table, "-o", "--output", type=OutputFormat,
            metavar="table|json|yaml", case_sensitive=False,
            help="Output format: a table for people, or one json / yaml document on stdout.",
            rich_help_panel=OUT),
    shared_option("no_color", False, "--no-color", type=bool,
            help="No colours (also when NO_COLOR is set or output is not a terminal).",
            rich_help_panel=OUT),
    shared_option("verbose", 0, "-v", "--verbose", type=int, count=True, metavar="",
            show_default=False, help="More detail; tracebacks on errors.",
            rich_help_panel=OUT),
)

# Option values for several verbs with the same meaning: one declaration each.
To = Annotated[str | None, typer.Option(
    "--to", metavar="PATH|s3://BUCKET/PREFIX/", show_default=False, rich_help_panel=BUNDLE,
    help="Where the bundle goes: a file, a directory (or s3:// prefix, ending in /) for the "
    "default name runai-dr-<context>-<UTC time>.tar.gz[.age] (default: the current "
    "directory).")]
Force = Annotated[bool, typer.Option(
    "--force", help="Overwrite an existing bundle file.", rich_help_panel=BUNDLE)]
ValuesDir = Annotated[str | None, typer.Option(
    "--values-dir", metavar="DIR", show_default=False,
    rich_help_panel=HELM,
    help="Directory for the helm values files, <release>-values.yaml, mode 0600: they hold "
    "secrets (default for restore: ./runai-dr-values).")]
VolumeDataImage = Annotated[str | None, typer.Option(
    "--volume-data-image", metavar="IMAGE", help="Image with sh and tar for copying claims' "
    "files: the debug container when a pod has no tar (default busybox:1.36), the restore's "
    "helper pod (default: the workload's recorded image).", rich_help_panel=VOLUMES,
    show_default=False)]
Yes = Annotated[bool, typer.Option(
    "--yes", "-y", help="Do not ask for confirmation (scripts).", rich_help_panel=RESTORE)]
Existing = Annotated[str, typer.Option(
    "--existing", metavar="skip|update", help="Objects that already exist: `skip` leaves them "
    "alone and reports drift; `update` makes them match the bundle.", rich_help_panel=RESTORE)]
Project = Annotated[list[str] | None, typer.Option(
    "--project", metavar="NAME,...", show_default=False, callback=comma_list,
    help="Only these projects' namespaces (comma list or repeated).", rich_help_panel=RESTORE)]
DEFAULT_WORKERS = 16  # RestoreSettings.workers (not imported here: --help stays light)
Workers = Annotated[int, typer.Option(
    "--workers", min=1, max=32, metavar="N",
    help="Parallel requests for namespaces and role bindings (fewer at once after the "
    "server answers 429).", rich_help_panel=RESTORE)]
SnapshotClass = Annotated[str | None, typer.Option(
    "--snapshot-class", metavar="NAME", show_default=False,
    help="VolumeSnapshotClass to use (default: the default class of each claim's CSI "
    "driver, or its only class).", rich_help_panel=VOLUMES)]
Pvc = Annotated[list[str] | None, typer.Option(
    "--pvc", metavar="[NAMESPACE/]NAME,...", show_default=False, callback=comma_list,
    help="Another claim, as NAME (in the control-plane namespace) or NAMESPACE/NAME "
    "(comma list or repeated).", rich_help_panel=VOLUMES)]


@dataclass(frozen=True)
class Common:
    """What the shared options say, handed to every verb."""

    kubeconfig: str | None = None
    context: str | None = None
    request_timeout: str = "0"
    names: Names = field(default_factory=Names)
    output: OutputFormat = OutputFormat.table
    no_color: bool = False
    verbose: int = 0
    db: DbFlags | None = None
    storage: StorageFlags | None = None

    @classmethod
    def from_flags(cls, flags: dict[str, Any], storage: str | None = None) -> Common:
        names = {k: flags.pop(k) for k in [p.name for p in NAME_OPTIONS] if k in flags}
        if "namespace" in names:
            names["cluster_namespace"] = names.pop("namespace")
        db = None
        if "db_mode" in flags:
            from kubectl_runai_dr.cli.db_options import DbFlags

            db = DbFlags.from_flags(flags)
        store = None
        if storage is not None:
            from kubectl_runai_dr.cli.storage_options import StorageFlags

            store = StorageFlags.from_flags(storage, flags)
            store.configure()
        return cls(names=Names(**names), db=db, storage=store, **flags)

    def db_options(self, **override: Any) -> DbOptions:
        """The ``--db-*`` options as the database steps read them (``@verb(db=True)``)."""
        if self.db is None:
            raise TypeError("the --db-* options are only given to @verb(db=True)")
        return self.db.options(**override)

    @property
    def table(self) -> bool:
        """People (a table) rather than programs (json, yaml)?"""
        return self.output is OutputFormat.table

    def connect(self) -> Kube:
        from kubectl_runai_dr.kube.client import ConnectOptions, connect

        return connect(ConnectOptions(kubeconfig=self.kubeconfig, context=self.context,
                                      request_timeout=parse_duration(self.request_timeout)))

    @contextlib.contextmanager
    def progress(self, title: str | None = None) -> Iterator[Progress]:
        """A progress display on stderr (on a terminal only), closed whatever happens."""
        from kubectl_runai_dr import render

        bar = render.RichProgress(render.consoles(self.no_color)[1])
        if title:
            bar.start(title)
        try:
            yield bar
        finally:
            bar.close()


# -- the verb boundary ---------------------------------------------------------------------
def _decls(params: Any) -> set[str]:
    """The option strings (``--context``, ``-o``) the parameters declare."""
    out: set[str] = set()
    for p in params:
        for meta in getattr(p.annotation, "__metadata__", ()):
            decls = getattr(meta, "param_decls", None) or ()
            default = getattr(meta, "default", None)
            out.update(d for d in (*decls, default) if isinstance(d, str) and d.startswith("-"))
    return out


def verb(*, kube: bool = True, names: bool = True, db: bool = False,
         storage: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., None]]:
    """Make a function a verb: add the shared options and run it in the boundary.

    The function declares its own arguments and options and a ``common: Common``
    parameter (not an option). It returns the finished operation's result (or None), which
    ``outcome.exit_code`` maps to the exit code.
    """
    groups: list[inspect.Parameter] = [*(KUBE_OPTIONS if kube else ()),
                                       *(NAME_OPTIONS if names else ())]
    if db:
        from kubectl_runai_dr.cli.db_options import DB_OPTIONS  # it imports this module

        groups += DB_OPTIONS
    if storage is not None:  # "read" or "write": bundles in s3://, encrypted
        from kubectl_runai_dr.cli.storage_options import storage_options

        groups += storage_options(storage)
    groups += OUTPUT_OPTIONS
    shared = [p.name for p in groups]

    def decorate(func: Callable[..., Any]) -> Callable[..., None]:
        sig = inspect.signature(func, eval_str=True)
        if "common" not in sig.parameters:
            raise TypeError(f"verb {func.__name__} must take a `common: Common` parameter")
        own = [p for p in sig.parameters.values() if p.name != "common"]
        clash = ({p.name for p in own} & set(shared)) | (_decls(own) & _decls(groups))
        if clash:
            raise TypeError(f"verb {func.__name__} re-declares shared options: "
                            + ", ".join(sorted(clash)))

        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> None:
            flags = {name: kwargs.pop(name) for name in shared}
            try:
                common = Common.from_flags(flags, storage)
            except DrError as exc:
                common = Common()
                with error_boundary(common):
                    raise exc
            with error_boundary(common):
                from kubectl_runai_dr.cli.outcome import exit_code

                code = exit_code(func(*args, common=common, **kwargs))
                sys.stdout.flush()  # a reader that went away shows here, not at exit
                if code:
                    raise typer.Exit(int(code))

        params = [*own, *groups]
        run.__signature__ = sig.replace(  # type: ignore[attr-defined]
            parameters=params, return_annotation=None)
        run.__annotations__ = {p.name: p.annotation for p in params}
        return run

    return decorate


def quiet_broken_pipe() -> None:
    """The reader of stdout went away (``| head -1``): stop quietly, as Unix tools do.

    stdout is pointed at /dev/null so that the interpreter's final flush does not fail
    again; the exit code is 141 (128 + SIGPIPE), what a shell shows for such a tool."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    raise typer.Exit(BROKEN_PIPE)


@contextlib.contextmanager
def error_boundary(common: Common) -> Iterator[None]:
    """Turn the tool's errors into one clear message and the documented exit code.
    (render, and rich with it, is imported only when there is an error to show: `version`
    and the other quick paths do without.)"""
    try:
        yield
    except typer.Exit:
        raise
    except BrokenPipeError:
        quiet_broken_pipe()
    except DrError as exc:
        from kubectl_runai_dr import render

        _, err = render.consoles(common.no_color)
        render.print_error(err, exc, verbose=common.verbose)
        raise typer.Exit(int(exc.exit_code)) from None
    except KeyboardInterrupt:
        from kubectl_runai_dr import render

        _, err = render.consoles(common.no_color)
        err.print("interrupted")
        raise typer.Exit(int(ExitCode.ABORTED)) from None
    except Exception as exc:
        from kubectl_runai_dr import render

        _, err = render.consoles(common.no_color)
        render.print_error(err, exc, verbose=common.verbose)
        raise typer.Exit(int(ExitCode.ERROR)) from None
