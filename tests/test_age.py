"""Encrypted bundles, proven against the real `age` tool in both directions: what the tool
encrypts, `age -d` opens into a bundle `verify` accepts; what `age -r`, `age -R` (an SSH
key) and `age -p` encrypt, the tool reads. Plus the errors: no identity, a wrong one, a
modified bundle, and secrets in clear only when asked."""

from __future__ import annotations

import io
import json
import os
import pty
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from kubeapi import ApiServer
from kubeapi.seed import seed_runai

from tests.e2e import cli, manifest_of
from tests.test_bundle import MANIFEST

AGE = shutil.which("age")  # installed by scripts/bootstrap-tests.sh
PASSPHRASE = "correct horse battery staple"


@pytest.fixture
def seeded(apiserver: ApiServer, tmp_path: Path) -> Path:
    seed_runai(apiserver, projects=3, rolebindings_per_project=2)
    return apiserver.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def key(tmp_path: Path) -> tuple[Path, str]:
    """An identity file made by the tool's keygen, and its recipient."""
    path = tmp_path / "key.txt"
    r = cli("keygen", "--to", str(path), "-o", "json")
    assert r.code == 0, r.stderr
    recipient = json.loads(r.stdout)["recipient"]
    return path, recipient


def _backup(kc: Path, to: Path, *extra: str, env: dict[str, str] | None = None) -> Path:
    r = cli("backup", "--kubeconfig", str(kc), "--to", f"{to}/", "--skip", "database",
            "--no-record", "-o", "json", *extra, env=env)
    assert r.code == 0, r.stderr
    return Path(json.loads(r.stdout)["bundle"])


def _age(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    assert AGE is not None, "the age tool is missing: run scripts/bootstrap-tests.sh"
    return subprocess.run([AGE, *args], input=input, capture_output=True, timeout=60)


def _age_with_passphrase(*args: str) -> int:
    """`age` reads a passphrase from the terminal only: answer it through a pty."""
    assert AGE is not None
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.execv(AGE, [AGE, *args])
    buf = b""
    while True:
        try:
            chunk = os.read(fd, 1024)
        except OSError:
            break
        if not chunk:
            break
        buf += chunk
        if buf.rstrip().endswith(b":"):
            os.write(fd, PASSPHRASE.encode() + b"\n")
            buf = b""
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def test_keygen_writes_a_private_identity_the_age_tool_uses(key: tuple[Path, str],
                                                            tmp_path: Path) -> None:
    path, recipient = key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and recipient.startswith("age1")
    assert f"# public key: {recipient}" in path.read_text()
    sealed = _age("-r", recipient, input=b"hello")
    assert _age("-d", "-i", str(path), input=sealed.stdout).stdout == b"hello"
    again = cli("keygen", "--to", str(path), "-o", "json")  # never overwrites a key
    assert again.code == 2 and "already exists" in again.stderr


def test_tool_encrypts_age_decrypts_into_a_valid_bundle(seeded: Path, key: tuple[Path, str],
                                                        tmp_path: Path) -> None:
    ident, recipient = key
    bundle = _backup(seeded, tmp_path, "--encrypt-to", recipient)
    assert bundle.name.endswith(".tar.gz.age")
    data = bundle.read_bytes()
    assert data.startswith(b"age-encryption.org/v1\n-> X25519 ")
    assert b"runaiconfig" not in data and b"manifest.json" not in data  # all of it sealed
    plain = tmp_path / "plain.tar.gz"
    out = _age("-d", "-i", str(ident), "-o", str(plain), str(bundle))
    assert out.returncode == 0, out.stderr
    assert manifest_of(plain)["status"] == "complete"
    assert cli("verify", str(plain)).code == 0
    # and the tool reads its own encrypted bundle with the identity
    r = cli("verify", str(bundle), "--identity", str(ident))
    assert r.code == 0, r.stderr
    r = cli("inspect", str(bundle), "-i", str(ident), "-o", "json")
    assert r.code == 0 and json.loads(r.stdout)["status"] == "complete"


def test_bundles_encrypted_by_age_are_read(seeded: Path, key: tuple[Path, str],
                                           tmp_path: Path) -> None:
    ident, recipient = key
    plain = _backup(seeded, tmp_path)
    by_age = tmp_path / "by-age.tar.gz.age"
    assert _age("-r", recipient, "-o", str(by_age), str(plain)).returncode == 0
    r = cli("verify", str(by_age), "--identity", str(ident))
    assert r.code == 0, r.stderr
    # the identity from the environment, as CI systems pass it
    r = cli("helm", "values", str(by_age), "-o", "json",
            env={"RUNAI_DR_AGE_KEY": ident.read_text()})
    assert r.code == 0, r.stderr


@pytest.mark.parametrize("kind", ["ed25519", "rsa"])
def test_ssh_keys_both_directions(seeded: Path, tmp_path: Path, kind: str) -> None:
    ssh = tmp_path / f"id_{kind}"
    subprocess.run(["ssh-keygen", "-q", "-t", kind, *(["-b", "2048"] if kind == "rsa" else []),
                    "-N", "", "-f", str(ssh)], check=True)
    pub = (tmp_path / f"id_{kind}.pub").read_text().strip()
    plain = _backup(seeded, tmp_path)
    by_age = tmp_path / "ssh.tar.gz.age"  # (the key's .pub file: a recipients file)
    assert _age("-R", f"{ssh}.pub", "-o", str(by_age), str(plain)).returncode == 0
    r = cli("verify", str(by_age), "--identity", str(ssh))
    assert r.code == 0, r.stderr
    out_dir = tmp_path / "ours"
    out_dir.mkdir(mode=0o700)
    recipients = tmp_path / "recipients.txt"
    recipients.write_text(f"# the backup team\n\n{pub}\n")
    ours = _backup(seeded, out_dir, "--recipients-file", str(recipients))
    dec = _age("-d", "-i", str(ssh), str(ours))
    assert dec.returncode == 0 and dec.stdout[:2] == b"\x1f\x8b"


def test_a_passphrase_protected_ssh_key_is_named(tmp_path: Path) -> None:
    ssh = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "s3cret-phrase", "-f",
                    str(ssh)], check=True)
    sealed = tmp_path / "x.tar.gz.age"
    assert _age("-R", f"{ssh}.pub", "-o", str(sealed), input=b"data").returncode == 0
    r = cli("verify", str(sealed), "--identity", str(ssh))
    assert r.code == 2 and "protected by a passphrase" in r.stderr


def test_passphrase_both_directions(seeded: Path, tmp_path: Path) -> None:
    env = {"RUNAI_DR_PASSPHRASE": PASSPHRASE}
    ours = _backup(seeded, tmp_path, "--passphrase", env=env)
    assert b"-> scrypt " in ours.read_bytes()[:200]
    plain = tmp_path / "p.tar.gz"
    assert _age_with_passphrase("-d", "-o", str(plain), str(ours)) == 0
    assert cli("verify", str(plain)).code == 0
    theirs = tmp_path / "theirs.tar.gz.age"
    assert _age_with_passphrase("-p", "-o", str(theirs), str(plain)) == 0
    r = cli("verify", str(theirs), "--passphrase", env=env)
    assert r.code == 0, r.stderr
    pw = tmp_path / "pw"
    pw.write_text(PASSPHRASE + "\n")
    assert cli("verify", str(theirs), "--passphrase-file", str(pw)).code == 0
    pw.write_text("wrong\n")
    r = cli("verify", str(theirs), "--passphrase-file", str(pw))
    assert r.code == 4 and "passphrase is wrong" in r.stderr
    r = cli("verify", str(theirs))  # no terminal, no passphrase given
    assert r.code == 4 and "encrypted with a passphrase" in r.stderr


def test_no_identity_says_encrypted_and_to_whom_only(seeded: Path, key: tuple[Path, str],
                                                    tmp_path: Path) -> None:
    _ident, recipient = key
    other = cli("keygen", "--to", str(tmp_path / "other.txt"), "-o", "json")
    bundle = _backup(seeded, tmp_path, "-r", recipient, "-r",
                     json.loads(other.stdout)["recipient"])
    r = cli("inspect", str(bundle))
    assert r.code == 4
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert "is encrypted (age, to 2 X25519 recipients)" in lines[0]
    assert lines[1].startswith("hint:") and "--identity" in lines[1]
    assert "runaiconfig" not in r.stdout + r.stderr


def test_wrong_identity_is_one_clear_line(seeded: Path, key: tuple[Path, str],
                                          tmp_path: Path) -> None:
    _ident, recipient = key
    bundle = _backup(seeded, tmp_path, "--encrypt-to", recipient)
    wrong = tmp_path / "wrong.txt"
    assert cli("keygen", "--to", str(wrong)).code == 0
    r = cli("verify", str(bundle), "--identity", str(wrong))
    assert r.code == 4
    assert r.stderr.startswith("error: ") and "none of the identities" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.splitlines()) == 2  # error + hint


def test_tampering_is_caught_by_decryption(seeded: Path, key: tuple[Path, str],
                                           tmp_path: Path) -> None:
    ident, recipient = key
    bundle = _backup(seeded, tmp_path, "--encrypt-to", recipient)
    data = bytearray(bundle.read_bytes())
    data[len(data) // 2] ^= 0x01
    bundle.write_bytes(bytes(data))
    r = cli("verify", str(bundle), "--identity", str(ident), "-o", "json")
    assert r.code == 4, r.stderr
    # a bundle this small is one age chunk, so even its manifest cannot be read
    assert "fails authentication" in r.stderr and "modified" in r.stderr
    r = cli("restore", str(bundle), "--identity", str(ident), "--kubeconfig", str(seeded),
            "--yes")
    assert r.code == 4


def test_tampering_after_the_manifest_is_reported_by_verify(
        seeded: Path, key: tuple[Path, str], tmp_path: Path) -> None:
    """A bundle of several chunks, modified past the manifest's: verify opens it, reads to
    the modified chunk and reports it there, before anything is restored."""
    ident, recipient = key
    big = tmp_path / "big"
    big.mkdir(mode=0o700)
    from kubectl_runai_dr.bundle.writer import BundleWriter
    from kubectl_runai_dr.storage.age import Sealing, load_recipients

    sealing = Sealing(recipients=tuple(load_recipients([recipient], [])))
    with BundleWriter(big / "x.tar.gz.age", seal=sealing) as w:
        w.write_json("a/b.json", {"hello": "world"})
        w.write_bytes("database/backend.dump", os.urandom(600_000))
        w.finalize(dict(MANIFEST), mtime=0)
    data = bytearray((big / "x.tar.gz.age").read_bytes())
    data[-100_000] ^= 0x01
    (big / "x.tar.gz.age").write_bytes(bytes(data))
    r = cli("verify", str(big / "x.tar.gz.age"), "--identity", str(ident), "-o", "json")
    assert r.code == 4, r.stderr
    problems = json.loads(r.stdout)["problems"]
    assert problems and "fails authentication" in problems[0]["message"]


def test_secrets_in_clear_need_consent(seeded: Path, key: tuple[Path, str],
                                       tmp_path: Path) -> None:
    _ident, recipient = key
    r = cli("backup", "--kubeconfig", str(seeded), "--to", f"{tmp_path}/", "--skip",
            "database", "--include-secrets", "--no-record")
    assert r.code == 2 and "--allow-plaintext-secrets" in r.stderr
    assert not list(tmp_path.glob("runai-dr-*"))
    bundle = _backup(seeded, tmp_path, "--include-secrets", "--encrypt-to", recipient)
    assert bundle.name.endswith(".age")


def test_bad_recipients_fail_before_anything_runs(seeded: Path, tmp_path: Path) -> None:
    r = cli("backup", "--kubeconfig", str(seeded), "--to", f"{tmp_path}/", "--encrypt-to",
            "age1notakey")
    assert r.code == 2 and "not a valid age recipient" in r.stderr
    bad = tmp_path / "recipients"
    bad.write_text("# nobody\n")
    r = cli("backup", "--kubeconfig", str(seeded), "--to", f"{tmp_path}/",
            "--recipients-file", str(bad))
    assert r.code == 2 and "holds no recipient" in r.stderr
    assert not list(tmp_path.glob("runai-dr-*"))


def test_keep_rotates_encrypted_bundles(seeded: Path, key: tuple[Path, str],
                                        tmp_path: Path) -> None:
    from datetime import datetime, timedelta, timezone

    from kubectl_runai_dr.kube.client import ConnectOptions, connect
    from kubectl_runai_dr.ops.backup import BackupOptions, run_backup
    from kubectl_runai_dr.storage.age import Sealing, load_recipients

    _ident, recipient = key
    sealing = Sealing(recipients=tuple(load_recipients([recipient], [])))
    kube = connect(ConnectOptions(kubeconfig=str(seeded)))
    start = datetime.now(timezone.utc) - timedelta(hours=3)
    written = []
    for hour in range(3):
        out = run_backup(kube, BackupOptions(output=f"{tmp_path}/", skip=("database",),
                                             record=False, keep=2, sealing=sealing),
                         now=start + timedelta(hours=hour))
        written.append(Path(str(out.path)).name)
    left = sorted(p.name for p in tmp_path.glob("runai-dr-*.age"))
    assert left == sorted(written[1:])


def test_diff_reads_encrypted_bundles(seeded: Path, key: tuple[Path, str],
                                      tmp_path: Path) -> None:
    ident, recipient = key
    plain = _backup(seeded, tmp_path)
    sealed_dir = tmp_path / "sealed"
    sealed_dir.mkdir(mode=0o700)
    sealed = _backup(seeded, sealed_dir, "--encrypt-to", recipient)
    r = cli("diff", str(plain), str(sealed), "--identity", str(ident), "--skip", "database")
    assert r.code == 0, r.stderr + r.stdout
    r = cli("diff", str(plain), str(sealed), "--skip", "database")
    assert r.code == 4 and "is encrypted" in r.stderr


def test_a_small_rsa_key_is_refused(tmp_path: Path) -> None:
    ssh = tmp_path / "id_rsa"
    subprocess.run(["ssh-keygen", "-q", "-t", "rsa", "-b", "1024", "-N", "", "-f", str(ssh)],
                   check=True)
    r = cli("backup", "--to", f"{tmp_path}/", "-r", (tmp_path / "id_rsa.pub").read_text())
    assert r.code == 2 and "1024 bits" in r.stderr and "2048" in r.stderr


class _Bytes:
    """A seekable source over bytes in memory (what a file or an S3 object is)."""

    name = "memory"
    seekable = True
    encrypted = False

    def __init__(self, data: bytes) -> None:
        self.data = data

    def open(self, offset: int = 0) -> io.BytesIO:
        return io.BytesIO(self.data[offset:])

    def close(self) -> None:
        pass


def test_reads_start_at_any_byte_of_what_age_encrypted(key: tuple[Path, str]) -> None:
    """Chunks are encrypted under their own numbers: a read starts anywhere (the reader
    seeks in encrypted bundles), and every chunk is still authenticated, the last one
    as the last."""
    from kubectl_runai_dr.storage import age

    ident, recipient = key
    data = os.urandom(3 * age.CHUNK + 1234)
    sealed = _age("-r", recipient, input=data).stdout
    source = age.DecryptingSource(_Bytes(sealed),
                                  age.Opening(tuple(age.load_identities([str(ident)]))))
    assert source.seekable
    for offset in (0, 1, age.CHUNK - 1, age.CHUNK, age.CHUNK + 1, 2 * age.CHUNK + 7,
                   len(data) - 1, len(data)):
        stream = source.open(offset)
        got = b""
        while chunk := stream.read(10_000):
            got += chunk
        assert got == data[offset:], offset
    whole = os.urandom(2 * age.CHUNK)  # ends at a chunk's end: a read there finds nothing
    at_end = age.DecryptingSource(_Bytes(_age("-r", recipient, input=whole).stdout),
                                  age.Opening(tuple(age.load_identities([str(ident)]))))
    assert at_end.open(2 * age.CHUNK).read(10) == b""
    assert at_end.open(age.CHUNK).read(age.CHUNK) == whole[age.CHUNK:]
    from kubectl_runai_dr.bundle.source import Unreadable

    cut = age.DecryptingSource(_Bytes(sealed[:-(1234 + 16)]),  # the last chunk is gone
                               age.Opening(tuple(age.load_identities([str(ident)]))))
    with pytest.raises(Unreadable):
        stream = cut.open(2 * age.CHUNK)
        while stream.read(10_000):
            pass


def test_header_rules(key: tuple[Path, str], tmp_path: Path) -> None:
    """Two recipients (either identity opens it); a modified header fails its MAC; a
    key with a bad checksum is not a recipient."""
    from kubectl_runai_dr.errors import UsageError
    from kubectl_runai_dr.storage import age

    ident, recipient = key
    other_ident, other = age.keygen()
    sealed = _age("-r", recipient, "-r", other, input=b"two recipients").stdout
    for identities in (age.load_identities([str(ident)]),
                       age.parse_identities(other_ident, "the other")):
        stream = age.DecryptingSource(_Bytes(sealed), age.Opening(tuple(identities))).open()
        assert stream.read(100) == b"two recipients"
    at = sealed.index(b"\n---") + 10
    tampered = sealed[:at] + bytes([sealed[at] ^ 1]) + sealed[at + 1:]
    with pytest.raises(age.AgeError, match=r"MAC|malformed"):
        age.DecryptingSource(_Bytes(tampered),
                             age.Opening(tuple(age.load_identities([str(ident)]))))
    broken = recipient[:-1] + ("q" if recipient[-1] != "q" else "p")
    with pytest.raises(UsageError, match="not a valid age recipient"):
        age.parse_recipient(broken)
