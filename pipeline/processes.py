"""Child processes that end with their parent (`pipeline ui`, `pipeline tune --jobs N`).

Children run in their own process group, so the group stops as one: the MLflow server's own
workers, a tuning worker's MLflow writer. `kill <pid>` (SIGTERM) of the parent unwinds like
Ctrl-C, so the same `finally` clauses stop the children and free their ports.

A parent that cannot unwind (`kill -9`, or `kill -HUP`, whose default ends it at once) runs no
`finally`: children ask Linux for a signal when their parent dies (`die_with_parent`,
PR_SET_PDEATHSIG). A server runs under `python -m pipeline.processes` (`supervise`), which
takes that signal and stops the server's whole group; a tuning worker unwinds its trial.
Children also restore the default SIGINT / SIGTERM handling: a job started in the background
by a script inherits SIGINT ignored, and would ignore the parent's stop request.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

PR_SET_PDEATHSIG = 1  # linux/prctl.h
PARENT_ENV = "PIPELINE_PARENT_PID"  # the supervisor's parent, set by whoever starts it


def default_signals() -> None:
    """SIGINT raises KeyboardInterrupt and SIGTERM ends the process, whatever was inherited
    (a background job of a script starts with SIGINT ignored)."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def die_with_parent(sig: int, parent: int | None = None) -> bool:
    """Ask Linux to send us `sig` when our parent dies (elsewhere: False, nothing done; the
    callers also watch the parent's pid). `parent`: the pid we expect; if it is already gone
    (it died before we asked), `sig` is sent at once."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if parent is not None and os.getppid() != parent:
        os.kill(os.getpid(), sig)
    return True


def trim_heap() -> None:
    """Hand the heap's free pages back to the system (glibc's malloc_trim): memory freed in
    small blocks, such as the CSV parser's buffers, otherwise stays resident for the process's
    life. A no-op where the C library has no such call."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (musl): nothing to hand back this way
        return


def supervised(command: list[str]) -> list[str]:
    """`command` run by `supervise` in a fresh Python: it ends, with its whole process group,
    when the caller dies in any way (pass `env=supervised_env()` too)."""
    return [sys.executable, "-m", "pipeline.processes", *command]


def supervised_env(env: dict[str, str] | None = None) -> dict[str, str]:
    return {**(os.environ if env is None else env), PARENT_ENV: str(os.getpid())}


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

    proc = None
    try:
        with sigterm_as_interrupt():  # before the start: a stop request never finds it unset
            proc = subprocess.Popen(command, start_new_session=True)
            return proc.wait()
    except KeyboardInterrupt:
        if proc is not None:
            stop_group(proc.pid, lambda: proc.poll() is None)
        return 130


def supervise(command: list[str]) -> int:
    """Run `command` in a process group of its own until it ends, or until we get SIGTERM or
    SIGINT (or our parent dies: SIGTERM by PR_SET_PDEATHSIG); then stop the whole group."""
    default_signals()
    parent = os.environ.get(PARENT_ENV)
    die_with_parent(signal.SIGTERM, int(parent) if parent else None)
    return run_group(command)


if __name__ == "__main__":  # python -m pipeline.processes COMMAND ARGS... (`make mlflow-server`)
    sys.exit(supervise(sys.argv[1:]) if sys.argv[1:] else 2)
