"""Authentication and authorization: bearer tokens of users ("admin-token" is the admin), deny rules
(403 with the apiserver's message; everything else is allowed) and SelfSubjectAccessReview, which
answers from the same rules."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import rbac
from . import validation as val
from .core import ServerCore
from .status import ApiError, invalid_error, status_details

if TYPE_CHECKING:
    from .request import Target


@dataclass
class DenyRule:
    verb: str
    resource: str
    group: str = ""
    namespace: str | None = None
    user: str | None = None

    def matches(self, user: str, verb: str, resource: str, group: str, namespace: str | None) -> bool:
        if self.user is not None and self.user != user:
            return False
        if self.verb not in ("*", verb):
            return False
        if self.group not in ("*", group):
            return False
        if self.resource not in ("*", resource) and not (
            "/" not in self.resource and resource.split("/")[0] == self.resource and self.resource + "/*" == resource
        ):
            return False
        # namespace None: everywhere; "": only requests at the cluster scope (all namespaces, cluster objects)
        return self.namespace is None or (self.namespace or None) == (namespace or None)


@dataclass
class User:
    name: str
    groups: list[str] = field(default_factory=list)
    rbac: bool = False  # authorized by the RBAC objects in the store (rbac.py), not "allow all"


class AuthMixin(ServerCore):
    """Users, deny rules and SSAR, mixed into ApiServer (server.py)."""

    users: dict[str, User]
    deny_rules: list[DenyRule]

    def add_user(self, token: str, username: str, groups: Iterable[str] = (), *, rbac: bool = False) -> None:
        self.users[token] = User(username, [*groups, "system:authenticated"], rbac)

    def add_service_account_token(self, token: str, namespace: str, name: str) -> str:
        """A ServiceAccount's token, authorized by RBAC (rbac.py); returns the user name."""
        user = f"system:serviceaccount:{namespace}:{name}"
        self.add_user(token, user, ["system:serviceaccounts", f"system:serviceaccounts:{namespace}"], rbac=True)
        return user

    def deny(self, *, verb: str, resource: str, group: str = "", namespace: str | None = None,
             user: str | None = None) -> DenyRule:
        """Forbid `verb` on `resource` ("pods/exec" for a subresource, "*" for any) in `group`.
        namespace=None: everywhere; "": only at the cluster scope; user=None: every user."""
        r = DenyRule(verb, resource, group, namespace, user)
        self.deny_rules.append(r)
        return r

    def clear_denies(self) -> None:
        self.deny_rules.clear()

    def _authenticate(self, request: web.Request) -> User | None:
        """The user of the request's bearer token; None without one or for an unknown token (401)."""
        token = ""
        auth = request.headers.get("Authorization", "")
        scheme, _, credentials = auth.partition(" ")
        if scheme.lower() == "bearer":  # the scheme is case-insensitive (RFC 7235), as in kube
            token = credentials.strip()
        return self.users.get(token)

    def _authorize(self, user: User, verb: str, t: Target, name: str | None = None) -> None:
        resource = t.rt.plural + (f"/{t.sub}" if t.sub else "")
        ns = t.namespace
        if t.rt.plural == "namespaces" and t.name:
            ns = t.name
        reason = self._denied(user, verb, resource, t.group, ns, name if name is not None else t.name)
        if reason:
            scope = f'in the namespace "{ns}"' if ns else "at the cluster scope"
            nm = name if name is not None else t.name
            subject = f'{t.rt.qualified()} "{nm}"' if nm else t.rt.qualified()
            raise ApiError(403, f'{subject} is forbidden: User "{user.name}" cannot {verb} resource "{resource}" '
                                f'in API group "{t.group}" {scope}', details=status_details(t.rt, nm))

    def _denied(self, user: User, verb: str, resource: str, group: str, ns: str | None,
                name: str | None = None) -> bool:
        if user.rbac and not rbac.allows(self.store, user.name, user.groups, verb, group, resource, ns, name):
            return True
        return any(r.matches(user.name, verb, resource, group, ns) for r in self.deny_rules)

    def _ssar(self, user: User, t: Target, body: bytes | None) -> web.Response:
        obj = self._decode(body, "application/json", t)
        self._check_type_fields(t.rt, t.version, obj)
        spec = obj.get("spec") or {}
        ra = spec.get("resourceAttributes")
        nra = spec.get("nonResourceAttributes")
        if not ra and not nra:
            raise invalid_error(t.rt, "", [val.invalid("spec.resourceAttributes", None,
                                                       "exactly one of nonResourceAttributes or resourceAttributes "
                                                       "must be specified")])
        status: dict[str, Any]
        if ra:
            resource = ra.get("resource", "") + (f"/{ra['subresource']}" if ra.get("subresource") else "")
            denied = self._denied(user, ra.get("verb", ""), resource, ra.get("group", ""), ra.get("namespace") or None,
                                  ra.get("name") or None)
            status = {"allowed": not denied}
            if denied:
                status.update(denied=True, reason="denied by test server rule")
            else:
                status["reason"] = "allowed by test server (no matching deny rule)"
        else:
            status = {"allowed": True}
        out = {"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
               "metadata": {"creationTimestamp": None}, "spec": spec, "status": status}
        return self._json(out, status=201)
