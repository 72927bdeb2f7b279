"""The ``--db-*`` options (backup, restore, verify --drill): where the database is.

Declared once; a verb gets them with ``@verb(db=True)`` and reads them as ``common.db``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kubectl_runai_dr.cli.options import comma_list, parse_duration, shared_option
from kubectl_runai_dr.errors import UsageError

if TYPE_CHECKING:
    from kubectl_runai_dr.plan.database import DbOptions

DB = "Database"

DB_OPTIONS = (
    shared_option("db_mode", "pod", "--db-mode", type=str, metavar="pod|local", rich_help_panel=DB,
            help="pod: run psql/pg_dump/pg_restore inside the database pod (exec); local: run "
            "this machine's PostgreSQL client (external database)."),
    shared_option("db_namespace", None, "--db-namespace", type=str | None, metavar="NAMESPACE",
            rich_help_panel=DB,
            help="Namespace of the database pod (default: the control plane's)."),
    shared_option("db_pod", None, "--db-pod", type=str | None, metavar="NAME", rich_help_panel=DB,
            help="The database pod (default: the Ready pod of StatefulSet "
            "runai-backend-postgresql)."),
    shared_option("db_container", None, "--db-container", type=str | None, metavar="NAME",
            rich_help_panel=DB, help="Container of the database pod (default: postgresql, "
            "else the pod's first container)."),
    shared_option("db_host", None, "--db-host", type=str | None, metavar="HOST", rich_help_panel=DB,
            help="External database host (default: from the control plane's values)."),
    shared_option("db_port", None, "--db-port", type=int | None, metavar="PORT", rich_help_panel=DB,
            help="External database port."),
    shared_option("db_user", None, "--db-user", type=str | None, metavar="USER", rich_help_panel=DB,
            help="Database user (default: postgres / from the values)."),
    shared_option("db_name", None, "--db-name", type=list[str] | None, metavar="NAME,...",
            rich_help_panel=DB, callback=comma_list,
            help="Only these databases (comma list or repeated; default: every Run:ai "
            "database on the server)."),
    shared_option("db_password_env", None, "--db-password-env", type=str | None, metavar="VAR",
            rich_help_panel=DB,
            help="Name of the environment variable holding an external database's password "
            "(default: PGPASSWORD, then the values' existingSecret). The password itself is "
            "never a flag."),
    shared_option("db_lock_wait_timeout", "2m", "--db-lock-wait-timeout", type=str,
            metavar="DURATION", rich_help_panel=DB,
            help="How long the dump and the tool's queries wait for a table lock another "
            "session holds (pg_dump's lock wait timeout, lock_timeout); 0 waits forever."),
    shared_option("db_statement_timeout", "10m", "--db-statement-timeout", type=str,
            metavar="DURATION", rich_help_panel=DB,
            help="The longest one of the tool's own queries may run (statement_timeout; the "
            "row counts of a large database take longest); 0: no limit."),
)


@dataclass(frozen=True)
class DbFlags:
    """The ``--db-*`` options as given."""

    mode: str = "pod"
    namespace: str | None = None
    pod: str | None = None
    container: str | None = None
    host: str | None = None
    port: int | None = None
    user: str | None = None
    names: tuple[str, ...] = ()
    password_env: str | None = None
    lock_wait_timeout: str = "2m"
    statement_timeout: str = "10m"

    @classmethod
    def from_flags(cls, flags: dict[str, Any]) -> DbFlags:
        """Takes the ``db_*`` entries out of ``flags``."""
        return cls(mode=flags.pop("db_mode"), namespace=flags.pop("db_namespace"),
                   pod=flags.pop("db_pod"), container=flags.pop("db_container"),
                   host=flags.pop("db_host"), port=flags.pop("db_port"),
                   user=flags.pop("db_user"), names=tuple(flags.pop("db_name") or ()),
                   password_env=flags.pop("db_password_env"),
                   lock_wait_timeout=flags.pop("db_lock_wait_timeout"),
                   statement_timeout=flags.pop("db_statement_timeout"))

    def options(self, **override: Any) -> DbOptions:
        """As the database steps read them; a bad value is a usage error."""
        from kubectl_runai_dr.plan.database import DbOptions

        fields = {"mode": self.mode, "namespace": self.namespace, "pod": self.pod,
                  "container": self.container, "host": self.host, "port": self.port,
                  "user": self.user, "databases": self.names,
                  "password_env": self.password_env,
                  "lock_wait_timeout": parse_duration(
                      self.lock_wait_timeout, flag="--db-lock-wait-timeout") or 0.0,
                  "statement_timeout": parse_duration(
                      self.statement_timeout, flag="--db-statement-timeout") or 0.0,
                  **override}
        try:
            return DbOptions(**fields)
        except ValueError as exc:
            raise UsageError(str(exc)) from None

