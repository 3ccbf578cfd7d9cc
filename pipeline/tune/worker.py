"""Worker processes: the trial loop each `pipeline tune` (or `--jobs` process) runs, and
recovery of trials whose worker died.

A spawned worker has no caller to return messages to: it prints them (its stdout is the tune
command's); a worker in the tune process itself returns them.

BLAS threads: a worker uses the cores it is given and no more, `blas_threads(jobs)` each
(the process's CPU affinity shared by the `--jobs` workers), so parallel workers do not
oversubscribe the machine; each trial records the count threadpoolctl reports (`blas_threads`).
Inside a fit the network holds BLAS to one thread (`network/threads.py`: measured faster for
its small GEMMs); the share serves the rest (predictions in blocks, scikit-learn).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pipeline.errors import PipelineError
from pipeline.metrics import METRICS
from pipeline.processes import default_signals, die_with_parent, sigterm_as_interrupt, stop_group
from pipeline.tracking import MlflowTracker, Tracker, make_tracker
from pipeline.tune.objective import BudgetReached, Objective, WorkerArgs
from pipeline.tune.optuna_internals import fail_trial
from pipeline.tune.plots import preload_figures
from pipeline.tune.progress import GaveUp, TrialRow
from pipeline.tune.study import (
    GRACE_PERIOD,
    HOST_ID,
    MAX_RETRY,
    POLL,
    StaleTrialCallback,
    make_pruner,
    make_sampler,
    make_storage,
    open_study,
    quiet_optuna,
    store_fault,
)

if TYPE_CHECKING:
    from pipeline.experiment import Experiment


def rows(study: Any) -> list[TrialRow]:
    """The study's trials as plain rows (state names as we show them)."""
    out = []
    for t in study.get_trials(deepcopy=False):
        state = t.state.name.lower()
        state = {"fail": "failed"}.get(state, state)
        if state == "failed" and t.user_attrs.get("skipped"):
            state = "skipped"
        out.append(TrialRow(t.number, state, t.value if state == "complete" else None,
                            dict(t.params), dict(t.user_attrs)))
    return out


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover(study: Any, tracker: Tracker) -> int:
    """Fail (and re-queue) RUNNING trials whose worker is dead; close their MLflow runs.

    Other machines: Optuna's heartbeat (`fail_stale_trials`, then the storage's
    StaleTrialCallback). This host (same HOST_ID): a trial whose pid is gone, at once. Any
    host: a trial that never recorded its worker (the store failed right after handing it
    out, so it has no heartbeat either and Optuna would leave it RUNNING for ever), once it
    is older than the grace period: a live worker records itself within a second.
    """
    import optuna
    from optuna.trial import TrialState

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    callback = StaleTrialCallback(MAX_RETRY, tracker)
    n = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = t.user_attrs.get("pid")
        if pid is None and _orphaned(t):
            why = "its worker never recorded itself (the store failed)"
        elif t.user_attrs.get("host_id") != HOST_ID or not isinstance(pid, int) or _pid_alive(pid):
            continue
        else:
            why = f"worker pid {pid} died"
        try:
            failed = fail_trial(study, t, why)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another process recovered it first
        if failed is None:
            continue
        n += 1
        callback(study, failed)
    return n


def _orphaned(trial: Any) -> bool:
    started = trial.datetime_start  # Optuna's: naive local time
    return started is not None and (datetime.now() - started).total_seconds() > GRACE_PERIOD


def blas_threads(jobs: int) -> int:
    """BLAS threads of each of `jobs` workers on this machine: the cores this process may
    run on (its CPU affinity), shared, at least 1."""
    return max(1, len(os.sched_getaffinity(0)) // max(1, jobs))


def limit_threads(n: int) -> None:
    """This process's BLAS / OpenMP pools to `n` threads (threadpoolctl), for good."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=n)  # not a `with`: it holds for the worker's life


def current_blas_threads() -> int:
    """The BLAS threads threadpoolctl reports for this process (the smallest pool's)."""
    from threadpoolctl import threadpool_info

    pools = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
    return min(pools) if pools else 1


def run_worker(
    args: WorkerArgs, on_trial: Callable[[], object] | None = None, tracker: Tracker | None = None,
    threads: int | None = None,
) -> GaveUp | None:
    """Work on the study until it holds `budget` finished trials (or the deadline passes).

    Returns why it stopped early, if it did. The caller may pass (and then closes) the
    tracker; by default it is closed here. `threads`: BLAS threads [default: every core,
    `blas_threads(1)`: the only worker].
    """
    from pipeline.experiment import load
    from pipeline.prepare import prepare

    limit_threads(blas_threads(1) if threads is None else threads)
    quiet_optuna()
    exp = load(args.exp_path)
    prepared = prepare(exp)
    own = tracker is None
    if tracker is None:
        tracker = worker_tracker(args.tracking_uri, args.track)
    previous = _quiet_heartbeat_faults(args.storage)
    try:
        return _work(args, exp, prepared, tracker, on_trial)
    except Exception as e:  # the store failing mid-study: one line, not a traceback per trial
        if (fault := store_fault(args.storage, e)) is None:
            raise
        _fail_own_trials(args.storage, args.study)
        raise fault from None
    finally:
        threading.excepthook = previous
        if own:
            tracker.close()  # drain the writer: every run is complete before we return


def _quiet_heartbeat_faults(url: str) -> Any:
    """Optuna's heartbeat thread dies with a traceback when the store goes away; the trial
    loop meets the same fault at its next write and says it in one line. Returns the hook
    to restore."""
    previous = threading.excepthook

    def hook(args: Any) -> None:
        if args.exc_value is None or store_fault(url, args.exc_value) is None:
            previous(args)

    threading.excepthook = hook
    return previous


def _fail_own_trials(url: str, name: str) -> None:
    """Best effort, after a store fault: our RUNNING trials -> FAIL. If the store still
    refuses, the next run's `recover` fails them (their pid is gone by then)."""
    import optuna
    from optuna.trial import TrialState

    try:
        study = optuna.load_study(study_name=name, storage=make_storage(url))
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if t.user_attrs.get("host_id") == HOST_ID and t.user_attrs.get("pid") == os.getpid():
                fail_trial(study, t, "the Optuna store failed")
    except Exception:  # the store is still down: the message already says so
        pass


def worker_tracker(tracking_uri: str | None, track: bool) -> Tracker:
    """Trials write to MLflow through a writer process: off the critical path."""
    tracker = make_tracker(tracking_uri, track, background=True)
    if isinstance(tracker, MlflowTracker):
        tracker.start_writer()  # its imports overlap with the first trial
        tracker.preload(preload_figures)
    return tracker


def _work(
    args: WorkerArgs, exp: Experiment, prepared: Any, tracker: Tracker,
    on_trial: Callable[[], object] | None,
) -> GaveUp | None:
    import optuna
    from optuna.trial import TrialState

    from pipeline.network import DivergenceError

    metric = METRICS[exp.competition.metric]
    study, _ = open_study(args.storage, args.study, metric.direction,
                          sampler=make_sampler(args.seed, args.budget), pruner=make_pruner(exp),
                          tracker=tracker)
    objective = _recording_threads(Objective(exp, prepared, tracker, args))
    failures, max_failures = 0, max(10, args.budget)
    finished_states = (TrialState.COMPLETE, TrialState.PRUNED)

    def after(study: Any, trial: Any) -> None:
        nonlocal failures
        if trial.state == TrialState.FAIL and not trial.user_attrs.get("skipped"):
            failures += 1
        if on_trial is not None:
            on_trial()

    while True:
        if args.parent_pid is not None and os.getppid() != args.parent_pid:
            return None
        recover(study, tracker)
        trials = study.get_trials(deepcopy=False)
        finished = sum(t.state in finished_states for t in trials)
        running = sum(t.state == TrialState.RUNNING for t in trials)
        if finished >= args.budget or (args.deadline and time.time() >= args.deadline):
            return None
        if failures >= max_failures:
            return GaveUp(args.worker, failures)
        if finished + running >= args.budget:
            time.sleep(POLL)  # the last slots are taken; they may still fail and free one
            continue
        study.optimize(
            objective, n_trials=1, catch=(DivergenceError, BudgetReached),
            callbacks=[optuna.study.MaxTrialsCallback(args.budget, finished_states), after],
        )


def _recording_threads(objective: Callable[[Any], float]) -> Callable[[Any], float]:
    """The objective, each trial first recording the BLAS threads it runs with."""
    threads = current_blas_threads()

    def recorded(trial: Any) -> float:
        trial.set_user_attr("blas_threads", threads)
        return objective(trial)

    return recorded


def stop_workers(procs: list[Any]) -> None:
    """Ctrl-C or SIGTERM of `tune`: each worker's group gets SIGINT (the worker ends its trial
    as interrupted and drains its MLflow writer), then SIGKILL for what is left."""
    deadline = time.monotonic() + 20
    for p in procs:
        stop_group(p.pid, p.is_alive, first=signal.SIGINT,
                   grace=max(0.0, deadline - time.monotonic()))
        p.join(timeout=5)


def _worker_process(args: WorkerArgs, errors: Any = None, threads: int = 1) -> None:
    # its own process group (with its MLflow writer): the parent stops it as one, and a
    # terminal's Ctrl-C reaches the parent only, which then stops the workers. The parent's
    # SIGINT must work whatever we inherited; a parent gone without a word (kill -9) sends
    # one too, so the trial in flight ends FAIL instead of RUNNING, and no new one starts.
    os.setpgid(0, 0)
    default_signals()
    die_with_parent(signal.SIGINT, args.parent_pid)
    try:
        gave_up = run_worker(args, threads=threads)
        if gave_up is not None:
            print(gave_up, flush=True)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except PipelineError as e:  # the parent says it, once for all workers (a store fault)
        if errors is not None:
            errors.put(str(e))
        else:
            print(f"error: {e}", flush=True)
        raise SystemExit(2) from None


def run_processes(
    args: WorkerArgs, jobs: int, seeds: list[int], poll: Callable[[], object]
) -> None:
    """`jobs` spawned workers on the study; `poll()` about once a second while they run."""
    ctx = mp.get_context("spawn")  # fork would copy the parent's DB connections and threads
    errors = ctx.SimpleQueue()  # the workers' one-line errors
    procs = [
        ctx.Process(target=_worker_process, name=f"tune-worker-{i}",
                    args=(replace(args, worker=i, seed=seeds[i], parent_pid=os.getpid()),
                          errors, blas_threads(jobs)))
        for i in range(jobs)
    ]
    for p in procs:
        p.start()
    try:
        with sigterm_as_interrupt():  # `kill <pid>` of `tune` stops the workers as Ctrl-C
            while any(p.is_alive() for p in procs):
                poll()
                time.sleep(1.0)
    except KeyboardInterrupt:
        stop_workers(procs)
        raise
    finally:
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.terminate()
    said = []
    while not errors.empty():
        if (line := errors.get()) not in said:
            said.append(line)
    if said:  # every worker met the same store fault: one line
        raise PipelineError("; ".join(said))
    bad = [p for p in procs if p.exitcode not in (0, None)]
    if bad:
        codes = ", ".join(f"{p.name}: exit {p.exitcode}" for p in bad)
        raise PipelineError(f"tuning workers failed ({codes}); run the command again to resume")
