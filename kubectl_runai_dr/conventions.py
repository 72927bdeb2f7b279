"""The tool's conventions, in one place (pure): its name as each audience spells it, the
labels it puts on what it creates in a cluster, and the metadata the API server sets
(dropped before storing, comparing or re-creating an object)."""

from __future__ import annotations

# The tool's name: the command users type, the kubectl plugin binary, the label value on
# the objects it creates, the prefix of its files and in-cluster objects.
COMMAND = "kubectl runai-dr"
BINARY = "kubectl-runai_dr"
MANAGER = "kubectl-runai-dr"
PREFIX = "runai-dr"

# Labels on the objects the tool creates (snapshots, restored claims, the backup record).
MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY_LABELS = {MANAGED_BY: MANAGER}
LABEL_DOMAIN = "runai-dr.run.ai"
CLAIM_LABEL = f"{LABEL_DOMAIN}/source-claim"
BACKUP_LABEL = f"{LABEL_DOMAIN}/backup-id"
ROLE_LABEL = f"{LABEL_DOMAIN}/role"
RESTORED_LABEL = f"{LABEL_DOMAIN}/restored-from"

# The in-cluster record of the last backup (a ConfigMap), and the values directory.
RECORD_NAME = f"{PREFIX}-last-backup"
VALUES_DIR = f"{PREFIX}-values"

# Metadata the API server sets: a deny-list, as Velero's, so that everything users chose
# (labels, annotations, finalizers, spec) survives.
SERVER_SET_METADATA = (
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
    "managedFields",
    "ownerReferences",  # uids of owners that will not exist in a rebuilt cluster
    "generateName",
)
