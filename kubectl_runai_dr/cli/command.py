"""The typer app and command classes every verb is registered with: help without noise.

- flags and the ``-v`` counter show no type (``<bool>``, ``<int>``) and no default,
  arguments only their name (``BUNDLE``, not ``BUNDLE <path>``);
- the usage line names arguments as people read them: ``BUNDLE``, ``[BUNDLE]``,
  ``COMPONENTS...`` (not ``{BUNDLE}``);
- a paragraph of help is one paragraph: the line breaks of a docstring (kept short for
  the source) do not become hard breaks, so a command's summary is one line;
- help whose reader goes away (``--help | head``) ends quietly, as the verbs do.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import typer
from typer.core import TyperCommand, TyperGroup

from kubectl_runai_dr.cli import lean_help

lean_help.install()  # help renders without rich.markdown and rich.traceback (see there)

F = TypeVar("F", bound=Callable[..., Any])


def reflow(text: str | None) -> str | None:
    """Paragraphs (separated by a blank line) with their single line breaks removed."""
    if not text:
        return text
    paragraphs = [" ".join(line.strip() for line in p.splitlines() if line.strip())
                  for p in text.strip().split("\n\n")]
    return "\n\n".join(p for p in paragraphs if p)


def _no_type(ctx: Any) -> None:
    return None


def _usage_name(param: Any) -> str:
    name = param.metavar or param.name.upper()
    return name if param.required else f"[{name}]"


class _Tidy:
    """Mixed into typer's command and group classes."""

    params: list[Any]
    help: str | None
    short_help: str | None
    options_metavar: str | None

    def _tidy(self) -> None:
        self.help = reflow(self.help)
        self.short_help = reflow(self.short_help)
        for param in self.params:
            if param.param_type_name == "argument":
                if param.metavar is None:
                    param.metavar = param.name.upper() + ("..." if param.nargs != 1 else "")
                setattr(param, "display_type_rich", _no_type)  # the metavar names it  # noqa: B010
            elif getattr(param, "is_flag", False) or getattr(param, "count", False):
                param.metavar = ""
                param.show_default = False

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)  # type: ignore[misc]
        if option is not None:
            option.metavar = ""
        return option

    def format_help(self, ctx: Any, formatter: Any) -> None:
        """Help whose reader went away (``--help | head``) ends quietly with 141, as a verb
        does. typer draws help with a rich console of its own, which ends the program with
        exit code 1 when its output is a closed pipe (the only way it exits here)."""
        from kubectl_runai_dr.cli.options import quiet_broken_pipe

        try:
            super().format_help(ctx, formatter)  # type: ignore[misc]
        except BrokenPipeError:
            quiet_broken_pipe()
        except SystemExit as exc:
            if exc.code != 1:
                raise
            quiet_broken_pipe()

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        pieces += [_usage_name(p) for p in self.get_params(ctx)  # type: ignore[attr-defined]
                   if p.param_type_name == "argument"]
        return pieces


class Command(_Tidy, TyperCommand):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._tidy()


class Group(_Tidy, TyperGroup):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._tidy()

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return [*super().collect_usage_pieces(ctx), self.subcommand_metavar]


class App(typer.Typer):
    """A typer app whose commands and groups use the classes above."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("context_settings", {"help_option_names": ["-h", "--help"]})
        super().__init__(cls=Group, **kwargs)

    def command(self, *args: Any, **kwargs: Any) -> Callable[[F], F]:
        kwargs.setdefault("cls", Command)
        decorator: Callable[[F], F] = super().command(*args, **kwargs)
        return decorator
