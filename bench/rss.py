"""Wall time and peak RSS of one program, measured so that the benchmark's own size does not
count.

A child's ``ru_maxrss`` starts at its parent's RSS at the fork (Linux copies the parent's
high-water mark into the child and keeps it across exec, vfork included), so a small
program started by a large benchmark process reports the benchmark's size. Each program
is therefore started through a minimal launcher (a fresh ``python -I -S``, a few MiB) that
forks it and reports its peak RSS.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LAUNCHER = (
    "import os, sys\n"
    "pid = os.fork()\n"
    "if pid == 0:\n"
    "    try:\n"
    "        os.execvpe(sys.argv[2], sys.argv[2:], os.environ)\n"
    "    finally:\n"
    "        os._exit(127)\n"
    "_, status, usage = os.wait4(pid, 0)\n"
    "with open(sys.argv[1], 'w') as f:\n"
    "    f.write(str(usage.ru_maxrss))\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


def launcher(cmd: list[str], report: Path) -> list[str]:
    """``cmd`` wrapped: its peak RSS (KiB) is written to ``report``."""
    return [sys.executable, "-I", "-S", "-c", LAUNCHER, str(report), *cmd]


def peak_of(report: Path) -> int:
    """The peak RSS in bytes that the launcher wrote."""
    return int(report.read_text()) * 1024


def run(cmd: list[str], env: dict[str, str], log: Path) -> tuple[float, int]:
    """(wall seconds, peak RSS in bytes) of ``cmd``; stderr goes to ``log``; a failure
    stops the benchmark with the log's tail."""
    with tempfile.NamedTemporaryFile(prefix="rss-", delete=False) as tmp:
        report = Path(tmp.name)
    try:
        with open(log, "wb") as err:
            t = time.perf_counter()
            proc = subprocess.run(launcher(cmd, report), env=env, stdout=subprocess.DEVNULL,
                                  stderr=err, check=False)
            wall = time.perf_counter() - t
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd[:5])[:200]}… failed ({proc.returncode}):\n"
                             f"{log.read_text(errors='replace')[-3000:]}")
        return wall, peak_of(report)
    finally:
        report.unlink(missing_ok=True)


if __name__ == "__main__":  # a check of the launcher itself: `python bench/rss.py CMD…`
    wall, peak = run(sys.argv[1:], dict(os.environ), Path(os.devnull))
    print(f"{wall:.2f} s, peak RSS {peak / 2**20:.1f} MiB")
