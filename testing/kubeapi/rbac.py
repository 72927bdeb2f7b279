"""RBAC authorization for chosen users: Roles, ClusterRoles and their bindings in the store decide,
as the apiserver's RBAC authorizer does (deny rules still apply on top).

`srv.add_service_account_token(token, namespace, name)` authenticates a ServiceAccount
(system:serviceaccount:<ns>:<name>, groups system:serviceaccounts and system:serviceaccounts:<ns>) and
authorizes it by RBAC; `srv.add_user(..., rbac=True)` does so for any user. Admin and other users keep
"everything allowed but the deny rules". Matching: verbs, apiGroups and resources (`pods/exec` for a
subresource, "*" and "*/sub" wildcards) and resourceNames (a request without a name, list or create,
never matches a rule with resourceNames); a RoleBinding grants in its own namespace only (its Role, or a
ClusterRole's rules there); a ClusterRoleBinding everywhere. Discovery and SelfSubjectAccessReview are
not authorized (system:discovery and system:basic-user grant them to every authenticated user).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .store import Store

RBAC = "rbac.authorization.k8s.io"


def _subject_matches(subject: Mapping[str, Any], user: str, groups: list[str], binding_ns: str) -> bool:
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "User":
        return name == user
    if kind == "Group":
        return name in groups
    if kind == "ServiceAccount":
        return user == f"system:serviceaccount:{subject.get('namespace') or binding_ns}:{name}"
    return False


def _rule_matches(rule: Mapping[str, Any], verb: str, group: str, resource: str, name: str | None) -> bool:
    if not any(v in ("*", verb) for v in rule.get("verbs") or []):
        return False
    if not any(g in ("*", group) for g in rule.get("apiGroups") or []):
        return False
    plural, _, sub = resource.partition("/")
    ok = False
    for r in rule.get("resources") or []:
        if r in ("*", resource) or (sub and r == f"*/{sub}") or (not sub and r == plural and "/" not in r):
            ok = True
            break
    if not ok:
        return False
    names = rule.get("resourceNames") or []
    return not names or (name is not None and name in names)


def _rules(store: Store, ref: Mapping[str, Any], ns: str) -> Iterator[Mapping[str, Any]]:
    kind, name = ref.get("kind"), ref.get("name", "")
    if kind == "ClusterRole":
        e = store.get((RBAC, "clusterroles"), "", name)
    elif kind == "Role":
        e = store.get((RBAC, "roles"), ns, name)
    else:
        return
    if e is not None:
        yield from e.obj.get("rules") or []


def allows(store: Store, user: str, groups: list[str], verb: str, group: str, resource: str,
           namespace: str | None, name: str | None) -> bool:
    """Does RBAC in `store` let `user` do `verb` on `resource` of `group` in `namespace`?"""
    with store.lock:
        for e in list(store.bucket((RBAC, "clusterrolebindings")).values()):
            b = e.obj
            if any(_subject_matches(s, user, groups, "") for s in b.get("subjects") or []) and any(
                    _rule_matches(r, verb, group, resource, name) for r in _rules(store, b.get("roleRef") or {}, "")):
                return True
        if not namespace:
            return False
        for e in list(store.bucket((RBAC, "rolebindings")).values()):
            if e.namespace != namespace:
                continue
            b = e.obj
            if any(_subject_matches(s, user, groups, namespace) for s in b.get("subjects") or []) and any(
                    _rule_matches(r, verb, group, resource, name) for r in _rules(store, b.get("roleRef") or {},
                                                                                  namespace)):
                return True
    return False
