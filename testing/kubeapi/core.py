"""ServerCore: what the concerns mixed into ApiServer (server.py) use of the core and of one
another, declared for the type checker. Every mixin derives from it, so mypy checks a mixin's code
against these declarations, and what defines them against the declarations too: the attributes
ApiServer sets, and each method where it is defined (in the core or in a mixin), which must be a
valid override of the one declared here. At run time ServerCore is `object`: the mixins are plain
classes, and ApiServer brings all of this.

What only one concern uses is declared in its own mixin (AuthMixin.users, CrudMixin.namespaces_linger,
WatchMixin._watchers, ...)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio
    from typing import Protocol

    from aiohttp import web

    from .auth import User
    from .request import Target
    from .resources import ResourceType
    from .selectors import Matcher
    from .store import Entry, ResKey, Store
    from .workloads import Workloads

    class ServerCore(Protocol):
        # the core's state (server.py)
        store: Store
        types: dict[ResKey, ResourceType]
        workloads: Workloads
        _loop: asyncio.AbstractEventLoop | None

        # the core's helpers (server.py)
        def _json(self, obj: Any, status: int = 200) -> web.Response: ...
        def _register_crd(self, crd: dict[str, Any]) -> None: ...
        def _unregister_crd(self, crd: dict[str, Any]) -> None: ...

        # auth.py
        def _authorize(self, user: User, verb: str, t: Target, name: str | None = None) -> None: ...

        # crud.py
        def _decode(self, body: bytes | None, ctype: str, t: Target) -> dict[str, Any]: ...
        def _check_type_fields(self, rt: ResourceType, version: str, obj: dict[str, Any]) -> None: ...
        def _delete(self, rt: ResourceType, ns: str | None, name: str, opts: dict[str, Any], *,
                    dry_run: bool) -> Entry | dict[str, Any]: ...

        # lists.py
        def _matchers(self, t: Target, q: dict[str, str]) -> tuple[Matcher, Matcher]: ...
else:
    ServerCore = object
