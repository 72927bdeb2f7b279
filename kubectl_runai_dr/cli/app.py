"""The command tree. One module per verb; this file only registers them."""

from __future__ import annotations

import os

from kubectl_runai_dr.cli import restore as restore_verb
from kubectl_runai_dr.cli.backup import backup
from kubectl_runai_dr.cli.bundles import bundles
from kubectl_runai_dr.cli.command import App
from kubectl_runai_dr.cli.diff import diff
from kubectl_runai_dr.cli.helm import helm_app
from kubectl_runai_dr.cli.inspect import inspect
from kubectl_runai_dr.cli.keygen import keygen
from kubectl_runai_dr.cli.namespaces import namespaces
from kubectl_runai_dr.cli.protect import protect
from kubectl_runai_dr.cli.schedule import schedule_app
from kubectl_runai_dr.cli.snapshot import snapshot_app
from kubectl_runai_dr.cli.status import status
from kubectl_runai_dr.cli.verify import verify
from kubectl_runai_dr.cli.version import version

PROG = "kubectl runai-dr"
# Completion requests come through kubectl (`kubectl_complete-runai_dr`, kubectl's plugin
# completion convention); the variable is named here because click would derive it from
# PROG, which holds a space.
COMPLETE_VAR = "_KUBECTL_RUNAI_DR_COMPLETE"

app = App(
    name=PROG,
    help="Back up, drill and restore a self-hosted Run:ai installation.\n\n"
    "Uses the current kubeconfig context; honours --kubeconfig, --context and KUBECONFIG "
    "given after the command, as kubectl does.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,  # typer's --install-completion would hook the wrong program name
)
app.command()(backup)
app.command()(inspect)
app.command()(bundles)
app.command()(restore_verb.restore)
app.command()(namespaces)
app.add_typer(helm_app, name="helm")
app.command(name="restore-database", help=restore_verb.ALIAS_HELP,
            context_settings={"default_map": restore_verb.ALIAS_DEFAULTS})(restore_verb.restore)
app.add_typer(snapshot_app, name="snapshot")
app.command()(protect)
app.add_typer(schedule_app, name="schedule")
app.command()(status)
app.command()(verify)
app.command()(keygen)
app.command()(diff)
app.command()(version)


def run(argv: list[str] | None = None) -> None:
    """Run the CLI; typer's standalone mode maps usage errors to exit code 2."""
    if COMPLETE_VAR in os.environ:  # a completion request: register typer's shell support
        from typer import _completion_classes

        from kubectl_runai_dr.cli import lean_help
        from kubectl_runai_dr.cli.lean_help import plain_help

        _completion_classes.completion_init()
        _completion_classes._sanitize_help_text = plain_help  # rich markup off, without rich
        lean_help.values_as_typed()  # no conversion (pydantic) of the words given so far
    app(args=argv, prog_name=PROG, complete_var=COMPLETE_VAR)
