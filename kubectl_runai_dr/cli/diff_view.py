"""What `diff` prints: a one-screen summary (counts per component), then per component
what changed, in the domain's words; ``--stat`` the summary alone. json/yaml: the same
document (``--stat``: without the lists of changes)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kubectl_runai_dr import render

if TYPE_CHECKING:
    from rich.console import Console

    from kubectl_runai_dr.cli.options import Common
    from kubectl_runai_dr.ops.diff import DiffOutcome

SIGN = {"added": "[green]+[/]", "removed": "[red]-[/]", "changed": "[yellow]~[/]"}
FEW = 100  # changes shown per component in the table view (-v: all)
WHOLE = ("release", "RunaiConfig", "project", "namespace", "rolebinding", "database",
         "snapshot")


def document(outcome: DiffOutcome, *, stat: bool) -> dict[str, Any]:
    doc = outcome.to_json()
    if stat:
        for comp in doc["components"]:
            comp.pop("changes", None)
    return doc


def show(common: Common, outcome: DiffOutcome, *, stat: bool) -> None:
    out, err = render.consoles(common.no_color)
    if common.table:
        print_report(out, outcome, stat=stat, verbose=common.verbose)
    else:
        render.emit(document(outcome, stat=stat), common.output.value)
    for comp in outcome.errors:
        render.say(err, f"[bold red]error:[/] {render.escape(comp.name)}: "
                   f"{render.escape(comp.error)}", indent=len("error: "))


def _side(label: str, side: Any) -> str:
    when = f", created {side.created}" if side.created else ""
    ctx = f", context {side.context}" if side.context and side.kind == "bundle" else ""
    return f"[bold]{label}[/] {render.escape(side.label)}{render.escape(when + ctx)}"


def _note(comp: Any) -> str:
    if comp.error:
        return f"[red]error[/]: {render.escape(comp.error)}"
    if not comp.compared:
        why = [f"{s}: {render.escape(v)}" for s, v in (("a", comp.a), ("b", comp.b))
               if v and v != "held" and not v.startswith("not present")]
        return "not compared (" + "; ".join(why) + ")"
    absent = [s for s, v in (("a", comp.a), ("b", comp.b)) if v.startswith("not present")]
    note = "same" if not comp.changes else ""
    if absent:
        note = ", ".join(filter(None, [note, f"not present in {' and '.join(absent)}"]))
    return note


def report(outcome: DiffOutcome, *, stat: bool, verbose: int = 0) -> list[str]:
    """The table view as markup lines: the summary table is drawn by ``summary``."""
    lines = [_side("a:", outcome.a), _side("b:", outcome.b), ""]
    n = outcome.differences
    differing = [c for c in outcome.components if c.compared and c.changes]
    lines.append(f"{n} difference{'s' if n != 1 else ''} in {len(differing)} component"
                 f"{'s' if len(differing) != 1 else ''}" if n else "no differences")
    if stat:
        return lines
    for comp in differing:
        lines += ["", f"[bold underline]{render.escape(comp.title)}[/]"]
        shown = comp.changes if verbose else comp.changes[:FEW]
        lines += [f"  {SIGN[ch.change]} {describe(ch)}" for ch in shown]
        if len(shown) < len(comp.changes):
            lines.append(f"  … and {len(comp.changes) - len(shown)} more (-v shows all, "
                         "-o json lists every change)")
    return lines


def _v(value: Any) -> str:
    """A value as JSON writes it (true, null, 3); a string as it is, quoted when it is
    empty, spans lines or has blanks at its ends."""
    import json

    plain = isinstance(value, str) and value and value.strip() == value and "\n" not in value
    return render.escape(value if plain else json.dumps(value, ensure_ascii=False))


def describe(ch: Any) -> str:
    """One change as a line of markup, in the domain's words."""
    e = render.escape
    if ch.what == "subject":
        head = f"subject {e(ch.path)} in {e(ch.item)}"
    elif ch.what == "rows":
        head = f"rows of {e(ch.path)} in database {e(ch.item)}"
    elif ch.what == "table":
        head = f"table {e(ch.path)} in database {e(ch.item)}"
    elif ch.what == "size":
        head = f"size of snapshot {e(ch.item)} (claim {e(ch.path)})"
    elif ch.what in WHOLE and not ch.path:
        head = f"{e(ch.what)} {e(ch.item)}"
    elif ch.what in ("value", "spec"):
        head = f"{e(ch.item)} {e(ch.path)}"
    elif ch.what in ("label", "annotation"):
        head = f"{e(ch.what)} {e(ch.path)} on {e(ch.item)}"
    elif ch.what == "object":
        head = f"{e(ch.item)} {e(ch.path)}".rstrip()
    else:
        head = " ".join(e(x) for x in (ch.what, ch.item, ch.path) if x)
    if ch.what == "snapshot" and ch.path:
        head = f"snapshot {e(ch.item)} (claim {e(ch.path)})"
    if ch.project and ch.project not in ch.item:
        head += f" (project {e(ch.project)})"
    if ch.change == "changed":
        tail = f": {_v(ch.old)} → {_v(ch.new)}"
        if ch.what == "rows" and isinstance(ch.old, int) and isinstance(ch.new, int):
            tail += f" ({ch.new - ch.old:+d})"
        return head + tail
    if ch.change == "added" and ch.new is not None:
        return f"{head}: {_v(ch.new)}"
    if ch.change == "removed" and ch.old is not None:
        return f"{head} (was {_v(ch.old)})"
    return head


def summary_rows(outcome: DiffOutcome) -> list[list[str]]:
    rows = []
    for comp in outcome.components:
        counts = comp.counts()
        cells = [str(counts[k]) if comp.compared else "-" for k in ("added", "removed",
                                                                      "changed")]
        rows.append([render.escape(comp.name), *cells, _note(comp)])
    return rows


def print_report(out: Console, outcome: DiffOutcome, *, stat: bool, verbose: int) -> None:
    lines = report(outcome, stat=stat, verbose=verbose)
    for line in lines[:3]:
        render.say(out, line, indent=6)
    out.print(render.table(None, ["COMPONENT", render.Col("ADDED", justify="right"),
                                  render.Col("REMOVED", justify="right"),
                                  render.Col("CHANGED", justify="right"),
                                  render.Col("NOTE", text=True)], summary_rows(outcome)))
    for line in lines[3:]:
        render.say(out, line, indent=6)
