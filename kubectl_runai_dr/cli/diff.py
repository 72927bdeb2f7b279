"""`kubectl runai-dr diff BUNDLE_A BUNDLE_B` and `diff BUNDLE` (against the live cluster)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated

import typer

from kubectl_runai_dr.cli import complete
from kubectl_runai_dr.cli import options as o
from kubectl_runai_dr.errors import DrError, ExitCode

COMPARE = "Comparison"


@contextlib.contextmanager
def trouble_is_two() -> Iterator[None]:
    """As diff(1): 1 means differences, so an error never exits 1. The tool's errors keep
    their documented codes (usage 2, invalid bundle 4, unreachable 5, forbidden 6, ...);
    a failure that would exit 1, or a bug, exits 2."""
    try:
        yield
    except DrError as exc:
        if exc.exit_code < ExitCode.USAGE:
            exc.exit_code = ExitCode.USAGE
        raise
    except (typer.Exit, BrokenPipeError):
        raise
    except Exception as exc:
        err = DrError(f"unexpected {type(exc).__name__}: {exc}",
                      hint="run again with -v for the full traceback, and report it")
        err.exit_code = ExitCode.USAGE
        raise err from exc


@o.verb(db=True, storage="read")
def diff(
    bundle_a: Annotated[str, typer.Argument(
        metavar="BUNDLE_A", help="A bundle: the earlier state.", show_default=False,
        autocompletion=complete.bundles)],
    bundle_b: Annotated[str | None, typer.Argument(
        metavar="BUNDLE_B", help="Another bundle: the later state (default: the live "
        "cluster of the current context).", show_default=False,
        autocompletion=complete.bundles)] = None,
    only: Annotated[list[str] | None, typer.Option(
        "--only", metavar="COMPONENT,...", help="Compare only these components (comma list "
        "or repeated).", rich_help_panel=COMPARE, show_default=False, callback=o.comma_list,
        autocompletion=complete.diff_components)] = None,
    skip: Annotated[list[str] | None, typer.Option(
        "--skip", metavar="COMPONENT,...", help="Leave out these components (comma list or "
        "repeated).", rich_help_panel=COMPARE, show_default=False, callback=o.comma_list,
        autocompletion=complete.diff_components)] = None,
    stat: Annotated[bool, typer.Option(
        "--stat", help="The summary only: counts per component.",
        rich_help_panel=COMPARE)] = False,
    *,
    common: o.Common,
) -> object:
    """Show what changed between two bundles, or since a bundle (against the live cluster).

    Per component, in Run:ai's terms: helm values and the RunaiConfig spec by dotted path,
    chart versions; projects, namespaces, role bindings and their subjects; templates;
    database row counts per table; volume snapshots; scheduling objects. Secret-looking
    values are shown as short digests, never in clear. Server-set fields (resourceVersion,
    uid, timestamps, managedFields, status) never count.

    Exit codes, as diff(1): 0 no differences, 1 differences, 2 or more an error (4 a bundle
    that cannot be read, 5 cluster unreachable, 6 forbidden).
    """
    import secrets

    from kubectl_runai_dr.cli import diff_view as view
    from kubectl_runai_dr.ops import diff as op

    with trouble_is_two():
        opts = op.DiffOptions(only=tuple(only or ()), skip=tuple(skip or ()),
                              names=common.names, db=common.db_options())
        op.selected(opts)  # a mistyped component is a usage error, before anything is read
        key = secrets.token_bytes(16)  # this run's digests: comparable within it only
        if bundle_b is not None:
            outcome = op.diff_bundles(bundle_a, bundle_b, opts, key)
        else:
            kube = common.connect()
            kube.server_version()  # unreachable or refused: one clear error, exit 5
            with common.progress() as progress:
                outcome = op.diff_live(bundle_a, kube, opts, key, progress)
        view.show(common, outcome, stat=stat)
    return outcome
