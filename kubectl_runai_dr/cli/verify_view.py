"""What `verify` prints: valid or the problems; with --drill, the per-database check."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kubectl_runai_dr import render

if TYPE_CHECKING:
    from kubectl_runai_dr.cli.options import Common
    from kubectl_runai_dr.cli.verify import VerifyResult


def checked(common: Common, result: VerifyResult, *, drill_follows: bool) -> None:
    """The checksums' verdict; for json/yaml the document, unless a drill adds to it."""
    out, err = render.consoles(common.no_color)
    if not common.table:
        if not drill_follows:
            render.emit(result.to_json(), common.output.value)
        return
    problems = result.problems
    name = render.escape(str(result.bundle))
    if problems:
        err.print(render.table("Problems", ["FILE", render.Col("PROBLEM", text=True)],
                               [[render.escape(p.file), render.escape(p.message)]
                                for p in problems]))
        render.say(err, f"[bold red]error:[/] {name} is not valid: {len(problems)} "
                   f"problem(s), first: {render.escape(problems[0].file)} "
                   f"{render.escape(problems[0].message)}", indent=len("error: "))
        return
    render.say(out, f"{name}: valid ({result.files} files, "
               f"{render.human_size(float(result.bytes))} checked)")
    if result.status == "partial":
        render.warn(err, "the bundle is valid but PARTIAL: some components failed at backup "
                    "time (`kubectl runai-dr inspect` shows which)")


def drilled(common: Common, result: VerifyResult) -> None:
    if not common.table:
        render.emit(result.to_json(), common.output.value)
        return
    assert result.drill is not None
    out, err = render.consoles(common.no_color)
    out.print("\n[bold]drill[/]: restored into scratch databases, checked, dropped")
    _database_table(out, err, result.drill.to_json())


def _database_table(out: Any, err: Any, data: dict[str, Any]) -> None:
    """Per database: what was done, the check, tables, rows and the differences."""
    rows = []
    for db in data["databases"]:
        note = "; ".join(db["differences"][:10]) or "row counts match the backup"
        rows.append([render.escape(db["database"]), render.escape(db["action"]),
                     render.styled("ok" if db["ok"] else "failed"), str(db["tables"]),
                     str(db["rows"]), render.escape(note)])
    out.print(render.table(None, ["DATABASE", "ACTION", "CHECK", render.Col("TABLES", drop=2),
                                  render.Col("ROWS", drop=1), render.Col("NOTE", text=True)],
                           rows))
    out.print()
    render.say(out, f"target: {render.escape(data['target'])}")
    for w in data["warnings"]:
        render.warn(err, w)
    if not data["ok"]:
        render.warn(err, "the restored data differs from the backup (see NOTE)")
