"""`kubectl runai-dr keygen`: a new age X25519 identity (as `age-keygen` writes it)."""

from __future__ import annotations

import os
import sys
from datetime import datetime, timezone
from typing import Annotated, Any

import typer

from kubectl_runai_dr.cli import options as o
from kubectl_runai_dr.errors import BundleExistsError


@o.verb(kube=False, names=False)
def keygen(
    to: Annotated[str | None, typer.Option(
        "--to", metavar="FILE", show_default=False,
        help="Write the identity to FILE (created 0600, never overwritten). Without it the "
        "identity goes to stdout, as age-keygen does.")] = None,
    *,
    common: o.Common,
) -> None:
    """Create an age identity for encrypted bundles and print its recipient (public key).

    Give the recipient to `backup --encrypt-to`; keep the identity file safe and away from
    the cluster: `restore`, `verify` and `inspect` need it (--identity FILE). The file is
    the age tool's format: `age -d -i FILE` opens the bundles too (and `age-keygen -o FILE`
    makes one this tool reads).
    """
    from kubectl_runai_dr import render
    from kubectl_runai_dr.storage.age import keygen as make

    identity, recipient = make()
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = f"# created: {stamp}\n# public key: {recipient}\n{identity}\n"
    if to is None:
        sys.stdout.write(text)
        sys.stderr.write(f"Public key: {recipient}\n")
        return
    _write_private(to, text)
    doc: dict[str, Any] = {"recipient": recipient, "identityFile": to}
    if common.table:
        out, _ = render.consoles(common.no_color)
        render.say(out, f"identity written to {render.escape(to)} (mode 0600)")
        out.print(f"Public key: {recipient}", markup=False, highlight=False)
    else:
        render.emit(doc, common.output.value)


def _write_private(path: str, text: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
    except FileExistsError:
        raise BundleExistsError(f"{path} already exists; it was left alone",
                                hint="choose another --to") from None
    except OSError as exc:
        from kubectl_runai_dr.localfs import local_error

        raise local_error(exc, "write", path) from exc
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
