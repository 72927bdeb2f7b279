"""`kubectl runai-dr keygen`: a new age X25519 identity (as `age-keygen` writes it)."""

from __future__ import annotations

import os
import sys
from datetime import datetime, timezone
from typing import Annotated

import typer

from kubectl_runai_dr.cli import options as o
from kubectl_runai_dr.errors import BundleExistsError


def keygen(
    output: Annotated[str | None, typer.Option(
        "--output", metavar="FILE", show_default=False,
        help="Write the identity to FILE (created 0600, never overwritten); default: stdout."
    )] = None,
) -> None:
    """Create an age identity for encrypted bundles; prints its recipient (public key).

    Give the recipient to `backup --encrypt-to`; keep the identity file safe and away from
    the cluster: `restore`, `verify` and `inspect` need it (--identity FILE). The file is
    the age tool's format: `age -d -i FILE` opens the bundles too.
    """
    # not a @verb: its --output is a file (as age-keygen's -o), not the output format
    with o.error_boundary(o.Common()):
        _keygen(output)


def _keygen(output: str | None) -> None:
    from kubectl_runai_dr.storage.age import keygen as make

    identity, recipient = make()
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = f"# created: {stamp}\n# public key: {recipient}\n{identity}\n"
    if output is None:
        sys.stdout.write(text)
    else:
        try:
            fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            raise BundleExistsError(f"{output} already exists; it was left alone",
                                    hint="choose another --output") from None
        except OSError as exc:
            from kubectl_runai_dr.localfs import local_error

            raise local_error(exc, "write", output) from exc
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
    sys.stderr.write(f"Public key: {recipient}\n")
