"""The Optuna study: storage, sampler, pruner, search space, resume, workers.

The only package that imports optuna (inside functions, so `pipeline --help` stays fast):
`study` (storage, sampler, pruner, stale-trial callback), `objective` (search space, one trial),
`worker` (the trial loop, worker processes, recovery), `plots` (the study plots); this module
is the `tune` command and the hand-off to `submit`.

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
several machines Optuna's heartbeat (RDB storages) fails it after the grace period. Both close
its MLflow run as failed and re-queue it with the same parameters (StaleTrialCallback, which
delegates to RetryHeartbeatStaleTrialCallback: bounded retries). The study plots for the parent
run are drawn by the MLflow writer process (jobs=1), not on the tune process's path.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from pipeline.errors import PipelineError
from pipeline.metrics import METRICS
from pipeline.tracking import Tracker, make_tracker
from pipeline.tracking.store import redact_url
from pipeline.tune.objective import BudgetReached, Objective, WorkerArgs, network_params, suggest
from pipeline.tune.plots import stored_study_figures, study_figures
from pipeline.tune.study import (
    DEFAULT_STORAGE,
    GRACE_PERIOD,
    HEARTBEAT_INTERVAL,
    HOST,
    HOST_ID,
    MAX_RETRY,
    PARENT_ATTR,
    StaleTrialCallback,
    _quiet_optuna,
    make_storage,
    open_study,
    storage_url,
)
from pipeline.tune.worker import (
    _run_processes,
    _worker_tracker,
    recover,
    rows,
    run_worker,
)
from pipeline.tune_progress import TuneDisplay, print_summary, ranked

if TYPE_CHECKING:
    from pipeline.experiment import Experiment

__all__ = [
    "DEFAULT_STORAGE", "GRACE_PERIOD", "HEARTBEAT_INTERVAL", "HOST", "HOST_ID", "MAX_RETRY",
    "PARENT_ATTR", "BudgetReached", "Objective", "StaleTrialCallback", "WorkerArgs", "make_storage",
    "network_params", "open_study", "recover", "rows", "run_worker", "storage_url",
    "stored_study_figures", "study_figures", "submit_best", "suggest", "train_once", "tune",
]


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
    # one worker: its MLflow writer process starts first, so its imports overlap with ours
    if jobs == 1:
        tracker = _worker_tracker(tracking_uri, track)
    else:
        tracker = make_tracker(tracking_uri, track)
    prepared = prepare(exp)  # once here, so workers only read the cache
    tracker.setup(exp)  # MLflow schema + experiment before any worker starts
    url, name = storage_url(storage), study_name or exp.name
    study, created = open_study(url, name, metric.direction, fresh=fresh, tracker=tracker)
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
    try:
        with display:
            display.resume(rows(study))
            if jobs == 1:
                run_worker(args, on_trial=lambda: display.update(rows(study)), tracker=tracker)
            else:
                _run_processes(args, jobs, seeds, lambda: display.update(rows(study)))
            display.update(rows(study))
        # with one worker, its writer draws the study plots: it has matplotlib loaded already
        _finish(exp, study, tracker, parent, budget, time.monotonic() - started, url)
    except KeyboardInterrupt:
        tracker.close()
        tracker.close_run(parent, "interrupted")
        done = sum(r.state in ("complete", "pruned") for r in rows(study))
        print(f"interrupted at {done}/{budget} finished trials; run the same command to go on")
        raise
    finally:
        tracker.close()
        _close_dead_runs(study, tracker)


def _parent_run(
    study: Any, created: bool, tracker: Tracker, exp: Experiment, name: str, url: str,
    fingerprint: str,
) -> str:
    """One MLflow parent run per study; its id lives in the study so a resume reuses it.

    A worker that finds the study without the id (its creator is slow or died before writing
    it) settles with the others on the earliest run tagged as this study's parent.
    """
    run_id = study.user_attrs.get(PARENT_ATTR)
    if not created and run_id is None:  # the creator (another machine) is writing it now
        for _ in range(20):
            time.sleep(0.5)
            run_id = study.user_attrs.get(PARENT_ATTR)
            if run_id:
                break
    tags = {"optuna.study": name, "optuna.storage": redact_url(url),
            "optuna.study_id": study._study_id, "data_fingerprint": fingerprint,
            "direction": study.direction.name.lower()}
    new_id = tracker.parent_run(exp, name, run_id, tags, settle=not created)
    if new_id != run_id:
        study.set_user_attr(PARENT_ATTR, new_id)
    return new_id




def _close_dead_runs(study: Any, tracker: Tracker) -> None:
    """MLflow runs of trials the heartbeat failed (their worker died elsewhere) end FAILED."""
    from optuna.trial import TrialState

    ids = [t.user_attrs.get("mlflow_run_id") for t in study.get_trials(
        deepcopy=False, states=(TrialState.FAIL,))]
    tracker.close_if_running([i for i in ids if i])


def _finish(
    exp: Experiment, study: Any, tracker: Tracker, parent: str, budget: int, seconds: float,
    url: str,
) -> None:
    """Summary, best.json, and (once the budget is spent) the study plots on the parent run."""
    import json

    metric = METRICS[exp.competition.metric]
    trial_rows = rows(study)
    order = ranked(trial_rows, metric.direction)
    finished = sum(r.state in ("complete", "pruned") for r in trial_rows)
    if finished >= budget and tracker.enabled:  # first: the writer draws while we print
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
        tracker.finish_parent(parent, metrics, tags, stored_study_figures,
                              (url, study.study_name))
    print_summary(trial_rows, metric.name, metric.direction)
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
    if finished < budget:
        print(f"{finished}/{budget} finished trials; run the same command to continue")


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
            f"no study {name!r} in {redact_url(url)}; run `pipeline tune {exp.name}` first"
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
