"""`pipeline storage-proxy`: Optuna's gRPC storage proxy in front of one study database.

Dozens of workers each holding their own connection pool (and heartbeat connection) to
PostgreSQL add up to hundreds of connections; behind the proxy they hold gRPC channels, and
the database sees only the proxy's pool: at most `threads` connections, one per serving
thread. Workers use `--storage grpc://HOST:PORT` (or `[tune] storage`).

What works through it: everything a worker does with the study, including the atomic claim
of a queued trial (the proxy's storage is the same ClaimingRDBStorage). Optuna's proxy has no
heartbeat, so it is added here: each worker's heartbeat thread stamps its trial through the
proxy (`optuna_internals.grpc_storage`), and this process fails the stale trials of every
study each heartbeat interval (`optuna.storages.fail_stale_trials`; the storage's callback
re-queues them as usual). The MLflow run of such a trial is closed as FAILED when a `tune`
command next ends (the proxy has no tracking connection). A journal file cannot be proxied
(Optuna's proxy refuses it).
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable
from typing import Any

from pipeline.errors import PipelineError
from pipeline.tune.optuna_internals import grpc_server
from pipeline.tune.study import (
    GRPC_PREFIX,
    HEARTBEAT_INTERVAL,
    HOST,
    make_storage,
    quiet_optuna,
    require_grpc,
)

DEFAULT_PORT = 13000  # Optuna's own default
DEFAULT_THREADS = 16  # serving threads = the most database connections the proxy holds
REAP_EVERY: float = HEARTBEAT_INTERVAL  # seconds between stale-trial checks


def serve(
    url: str, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
    threads: int = DEFAULT_THREADS, on_ready: Callable[[str], object] | None = None,
    on_warning: Callable[[str], object] | None = None, stop: threading.Event | None = None,
) -> None:
    """Serve the study database `url` on host:port until Ctrl-C, SIGTERM or `stop` is set.

    `on_ready` gets the grpc:// address workers should use, once the server listens;
    `on_warning` each new kind of trouble the stale-trial check meets.
    """
    import optuna

    from pipeline.processes import sigterm_as_interrupt

    if url.startswith(GRPC_PREFIX) or "://" not in url or url.startswith("journal:"):
        raise PipelineError(f"--storage {url}: the proxy serves a database (postgresql://..., "
                            "mysql://..., sqlite:///...), not a journal file or another proxy")
    require_grpc("storage-proxy")
    quiet_optuna()
    # the reaper is one more thread with a connection of its own
    backend = make_storage(url, pool=threads + 1)
    # Optuna's advice for the proxy: its in-process trial cache in front of the database
    storage = optuna.storages.get_storage(backend)
    # gRPC's C core logs a bind failure on its own; the one line below says it
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    try:
        server = grpc_server(storage, host, port, threads)
    except RuntimeError:
        raise PipelineError(f"--host {host} --port {port}: cannot listen there; is another "
                            "proxy or program on that port, or the host not this machine's?"
                            ) from None
    server.start()
    stop = stop or threading.Event()
    reaper = threading.Thread(target=reap_stale_trials, name="reaper", daemon=True,
                              args=(storage, stop, on_warning, REAP_EVERY))
    reaper.start()
    if on_ready is not None:  # bound to every interface: workers use this host's name
        named = HOST if host in ("0.0.0.0", "::", "[::]") else host
        on_ready(f"{GRPC_PREFIX}{named}:{port}")
    try:
        with sigterm_as_interrupt():
            while not stop.wait(0.5):
                pass
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        server.stop(grace=2).wait()
        reaper.join(timeout=5)


def reap_stale_trials(
    storage: Any, stop: threading.Event, on_warning: Callable[[str], object] | None = None,
    interval: float = HEARTBEAT_INTERVAL,
) -> None:
    """Every `interval` seconds: fail (and re-queue, MAX_RETRY times) the trials of every
    study whose heartbeat stopped longer than the grace period ago. A database error is
    reported once per kind and retried at the next round: the proxy keeps serving."""
    import optuna

    from pipeline.files import one_line

    said: set[str] = set()
    while not stop.wait(interval):
        try:
            for frozen in storage.get_all_studies():
                study = optuna.load_study(study_name=frozen.study_name, storage=storage)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    # the storage's StaleTrialCallback re-queues each (no tracker: no MLflow)
                    optuna.storages.fail_stale_trials(study)
        except Exception as e:  # the database is away: the workers' calls say so too
            if (line := one_line(e)) not in said and on_warning is not None:
                said.add(line)
                on_warning(f"stale-trial check failed: {line}")

