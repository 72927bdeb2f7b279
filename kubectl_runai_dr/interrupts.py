"""Interrupts: SIGTERM and SIGHUP handled like Ctrl-C while an operation runs.

What ``timeout``, systemd, a CronJob's deadline and ``kubectl delete pod`` send is SIGTERM;
a closed terminal sends SIGHUP. Turning them into KeyboardInterrupt lets one clean-up path
serve every way a run can be stopped: a backup removes its staging, a restore stops its
workers and reports what was done.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (and SIGHUP, unless ignored) raise KeyboardInterrupt, as Ctrl-C does, while
    the operation runs: the same clean-up runs. Only in the main thread (Python delivers
    signals there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) is signal.SIG_DFL:
            previous[sig] = signal.signal(sig, interrupt)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
