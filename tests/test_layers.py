"""The package's layers, enforced (as import-linter contracts would be), by reading every
module's imports with ``ast``: a module that crosses a layer fails here with its name.

- only ``kube/`` talks to Kubernetes: no other module imports kubernetes, urllib3 or
  websocket (but ``storage/s3.py``, whose S3 client runs on urllib3);
- only ``storage/s3.py`` imports the S3 client (minio), only ``storage/age.py`` the
  cryptographic primitives (cryptography): each is imported only when used;
- ``storage/`` imports no other layer of the tool but errors and the bundle's source
  protocol;
- only the view layer (``render.py`` and ``cli/*_view.py``) imports rich;
- ``plan/`` is pure: it imports no I/O package of the tool (kube, bundle, components, ops,
  cli), apart from the bundle's naming modules (``bundle.layout``, ``bundle.manifest``),
  which are pure;
- ``components/`` and ``ops/`` never import the CLI; ``components/`` never imports ``ops/``;
- ``kube/`` imports no other layer of the tool but errors.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "kubectl_runai_dr"
IO_LIBS = ("kubernetes", "urllib3", "websocket")
TOOL = "kubectl_runai_dr"
PURE_BUNDLE = ("layout", "manifest")
STORAGE_LIBS = {"minio": f"{TOOL}.storage.s3", "cryptography": f"{TOOL}.storage.age"}


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        name = ".".join(rel.parts)
        if name.endswith(".__init__"):
            name = name[: -len(".__init__")]
        yield name, path


def imports(path: Path) -> set[str]:
    """Every module the file imports, at any depth (also inside functions and
    TYPE_CHECKING blocks: a layer is crossed either way)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def violations(mods: Iterable[tuple[str, Path]] | None = None) -> list[str]:
    out = []
    for name, path in (modules() if mods is None else mods):
        here = layer(name)
        is_view = name == f"{TOOL}.render" or (here == "cli" and name.endswith("_view"))
        for imp in sorted(imports(path)):
            for lib, owner in STORAGE_LIBS.items():
                if _under(imp, lib) and name != owner:
                    out.append(f"{name} imports {imp}: only {owner} does")
            if here == "storage" and _under(imp, TOOL) and layer(imp) not in (
                    "storage", "errors", "") and not _under(imp, f"{TOOL}.bundle.source"):
                out.append(f"{name} imports {imp}: storage/ is below the bundle format")
            if any(_under(imp, lib) for lib in IO_LIBS) and here != "kube" and not (
                    name == f"{TOOL}.storage.s3" and _under(imp, "urllib3")):
                out.append(f"{name} imports {imp}: only kube/ talks to Kubernetes")
            if _under(imp, "rich") and not is_view:
                out.append(f"{name} imports {imp}: only render.py and cli/*_view.py draw")
            if not _under(imp, TOOL):
                continue
            target = layer(imp)
            pure_bundle = any(_under(imp, f"{TOOL}.bundle.{m}") for m in PURE_BUNDLE)
            if here == "plan" and target in ("kube", "bundle", "components", "ops", "cli",
                                             "render") and not pure_bundle:
                out.append(f"{name} imports {imp}: plan/ is pure")
            if here in ("components", "ops", "kube", "bundle", "plan") and target == "cli":
                out.append(f"{name} imports {imp}: only the CLI imports the CLI")
            if here == "components" and target == "ops":
                out.append(f"{name} imports {imp}: components do not import operations")
            if here == "kube" and target not in ("kube", "errors", "_version", ""):
                out.append(f"{name} imports {imp}: kube/ is the bottom layer")
    return out


def test_layers_hold() -> None:
    found = violations()
    assert not found, "layer violations:\n" + "\n".join(found)


@pytest.mark.parametrize("source,expected", [
    ("import kubernetes.client\n", "only kube/ talks to Kubernetes"),
    ("from rich.table import Table\n", "only render.py and cli/*_view.py draw"),
])
def test_the_checker_catches_a_violation(tmp_path: Path, source: str, expected: str) -> None:
    """The checker is not vacuous: a planted import in plan/ is reported."""
    bad = tmp_path / "_layer_probe.py"
    bad.write_text(source)
    found = violations([("kubectl_runai_dr.plan._layer_probe", bad)])
    assert any("kubectl_runai_dr.plan._layer_probe" in v and expected in v for v in found)
