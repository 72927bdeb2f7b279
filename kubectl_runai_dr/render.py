"""All terminal output: tables, progress, errors, and -o json|yaml. The only rich importer.

Data is built once by the operations; this module renders it for people (tables) or for
programs (json/yaml on stdout, nothing else there). Colour only on a terminal, never with
--no-color or NO_COLOR.

Widths: output that is not a terminal (a pipe, a file, cron mail, a CI log) is never
wrapped, and no line ends in spaces. On a terminal nothing that is a name, a key, a number
or a time is ever split: free text folds between words (continuation lines indented), a
table that does not fit leaves out its low-value columns (or shortens them), then puts its
free-text column under it; a word longer than the line runs over rather than being cut.
"""

from __future__ import annotations

import json
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, JustifyMethod, RenderResult
from rich.markup import escape as escape  # re-exported: the views escape with it
from rich.measure import Measurement
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.progress import Progress as RichProgressBar
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from kubectl_runai_dr.errors import DrError

STATUS_STYLE = {"ok": "green", "not present": "dim", "skipped": "dim", "failed": "bold red",
                "complete": "green", "partial": "bold red", "warning": "yellow",
                "critical": "bold red", "info": "cyan", "yes": "green", "no": "bold red",
                "unknown": "yellow", "n/a": "dim"}


UNLIMITED = 100_000  # the width of output that is not a terminal: nothing is wrapped
HANG = 2  # folded free text: continuation lines are indented this much
_TRAILING = re.compile(r"[ \t]+(?=\n)")


class _Console(Console):
    """A console that never splits a word: text wraps between words, and a word longer
    than the line runs over (``overflow="ignore"``, no cropping). Not a terminal: no width
    limit, and no trailing spaces (tables pad their cells)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not self.is_terminal:
            self.width = UNLIMITED

    def print(self, *objects: Any, **kwargs: Any) -> None:
        kwargs.setdefault("crop", False)
        kwargs.setdefault("overflow", "ignore")
        super().print(*objects, **kwargs)

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        text = super()._render_buffer(buffer)
        return text if self.is_terminal else _TRAILING.sub("", text)

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


# -- free text ---------------------------------------------------------------------------------
def _fold(text: Text, width: int, indent: int) -> list[Text]:
    """One paragraph folded between words: the first line ``width`` wide, the next ones
    ``width - indent`` after ``indent`` spaces. A word too long for any line stays where
    it is and runs over."""
    plain = text.plain
    words = [(m.start(), m.end()) for m in re.finditer(r"\S+", plain)]
    if not words:
        return [text[0:0]]
    lines: list[Text] = []
    start, end = 0, words[0][1]
    limit, rest = width, max(1, width - indent)
    for w_start, w_end in words[1:]:
        if cell_len(plain[start:w_end]) <= limit or cell_len(plain[w_start:w_end]) > rest:
            end = w_end
            continue
        lines.append(text[start:end])
        start, end = w_start, w_end
        limit = rest
    lines.append(text[start:end])
    return [lines[0], *(Text(" " * indent) + line for line in lines[1:])]


class Folded:
    """Free text (rich markup) folded to the width it is drawn at, between words only,
    continuation lines indented by ``indent`` (a hanging indent). Explicit line breaks
    start new paragraphs."""

    def __init__(self, markup: str, *, indent: int = HANG) -> None:
        self.text = Text.from_markup(markup)
        self.indent = indent

    def lines(self, width: int) -> list[Text]:
        return [line for para in self.text.split("\n", allow_blank=True)
                for line in _fold(para, width, self.indent)]

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for line in self.lines(options.max_width):
            yield from line.render(console)
            yield Segment.line()

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(*folded_width(self.text.plain, self.indent))


def folded_width(plain: str, indent: int = HANG) -> tuple[int, int]:
    """(narrowest, widest): the longest word with its indent, the longest line."""
    widest = max((cell_len(line) for line in plain.split("\n")), default=0)
    longest = max((cell_len(w) for w in plain.split()), default=0)
    return min(widest, longest + indent), widest


def say(console: Console, markup: str, *, indent: int = HANG) -> None:
    """Print free text folded between words with a hanging indent (on a terminal)."""
    console.print(Folded(markup, indent=indent))


def _tagged(console: Console, tag: str, style: str, message: str) -> None:
    """``tag: message``, continuation lines aligned after the tag."""
    say(console, f"[{style}]{tag}:[/] {escape(message)}", indent=len(tag) + 2)


def emit(data: Any, fmt: str) -> None:
    """Machine output on stdout: exactly the document, nothing else."""
    if fmt == "json":
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    elif fmt == "yaml":
        import yaml  # only for -o yaml

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
        _tagged(err, "error", "bold red", exc.message)
        if exc.hint:
            hint(err, exc.hint)
    else:
        _tagged(err, "error", "bold red", f"unexpected {type(exc).__name__}: {exc}")
        if not verbose:
            hint(err, "run again with -v for the full traceback, and report it")


def warn(err: Console, message: str) -> None:
    _tagged(err, "warning", "yellow", message)


def hint(err: Console, message: str) -> None:
    _tagged(err, "hint", "yellow", message)


def note(err: Console, message: str) -> None:
    _tagged(err, "note", "dim", message)


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


# -- repeated messages ---------------------------------------------------------------------------
# What varies between messages of one kind: quoted values, and words holding a digit or one
# of / . _ : @ - (names, namespaces, paths, numbers, versions). Trailing punctuation is not
# part of a word.
_VARYING = re.compile(r'"[^"]*"|\'[^\']*\'|[\w@:./-]*[\d@:./_-][\w@:./-]*(?<![.:])')
FEW = 3  # how many more of a kind a summary names


def varying(message: str) -> list[str]:
    return _VARYING.findall(message)


def shape(message: str) -> str:
    """The message with what varies masked: messages of the same shape say the same thing
    about different objects."""
    return _VARYING.sub("…", message)


def similar(messages: Iterable[str]) -> list[list[str]]:
    """Messages grouped by shape, each group in order, groups in order of first appearance."""
    groups: dict[str, list[str]] = {}
    for m in messages:
        groups.setdefault(shape(m), []).append(m)
    return list(groups.values())


def more_like_it(group: Sequence[str], *, few: int = FEW) -> str:
    """``and 209 more like it: <what differs in the next few>, …; -v lists all``."""
    first = varying(group[0])
    examples = []
    for m in group[1:few + 1]:
        differs = [v for k, v in enumerate(varying(m)) if k >= len(first) or v != first[k]]
        examples.append(" ".join(differs) or m)
    more = len(group) - 1
    return (f"and {more} more like it: {', '.join(examples)}"
            f"{', …' if more > few else ''}; -v lists all")


def aggregate(messages: Iterable[str], *, verbose: int = 0, few: int = FEW) -> list[str]:
    """Messages for a summary: with -v all of them; otherwise repeated ones (the same
    shape) as one, the first in full followed by how many more and what differs in the
    next few, so that hundreds of near-identical warnings stay one line."""
    msgs = list(messages)
    if verbose:
        return msgs
    return [g[0] if len(g) == 1 else f"{g[0]} ({more_like_it(g, few=few)})"
            for g in similar(msgs)]


# -- tables -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Col:
    """A table column. Its values are names, keys, numbers or times, never split, unless
    ``text``: free text, folded between words. ``drop``: how readily the column is left out
    when a terminal is too narrow (0: never; the highest goes first); ``short``: a shorter
    form of a value (markup to markup), tried before the column is left out."""

    header: str
    text: bool = False
    drop: int = 0
    short: Callable[[str], str] | None = None
    justify: JustifyMethod = "left"


@dataclass
class _Layout:
    shown: list[int]  # the columns in the table, in order
    short: set[int]  # of those, the ones in their short form
    below: list[int]  # free-text columns printed under the table instead
    widths: dict[int, int]  # content width of every shown column
    total: int  # the table's width


class Fitted:
    """A table drawn to fit the width it is given, see the module docstring. Cells are
    rich markup."""

    def __init__(self, title: str | None, columns: Sequence[Col],
                 rows: Iterable[Sequence[str]]) -> None:
        self.title = title
        self.columns = list(columns)
        self.rows = [list(r) for r in rows]
        self._plain = [[Text.from_markup(c).plain for c in r] for r in self.rows]

    # measuring
    def _id_width(self, i: int, short: bool) -> int:
        col = self.columns[i]
        cells = ([Text.from_markup(col.short(r[i])).plain for r in self.rows]
                 if short and col.short else [r[i] for r in self._plain])
        lines = [ln for c in cells for ln in c.split("\n")]
        return max([cell_len(col.header), *map(cell_len, lines)])

    def _text_range(self, i: int) -> tuple[int, int]:
        head = cell_len(self.columns[i].header)
        ranges = [folded_width(r[i]) for r in self._plain] or [(0, 0)]
        return (max(head, *(lo for lo, _ in ranges)), max(head, *(hi for _, hi in ranges)))

    def _overhead(self, console: Console, n: int) -> int:
        """What the table adds to its columns' content: padding and separators."""
        probe = self._table([1] * n, [Col("")] * n)
        return Measurement.get(console, console.options.update_width(UNLIMITED),
                               probe).maximum - n

    def layout(self, console: Console, width: int) -> _Layout:
        n = len(self.columns)
        ids = {i: (self._id_width(i, False), self._id_width(i, True))
               for i in range(n) if not self.columns[i].text}
        texts = {i: self._text_range(i) for i in range(n) if self.columns[i].text}
        empty = {i for i in range(n) if self.rows and not any(r[i].strip()
                                                               for r in self._plain)}
        overhead = {k: self._overhead(console, k) for k in range(1, n + 1)}

        def need(shown: list[int], short: set[int]) -> int:
            return overhead[len(shown)] + sum(
                texts[i][0] if i in texts else ids[i][1 if i in short else 0] for i in shown)

        # what may give, in order: empty columns, then by drop (highest first, the
        # rightmost of equals first), each shortened before it goes; then shortening only
        by_drop = sorted((i for i in range(n) if self.columns[i].drop or i in empty),
                         key=lambda i: (i not in empty, -self.columns[i].drop, -i))
        actions: list[tuple[str, int]] = []
        for i in by_drop:
            if self.columns[i].short and i not in empty:
                actions.append(("short", i))
            if i not in texts or i in empty:
                actions.append(("drop", i))
        actions += [("short", i) for i in range(n) if self.columns[i].short
                    and not self.columns[i].drop and i not in empty]

        def attempt(inline: bool) -> tuple[list[int], set[int], bool]:
            shown = [i for i in range(n) if inline or i not in texts or i in empty]
            short: set[int] = set()
            for act in [None, *actions]:
                if act is not None:
                    kind, i = act
                    if i not in shown or len(shown) == 1:
                        continue
                    if kind == "short":
                        short.add(i)
                    else:
                        shown.remove(i)
                if need(shown, short) <= width:
                    return shown, short, True
            return shown, short, False

        shown, short, fits = attempt(True)
        if not fits and any(i not in empty for i in texts):
            shown, short, fits = attempt(False)
        below = [i for i in texts if i not in shown and i not in empty]
        widths = {i: texts[i][0] if i in texts else ids[i][1 if i in short else 0]
                  for i in shown}
        spare = width - need(shown, short)
        growing = [i for i in shown if i in texts]
        while spare > 0:
            wanting = [i for i in growing if widths[i] < texts[i][1]]
            if not wanting:
                break
            share = max(1, spare // len(wanting))
            for i in wanting:
                add = min(share, texts[i][1] - widths[i], spare)
                widths[i] += add
                spare -= add
        total = overhead[len(shown)] + sum(widths.values())
        return _Layout(shown, short, below, widths, total)

    # drawing
    def _table(self, widths: Sequence[int], columns: Sequence[Col]) -> Table:
        t = Table(title=self.title, title_justify="left", title_style="bold",
                  show_edge=False, header_style="bold")
        for w, col in zip(widths, columns, strict=True):
            t.add_column(col.header, width=w, no_wrap=not col.text, justify=col.justify,
                         overflow="fold" if col.text else "ignore")
        return t

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        lay = self.layout(console, options.max_width)
        cols = [self.columns[i] for i in lay.shown]
        t = self._table([lay.widths[i] for i in lay.shown], cols)
        for row in self.rows:
            cells: list[Any] = []
            for i in lay.shown:
                col = self.columns[i]
                cell = col.short(row[i]) if i in lay.short and col.short else row[i]
                cells.append(Folded(cell) if col.text else cell)
            t.add_row(*cells)
        yield from console.render(t, options.update_width(max(lay.total, options.max_width)))
        for i in lay.below:
            notes = [(row[0], row[i]) for row, plain in zip(self.rows, self._plain, strict=True)
                     if plain[i].strip()]
            if notes:
                yield Text(self.columns[i].header, style="bold")
                for key, text in notes:
                    yield Folded(f"  {key}: {text}", indent=2 + 2 * HANG)


def _cols(columns: Sequence[str | Col]) -> list[Col]:
    return [c if isinstance(c, Col) else Col(c) for c in columns]


def table(title: str | None, columns: Sequence[str | Col],
          rows: Iterable[Sequence[str]]) -> Fitted:
    """A table; a column given as a plain header holds names (never split)."""
    return Fitted(title, _cols(columns), rows)


def section(console: Console, title: str) -> None:
    """A titled section of a report: a blank line, then the title."""
    console.print()
    console.print(f"[bold underline]{escape(title)}[/]")


class KeyValues:
    """Keys (markup) in bold, their values (markup, free text) aligned after them and
    folded between words, continuation lines under the value."""

    def __init__(self, pairs: Sequence[tuple[str, str]]) -> None:
        self.pairs = [(k, v, cell_len(Text.from_markup(k).plain)) for k, v in pairs]

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = max((n for _, _, n in self.pairs), default=0)
        for key, value, n in self.pairs:
            pad = " " * (width - n + 2)
            yield Folded(f"[bold]{key}[/]{pad}{value}", indent=width + 2)


def key_values(pairs: Sequence[tuple[str, str]]) -> KeyValues:
    return KeyValues(pairs)


# The components of a backup (backup, inspect): on a narrow terminal sizes go first.
COMPONENT_COLUMNS = ("COMPONENT", "STATUS", Col("OBJECTS", drop=1), Col("SIZE", drop=2),
                     Col("NOTE", text=True))


def component_rows(manifest: dict[str, Any], *, verbose: int = 0) -> list[list[str]]:
    """The components of a bundle; repeated warnings aggregated unless ``verbose``."""
    files = manifest.get("files", {})
    rows = []
    for c in manifest.get("components", []):
        size = sum(files.get(f, {}).get("size", 0) for f in c.get("files", []))
        note = c.get("reason", "")
        if c.get("warnings"):
            note = "; ".join(filter(None, [note, *aggregate(c["warnings"], verbose=verbose)]))
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
