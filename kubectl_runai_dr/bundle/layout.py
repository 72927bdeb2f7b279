"""Bundle layout and format version, fixed by named constants.

A bundle is a gzip-compressed tar archive. ``manifest.json`` is always its first member, so
``inspect`` reads it without decompressing the rest; every other member is listed in the
manifest with its size and sha256.
"""

from __future__ import annotations

from urllib.parse import quote

FORMAT = "runai-dr.bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"

RUNAICONFIG_OBJECT = "runaiconfig/runaiconfig.json"
# the spec alone, as `kubectl get runaiconfig runai -o jsonpath='{.spec}'` prints it
RUNAICONFIG_SPEC = "runaiconfig/spec.json"


def helm_release_info(release: str) -> str:
    return f"helm/{release}/release.json"


def helm_values(release: str) -> str:
    """User-supplied values: what `helm get values RELEASE -o yaml` prints."""
    return f"helm/{release}/values.yaml"


def helm_values_all(release: str) -> str:
    """Computed values: what `helm get values RELEASE --all -o yaml` prints."""
    return f"helm/{release}/values-all.yaml"


def objects(group: str, plural: str) -> str:
    """A kubectl-style ``List`` of one resource type: ``objects/<plural>.<group>.json``."""
    name = f"{plural}.{group}" if group else plural
    return f"objects/{name}.json"


TEMPLATES = "objects/templates.configmaps.json"  # ConfigMaps labelled runai/template=true
SECRETS = "secrets/secrets.json"
DATABASE_DIR = "database"
# what was dumped: server version, per database the dump file, snapshot, sizes and the
# exact row count of every table (restore and drill verify against these)
DATABASE_METADATA = "database/database.json"
DATABASE_GLOBALS = "database/globals.sql"  # roles and tablespaces: pg_dumpall --globals-only


def database_dump(database: str) -> str:
    """``database/<name>.dump`` (pg_dump -Fc), the name percent-encoded: any name is safe."""
    return f"{DATABASE_DIR}/{quote(database, safe='-_.') or '_'}.dump"


SNAPSHOTS = "volumes/snapshots.json"
