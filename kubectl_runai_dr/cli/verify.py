"""`kubectl runai-dr verify BUNDLE`: format, structure and every checksum; `--drill`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kubectl_runai_dr.cli import complete
from kubectl_runai_dr.cli import options as o

if TYPE_CHECKING:
    from kubectl_runai_dr.bundle.reader import Problem
    from kubectl_runai_dr.components.database import DatabaseRestoreResult

DRILL = "Drill"


@dataclass
class VerifyResult:
    bundle: str | Path
    problems: list[Problem]
    status: str | None  # the manifest's: complete or partial
    files: int
    bytes: int
    drill: DatabaseRestoreResult | None = None

    def to_json(self) -> dict[str, Any]:
        return {"bundle": str(self.bundle), "valid": not self.problems, "status": self.status,
                "files": self.files, "bytes": self.bytes,
                "problems": [{"file": p.file, "message": p.message} for p in self.problems],
                **({"drill": self.drill.to_json()} if self.drill is not None else {})}


@o.verb(db=True, storage="read")
def verify(
    bundle: Annotated[str, typer.Argument(metavar="BUNDLE", help="The bundle: a file or "
                                          "s3://BUCKET/KEY.",
                                           show_default=False,
                                           autocompletion=complete.bundles)],
    drill: Annotated[bool, typer.Option(
        "--drill", help="Also restore the database dumps into a scratch database on the live "
        "server (or --target), check every table's row count, and drop it.",
        rich_help_panel=DRILL)] = False,
    target: Annotated[str | None, typer.Option(
        "--target", metavar="[NAMESPACE/]POD", help="The database pod for the drill "
        "(default: the control plane's PostgreSQL); the same as --db-namespace and --db-pod.",
        rich_help_panel=DRILL, show_default=False)] = None,
    *,
    common: o.Common,
) -> VerifyResult:
    """Check a bundle: format version, structure and the sha256 of every file.

    With --drill, the database dumps are also restored into scratch databases on the live
    server and checked table by table (then dropped): the restore test a backup needs.

    Exit codes: 0 valid, 4 corrupt, truncated or tampered (the wrong file is named), 3 the
    drill found differences.
    """
    from kubectl_runai_dr.bundle.reader import Bundle
    from kubectl_runai_dr.cli import verify_view as view

    b = Bundle.open(bundle)
    try:
        if drill:  # a drill of what the bundle does not hold is a usage error, said first
            from kubectl_runai_dr.components.database import read_metadata

            read_metadata(b)
        files = b.files
        result = VerifyResult(bundle, b.verify(), b.manifest.get("status"), len(files),
                              sum(f["size"] for f in files.values()))
        drilling = drill and not result.problems
        view.checked(common, result, drill_follows=drilling)
        if drilling:
            from kubectl_runai_dr.components.database import DatabaseRestoreOptions
            from kubectl_runai_dr.components.database import drill as run_drill

            ns, _, pod = (target or "").rpartition("/")
            where = {"pod": pod, "namespace": ns or None} if target else {}
            opts = DatabaseRestoreOptions(db=common.db_options(**where), names=common.names)
            kube = common.connect()
            with common.progress() as progress:
                result.drill = run_drill(kube, b, opts, progress)
            view.drilled(common, result)
    finally:
        b.close()
    return result
