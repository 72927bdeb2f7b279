"""The ``--db-*`` options shared by backup, restore-database and verify --drill."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from kubectl_runai_dr.cli import options as o

DB = "Database"

DbMode = Annotated[str, typer.Option(
    "--db-mode", help="pod: run psql/pg_dump/pg_restore inside the database pod (exec); "
    "local: run this machine's PostgreSQL client (external database).", rich_help_panel=DB)]
DbNamespace = Annotated[str | None, typer.Option(
    "--db-namespace", help="Namespace of the database pod (default: the control plane's).",
    rich_help_panel=DB, show_default=False)]
DbPod = Annotated[str | None, typer.Option(
    "--db-pod", help="The database pod (default: the Ready pod of StatefulSet "
    "runai-backend-postgresql).", rich_help_panel=DB, show_default=False)]
DbContainer = Annotated[str | None, typer.Option(
    "--db-container", help="Its container (default: postgresql, else the first).",
    rich_help_panel=DB, show_default=False)]
DbHost = Annotated[str | None, typer.Option(
    "--db-host", help="External database host (default: from the control plane's values).",
    rich_help_panel=DB, show_default=False)]
DbPort = Annotated[int | None, typer.Option(
    "--db-port", help="External database port.", rich_help_panel=DB, show_default=False)]
DbUser = Annotated[str | None, typer.Option(
    "--db-user", help="Database user (default: postgres / from the values).",
    rich_help_panel=DB, show_default=False)]
DbName = Annotated[list[str] | None, typer.Option(
    "--db-name", help="Only this database (repeatable; default: every Run:ai database on "
    "the server).", rich_help_panel=DB, show_default=False,
        callback=o.comma_list)]
DbPasswordEnv = Annotated[str | None, typer.Option(
    "--db-password-env", help="Name of the environment variable holding an external "
    "database's password (default: PGPASSWORD, then the values' existingSecret). The password "
    "itself is never a flag.", rich_help_panel=DB, show_default=False)]


def component_options(mode: str, namespace: str | None, pod: str | None,
                      container: str | None, host: str | None, port: int | None,
                      user: str | None, names: list[str] | None,
                      password_env: str | None) -> dict[str, Any]:
    return {"db_mode": mode, "db_namespace": namespace, "db_pod": pod,
            "db_container": container, "db_host": host, "db_port": port, "db_user": user,
            "db_names": list(names or []), "db_password_env": password_env}
