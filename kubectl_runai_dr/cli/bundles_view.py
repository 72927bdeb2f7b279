"""How `bundles` shows a listing."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kubectl_runai_dr import render

if TYPE_CHECKING:
    from kubectl_runai_dr.cli.options import Common
    from kubectl_runai_dr.ops.bundles import Listing


def show(common: Common, listing: Listing) -> None:
    if not common.table:
        render.emit(listing.to_json(), common.output.value)
        return
    out, err = render.consoles(common.no_color)
    if not listing.bundles:
        render.say(err, f"no bundles at {render.escape(listing.location)}")
        return
    rows = [(render.escape(b.name), render.escape(b.context or "?"),
             render.escape(b.created or "?"), render.styled(b.status),
             render.human_size(b.size) if b.size else "-", "yes" if b.encrypted else "no",
             render.escape(b.note)) for b in listing.bundles]
    out.print(render.table(f"Bundles at {render.escape(listing.location)}",
                           ["NAME", "CONTEXT", "CREATED", "STATUS", "SIZE", "ENCRYPTED",
                            render.Col("NOTE", text=True, drop=1)], rows))
