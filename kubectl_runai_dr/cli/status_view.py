"""The table view of `status`: titled sections, problems (with what to do) at the end.

Reads the same document that `-o json|yaml` prints (fetch once, render twice).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from kubectl_runai_dr.cli.options import Common


def show(common: Common, doc: dict[str, Any]) -> None:
    """The table view (``-v``: every permission), or the document as json/yaml."""
    from kubectl_runai_dr import render

    if common.table:
        show_status(render.consoles(common.no_color)[0], doc,
                    all_permissions=common.verbose > 0, verbose=common.verbose)
    else:
        render.emit(doc, common.output.value)


def _e(value: Any) -> str:
    from kubectl_runai_dr import render

    return render.escape("-" if value is None or value == "" else str(value))


def _yes_no(value: bool | None, unknown: str = "unknown") -> str:
    from kubectl_runai_dr import render

    if value is None:
        return render.styled(unknown)
    return render.styled("yes" if value else "no")


def _age(seconds: float | None) -> str:
    from kubectl_runai_dr.plan.status import human_duration

    return human_duration(seconds)


def _degraded(out: Console, errors: list[dict[str, Any]], verbose: int = 0) -> None:
    from kubectl_runai_dr import render

    for message in render.aggregate([e["message"] for e in errors], verbose=verbose):
        render.say(out, f"  [yellow]could not read:[/] {_e(message)}", indent=4)


def _problem_groups(problems: list[dict[str, Any]], *,
                    verbose: int) -> list[list[dict[str, Any]]]:
    """Problems of one kind (severity, section, the shape of message and hint) together,
    so that many of them stay a few lines; with -v each on its own."""
    from kubectl_runai_dr import render

    if verbose:
        return [[p] for p in problems]
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for p in problems:
        key = (p["severity"], p["section"], render.shape(p["message"]), render.shape(p["hint"]))
        groups.setdefault(key, []).append(p)
    return list(groups.values())


def _schedules(out: Console, sch: dict[str, Any], verbose: int) -> None:
    """In-cluster schedules (`schedule install`), shown only where there are some."""
    from kubectl_runai_dr import render

    if not sch.get("schedules") and not sch.get("errors"):
        return
    render.section(out, "Scheduled backups")
    for x in sch.get("schedules") or []:
        state = "[yellow]suspended[/]" if x["suspended"] else _e(x["schedule"])
        last = (f"{_e(x['lastRun'])} {render.styled(x['lastRunResult'])}" if x["lastRun"]
                else "no scheduled run yet")
        out.print(render.key_values([(_e(x["namespace"]), f"{state}; last run: {last}; last "
                                      f"success: {_e(x['lastSuccessful'] or 'never')}")]))
    _degraded(out, sch.get("errors") or [], verbose)


def show_status(out: Console, doc: dict[str, Any], *, all_permissions: bool = False,
                verbose: int = 0) -> None:
    """``all_permissions``: list every permission (-v), not only those not granted;
    ``verbose``: every problem, not one of each kind with how many more."""
    from kubectl_runai_dr import render

    c = doc["cluster"]
    render.section(out, "Cluster")
    out.print(render.key_values([
        ("context", _e(c["context"])), ("server", _e(c["server"])),
        ("kubernetes", _e(c["kubernetesVersion"] or "unknown")),
        ("installed", _e(c["installation"])),
        ("control plane", _yes_no(c["controlPlane"])), ("cluster", _yes_no(c["cluster"])),
    ]))
    _degraded(out, c["errors"], verbose)

    render.section(out, "Helm releases")
    rows = []
    for rel in doc["releases"]["releases"]:
        if rel["error"]:
            status = render.styled("unknown")
        elif not rel["found"]:
            status = render.styled("not present")
        else:
            status = (f"[bold red]{_e(rel['status'])}[/]" if rel["flagged"]
                      else f"[green]{_e(rel['status'])}[/]")
        revision = _e(rel["revision"])
        if rel["deployedRevision"] and rel["deployedRevision"] != rel["revision"]:
            revision += f" (deployed: {rel['deployedRevision']})"
        rows.append([_e(rel["name"]), _e(rel["namespace"]), _e(rel["chart"]),
                     _e(rel["chartVersion"]), _e(rel["appVersion"]), revision, status,
                     _e(rel["lastDeployed"][:19].replace("T", " ") if rel["lastDeployed"]
                        else "")])
    col = render.Col
    out.print(render.table(None, [
        "RELEASE", "NAMESPACE", col("CHART", drop=2), "VERSION", col("APP VERSION", drop=4),
        col("REVISION", drop=3, short=lambda cell: cell.split(" (")[0]), "STATUS",
        col("LAST DEPLOYED", drop=1, short=lambda cell: cell.split(" ")[0])], rows))
    for rel in doc["releases"]["releases"]:
        if rel["error"]:
            render.say(out, f"  [yellow]could not read {_e(rel['name'])}:[/] "
                       f"{_e(rel['error']['message'])}", indent=4)
    _degraded(out, doc["releases"]["errors"], verbose)

    d = doc["database"]
    render.section(out, "Database")
    if not d["applicable"]:
        out.print("  " + render.styled("n/a") + " no control plane here")
    elif d["externalHost"] is not None:
        out.print(render.key_values([("external", _e(f"{d['externalHost'] or 'host not set'}:"
                                                     f"{d['externalPort'] or 5432}"))]))
    else:
        ready = _yes_no(d["ready"])
        if d["ready"] is False and d["notReady"]:
            ready += f" ({_e(d['notReady'])})"
        version = _e(d["version"]) if d["version"] else render.styled("unknown")
        if not d["version"] and d["query"]:
            version = _e(d["query"])
        out.print(render.key_values([
            ("statefulset", _e(d["statefulset"]) + ("" if d["statefulsetFound"] is not False
                                                    else " [bold red](missing)[/]")),
            ("pod", _e(d["pod"])), ("ready", ready), ("postgresql", version)]))
        if d["databases"]:
            out.print(render.table(None, ["DATABASE", "SIZE"], [
                [_e(x["name"]), render.human_size(x["bytes"])] for x in d["databases"]]))
    _degraded(out, d["errors"], verbose)

    v = doc["volumes"]
    render.section(out, "Volumes")
    if not v["applicable"]:
        out.print("  " + render.styled("n/a") + " no control plane here")
    else:
        rows = []
        for cl in v["claims"]:
            if cl["found"] is not True:
                rows.append([_e(cl["role"]), _e(cl["name"]),
                             render.styled("not present" if cl["found"] is False
                                           else "unknown"), "", "", "", "", "", ""])
                continue
            reclaim = (f"[bold red]{_e(cl['reclaimPolicy'])}[/]"
                       if cl["reclaimPolicy"] == "Delete" else _e(cl["reclaimPolicy"]))
            snap = cl["latestSnapshot"]
            latest = (f"{_e(snap['name'])} ({_age(snap.get('ageSeconds'))} ago)" if snap
                      else "-")
            if v["snapshotCrds"] is False:
                vsc = render.styled("n/a") + " (no snapshot API)"
            elif v["snapshotCrds"] is None:
                vsc = render.styled("unknown")
            else:
                vsc = (_e(cl["snapshotClass"]) if cl["snapshotClass"]
                       else "[yellow]none[/]")
            rows.append([_e(cl["role"]), _e(cl["name"]), _e(cl["size"]),
                         _e(cl["storageClass"]), _e(cl["driver"]), reclaim, vsc,
                         _e(cl["protection"]) if cl["protection"] != "none"
                         else "[yellow]none[/]", latest])
        # the latest snapshot goes under the table rather than be split
        col = render.Col
        out.print(render.table(None, [
            "ROLE", "CLAIM", col("SIZE", drop=2), col("STORAGE CLASS", drop=4),
            col("CSI DRIVER", drop=5), "RECLAIM", col("SNAPSHOT CLASS", drop=3),
            "PROTECTION", col("LATEST SNAPSHOT", text=True)], rows))
    _degraded(out, v["errors"], verbose)

    ru = doc["runai"]
    render.section(out, "Run:ai")
    missing = ru["projectsWithoutNamespace"]
    out.print(render.key_values([
        ("RunaiConfig", _yes_no(ru["runaiconfig"])),
        ("projects", _e(ru["projects"] if ru["projects"] is not None else "unknown")),
        ("project namespaces", _e(ru["projectNamespaces"] if ru["projectNamespaces"]
                                  is not None else "unknown")),
        ("role bindings", _e(ru["rolebindings"] if ru["rolebindings"] is not None
                             else "unknown")),
        ("templates", _e(ru["templates"] if ru["templates"] is not None else "unknown")),
        ("without namespace", "unknown" if missing is None else
         ("[bold red]" + _e(", ".join(m["project"] for m in missing)) + "[/]" if missing
          else "none")),
    ]))
    _degraded(out, ru["errors"], verbose)

    b = doc["backup"]
    render.section(out, "Last backup")
    if b["found"] is None:
        out.print("  " + render.styled("unknown"))
    elif not b["found"]:
        out.print("  [bold red]none recorded[/]")
    else:
        too_old = (b["maxAgeSeconds"] is not None and b["ageSeconds"] is not None
                   and b["ageSeconds"] > b["maxAgeSeconds"])
        age = _age(b["ageSeconds"])
        result = _e(b["result"])
        out.print(render.key_values([
            ("time", _e(b["time"])),
            ("age", f"[bold red]{age}[/]" if too_old else age),
            ("bundle", _e(b["bundle"])),
            *([("location", _e(b["location"]))] if b["location"] else []),
            *([("encrypted", "yes" if b["encrypted"] else "[yellow]no[/]")]
              if b["encrypted"] is not None else []),
            ("result", f"[green]{result}[/]" if b["result"] == "complete"
             else f"[bold red]{result}[/]"),
            ("recorded in", _e(f"ConfigMap runai-dr-last-backup in {b['namespace']}")),
        ]))
    _degraded(out, b["errors"], verbose)
    _schedules(out, doc.get("schedules") or {}, verbose)

    p = doc["permissions"]
    render.section(out, "Permissions (of the current user, per step)")
    rows = []
    granted = sum(1 for chk in p["checks"] if chk["allowed"] is True)
    shown = [chk for chk in p["checks"] if all_permissions or chk["allowed"] is not True]
    out.print(f"{granted} of {len(p['checks'])} granted"
              + ("" if all_permissions else "; listed: those not granted (-v lists all)"))
    for chk in shown:
        if chk["allowed"] is None:
            allowed = (render.styled("n/a") if chk["reason"].startswith("not applicable")
                       else render.styled("unknown"))
        else:
            allowed = _yes_no(chk["allowed"])
            if chk["allowed"] is False and chk["optional"]:
                allowed = "[yellow]no[/] (optional step)"
        rows.append([_e(chk["command"]), _e(chk["step"]), _e(chk["verb"]),
                     _e(chk["resource"]), _e(chk["namespace"]), allowed])
    if rows:
        # narrow terminals: resources without their API group, as kubectl names them
        resource = render.Col("RESOURCE", short=lambda cell: cell.split(".")[0])
        out.print(render.table(None, ["COMMAND", "STEP", "VERB", resource, "NAMESPACE",
                                      "ALLOWED"], rows))
    _degraded(out, p["errors"], verbose)

    render.section(out, "Problems")
    if not doc["problems"]:
        out.print("  [green]none[/]")
    for group in _problem_groups(doc["problems"], verbose=verbose):
        prob = group[0]
        render.say(out, f"  {render.styled(prob['severity'])} "
                   f"{_e('[' + prob['section'] + ']')} {_e(prob['message'])}", indent=4)
        render.say(out, f"      [dim]what to do:[/] {_e(prob['hint'])}", indent=8)
        if len(group) > 1:
            render.say(out, "      " + _e(render.more_like_it([p["message"] for p in group])),
                       indent=8)
    sm = doc["summary"]
    out.print()
    if sm["healthy"]:
        out.print(f"[green]healthy[/] ({sm['info']} note(s))")
    else:
        out.print(f"{sm['critical']} critical, {sm['warnings']} warning(s), {sm['info']} "
                  f"note(s); exit code {sm['exitCode']}")
