"""The Optuna study: storage (RDB with heartbeat, or a journal file), sampler, pruner,
creation, and the recovery callback for trials whose worker died (see the package docstring)."""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import PipelineError
from pipeline.tune.optuna_internals import claiming_rdb_storage, grpc_storage

if TYPE_CHECKING:
    from pipeline.experiment import Experiment
    from pipeline.tracking import Tracker

DEFAULT_STORAGE = "sqlite:///optuna.db"
HEARTBEAT_INTERVAL = int(os.environ.get("PIPELINE_HEARTBEAT_INTERVAL", "5"))  # seconds
GRACE_PERIOD = int(os.environ.get("PIPELINE_GRACE_PERIOD", "30"))
MAX_RETRY = 2  # a trial re-queued after its worker died, at most this often
# Most epochs between reports: each is one write to the storage (~1-5 ms on SQLite).
REPORT_EVERY = 10
POLL = 0.5  # seconds between looks at the study while other workers hold the last slots
PARENT_ATTR = "mlflow_parent_run_id"
HOST = socket.gethostname()  # shown, and recorded per trial (`host`)


def _host_id() -> str:
    """Host name + boot id (else machine id) + pid namespace: cloned VMs share a host name,
    containers a boot id; a pid only means something within all three."""
    parts = [HOST]
    for path in ("/proc/sys/kernel/random/boot_id", "/etc/machine-id"):
        try:
            text = Path(path).read_text(encoding="ascii").strip()
        except OSError:
            continue
        if text:
            parts.append(text)
            break
    try:
        parts.append(f"pidns:{os.stat('/proc/self/ns/pid').st_ino}")
    except OSError:
        pass
    return "/".join(parts)


HOST_ID = _host_id()  # the same-host dead-pid shortcut compares this (`host_id`), not HOST


GRPC_PREFIX = "grpc://"  # Optuna's gRPC storage proxy (`pipeline storage-proxy`)
PROXY_WAIT = 5.0  # seconds a worker waits for the proxy to answer before giving up


def storage_url(storage: str | None, configured: str | None = None) -> str:
    """--storage, else OPTUNA_STORAGE, else the experiment's [tune] storage, else optuna.db."""
    return storage or os.environ.get("OPTUNA_STORAGE") or configured or DEFAULT_STORAGE


def grpc_address(url: str) -> tuple[str, int]:
    """(host, port) of a grpc://host:port storage URL."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        host = port = None
    if not host or port is None or parts.path not in ("", "/"):
        raise PipelineError(f"--storage {url}: expected grpc://HOST:PORT (a `pipeline "
                            "storage-proxy` address)")
    return host, port


def require_grpc(what: str) -> None:
    """One line, not an ImportError, when the optional `grpc` extra is not installed."""
    import importlib.util

    if importlib.util.find_spec("grpc") is None:
        raise PipelineError(f"{what}: Optuna's gRPC storage proxy needs grpcio, the project's "
                            "`grpc` extra: pip install -e '.[grpc]'")


def _proxy_storage(url: str) -> Any:
    """The client of a running `pipeline storage-proxy`; one line if none answers."""
    host, port = grpc_address(url)
    require_grpc(f"--storage {url}")
    import grpc
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = grpc_storage(host, port, HEARTBEAT_INTERVAL)
    try:
        storage.wait_server_ready(timeout=PROXY_WAIT)
    except (ConnectionError, grpc.RpcError):
        storage.close()
        raise PipelineError(
            f"--storage {url}: no Optuna storage proxy answers at {host}:{port} (waited "
            f"{PROXY_WAIT:g} s); start one there with `pipeline storage-proxy --storage "
            "postgresql://...` and check the host and port") from None
    return storage


def _journal_path(url: str) -> str | None:
    if url.startswith("journal:///"):
        return url.removeprefix("journal:///")
    if url.endswith((".journal", ".log")) and "://" not in url:
        return url
    return None


class StaleTrialCallback:
    """A trial failed for its dead worker: close its MLflow run FAILED, then re-queue it.

    The RDB storage calls it from `fail_stale_trials` (heartbeat: the worker died on another
    machine), which every worker runs before each trial, so the run is closed within about a
    grace period (as soon as a live worker starts its next trial or looks at the study), not
    when some `tune` command ends; `recover` calls it for same-host deaths.
    """

    def __init__(self, max_retry: int, tracker: Tracker | None = None) -> None:
        import optuna
        from optuna.storages import RetryHeartbeatStaleTrialCallback

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self.retry = RetryHeartbeatStaleTrialCallback(max_retry)
        self.tracker = tracker

    def __call__(self, study: Any, trial: Any) -> None:
        import optuna

        run_id = trial.user_attrs.get("mlflow_run_id")
        if run_id and self.tracker is not None and self.tracker.enabled:
            try:
                self.tracker.close_run(run_id, "failed")
            except Exception as e:  # tracking trouble must not stop the study
                # printed here: Optuna calls us inside its storage, maybe in a spawned worker
                print(f"warning: could not close MLflow run {run_id} of trial {trial.number}: "
                      f"{e}", file=sys.stderr, flush=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self.retry(study, trial)


def make_storage(url: str, tracker: Tracker | None = None, pool: int | None = None) -> Any:
    """RDB storage with heartbeat (SQLite, PostgreSQL, MySQL), a journal file (one host) or
    the client of a gRPC storage proxy (grpc://host:port).

    A trial the heartbeat fails has its MLflow run closed through `tracker` and is re-queued.
    `pool`: the most database connections the storage holds (the proxy's bound), else
    SQLAlchemy's default (5, plus 10 more under load).
    """
    import optuna

    if url.startswith(GRPC_PREFIX):
        return _proxy_storage(url)
    journal = _journal_path(url)
    if journal is not None:
        check_journal(Path(journal))
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        return JournalStorage(JournalFileBackend(journal))
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            check_sqlite(Path(path))
            # WAL: readers don't block the writer; the long timeout rides out other workers'
            # commits instead of failing with "database is locked". WAL persists in the file.
            try:
                with sqlite3.connect(path, timeout=60) as con:
                    con.execute("PRAGMA journal_mode=WAL")
            except sqlite3.Error as e:
                raise PipelineError(f"--storage {url}: {sqlite_fault(Path(path), e)}") from None
        engine_kwargs = {"connect_args": {"timeout": 60}}
    if pool is not None:  # every thread of the proxy may hold one; none are opened beyond
        engine_kwargs.update(pool_size=pool, max_overflow=0)
    last: Exception | None = None
    for attempt in range(5):  # fresh databases: workers on several machines race on the schema
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return claiming_rdb_storage()(
                    url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=HEARTBEAT_INTERVAL,
                    grace_period=GRACE_PERIOD,
                    heartbeat_stale_trial_callback=StaleTrialCallback(MAX_RETRY, tracker),
                )
        except ImportError as e:
            raise PipelineError(f"--storage {url}: database driver missing ({e})") from None
        except Exception as e:  # sqlalchemy errors from the schema race; retried
            last = e
            time.sleep(0.5 * (attempt + 1))
    from pipeline.files import one_line
    from pipeline.tracking.store import redact_url

    raise PipelineError(
        f"--storage {redact_url(url)}: cannot open the Optuna storage ({one_line(last or '')}); "
        "check that the database server answers and the URL, user and password are right"
    )


LOW_SPACE = 1 << 20  # bytes free below which an SQLite I/O error is read as a full disk


def sqlite_fault(path: Path, e: Exception) -> str:
    """What an SQLite error that is not about the file's content means, for one line: a
    missing folder, a full disk, or another I/O fault. The file itself is never blamed."""
    import shutil

    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        return f"folder {folder} does not exist; create it or point --storage elsewhere"
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        free = None
    if free is not None and free < LOW_SPACE or "full" in str(e):
        return (f"the disk holding {path} is full ({free} bytes free; {e}); nothing was "
                "changed: free some space and run the same command again")
    return (f"SQLite could not read or write it ({e}); check free space (and any file-size "
            "limit) and the folder's permissions")


# SQLite errors about the bytes of the file (its content), not about reaching them
CONTENT_ERRORS = ("not a database", "malformed", "corrupt", "encrypted")


def store_fault(url: str, e: BaseException) -> PipelineError | None:
    """One line naming the Optuna store and its fault when `e`, or an exception behind it, is
    the store failing (a full disk, a database that went away); None for anything else.
    Optuna can hide the store's error behind its own (`assert False, "Should not reach."`
    when it cannot write a trial's end), so the whole chain is read."""
    from pipeline.files import one_line
    from pipeline.tracking.store import redact_url

    fault: BaseException | None = None
    seen: set[int] = set()
    todo: list[BaseException | None] = [e]
    while todo:
        exc = todo.pop()
        if exc is None or id(exc) in seen:
            continue
        seen.add(id(exc))
        kind = type(exc).__module__.split(".")[0]
        if isinstance(exc, sqlite3.Error) or kind in ("sqlalchemy", "psycopg", "psycopg2",
                                                      "grpc") or (
                type(exc).__name__ == "StorageInternalError"):
            fault = exc if fault is None or isinstance(exc, sqlite3.Error) else fault
        todo += [exc.__cause__, exc.__context__]
    if fault is None:
        return None
    inner = getattr(fault, "orig", None) or fault  # sqlalchemy's wrapper: the driver's error
    if callable(getattr(inner, "details", None)):  # a gRPC error: the proxy's status
        inner = RuntimeError(f"the storage proxy: {inner.code().name}: {inner.details()}")
    path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else None
    if path:
        why = sqlite_fault(Path(path), inner)
    else:
        why = (f"{one_line(inner)}; once it answers again, run the same command: the study "
               "resumes where it stopped")
    return PipelineError(f"the Optuna store {redact_url(url)} failed mid-study: {why} "
                         "(finished trials are kept; the one in flight is marked failed)")


def check_sqlite(path: Path) -> None:
    """An existing file must be Optuna's SQLite database: opened read-only first, so a
    corrupt, truncated or foreign file is one line and stays byte for byte as it was
    (Optuna would add its tables to a foreign database, and WAL mode rewrites the header).
    An I/O fault (full disk: reading a WAL database writes its -shm file) names the fault and
    never advises moving an intact store."""
    if not path.is_file() or path.stat().st_size == 0:
        return  # a new store
    fix = "move it away (or point --storage elsewhere) and run again"
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=60) as con:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
            problem = con.execute("PRAGMA quick_check(1)").fetchone()[0]  # every page read
            if problem != "ok":
                raise sqlite3.DatabaseError(f"malformed: {problem}")
    except sqlite3.Error as e:
        if not any(word in str(e) for word in CONTENT_ERRORS):
            raise PipelineError(f"{path}: {sqlite_fault(path, e)}") from None
        raise PipelineError(
            f"{path}: not a readable Optuna database ({e}: truncated or corrupt?); {fix}"
        ) from None
    if tables and "version_info" not in tables:
        raise PipelineError(
            f"{path}: an SQLite database of something else, not Optuna's (tables: "
            f"{', '.join(sorted(tables)[:5])}); {fix}"
        )


def check_journal(path: Path) -> None:
    """An existing journal file must hold Optuna's JSON log lines (first one checked)."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    import json

    try:
        with path.open("rb") as f:
            first = json.loads(f.readline())
        ok = isinstance(first, dict) and "op_code" in first
    except (OSError, ValueError):
        ok = False
    if not ok:
        raise PipelineError(
            f"{path}: not an Optuna journal file; move it away (or point --storage "
            "elsewhere) and run again"
        )


def make_sampler(seed: int, budget: int) -> Any:
    """TPE with a start of random trials that grows with the budget (4 to 10)."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            seed=seed,
            n_startup_trials=max(4, min(10, budget // 4)),
            multivariate=True,
            group=True,  # conditional parameters (space.CONDITIONS): joint TPE per subspace
            constant_liar=True,  # parallel workers don't all sample the same point
        )


def epoch_stride(exp: Experiment) -> int:
    """Epochs reserved per fold in the pruner's step axis: step = fold * stride + epoch."""
    from pipeline.experiment import Choice

    dim = exp.tune.space.get("max_iter")
    if dim is None:
        return exp.model.max_iter
    return int(max(dim.choices) if isinstance(dim, Choice) else dim.high)


HALVING = 3  # reduction factor of hyperband / halving: the best third goes on at each rung


def make_pruner(exp: Experiment) -> Any:
    """[tune] pruner. The objective checks it on fold 0 only, after the warm-up epochs."""
    import optuna

    kind = exp.tune.pruner
    if kind == "none":
        return optuna.pruners.NopPruner()
    # rungs at warm-up * 3^k epochs of fold 0; the objective's steps go on past one fold's
    # epochs, so the most epochs is given, not guessed from the last step ("auto")
    low = max(1, exp.tune.pruner_warmup_epochs)
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=low, max_resource=max(low, epoch_stride(exp)), reduction_factor=HALVING)
    if kind == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=low, reduction_factor=HALVING)
    # warm-up is applied per fold in the objective, so the pruner itself has none
    return optuna.pruners.MedianPruner(n_startup_trials=exp.tune.pruner_startup_trials)


def open_study(
    url: str, name: str, direction: str, *, fresh: bool = False,
    sampler: Any = None, pruner: Any = None, tracker: Tracker | None = None,
) -> tuple[Any, bool]:
    """(study, created): create it once (atomic in the storage) or load the existing one."""
    import optuna

    storage = make_storage(url, tracker)
    if fresh:
        try:
            optuna.delete_study(study_name=name, storage=storage)
        except KeyError:
            pass
    try:
        optuna.create_study(storage=storage, study_name=name, direction=direction)
        created = True
    except optuna.exceptions.DuplicatedStudyError:
        created = False
    study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
    if study.direction.name.lower() != direction:
        raise PipelineError(
            f"study {name!r} in {url} is set to {study.direction.name.lower()}, but the metric "
            f"wants {direction}; use --fresh or another --study"
        )
    return study, created


def check_identity(
    exp: Experiment, study: Any, fingerprint: str, url: str, *, record: bool = True
) -> None:
    """Tie the study to what its trials measured (`pipeline.identity`); refuse to use it for
    anything else. `tune` (record=True) writes the keys a new or older study lacks; the stages
    that only read trial scores (submit, show --trial, blend) pass record=False.
    [model] defaults, [tune.space] and the budget are not part of it: Optuna resumes across them.
    """
    from pipeline.identity import check_study_identity
    from pipeline.tracking.store import redact_url

    current = check_study_identity(exp, study.user_attrs, fingerprint, study=study.study_name,
                                   where=redact_url(url))
    if record:
        for key, value in current.items():
            if study.user_attrs.get(key) is None:
                study.set_user_attr(key, value)


def enqueue_baselines(study: Any, baselines: list[dict[str, Any]], created: bool) -> int:
    """Queue the baseline trials (`objective.baseline_trials`) a study measures first: all of
    them in a new study; on resume, each one whose every trial failed other than by diverging
    (its first run was interrupted, or its worker killed), so the study still measures the
    linear model. Returns how many were queued."""
    from optuna.trial import TrialState

    trials = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("baseline")]
    queued = 0
    for params in baselines:
        tried = [t for t in trials if t.system_attrs.get("fixed_params") == params]
        lost = bool(tried) and all(
            t.state == TrialState.FAIL and not str(t.user_attrs.get("error", "")).startswith(
                "diverged") for t in tried)
        if (created and not tried) or lost:
            study.enqueue_trial(params, user_attrs={"baseline": True})
            queued += 1
    return queued


def quiet_optuna() -> None:
    """Only Optuna's warnings: our progress display reports each trial."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # failed trials are reported by our progress display; optuna would add a traceback each
    logging.getLogger("optuna.study._optimize").addFilter(
        lambda r: not r.getMessage().startswith("Trial ")
    )
