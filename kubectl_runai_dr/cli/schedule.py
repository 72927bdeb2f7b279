"""`kubectl runai-dr schedule install|status|run-now|suspend|resume|uninstall`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from kubectl_runai_dr.cli import options as o
from kubectl_runai_dr.cli.command import App
from kubectl_runai_dr.errors import UsageError
from kubectl_runai_dr.storage.age import recipient_lines

if TYPE_CHECKING:
    from kubectl_runai_dr.plan.schedule import ScheduleSpec

SCHEDULE = "Schedule"
LOCATION = "Where the bundles go"

schedule_app = App(
    name="schedule",
    help="Scheduled backups inside the cluster: a CronJob running the tool's image as a "
    "ServiceAccount with exactly the permissions a backup needs.\n\n"
    "`schedule install` creates (or updates in place) the namespace, ServiceAccount, RBAC and "
    "CronJob; `--dry-run -o yaml` prints them for GitOps and writes nothing. `schedule "
    "status` shows the last runs and the next one; `run-now` starts one and follows it; "
    "`suspend` / `resume`; `uninstall` removes what install created (never a bundle).",
    no_args_is_help=True,
)

ScheduleNamespace = Annotated[str, typer.Option(
    "--schedule-namespace", metavar="NAMESPACE", rich_help_panel=SCHEDULE,
    help="Namespace of the CronJob and its ServiceAccount (created when missing).")]


@schedule_app.command()
@o.verb()
def install(
    schedule: Annotated[str, typer.Option(
        "--schedule", metavar="CRON", help='When to run, as cron: "30 2 * * *" (02:30 every '
        "day, the cluster's time zone), @daily, ...", rich_help_panel=SCHEDULE,
        show_default=False)] = ...,  # type: ignore[assignment]
    to: Annotated[str, typer.Option(
        "--to", metavar="LOCATION", help="s3://BUCKET/PREFIX/ (object storage) or "
        "pvc://CLAIM/DIR/ (a PersistentVolumeClaim in the schedule's namespace).",
        rich_help_panel=LOCATION, show_default=False)] = ...,  # type: ignore[assignment]
    keep: Annotated[int | None, typer.Option(
        "--keep", min=1, metavar="N", help="Keep the N newest bundles of each component.",
        rich_help_panel=LOCATION, show_default=False)] = None,
    s3_credentials_secret: Annotated[str | None, typer.Option(
        "--s3-credentials-secret", metavar="NAME", help="Secret in the schedule's namespace "
        "with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (optionally AWS_SESSION_TOKEN, "
        "AWS_REGION, AWS_ENDPOINT_URL); referenced, never copied.",
        rich_help_panel=LOCATION, show_default=False)] = None,
    s3_endpoint: Annotated[str | None, typer.Option(
        "--s3-endpoint", metavar="URL", help="S3-compatible endpoint (MinIO, Ceph, ...).",
        rich_help_panel=LOCATION, show_default=False)] = None,
    service_account_annotation: Annotated[list[str] | None, typer.Option(
        "--service-account-annotation", metavar="KEY=VALUE", help="Annotation of the "
        "ServiceAccount, e.g. eks.amazonaws.com/role-arn=... for workload identity "
        "(comma list or repeated).", rich_help_panel=LOCATION, show_default=False,
        callback=o.comma_list)] = None,
    encrypt_to: Annotated[list[str] | None, typer.Option(
        "--encrypt-to", metavar="RECIPIENT", help="Encrypt bundles to this age recipient "
        "(a public key; comma list or repeated).", rich_help_panel=LOCATION,
        show_default=False, callback=o.comma_list)] = None,
    recipients_file: Annotated[str | None, typer.Option(
        "--recipients-file", metavar="PATH", help="Recipients, one per line (read here; the "
        "keys go into the CronJob's arguments).", rich_help_panel=LOCATION,
        show_default=False)] = None,
    snapshots: Annotated[bool, typer.Option(
        "--snapshots", help="Also take CSI VolumeSnapshots (grants the snapshot permissions).",
        rich_help_panel=SCHEDULE)] = False,
    include_secrets: Annotated[bool, typer.Option(
        "--include-secrets", help="Also back up Secrets (grants reading them).",
        rich_help_panel=SCHEDULE)] = False,
    image: Annotated[str | None, typer.Option(
        "--image", metavar="IMAGE", help="The tool's image (default: the published image at "
        "this version; pin it by digest: REPOSITORY:TAG@sha256:...).",
        rich_help_panel=SCHEDULE, show_default=False)] = None,
    schedule_namespace: ScheduleNamespace = "runai-dr",
    scratch_size: Annotated[str, typer.Option(
        "--scratch-size", metavar="QUANTITY", help="Size limit of the pod's scratch space "
        "(/tmp), which holds the bundle while it is written.",
        rich_help_panel=SCHEDULE)] = "20Gi",
    timeout: Annotated[str, typer.Option(
        "--timeout", metavar="DURATION", help="A run taking longer is stopped "
        "(activeDeadlineSeconds).", rich_help_panel=SCHEDULE)] = "6h",
    suspend: Annotated[bool, typer.Option(
        "--suspend", help="Install suspended (resume with `schedule resume`).",
        rich_help_panel=SCHEDULE)] = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Show what would be created or changed; write nothing. With -o "
        "yaml|json: print the manifests (for Argo CD, Flux, kubectl apply).")] = False,
    *,
    common: o.Common,
) -> object:
    """Install or update the scheduled backup (idempotent: shows what changed).

    Checks first, writes nothing on bad input: the cron expression, the location, the
    credentials Secret and its keys, objects of the same name not created by the tool.
    """
    from kubectl_runai_dr.cli import schedule_view as view
    from kubectl_runai_dr.ops import schedule as ops
    from kubectl_runai_dr.plan import schedule as plan

    spec = build_spec(schedule=schedule, to=to, keep=keep,
                      s3_credentials_secret=s3_credentials_secret, s3_endpoint=s3_endpoint,
                      annotations=service_account_annotation or [],
                      encrypt_to=[*(encrypt_to or []),
                                  *(recipient_lines(recipients_file) if recipients_file else [])],
                      snapshots=snapshots, include_secrets=include_secrets, image=image,
                      namespace=schedule_namespace, scratch_size=scratch_size,
                      timeout=timeout, suspend=suspend, common=common)
    plan.validate(spec)  # before connecting
    kube = common.connect()
    import dataclasses

    spec = dataclasses.replace(spec, control_plane=ops.detect_control_plane(kube, spec))
    result = ops.install(kube, spec, dry_run=dry_run)
    view.show_install(common, result)
    return result


def build_spec(*, schedule: str, to: str, keep: int | None, s3_credentials_secret: str | None,
               s3_endpoint: str | None, annotations: list[str], encrypt_to: list[str],
               snapshots: bool, include_secrets: bool, image: str | None, namespace: str,
               scratch_size: str, timeout: str, suspend: bool, common: o.Common) -> ScheduleSpec:
    from kubectl_runai_dr._version import __version__
    from kubectl_runai_dr.plan import schedule as plan

    seconds = o.parse_duration(timeout, flag="--timeout")
    if seconds is None or seconds < 60:
        raise UsageError(f'--timeout "{timeout}" must be at least a minute')
    return plan.ScheduleSpec(
        schedule=schedule, location=plan.parse_location(to),
        image=image or plan.default_image(__version__), namespace=namespace,
        names=common.names, keep=keep, encrypt_to=tuple(dict.fromkeys(encrypt_to)),
        snapshots=snapshots, include_secrets=include_secrets,
        s3_credentials_secret=s3_credentials_secret, s3_endpoint=s3_endpoint,
        service_account_annotations=tuple(plan.parse_annotations(annotations).items()),
        scratch_size=scratch_size, timeout_seconds=int(seconds), suspend=suspend)


@schedule_app.command()
@o.verb()
def status(schedule_namespace: ScheduleNamespace = "runai-dr", *, common: o.Common) -> object:
    """The schedule, its next run, its last runs (result and duration) and the last backup
    recorded in the cluster."""
    from kubectl_runai_dr.cli import schedule_view as view
    from kubectl_runai_dr.ops import schedule as ops

    st = ops.read_status(common.connect(), schedule_namespace, common.names)
    if not st.installed:
        raise ops.ScheduleNotInstalled(
            f'no scheduled backup in namespace "{schedule_namespace}"',
            hint="install one with `kubectl runai-dr schedule install --schedule ... --to ...`")
    view.show_status(common, st)
    return None


@schedule_app.command("run-now")
@o.verb()
def run_now(
    schedule_namespace: ScheduleNamespace = "runai-dr",
    no_follow: Annotated[bool, typer.Option(
        "--no-follow", help="Start the run and return at once.")] = False,
    timeout: Annotated[str, typer.Option(
        "--timeout", metavar="DURATION", help='How long to follow the run ("0": until the '
        "Job's own deadline).")] = "0",
    *,
    common: o.Common,
) -> object:
    """Run the scheduled backup now: a Job from the CronJob's template, followed until it
    is done, then the tail of its log. Exit codes: 0 succeeded, 3 the run failed."""
    from kubectl_runai_dr.cli import schedule_view as view
    from kubectl_runai_dr.ops import schedule as ops

    wait = o.parse_duration(timeout, flag="--timeout")
    kube = common.connect()
    with common.progress("scheduled backup running") as progress:
        result = ops.run_now(kube, schedule_namespace, follow=not no_follow, timeout=wait,
                             on_wait=lambda job: progress.update(description=f"Job {job} running"))
    view.show_run(common, result)
    return result


@schedule_app.command()
@o.verb()
def suspend(schedule_namespace: ScheduleNamespace = "runai-dr", *, common: o.Common) -> object:
    """Stop scheduling runs (a run in progress goes on)."""
    from kubectl_runai_dr.cli import schedule_view as view
    from kubectl_runai_dr.ops import schedule as ops

    view.show_changes(common, [ops.set_suspend(common.connect(), schedule_namespace, True)])
    return None


@schedule_app.command()
@o.verb()
def resume(schedule_namespace: ScheduleNamespace = "runai-dr", *, common: o.Common) -> object:
    """Schedule runs again."""
    from kubectl_runai_dr.cli import schedule_view as view
    from kubectl_runai_dr.ops import schedule as ops

    view.show_changes(common, [ops.set_suspend(common.connect(), schedule_namespace, False)])
    return None


@schedule_app.command()
@o.verb()
def uninstall(schedule_namespace: ScheduleNamespace = "runai-dr", *,
              common: o.Common) -> object:
    """Remove what `schedule install` created (CronJob, its Jobs, RBAC, ServiceAccount, and
    the namespace when install created it). Bundles, claims and Secrets stay."""
    from kubectl_runai_dr.cli import schedule_view as view
    from kubectl_runai_dr.ops import schedule as ops

    view.show_changes(common, ops.uninstall(common.connect(), schedule_namespace))
    return None
