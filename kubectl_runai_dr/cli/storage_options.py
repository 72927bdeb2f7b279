"""The object-storage and encryption options: declared once, given to every verb that
reads or writes bundles (``@verb(storage="read")`` / ``"write"``), read as
``common.storage``. They configure :mod:`kubectl_runai_dr.storage.settings` for the run,
so every place that opens a bundle (restore's steps included) sees them.

Nothing secret is a flag's value: S3 credentials come from the AWS chain, identities from
files (or the environment), passphrases from the terminal, a file or the environment.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kubectl_runai_dr.cli.options import as_given, shared_option
from kubectl_runai_dr.errors import UsageError

if TYPE_CHECKING:
    from kubectl_runai_dr.storage.age import Sealing

S3 = "Object storage (s3://)"
CRYPT = "Encryption (age)"

S3_OPTIONS = (
    shared_option("s3_endpoint", None, "--s3-endpoint", type=str | None, metavar="URL",
            rich_help_panel=S3, help="S3 endpoint for MinIO, Ceph RGW and others, e.g. "
            "https://minio.example:9000 (default: AWS_ENDPOINT_URL, else AWS S3). "
            "Credentials: the AWS chain (AWS_ACCESS_KEY_ID…, AWS_PROFILE, IRSA, metadata)."),
    shared_option("s3_region", None, "--s3-region", type=str | None, metavar="REGION",
            rich_help_panel=S3, help="Region (default: AWS_REGION / AWS_DEFAULT_REGION)."),
    shared_option("s3_ca_bundle", None, "--s3-ca-bundle", type=str | None, metavar="FILE",
            rich_help_panel=S3, help="CA certificates (PEM) for a private CA "
            "(default: AWS_CA_BUNDLE)."),
    shared_option("s3_path_style", None, "--s3-path-style/--s3-virtual-host-style",
            type=bool | None, rich_help_panel=S3, show_default=False,
            help="Addressing (default: virtual-host style on AWS, path style elsewhere)."),
    shared_option("s3_insecure_skip_tls_verify", False, "--s3-insecure-skip-tls-verify",
            type=bool, rich_help_panel=S3,
            help="Do not verify the endpoint's certificate (test servers only)."),
)
PASSPHRASE_OPTIONS = (
    shared_option("passphrase", False, "--passphrase", type=bool, rich_help_panel=CRYPT,
            help="Encrypt or decrypt with a passphrase (asked on the terminal; scripts: "
            "RUNAI_DR_PASSPHRASE or --passphrase-file)."),
    shared_option("passphrase_file", None, "--passphrase-file", type=str | None,
            metavar="FILE", rich_help_panel=CRYPT,
            help="Read the passphrase from the first line of FILE (or /dev/fd/N)."),
)
READ_OPTIONS = (
    shared_option("identity", None, "--identity", "-i", type=list[str] | None,
            metavar="FILE", rich_help_panel=CRYPT, show_default=False, callback=as_given,
            help="Identity to decrypt an encrypted bundle: an age identity file or an SSH "
            "private key (repeatable; also RUNAI_DR_AGE_KEY / RUNAI_DR_AGE_KEY_FILE)."),
    *PASSPHRASE_OPTIONS,
)
WRITE_OPTIONS = (
    shared_option("encrypt_to", None, "--encrypt-to", "-r", type=list[str] | None,
            metavar="RECIPIENT", rich_help_panel=CRYPT, show_default=False, callback=as_given,
            help="Encrypt the bundle (age) to this recipient: an age1… key or an SSH public "
            "key (repeatable). The bundle is named ….tar.gz.age."),
    shared_option("recipients_file", None, "--recipients-file", "-R", type=list[str] | None,
            metavar="FILE", rich_help_panel=CRYPT, show_default=False, callback=as_given,
            help="Encrypt to the recipients in FILE (one per line, # comments; repeatable)."),
    *PASSPHRASE_OPTIONS,
)


def storage_options(mode: str) -> tuple[Any, ...]:
    return (*S3_OPTIONS, *(WRITE_OPTIONS if mode == "write" else READ_OPTIONS))


@dataclass(frozen=True)
class StorageFlags:
    mode: str = "read"
    s3_endpoint: str | None = None
    s3_region: str | None = None
    s3_ca_bundle: str | None = None
    s3_path_style: bool | None = None
    s3_insecure_skip_tls_verify: bool = False
    identity: tuple[str, ...] = ()
    encrypt_to: tuple[str, ...] = ()
    recipients_file: tuple[str, ...] = ()
    passphrase: bool = False
    passphrase_file: str | None = None

    @classmethod
    def from_flags(cls, mode: str, flags: dict[str, Any]) -> StorageFlags:
        names = [p.name for p in storage_options(mode)]
        given = {n: flags.pop(n) for n in names if n in flags}
        for key in ("identity", "encrypt_to", "recipients_file"):
            if key in given:
                given[key] = tuple(given[key] or ())
        return cls(mode=mode, **given)

    def configure(self) -> None:
        """Make these the run's storage settings (read where bundles are opened)."""
        from kubectl_runai_dr.storage.settings import S3Settings, Settings, configure

        configure(Settings(
            s3=S3Settings(endpoint=self.s3_endpoint, region=self.s3_region,
                          ca_bundle=self.s3_ca_bundle, path_style=self.s3_path_style,
                          insecure_skip_tls_verify=self.s3_insecure_skip_tls_verify),
            identities=self.identity, passphrase=self.passphrase,
            passphrase_file=self.passphrase_file,
            ask_passphrase=lambda: _ask(confirm=False)))

    @property
    def encrypting(self) -> bool:
        return bool(self.encrypt_to or self.recipients_file or self.passphrase
                    or self.passphrase_file)

    def sealing(self) -> Sealing | None:
        """How a new bundle is encrypted (None: it is not). Recipients are checked here,
        before anything runs; a passphrase is asked for now, twice."""
        if not self.encrypting:
            return None
        from kubectl_runai_dr.storage import age

        keys = bool(self.encrypt_to or self.recipients_file)
        if keys and (self.passphrase or self.passphrase_file):
            raise UsageError("--passphrase cannot be combined with --encrypt-to / "
                             "--recipients-file (age allows one or the other)")
        if keys:
            return age.Sealing(recipients=tuple(age.load_recipients(self.encrypt_to,
                                                                     self.recipients_file)))
        given = age.passphrase_from(self.passphrase_file)
        if given is None:
            given = _ask(confirm=True)
        if given is None:
            raise UsageError("--passphrase needs a terminal to ask for it",
                             hint="in scripts set RUNAI_DR_PASSPHRASE or use "
                                  "--passphrase-file FILE")
        return age.Sealing(passphrase=given)


def _ask(*, confirm: bool) -> bytes | None:
    from kubectl_runai_dr.storage import age

    if os.environ.get(age.PASSPHRASE_ENV):
        return os.environ[age.PASSPHRASE_ENV].encode()
    if not sys.stdin.isatty():
        return None
    import getpass

    return age.read_passphrase(lambda prompt: getpass.getpass(prompt, stream=sys.stderr),
                               confirm=confirm)
