"""Options shared by the verbs (kubectl's conventions) and the error boundary."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Annotated

import typer

from kubectl_runai_dr.errors import DrError, ExitCode, UsageError

if TYPE_CHECKING:
    from kubectl_runai_dr.kube.client import Kube


class OutputFormat(str, Enum):
    table = "table"
    json = "json"
    yaml = "yaml"


KUBE = "Kubernetes connection (as kubectl)"
OUT = "Output"
NAMES = "Run:ai installation"

Kubeconfig = Annotated[str | None, typer.Option(
    "--kubeconfig", help="Path to the kubeconfig file (default: KUBECONFIG, then "
    "~/.kube/config, then the in-cluster service account).", rich_help_panel=KUBE)]
Context = Annotated[str | None, typer.Option(
    "--context", help="The kubeconfig context to use (default: the current context).",
    rich_help_panel=KUBE)]
RequestTimeout = Annotated[str, typer.Option(
    "--request-timeout", help='Timeout of a single API request, e.g. "30s", "1m"; "0" waits '
    "forever.", rich_help_panel=KUBE)]
Output = Annotated[OutputFormat, typer.Option(
    "-o", "--output", help="Output format.", rich_help_panel=OUT, case_sensitive=False)]
NoColor = Annotated[bool, typer.Option(
    "--no-color", help="No colours (also when NO_COLOR is set or output is not a terminal).",
    rich_help_panel=OUT)]
Verbose = Annotated[int, typer.Option(
    "-v", "--verbose", count=True, help="More detail; tracebacks on errors.",
    rich_help_panel=OUT)]
ClusterNamespace = Annotated[str, typer.Option(
    "-n", "--namespace", help="Namespace of the Run:ai cluster (RunaiConfig, templates).",
    rich_help_panel=NAMES)]
ControlPlaneNamespace = Annotated[str, typer.Option(
    "--control-plane-namespace", help="Namespace of the control plane.", rich_help_panel=NAMES)]
ClusterRelease = Annotated[str, typer.Option(
    "--cluster-release", help="Helm release of the cluster.", rich_help_panel=NAMES)]
ControlPlaneRelease = Annotated[str, typer.Option(
    "--control-plane-release", help="Helm release of the control plane.",
    rich_help_panel=NAMES)]

def split_list(values: list[str] | None) -> list[str]:
    """A list-valued flag as users type it: repeated (``--skip a --skip b``), comma
    separated (``--skip a,b``) or both; blanks dropped, order kept, duplicates once."""
    out: list[str] = []
    for value in values or ():
        for part in value.split(","):
            part = part.strip()
            if part and part not in out:
                out.append(part)
    return out



def comma_list(value: list[str] | None) -> list[str] | None:
    """typer callback of every list-valued flag: ``--skip a,b --skip c``."""
    return split_list(value) if value else value


_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(text: str, *, flag: str = "--request-timeout") -> float | None:
    """kubectl-style duration ("0", "30", "30s", "1m", "1h30m", "2d") in seconds; 0 → None."""
    text = text.strip()
    total = 0.0
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)?", text)
    if not text or "".join(a + b for a, b in parts) != text:
        raise UsageError(f'invalid {flag} "{text}"',
                         hint='use a number of seconds or a duration such as "30s" or "2m"')
    for number, unit in parts:
        total += float(number) * _UNIT[unit or None]
    return total or None


@dataclass(frozen=True)
class Common:
    kubeconfig: str | None = None
    context: str | None = None
    request_timeout: str = "0"
    output: OutputFormat = OutputFormat.table
    no_color: bool = False
    verbose: int = 0

    def connect(self) -> Kube:
        from kubectl_runai_dr.kube.client import ConnectOptions, connect

        return connect(ConnectOptions(kubeconfig=self.kubeconfig, context=self.context,
                                      request_timeout=parse_duration(self.request_timeout)))


@contextlib.contextmanager
def error_boundary(common: Common) -> Iterator[None]:
    """Turn the tool's errors into one clear message and the documented exit code."""
    from kubectl_runai_dr import render

    try:
        yield
    except typer.Exit:
        raise
    except DrError as exc:
        _, err = render.consoles(common.no_color)
        render.print_error(err, exc, verbose=common.verbose)
        raise typer.Exit(int(exc.exit_code)) from None
    except KeyboardInterrupt:
        _, err = render.consoles(common.no_color)
        err.print("interrupted: nothing was left behind that looks complete")
        raise typer.Exit(int(ExitCode.ABORTED)) from None
    except Exception as exc:
        _, err = render.consoles(common.no_color)
        render.print_error(err, exc, verbose=common.verbose)
        raise typer.Exit(int(ExitCode.ERROR)) from None
