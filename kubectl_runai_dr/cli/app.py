"""The command tree. One module per verb; this file only registers them."""

from __future__ import annotations

import typer

from kubectl_runai_dr.cli.backup import backup
from kubectl_runai_dr.cli.helm import helm_app
from kubectl_runai_dr.cli.inspect import inspect
from kubectl_runai_dr.cli.namespaces import namespaces
from kubectl_runai_dr.cli.protect import protect
from kubectl_runai_dr.cli.restore import restore
from kubectl_runai_dr.cli.restore_database import restore_database
from kubectl_runai_dr.cli.snapshot import snapshot_app
from kubectl_runai_dr.cli.status import status
from kubectl_runai_dr.cli.verify import verify
from kubectl_runai_dr.cli.version import version

PROG = "kubectl runai-dr"

app = typer.Typer(
    name=PROG,
    help="Back up, drill and restore a self-hosted Run:ai installation.\n\n"
    "Uses the current kubeconfig context; honours --kubeconfig, --context and KUBECONFIG.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)
app.command()(backup)
app.command()(inspect)
app.command()(restore)
app.command()(namespaces)
app.add_typer(helm_app, name="helm")
app.command(name="restore-database")(restore_database)
app.add_typer(snapshot_app, name="snapshot")
app.command()(protect)
app.command()(status)
app.command()(verify)
app.command()(version)


def run(argv: list[str] | None = None) -> None:
    """Run the CLI; typer's standalone mode maps usage errors to exit code 2."""
    app(args=argv, prog_name=PROG)
