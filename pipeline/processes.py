"""Child processes that end with their parent (`pipeline ui`, `pipeline tune --jobs N`).

Children run in their own process group, so the group stops as one: the MLflow server's own
workers, a tuning worker's MLflow writer. `kill <pid>` (SIGTERM) of the parent unwinds like
Ctrl-C, so the same `finally` clauses stop the children and free their ports.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises KeyboardInterrupt (main thread only: Python delivers
    signals there; elsewhere the block runs as it is)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt("terminated")

    old = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def stop_group(
    pgid: int, alive: Callable[[], bool], *, first: int = signal.SIGTERM, grace: float = 10.0
) -> None:
    """Send `first` to process group `pgid`; SIGKILL what is left once its leader has ended
    or `grace` seconds have passed (an MLflow server's job runners can linger)."""
    _signal_group(pgid, first)
    deadline = time.monotonic() + grace
    while alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    _signal_group(pgid, signal.SIGKILL)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:  # the group is gone, or its leader has not made it yet
        try:
            os.kill(pgid, sig)
        except ProcessLookupError:
            pass
    except PermissionError:  # not ours (pid reused): leave it alone
        pass


def run_group(command: list[str]) -> int:
    """Run `command` as the leader of a new process group and wait for it; SIGTERM or SIGINT
    to us stops the whole group (make does not pass signals on to a server's own workers)."""
    import subprocess

    proc = subprocess.Popen(command, start_new_session=True)
    try:
        with sigterm_as_interrupt():
            return proc.wait()
    except KeyboardInterrupt:
        stop_group(proc.pid, lambda: proc.poll() is None)
        return 130


if __name__ == "__main__":  # python -m pipeline.processes COMMAND ARGS... (`make mlflow-server`)
    import sys

    sys.exit(run_group(sys.argv[1:]) if sys.argv[1:] else 2)
