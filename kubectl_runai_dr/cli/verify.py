"""`kubectl runai-dr verify BUNDLE`: format, structure and every checksum."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kubectl_runai_dr.cli import options as o
from kubectl_runai_dr.errors import ExitCode


def verify(
    bundle: Annotated[Path, typer.Argument(help="The bundle file.")],
    output: o.Output = o.OutputFormat.table,
    no_color: o.NoColor = False,
    verbose: o.Verbose = 0,
) -> None:
    """Check a bundle: format version, structure and the sha256 of every file.

    Exit codes: 0 valid, 4 corrupt, truncated or tampered (the wrong file is named).
    """
    common = o.Common(output=output, no_color=no_color, verbose=verbose)
    with o.error_boundary(common):
        from kubectl_runai_dr import render
        from kubectl_runai_dr.bundle.reader import Bundle

        b = Bundle.open(bundle)
        problems = b.verify()
        files = b.files
        data = {
            "bundle": str(bundle),
            "valid": not problems,
            "status": b.manifest.get("status"),
            "files": len(files),
            "bytes": sum(f["size"] for f in files.values()),
            "problems": [{"file": p.file, "message": p.message} for p in problems],
        }
        out, err = render.consoles(no_color)
        if output is not o.OutputFormat.table:
            render.emit(data, output.value)
        elif problems:
            err.print(render.table("Problems", ["FILE", "PROBLEM"],
                                   [[render.escape(p.file), render.escape(p.message)]
                                    for p in problems]))
            err.print(f"[bold red]error:[/] {render.escape(str(bundle))} is not valid: "
                      f"{len(problems)} problem(s), first: {render.escape(problems[0].file)} "
                      f"{render.escape(problems[0].message)}")
        else:
            out.print(f"{render.escape(str(bundle))}: valid ({data['files']} files, "
                      f"{render.human_size(float(data['bytes']))} checked)")
            if data["status"] == "partial":
                render.warn(err, "the bundle is valid but PARTIAL: some components failed "
                            "at backup time (`kubectl runai-dr inspect` shows which)")
        if problems:
            raise typer.Exit(int(ExitCode.INVALID_BUNDLE))
