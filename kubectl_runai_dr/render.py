"""All terminal output: tables, progress, errors, and -o json|yaml. The only rich importer.

Data is built once by the operations; this module renders it for people (tables) or for
programs (json/yaml on stdout, nothing else there). Colour only on a terminal, never with
--no-color or NO_COLOR.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import Any

import yaml
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.progress import Progress as RichProgressBar
from rich.table import Table

from kubectl_runai_dr.errors import DrError

STATUS_STYLE = {"ok": "green", "not present": "dim", "skipped": "dim", "failed": "bold red",
                "complete": "green", "partial": "bold red", "warning": "yellow",
                "critical": "bold red", "info": "cyan", "yes": "green", "no": "bold red",
                "unknown": "yellow", "n/a": "dim"}


class _Console(Console):
    def on_broken_pipe(self) -> None:
        """The reader went away (``| head``): the verb boundary stops quietly with the exit
        code such a tool has (rich alone would exit 1)."""
        self.quiet = True
        raise BrokenPipeError


def consoles(no_color: bool) -> tuple[Console, Console]:
    """(stdout, stderr) consoles honouring --no-color, NO_COLOR and non-terminals."""
    plain = no_color or bool(os.environ.get("NO_COLOR"))
    out = _Console(no_color=plain, highlight=False, soft_wrap=False)
    err = _Console(stderr=True, no_color=plain, highlight=False)
    return out, err


def emit(data: Any, fmt: str) -> None:
    """Machine output on stdout: exactly the document, nothing else."""
    if fmt == "json":
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    elif fmt == "yaml":
        sys.stdout.write(yaml.safe_dump(data, sort_keys=True, default_flow_style=False))
    else:
        raise ValueError(fmt)
    sys.stdout.flush()


def print_error(err: Console, exc: BaseException, *, verbose: int = 0) -> None:
    if verbose:
        err.print(escape("".join(traceback.format_exception(type(exc), exc,
                                                            exc.__traceback__))),
                  style="dim")
    if isinstance(exc, DrError):
        err.print(f"[bold red]error:[/] {escape(exc.message)}")
        if exc.hint:
            err.print(f"[yellow]hint:[/] {escape(exc.hint)}")
    else:
        err.print(f"[bold red]error:[/] unexpected {type(exc).__name__}: {escape(str(exc))}")
        if not verbose:
            err.print("[yellow]hint:[/] run again with -v for the full traceback, and report it")


def warn(err: Console, message: str) -> None:
    err.print(f"[yellow]warning:[/] {escape(message)}")


def styled(status: str) -> str:
    style = STATUS_STYLE.get(status)
    return f"[{style}]{escape(status)}[/]" if style else escape(status)


def human_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def human_age(created: str, now: datetime | None = None) -> str:
    try:
        when = datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return "unknown"
    seconds = int(((now or datetime.now(timezone.utc)) - when).total_seconds())
    if seconds < 0:
        return "in the future"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[str]]) -> Table:
    t = Table(title=title, title_justify="left", title_style="bold", show_edge=False,
              header_style="bold")
    for c in columns:
        t.add_column(c, overflow="fold")
    for row in rows:
        t.add_row(*row)
    return t


def section(console: Console, title: str) -> None:
    """A titled section of a report: a blank line, then the title."""
    console.print()
    console.print(f"[bold underline]{escape(title)}[/]")


def key_values(pairs: Sequence[tuple[str, str]]) -> Table:
    t = Table.grid(padding=(0, 2))
    t.add_column(style="bold")
    t.add_column()
    for k, v in pairs:
        t.add_row(k, v)
    return t


def component_rows(manifest: dict[str, Any]) -> list[list[str]]:
    files = manifest.get("files", {})
    rows = []
    for c in manifest.get("components", []):
        size = sum(files.get(f, {}).get("size", 0) for f in c.get("files", []))
        note = c.get("reason", "")
        if c.get("warnings"):
            note = "; ".join(filter(None, [note, *c["warnings"]]))
        rows.append([escape(c["name"]), styled(c["status"]), str(c.get("objects", 0)),
                     human_size(size) if c.get("files") else "-", escape(note)])
    return rows


class RichProgress:
    """The components' Progress protocol drawn with rich on stderr (only on a terminal)."""

    def __init__(self, console: Console) -> None:
        self._enabled = console.is_terminal
        self._bar = RichProgressBar(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
            MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True)
        self._task: Any = None
        self._started = False

    def start(self, description: str, total: int | None = None) -> None:
        if not self._enabled:
            return
        if not self._started:
            self._bar.start()
            self._started = True
        if self._task is not None:
            self._bar.remove_task(self._task)
        self._task = self._bar.add_task(description, total=total)

    def advance(self, amount: int = 1) -> None:
        if self._task is not None:
            self._bar.advance(self._task, amount)

    def update(self, *, completed: int | None = None, total: int | None = None,
               description: str | None = None) -> None:
        if self._task is not None:
            kwargs: dict[str, Any] = {}
            if completed is not None:
                kwargs["completed"] = completed
            if total is not None:
                kwargs["total"] = total
            if description is not None:
                kwargs["description"] = description
            self._bar.update(self._task, **kwargs)

    def finish(self) -> None:
        if self._task is not None:
            self._bar.remove_task(self._task)
            self._task = None

    def close(self) -> None:
        if self._started:
            self._bar.stop()
            self._started = False
