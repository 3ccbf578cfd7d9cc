"""The Optuna study: storage, sampler, pruner, search space, resume, workers.

The only module that imports optuna (inside functions, so `pipeline --help` stays fast).

Budget. `--trials N` is the study's total of *finished* trials: complete + pruned. Failed
trials (diverged, interrupted, or left behind by a dead worker) do not count: a new trial takes
their place, so a resumed study always ends with exactly N finished trials. A worker only asks
for a trial while finished + running < N, and a trial that still lost the race to a worker on
another machine is failed at once with `user_attrs["skipped"]` (rare; never counted).

Pruning. Every few epochs the objective reports the running fold's validation loss at step
`fold * max_epochs + epoch` (negated for metrics to maximise: Optuna's pruners read "higher is
better" in a maximize study) and raises TrialPruned when the MedianPruner says so; the check runs
the pruner on a snapshot of the complete trials (`PruneCheck`) instead of `should_prune()`, which
re-reads the storage each time. Pruning is decided in the first fold only, after the warm-up
epochs: there every trial is compared on the same rows at the same epoch; checks in later folds
mostly gave noise more chances to prune merely average trials (on adult 70% were pruned and TPE
learnt little), while a bad trial already shows in fold 0. Later folds still report their
curves (intermediate-values plot).

Workers. `--jobs N` spawns N processes; each runs the same loop as a lone `pipeline tune` on
another machine would (`run_worker`), with its own sampler seed (recorded per trial), and sends
its MLflow writes through a writer process (tracking.MlflowTracker(background=True)).

Crash recovery. On one host a RUNNING trial whose worker pid is gone is failed at once; on
several machines Optuna's heartbeat (RDB storages) fails it after the grace period. Both re-queue
it with the same parameters (RetryHeartbeatStaleTrialCallback, bounded retries) and close its
MLflow run as failed.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import socket
import sqlite3
import time
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline.errors import PipelineError
from pipeline.metrics import METRICS
from pipeline.tracking import MlflowTracker, Tracker, make_tracker
from pipeline.tune_progress import TrialRow, TuneDisplay, print_summary, ranked

if TYPE_CHECKING:
    from pipeline.experiment import Experiment

DEFAULT_STORAGE = "sqlite:///optuna.db"
HEARTBEAT_INTERVAL = int(os.environ.get("PIPELINE_HEARTBEAT_INTERVAL", "5"))  # seconds
GRACE_PERIOD = int(os.environ.get("PIPELINE_GRACE_PERIOD", "30"))
MAX_RETRY = 2  # a trial re-queued after its worker died, at most this often
# Most epochs between reports: each is one write to the storage (~1-5 ms on SQLite).
REPORT_EVERY = 10
POLL = 0.5  # seconds between looks at the study while other workers hold the last slots
PARENT_ATTR = "mlflow_parent_run_id"
HOST = socket.gethostname()


class BudgetReached(Exception):
    """This trial lost the race for the last slot of the budget (another worker got it)."""


@dataclass(frozen=True)
class WorkerArgs:
    exp_path: str
    storage: str
    study: str
    budget: int
    deadline: float | None  # time.time() after which no new trial starts
    tracking_uri: str | None
    track: bool
    parent_run: str
    seed: int  # sampler seed of this worker
    worker: int
    parent_pid: int | None  # spawned workers stop when the tune process is gone


# --- storage and study ---------------------------------------------------------------------


def storage_url(storage: str | None) -> str:
    return storage or os.environ.get("OPTUNA_STORAGE") or DEFAULT_STORAGE


def _journal_path(url: str) -> str | None:
    if url.startswith("journal:///"):
        return url.removeprefix("journal:///")
    if url.endswith((".journal", ".log")) and "://" not in url:
        return url
    return None


def make_storage(url: str) -> Any:
    """RDB storage with heartbeat (SQLite, PostgreSQL, MySQL) or a journal file (one host)."""
    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    journal = _journal_path(url)
    if journal is not None:
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        return JournalStorage(JournalFileBackend(journal))
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            # WAL: readers don't block the writer; the long timeout rides out other workers'
            # commits instead of failing with "database is locked". WAL persists in the file.
            with sqlite3.connect(path, timeout=60) as con:
                con.execute("PRAGMA journal_mode=WAL")
        engine_kwargs = {"connect_args": {"timeout": 60}}
    last: Exception | None = None
    for attempt in range(5):  # fresh databases: workers on several machines race on the schema
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return RDBStorage(
                    url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=HEARTBEAT_INTERVAL,
                    grace_period=GRACE_PERIOD,
                    heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(MAX_RETRY),
                )
        except ImportError as e:
            raise PipelineError(f"--storage {url}: database driver missing ({e})") from None
        except Exception as e:  # sqlalchemy errors from the schema race; retried
            last = e
            time.sleep(0.5 * (attempt + 1))
    raise PipelineError(f"--storage {url}: cannot open the Optuna storage ({last})")


def _sampler(exp: Experiment, seed: int, budget: int) -> Any:
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            seed=seed,
            n_startup_trials=max(4, min(10, budget // 4)),
            multivariate=True,
            constant_liar=True,  # parallel workers don't all sample the same point
        )


def _pruner(exp: Experiment) -> Any:
    import optuna

    if exp.tune.pruner == "none":
        return optuna.pruners.NopPruner()
    # warm-up is applied per fold in the objective, so the pruner itself has none
    return optuna.pruners.MedianPruner(n_startup_trials=exp.tune.pruner_startup_trials)


def open_study(
    url: str, name: str, direction: str, *, fresh: bool = False,
    sampler: Any = None, pruner: Any = None,
) -> tuple[Any, bool]:
    """(study, created): create it once (atomic in the storage) or load the existing one."""
    import optuna

    storage = make_storage(url)
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


# --- search space --------------------------------------------------------------------------


def suggest(trial: Any, space: dict) -> dict[str, Any]:
    """Searched values; `n_layers` + `units` become `hidden_layer_sizes`."""
    from pipeline.experiment import Choice

    values: dict[str, Any] = {}
    for key, dim in space.items():
        if isinstance(dim, Choice):
            # categorical choices must be plain scalars: layer tuples travel as strings
            options = [_choice_key(c) for c in dim.choices]
            picked = trial.suggest_categorical(key, options)
            values[key] = dim.choices[options.index(picked)]
        elif dim.integer:
            step = int(dim.step) if dim.step else 1
            low, high = int(dim.low), int(dim.high)
            values[key] = trial.suggest_int(key, low, high, log=dim.log, step=step)
        else:
            values[key] = trial.suggest_float(key, dim.low, dim.high, log=dim.log, step=dim.step)
    return values


def network_params(exp: Experiment, values: dict[str, Any], random_state: int) -> dict[str, Any]:
    params = {**exp.model.params(), **values, "random_state": random_state}
    if "n_layers" in params:
        params["hidden_layer_sizes"] = (int(params.pop("units")),) * int(params.pop("n_layers"))
    params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
    return params


def _choice_key(c: Any) -> Any:
    return "-".join(map(str, c)) if isinstance(c, tuple) else c


def _epoch_stride(exp: Experiment) -> int:
    """Epochs reserved per fold in the pruner's step axis: step = fold * stride + epoch."""
    from pipeline.experiment import Choice

    dim = exp.tune.space.get("max_iter")
    if dim is None:
        return exp.model.max_iter
    return int(max(dim.choices) if isinstance(dim, Choice) else dim.high)


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}


class PruneCheck:
    """`study.pruner.prune` on a snapshot of the complete trials and this trial's reports.

    Same decision as `trial.should_prune()`, which re-reads every running trial with all its
    intermediate values from the storage on each call: ~20 ms on SQLite, more than an epoch of
    a small network. Complete trials don't change, so a snapshot per fold is enough.
    """

    def __init__(self, study: Any) -> None:
        self.study = study
        self.direction = study.direction
        self.values: dict[int, float] = {}
        self._done: list = []
        self.refresh()

    def refresh(self) -> None:
        from optuna.pruners import NopPruner
        from optuna.trial import TrialState

        if isinstance(self.study.pruner, NopPruner):
            return  # never prunes: no need to read the study
        self._done = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))

    def get_trials(self, deepcopy: bool = False, states: Any = None) -> list:  # the pruner's view
        return [t for t in self._done if states is None or t.state in states]

    def __call__(self, step: int, value: float) -> bool:
        from types import SimpleNamespace

        self.values[step] = value
        me = SimpleNamespace(last_step=step, intermediate_values=self.values)
        return bool(self.study.pruner.prune(self, me))


# --- the objective -------------------------------------------------------------------------


class Objective:
    """One trial: sample, cross-validate with pruning, log the child run, record the seed."""

    def __init__(self, exp: Experiment, prepared: Any, tracker: Tracker, args: WorkerArgs):
        self.exp, self.prepared, self.tracker, self.args = exp, prepared, tracker, args
        self.metric = METRICS[exp.competition.metric]
        self.stride = _epoch_stride(exp)
        self.warmup = exp.tune.pruner_warmup_epochs
        self.sign = 1.0 if self.metric.direction == "minimize" else -1.0
        self.every = max(1, min(REPORT_EVERY, self.stride // 10))  # ~10 reports per fold

    def __call__(self, trial: Any) -> float:
        import optuna

        from pipeline.evaluate import cross_validate
        from pipeline.network import DivergenceError

        if not _admitted(trial.study, trial, self.args.budget):
            trial.set_user_attr("skipped", "budget reached by other workers")
            raise BudgetReached
        values = suggest(trial, self.exp.tune.space)
        random_state = (self.exp.tune.seed * 1_000_003 + trial.number) % 2**31
        params = network_params(self.exp, values, random_state)
        for key, value in {
            "params": _jsonable(params), "random_state": random_state, "error": None,
            "sampler_seed": self.args.seed, "worker": self.args.worker, "host": HOST,
            "pid": os.getpid(),
        }.items():
            trial.set_user_attr(key, value)
        run = self.tracker.start_run(
            self.exp, f"trial-{trial.number:04d}", params={**values, **params},
            tags={"optuna.study": self.args.study, "optuna.trial": trial.number,
                  "data_fingerprint": self.prepared.fingerprint, "kind": "trial"},
            parent_id=self.args.parent_run,
        )
        trial.set_user_attr("mlflow_run_id", run.run_id)
        parent_pid = self.args.parent_pid
        prune = PruneCheck(trial.study)

        def on_epoch(fold: int, epoch: int, m: dict[str, float]) -> None:
            run.epoch(fold, m)
            if epoch == 1 and fold > 0:
                run.flush()  # the previous fold is over: one log_batch for its curves
            if parent_pid is not None and os.getppid() != parent_pid:
                raise KeyboardInterrupt("the tune process is gone")
            if epoch == 1:
                prune.refresh()  # trials other workers completed meanwhile
            if epoch % self.every:
                return
            # pruners read "higher is better" in a maximize study: report -loss there
            step, value = fold * self.stride + epoch, self.sign * m["val_loss"]
            trial.report(value, step=step)
            if fold == 0 and epoch > self.warmup and prune(step, value):
                raise optuna.TrialPruned(f"fold {fold} epoch {epoch}: val_loss {m['val_loss']:.4f}")

        name = f"cv_{self.metric.name}"
        try:
            res = cross_validate(self.prepared, self.exp, params, on_epoch=on_epoch)
            n_iter = round(sum(res.n_iters) / len(res.n_iters))
            for key, value in {"n_iter": n_iter, "n_iters": res.n_iters, "cv_std": res.std,
                               "fold_scores": res.scores}.items():
                trial.set_user_attr(key, value)
        except optuna.TrialPruned:
            run.end("pruned", config=self.exp.as_dict())
            raise
        except DivergenceError as e:
            trial.set_user_attr("error", f"diverged: {e}")
            run.end("failed", config=self.exp.as_dict())
            raise
        except BaseException:  # interrupted or a bug: the run must not stay RUNNING
            run.end("failed", config=self.exp.as_dict())
            raise
        run.end(
            "complete",
            metrics={name: res.mean, f"{name}_std": res.std, "n_iter": n_iter,
                     **{f"fold{f}/{self.metric.name}": s for f, s in enumerate(res.scores)}},
            config=self.exp.as_dict(),
        )
        return res.mean


# --- workers -------------------------------------------------------------------------------


def _admitted(study: Any, trial: Any, budget: int) -> bool:
    """Finished trials plus running ones asked before this one leave a slot for it."""
    from optuna.trial import TrialState

    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    ahead = sum(
        1 for t in study.get_trials(deepcopy=False, states=states)
        if t.state != TrialState.RUNNING or t.number < trial.number
    )
    return ahead < budget


def rows(study: Any) -> list[TrialRow]:
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
    """Fail (and re-queue) RUNNING trials whose worker on this host is dead; close their runs."""
    import optuna
    from optuna.storages import RetryHeartbeatStaleTrialCallback
    from optuna.trial import TrialState

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)  # heartbeat: workers on other machines
        retry = RetryHeartbeatStaleTrialCallback(MAX_RETRY)
    n = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = t.user_attrs.get("pid")
        if t.user_attrs.get("host") != HOST or not isinstance(pid, int) or _pid_alive(pid):
            continue
        storage = study._storage
        try:
            storage.set_trial_user_attr(t._trial_id, "error", f"worker pid {pid} died")
            if not storage.set_trial_state_values(t._trial_id, TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another process recovered it first
        n += 1
        if t.user_attrs.get("mlflow_run_id"):
            tracker.close_run(t.user_attrs["mlflow_run_id"], "failed")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            retry(study, storage.get_trial(t._trial_id))
    return n


def _quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # failed trials are reported by our progress display; optuna would add a traceback each
    logging.getLogger("optuna.study._optimize").addFilter(
        lambda r: not r.getMessage().startswith("Trial ")
    )


def run_worker(args: WorkerArgs, on_trial: Any = None, tracker: Tracker | None = None) -> None:
    """Work on the study until it holds `budget` finished trials (or the deadline passes).

    The caller may pass (and then closes) the tracker; by default it is closed here.
    """
    from pipeline.experiment import load
    from pipeline.prepare import prepare

    _quiet_optuna()
    exp = load(args.exp_path)
    prepared = prepare(exp)
    own = tracker is None
    if tracker is None:
        tracker = _worker_tracker(args.tracking_uri, args.track)
    try:
        _work(args, exp, prepared, tracker, on_trial)
    finally:
        if own:
            tracker.close()  # drain the writer: every run is complete before we return


def _worker_tracker(tracking_uri: str | None, track: bool) -> Tracker:
    """Trials write to MLflow through a writer process: off the critical path."""
    tracker = make_tracker(tracking_uri, track, background=True)
    if isinstance(tracker, MlflowTracker):
        tracker.start_writer()  # its imports overlap with the first trial
    return tracker


def _work(
    args: WorkerArgs, exp: Experiment, prepared: Any, tracker: Tracker, on_trial: Any
) -> None:
    import optuna
    from optuna.trial import TrialState

    from pipeline.network import DivergenceError

    metric = METRICS[exp.competition.metric]
    study, _ = open_study(args.storage, args.study, metric.direction,
                          sampler=_sampler(exp, args.seed, args.budget), pruner=_pruner(exp))
    objective = Objective(exp, prepared, tracker, args)
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
            return
        recover(study, tracker)
        trials = study.get_trials(deepcopy=False)
        finished = sum(t.state in finished_states for t in trials)
        running = sum(t.state == TrialState.RUNNING for t in trials)
        if finished >= args.budget or (args.deadline and time.time() >= args.deadline):
            return
        if failures >= max_failures:
            print(f"worker {args.worker}: {failures} trials failed in this run; stopping "
                  "(check the search space: learning rates too high?)", flush=True)
            return
        if finished + running >= args.budget:
            time.sleep(POLL)  # the last slots are taken; they may still fail and free one
            continue
        study.optimize(
            objective, n_trials=1, catch=(DivergenceError, BudgetReached),
            callbacks=[optuna.study.MaxTrialsCallback(args.budget, finished_states), after],
        )


def _worker_process(args: WorkerArgs) -> None:
    try:
        run_worker(args)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except PipelineError as e:
        print(f"error: {e}", flush=True)
        raise SystemExit(2) from None


def _run_processes(args: WorkerArgs, jobs: int, seeds: list[int], poll: Any) -> None:
    ctx = mp.get_context("spawn")  # fork would copy the parent's DB connections and threads
    procs = [
        ctx.Process(target=_worker_process, name=f"tune-worker-{i}",
                    args=(_replace(args, worker=i, seed=seeds[i], parent_pid=os.getpid()),))
        for i in range(jobs)
    ]
    for p in procs:
        p.start()
    try:
        while any(p.is_alive() for p in procs):
            poll()
            time.sleep(1.0)
    finally:
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.terminate()
    bad = [p for p in procs if p.exitcode not in (0, None)]
    if bad:
        codes = ", ".join(f"{p.name}: exit {p.exitcode}" for p in bad)
        raise PipelineError(f"tuning workers failed ({codes}); run the command again to resume")


def _replace(args: WorkerArgs, **changes: Any) -> WorkerArgs:
    from dataclasses import replace

    return replace(args, **changes)


# --- the tune command ----------------------------------------------------------------------


def tune(
    exp: Experiment, *, trials: int | None = None, timeout: float | None = None, jobs: int = 1,
    storage: str | None = None, study_name: str | None = None, fresh: bool = False,
    tracking_uri: str | None = None, quiet: bool = False, track: bool = True,
) -> None:
    """Tune until the study holds `trials` finished trials; resumable; `jobs` processes."""
    import numpy as np

    from pipeline.prepare import prepare

    _quiet_optuna()
    budget = trials or exp.tune.trials
    timeout = timeout if timeout is not None else exp.tune.timeout
    metric = METRICS[exp.competition.metric]
    prepared = prepare(exp)  # once here, so workers only read the cache
    tracker = make_tracker(tracking_uri, track)
    tracker.setup(exp)  # MLflow schema + experiment before any worker starts
    url, name = storage_url(storage), study_name or exp.name
    study, created = open_study(url, name, metric.direction, fresh=fresh)
    parent = _parent_run(study, created, tracker, exp, name, url, prepared.fingerprint)
    recover(study, tracker)
    n_before = len(study.trials)
    # a resumed study must not replay the first run's random start: the seeds depend on it
    seeds = [int(s) for s in np.random.SeedSequence([exp.tune.seed, n_before]).generate_state(jobs)]
    study.set_user_attr(f"sampler_seeds@{n_before}", seeds)
    args = WorkerArgs(
        exp_path=str(exp.path), storage=url, study=name, budget=budget,
        deadline=time.time() + timeout if timeout else None, tracking_uri=tracking_uri,
        track=track, parent_run=parent, seed=seeds[0], worker=0, parent_pid=None,
    )
    display = TuneDisplay(budget, metric.name, metric.direction, quiet)
    started = time.monotonic()
    writer = _worker_tracker(tracking_uri, track) if jobs == 1 else Tracker()
    try:
        with display:
            display.resume(rows(study))
            if jobs == 1:
                run_worker(args, on_trial=lambda: display.update(rows(study)), tracker=writer)
            else:
                _run_processes(args, jobs, seeds, lambda: display.update(rows(study)))
            display.update(rows(study))
        # the study plots are drawn here while the writer still sends the last trial's run
        _finish(exp, study, tracker, parent, budget, time.monotonic() - started)
    except KeyboardInterrupt:
        writer.close()
        tracker.close_run(parent, "interrupted")
        done = sum(r.state in ("complete", "pruned") for r in rows(study))
        print(f"interrupted at {done}/{budget} finished trials; run the same command to go on")
        raise
    finally:
        writer.close()
        _close_dead_runs(study, tracker)


def _parent_run(
    study: Any, created: bool, tracker: Tracker, exp: Experiment, name: str, url: str,
    fingerprint: str,
) -> str:
    """One MLflow parent run per study; its id lives in the study so a resume reuses it."""
    run_id = study.user_attrs.get(PARENT_ATTR)
    if not created and run_id is None:  # the creator (another machine) is writing it now
        for _ in range(20):
            time.sleep(0.5)
            run_id = study.user_attrs.get(PARENT_ATTR)
            if run_id:
                break
    tags = {"optuna.study": name, "optuna.storage": _safe_url(url),
            "data_fingerprint": fingerprint, "direction": study.direction.name.lower()}
    new_id = tracker.parent_run(exp, name, run_id, tags)
    if new_id != run_id:
        study.set_user_attr(PARENT_ATTR, new_id)
    return new_id


def _safe_url(url: str) -> str:
    """The storage URL without a password, for tags."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}@{host}"
    return url


def _close_dead_runs(study: Any, tracker: Tracker) -> None:
    """MLflow runs of trials the heartbeat failed (their worker died elsewhere) end FAILED."""
    from optuna.trial import TrialState

    ids = [t.user_attrs.get("mlflow_run_id") for t in study.get_trials(
        deepcopy=False, states=(TrialState.FAIL,))]
    tracker.close_if_running([i for i in ids if i])


def _finish(
    exp: Experiment, study: Any, tracker: Tracker, parent: str, budget: int, seconds: float
) -> None:
    """Summary, best.json, and (once the budget is spent) the study plots on the parent run."""
    import json

    metric = METRICS[exp.competition.metric]
    trial_rows = rows(study)
    print_summary(trial_rows, metric.name, metric.direction)
    order = ranked(trial_rows, metric.direction)
    finished = sum(r.state in ("complete", "pruned") for r in trial_rows)
    if order:
        best = order[0]
        path = exp.path.parent / f"{exp.name}.best.json"
        path.write_text(json.dumps({
            "experiment": exp.name, "study": study.study_name, "trial": best.number,
            "metric": metric.name, "score": best.value, "cv_std": best.attrs.get("cv_std"),
            "n_iter": best.attrs.get("n_iter"), "random_state": best.attrs.get("random_state"),
            "params": best.attrs.get("params"), "search": best.params,
            "mlflow_run_id": best.attrs.get("mlflow_run_id"),
        }, indent=2) + "\n", encoding="utf-8")
        print(f"best parameters -> {path}")
    if finished >= budget and tracker.enabled:
        metrics: dict[str, float] = {}
        tags: dict[str, Any] = {"trials_finished": finished, "seconds": round(seconds, 1)}
        if order:
            best = order[0]
            metrics = {f"best_cv_{metric.name}": best.value,
                       f"best_cv_{metric.name}_std": best.attrs.get("cv_std", float("nan")),
                       "best_trial": best.number, "best_n_iter": best.attrs.get("n_iter", 0)}
            metrics.update({f"best_fold{f}/{metric.name}": s
                            for f, s in enumerate(best.attrs.get("fold_scores", []))})
            tags.update({"best_trial": best.number, "best_run_id": best.attrs.get("mlflow_run_id")})
            tags.update({f"best.{k}": v for k, v in best.params.items()})
        tracker.finish_parent(parent, metrics, tags, study_figures(study))
    if finished < budget:
        print(f"{finished}/{budget} finished trials; run the same command to continue")


def study_figures(study: Any) -> dict[str, Any]:
    """Optuna's optimisation-history, intermediate-values and importance plots (matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import optuna
    import optuna.visualization.matplotlib as vis

    figures: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the matplotlib backend is "experimental"
        for name, plot in (("optimization_history", vis.plot_optimization_history),
                           ("intermediate_values", vis.plot_intermediate_values),
                           ("param_importances", vis.plot_param_importances)):
            try:
                ax = plot(study)
            except (ValueError, RuntimeError, ZeroDivisionError, optuna.exceptions.OptunaError):
                continue  # e.g. importances need two complete trials that differ
            first = ax.flat[0] if hasattr(ax, "flat") else ax
            figures[name] = first.figure
    return figures


# --- hand-off to the submission stage ------------------------------------------------------


def submit_best(
    exp: Experiment, *, trial: int | None = None, top_k: int = 1, refit: bool = True,
    message: str = "", storage: str | None = None, study_name: str | None = None,
    tracking_uri: str | None = None,
) -> Any:
    """Best trial (or `trial`, or the top k) -> submit.submit; files logged on the parent run."""
    import optuna
    from optuna.trial import TrialState

    from pipeline.submit import TrialSpec, submit

    _quiet_optuna()
    url, name = storage_url(storage), study_name or exp.name
    try:
        study = optuna.load_study(study_name=name, storage=make_storage(url))
    except KeyError:
        raise PipelineError(
            f"no study {name!r} in {_safe_url(url)}; run `pipeline tune {exp.name}` first"
        ) from None
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if "params" in t.user_attrs]
    if trial is not None:
        chosen = [t for t in done if t.number == trial]
        if not chosen:
            raise PipelineError(f"--trial {trial}: no complete trial with that number in study "
                                f"{name!r} (complete: {', '.join(str(t.number) for t in done)})")
    else:
        chosen = sorted(done, key=lambda t: t.value, reverse=study.direction.name == "MAXIMIZE")
        chosen = chosen[:top_k]
    specs = [TrialSpec(number=t.number, params=dict(t.user_attrs["params"]), score=t.value,
                       n_iter=int(t.user_attrs.get("n_iter", 1))) for t in chosen]
    result = submit(exp, specs, refit=refit, message=message)
    parent = study.user_attrs.get(PARENT_ATTR)
    if parent:
        tracker = make_tracker(tracking_uri)
        try:
            tracker.log_files(parent, [result.path, *result.model_paths], "submission")
        except Exception as e:  # the submission is written; a tracking hiccup must not undo it
            print(f"warning: could not log the submission to MLflow ({e})")
    return result


def train_once(exp: Experiment, *, overrides: list[str], tracking_uri: str | None = None) -> Any:
    """`pipeline train` (kept here for the CLI's import; the work is in pipeline.train)."""
    from pipeline.train import train_once as run

    return run(exp, overrides=overrides, tracking_uri=tracking_uri)
