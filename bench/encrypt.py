"""Benchmark: what age encryption costs a backup, and the tool's sealing writer against the
`age` command on the same bytes.

A Run:ai installation whose database holds about --size of incompressible rows (so the
bundle is mostly the pg_dump), reached through the loopback API server's exec, same run.
Every measured program runs as a separate process (peak RSS through bench/rss.py's
launcher). Prints:
- (a) `kubectl runai-dr backup --to DIR/` against the same with `--encrypt-to age1…`
  (X25519), alternating: the overhead of encrypting (goal <= 10%) and both peak RSS;
- (b) on the unencrypted bundle of (a): the tool's sealing writer (`Sealing(recipients=…)
  .seal(file)` fed in 1 MiB writes) against `age -r RECIPIENT -o OUT IN`,
  alternating: the throughput ratio (goal >= 0.9) and both peak RSS; the tool's output is
  decrypted once with `age -d -i KEY` and compared with the input;
- (b') passphrase mode, the tool's own STREAM against `age -p` (driven through a pty, as it
  reads the passphrase from the terminal), both with scrypt's work factor 2^18; skip it with
  --no-passphrase.

    .venv/bin/python bench/encrypt.py [--size 1G] [--rounds 3] [--no-passphrase]

Needs `age` and `age-keygen` on PATH (the Debian package age, installed by
scripts/bootstrap-tests.sh) and the worktree and testing/ on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pty
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from database import PASSWORD, database_cluster, fill, parse_size
from kubeapi.pgserver import PgServer
from rss import launcher, peak_of, run

ROOT = Path(__file__).resolve().parent.parent

SEAL = """
import os, sys
from kubectl_runai_dr.storage.age import Sealing, parse_recipient
if sys.argv[3] == "-p":
    sealing = Sealing(passphrase=os.environ["BENCH_PASSPHRASE"].encode())
else:
    sealing = Sealing(recipients=(parse_recipient(sys.argv[3]),))
with open(sys.argv[2], "wb") as out:
    w = sealing.seal(out)
    with open(sys.argv[1], "rb") as f:
        while chunk := f.read(1 << 20):
            w.write(chunk)
    w.close()
"""


def age_passphrase(src: Path, dst: Path, passphrase: bytes, report: Path) -> tuple[float, int]:
    """`age -p -o DST SRC`, answering its two terminal prompts through a pty."""
    t = time.perf_counter()
    pid, fd = pty.fork()
    if pid == 0:  # the child: the launcher, then age, their terminal the pty
        try:
            cmd = launcher(["age", "-p", "-o", str(dst), str(src)], report)
            os.execv(cmd[0], cmd)
        finally:
            os._exit(127)
    seen, answered = b"", 0
    try:
        while True:
            try:
                data = os.read(fd, 4096)
            except OSError:  # EIO: age closed the terminal
                break
            if not data:
                break
            seen += data
            while answered < 2 and seen.lower().count(b"passphrase") > answered:
                os.write(fd, passphrase + b"\n")
                answered += 1
    finally:
        os.close(fd)
    _pid, status, _usage = os.wait4(pid, 0)
    wall = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"age -p failed: {seen[-500:]!r}")
    return wall, peak_of(report)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="1G", help="database size (default 1G)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-passphrase", action="store_true",
                    help="leave out passphrase mode against `age -p`")
    args = ap.parse_args()
    for tool in ("age", "age-keygen"):
        if not shutil.which(tool):
            raise SystemExit(f"`{tool}` not found: install the age package "
                             "(scripts/bootstrap-tests.sh)")
    size = parse_size(args.size)
    work = Path(tempfile.mkdtemp(prefix="bench-age-"))
    py = sys.executable
    key = work / "key.txt"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    recipient = subprocess.run(["age-keygen", "-y", str(key)], check=True, text=True,
                               capture_output=True).stdout.strip()
    passphrase = os.urandom(12).hex().encode()  # to the children through env and a pty only
    env = {**os.environ, "NO_COLOR": "1", "BENCH_PASSPHRASE": passphrase.decode(),
           "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [
               os.environ.get("PYTHONPATH")])]),
           "PATH": f"{ROOT / '.tools' / 'bin'}:{os.environ['PATH']}"}
    f: dict[str, list[float]] = {k: [] for k in (
        "plain", "encrypted", "seal", "age", "seal -p", "age -p")}
    rss: dict[str, int] = {k: 0 for k in f}
    sizes: dict[str, int] = {}

    def note(name: str, measured: tuple[float, int]) -> None:
        f[name].append(measured[0])
        rss[name] = max(rss[name], measured[1])

    try:
        with PgServer(password=PASSWORD) as pg:
            print(f"filling a database of about {size >> 20} MiB ...", flush=True)
            fill(pg, size)
            db = int(pg.psql("SELECT pg_database_size('backend')"))
            with database_cluster(pg, work) as kc:
                backup = [py, "-m", "kubectl_runai_dr", "backup", "--kubeconfig", str(kc),
                          "--no-record", "--force"]
                for _ in range(args.rounds):
                    for name, extra in (("plain", []), ("encrypted", ["--encrypt-to",
                                                                      recipient])):
                        out = work / name
                        shutil.rmtree(out, ignore_errors=True)
                        out.mkdir()
                        note(name, run([*backup, "--to", f"{out}/", *extra], env,
                                       work / "backup.log"))
                        (made,) = out.iterdir()
                        assert made.name.endswith(".age") == (name == "encrypted"), made
                        sizes[name] = made.stat().st_size
        (bundle,) = (work / "plain").iterdir()
        shutil.rmtree(work / "encrypted")
        sealed, by_age = work / "sealed.age", work / "by-age.age"
        for r in range(args.rounds):
            note("age", run(["age", "-r", recipient, "-o", str(by_age), str(bundle)], env,
                            work / "age.log"))
            note("seal", run([py, "-c", SEAL, str(bundle), str(sealed), recipient], env,
                             work / "seal.log"))
            if r == 0:  # the tool's output is an age file the age tool opens
                plain = work / "check"
                subprocess.run(["age", "-d", "-i", str(key), "-o", str(plain), str(sealed)],
                               check=True)
                assert sha256(plain) == sha256(bundle), "age -d gave other bytes"
                plain.unlink()
            sizes["seal"], sizes["age"] = sealed.stat().st_size, by_age.stat().st_size
            if not args.no_passphrase:
                note("age -p", age_passphrase(bundle, by_age, passphrase, work / "age-p.rss"))
                note("seal -p", run([py, "-c", SEAL, str(bundle), str(sealed), "-p"], env,
                                    work / "seal.log"))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in f.items() if v}
    mib = sizes["plain"] / 2**20

    def line(label: str, key: str, throughput: bool = False) -> str:
        out = f"{label:52} {med[key]:7.2f} s"
        if throughput:
            out += f"  {mib / med[key]:6.1f} MiB/s"
        return (out + "  runs " + " ".join(f"{t:.2f}" for t in f[key])
                + f"  peak RSS {rss[key] / 2**20:.0f} MiB")

    print(f"database {db / 2**20:.0f} MiB, bundle {mib:.0f} MiB "
          f"(encrypted {sizes['encrypted'] / 2**20:.0f} MiB), {args.rounds} rounds, medians")
    print(line("(a) backup --to DIR/", "plain"))
    print(line("(a) backup --to DIR/ --encrypt-to age1…", "encrypted"))
    print(f"(a) encryption overhead of the backup: "
          f"{(med['encrypted'] / med['plain'] - 1) * 100:+.1f}% (goal <= 10%)")
    print(line("(b) age -r RECIPIENT -o OUT BUNDLE", "age", True))
    print(line("(b) tool's Sealing(recipients).seal, 1 MiB writes", "seal", True))
    print(f"(b) throughput ratio tool/age (X25519): {med['age'] / med['seal']:.2f} "
          "(goal >= 0.9); the tool's output decrypts with age -d to the same bytes")
    if not args.no_passphrase:
        print(line("(b') age -p (scrypt 2^18, through a pty)", "age -p", True))
        print(line("(b') tool's Sealing(passphrase).seal", "seal -p", True))
        print(f"(b') throughput ratio tool/age (passphrase): "
              f"{med['age -p'] / med['seal -p']:.2f}")


if __name__ == "__main__":
    main()
