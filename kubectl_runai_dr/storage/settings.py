"""The storage flags of this run (``--s3-*``, ``--identity``…), set once by the CLI and
read where a location is opened, deep below the verbs (restore's steps open the bundle
themselves). Plain data: nothing here imports an S3 or age library."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class S3Settings:
    endpoint: str | None = None  # --s3-endpoint or AWS_ENDPOINT_URL(_S3); None: AWS
    region: str | None = None  # --s3-region or AWS_REGION / AWS_DEFAULT_REGION
    ca_bundle: str | None = None  # --s3-ca-bundle or AWS_CA_BUNDLE
    insecure_skip_tls_verify: bool = False
    path_style: bool | None = None  # None: virtual-host style on AWS, path style elsewhere
    part_size: int = 16 * 1024 * 1024


@dataclass(frozen=True)
class Settings:
    s3: S3Settings = field(default_factory=S3Settings)
    identities: tuple[str, ...] = ()  # --identity files (age identities, SSH private keys)
    passphrase: bool = False  # --passphrase: encrypted bundles may need one
    passphrase_file: str | None = None  # --passphrase-file (or RUNAI_DR_PASSPHRASE)
    # asks the terminal for a passphrase (set by the CLI when it has one); None: cannot ask
    ask_passphrase: Callable[[], bytes | None] | None = None


_current = Settings()


def configure(settings: Settings) -> None:
    global _current
    _current = settings


def current() -> Settings:
    return _current
