"""`--help` without the parts of rich it never uses.

typer renders help with its module ``typer.rich_utils``, which imports ``rich.markdown``
(markdown-it and pygments with it) and ``rich.traceback`` (``rich.pretty``, attrs) at its
top, for help written in Markdown and for pretty tracebacks. The tool uses neither: its
help is rich markup, and pretty exceptions are off. Those imports are about a quarter of
the start-up of `kubectl runai-dr --help`.

:func:`install` puts a finder on ``sys.meta_path`` that, while (and only while)
``typer.rich_utils`` executes, stands in for those two modules with stand-ins whose names
(``Markdown``, ``Traceback``) import the real module the first time they are used; then
the stand-ins leave ``sys.modules``, so any later import gets the real modules.

:func:`plain_help` takes rich markup out of a help text without rich: completion shows
each option's help, and typer would load its whole help renderer (rich's console) to do it.
"""

from __future__ import annotations

import importlib
import re
import sys
import types
from collections.abc import Sequence
from importlib.abc import Loader, MetaPathFinder
from importlib.machinery import ModuleSpec
from typing import Any

TARGET = "typer.rich_utils"
DEFERRED: dict[str, tuple[str, ...]] = {
    "rich.markdown": ("Markdown",),
    "rich.traceback": ("Traceback",),
}


class _DeferredMeta(type):
    """A stand-in class: calling it, reading its attributes or isinstance() against it
    imports the real class and uses that."""

    _module: str
    _name: str

    def _real(cls) -> Any:
        return getattr(importlib.import_module(cls._module), cls._name)

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        return cls._real()(*args, **kwargs)

    def __getattr__(cls, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return getattr(cls._real(), attr)

    def __instancecheck__(cls, obj: Any) -> bool:
        return isinstance(obj, cls._real())


def _stand_in(module: str, name: str) -> type:
    return _DeferredMeta(name, (), {"_module": module, "_name": name,
                                    "__module__": module})


class _Loader(Loader):
    def __init__(self, inner: Loader) -> None:
        self.inner = inner

    def create_module(self, spec: ModuleSpec) -> types.ModuleType | None:
        return self.inner.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        placed: dict[str, types.ModuleType] = {}
        for name, attrs in DEFERRED.items():
            if name in sys.modules:
                continue
            stub = types.ModuleType(name, "stand-in while typer.rich_utils loads")
            for attr in attrs:
                setattr(stub, attr, _stand_in(name, attr))
            sys.modules[name] = placed[name] = stub
        try:
            self.inner.exec_module(module)
        finally:
            for name, stub in placed.items():
                if sys.modules.get(name) is stub:
                    del sys.modules[name]


class _Finder(MetaPathFinder):
    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: types.ModuleType | None = None) -> ModuleSpec | None:
        if fullname != TARGET:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _Loader(spec.loader)
                return spec
        return None


def install() -> None:
    """Once per process; nothing to do when typer.rich_utils is already loaded."""
    if TARGET in sys.modules or any(isinstance(f, _Finder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _Finder())


# rich's markup tags (rich.markup.RE_TAGS), with the backslashes that may escape them
_TAG = re.compile(r"(\\*)\[([a-z#/@][^[]*?)]")


def plain_help(text: str) -> str:
    """A help text without its rich markup: a tag is dropped (as rich drops it), an
    escaped one (backslash before the bracket) is text."""
    def one(m: re.Match[str]) -> str:
        slashes, tag = m.group(1), m.group(2)
        if len(slashes) % 2:  # escaped: the brackets are text
            return slashes[:-1] + "[" + tag + "]"
        return slashes
    return _TAG.sub(one, text)


def values_as_typed() -> None:
    """For a completion request: the words given so far stay as typed (strings) instead
    of being converted (typer converts every value with pydantic, whose import is a third
    of a completion's time). Completion parses resiliently and reads those words as text
    (a --kubeconfig path, the names after --skip); the conversion, and its errors, come
    when the command really runs."""
    from typer.core import TyperArgument, TyperOption

    for cls in (TyperOption, TyperArgument):
        convert = cls.process_value

        def process_value(self: Any, ctx: Any, value: Any, _convert: Any = convert) -> Any:
            if ctx.resilient_parsing:
                return value
            return _convert(self, ctx, value)

        cls.process_value = process_value  # type: ignore[method-assign]
