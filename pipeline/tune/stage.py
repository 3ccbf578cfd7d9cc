"""The `tune` stage (`tune`: the study until its budget is spent, with its parent run and
best.json) and the study's answer to the later stages (`best_trials`, `study_run_id`). The
package docstring says how budgets, pruning, workers and crash recovery work."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import PipelineError
from pipeline.files import write_text_atomic
from pipeline.metrics import METRICS, Metric
from pipeline.processes import sigterm_as_interrupt
from pipeline.tracking import Tracker, make_tracker
from pipeline.tracking.store import redact_url
from pipeline.trials import TrialSpec, remove_study
from pipeline.tune.fidelity import full_fidelity, subsample
from pipeline.tune.objective import WorkerArgs
from pipeline.tune.optuna_internals import study_id
from pipeline.tune.plots import stored_study_figures
from pipeline.tune.progress import GaveUp, TrialRow, TuneProgress, TuneResult, ranked
from pipeline.tune.space import baseline_trials, check_space
from pipeline.tune.study import (
    PARENT_ATTR,
    check_identity,
    enqueue_baselines,
    make_storage,
    open_study,
    quiet_optuna,
    storage_url,
)
from pipeline.tune.worker import recover, rows, run_processes, run_worker, worker_tracker

if TYPE_CHECKING:
    from pipeline.experiment import Experiment

OnProgress = Callable[[TuneProgress], object]


def tune(
    exp: Experiment, *, trials: int | None = None, timeout: float | None = None, jobs: int = 1,
    storage: str | None = None, study_name: str | None = None, fresh: bool = False,
    tracking_uri: str | None = None, track: bool = True, on_progress: OnProgress | None = None,
) -> TuneResult:
    """Tune until the study holds `trials` finished trials; resumable; `jobs` processes.

    `on_progress` gets the study as found, then the study after each trial. Ctrl-C ends the
    runs and raises KeyboardInterrupt with a line saying how far the study got.
    """
    quiet_optuna()
    budget = trials or exp.tune.trials
    metric = METRICS[exp.competition.metric]
    url, name = storage_url(storage, exp.tune.storage), study_name or exp.name
    prepared, tracker = _prepared_and_tracker(exp, jobs, tracking_uri, track)
    try:
        tracker.setup(exp)  # MLflow schema + experiment before any worker starts
        study, created = open_study(url, name, metric.direction, fresh=fresh, tracker=tracker)
        check_identity(exp, study, prepared.fingerprint, url)
        check_space(study, exp.tune.space, url)
        if exp.tune.subsample < 1:  # a share too small for the folds: said before any trial
            subsample(prepared, exp)
    except BaseException:  # bad data, store or identity: the idle writer process ends too
        tracker.close()
        raise
    if not created and (done := _complete(exp, study, budget)) is not None:
        with suppress(Exception):  # a complete study still ends what killed workers left
            recover(study, tracker)
            _close_dead_runs(study, tracker)
        tracker.close()
        return done
    if created:
        remove_study(exp.name, name)  # stored results of a deleted study of the same name
    # every study measures the linear model and [model]'s defaults first (again if lost)
    enqueue_baselines(study, baseline_trials(exp), created)
    parent = _parent_run(study, created, tracker, exp, name, url, prepared.fingerprint)
    recover(study, tracker)
    timeout = timeout if timeout is not None else exp.tune.timeout
    args = WorkerArgs(
        exp_path=str(exp.path), storage=url, study=name, budget=budget,
        deadline=time.time() + timeout if timeout else None, tracking_uri=tracking_uri,
        track=track, parent_run=parent, seed=0, worker=0, parent_pid=None,
    )
    seeds = _sampler_seeds(exp, study, jobs)

    def report() -> None:
        if on_progress is not None:
            on_progress(TuneProgress(rows(study), budget, metric.name, metric.direction))

    started = time.monotonic()
    try:
        report()
        gave_up: GaveUp | None = None
        if jobs == 1:
            with sigterm_as_interrupt():  # `kill <pid>` ends the run like Ctrl-C: runs closed
                gave_up = run_worker(replace(args, seed=seeds[0]), on_trial=report,
                                     tracker=tracker)
        else:
            run_processes(args, jobs, seeds, report)
        report()
        # with one worker, its writer draws the study plots: it has matplotlib loaded already
        result = _finish(exp, study, tracker, args, time.monotonic() - started,
                         [str(gave_up)] if gave_up else [])
    except KeyboardInterrupt:
        tracker.close()
        tracker.close_run(parent, "interrupted")
        done = sum(r.state in ("complete", "pruned") for r in rows(study))
        raise KeyboardInterrupt(
            f"interrupted at {done}/{budget} finished trials; run the same command to go on"
        ) from None
    finally:
        tracker.close()
        with suppress(Exception):  # the store may be what failed: the run's own error stands
            recover(study, tracker)  # trials of workers that were killed: FAIL, re-queued
            _close_dead_runs(study, tracker)
    return result


def _prepared_and_tracker(exp: Experiment, jobs: int, tracking_uri: str | None, track: bool
                          ) -> tuple[Any, Tracker]:
    """The prepared arrays, once here so workers only read the cache, and the tracker. One
    worker's MLflow writer process starts first, so its imports overlap with ours; but after
    big inputs, which may be built in a child process: the two at once would add up (~230 +
    ~800 MB at 1M rows)."""
    from pipeline.prepare import big_inputs, prepare

    prepared = prepare(exp, apart=True) if big_inputs(exp) else None
    tracker = (worker_tracker if jobs == 1 else make_tracker)(tracking_uri, track)
    if prepared is None:
        try:
            prepared = prepare(exp)  # small inputs: built here, no child
        except BaseException:  # bad data: the idle writer process ends too
            tracker.close()
            raise
    return prepared, tracker


def _complete(exp: Experiment, study: Any, budget: int) -> TuneResult | None:
    """The study as it is, when it already holds its budget: a re-run adds nothing (no trial,
    no MLflow run) and says how to extend it."""
    metric = METRICS[exp.competition.metric]
    trial_rows = rows(study)
    finished = sum(r.state in ("complete", "pruned") for r in trial_rows)
    if finished < budget:
        return None
    more = finished + max(1, budget // 2)
    note = (f"study {study.study_name!r} is complete with {finished} finished trials; "
            f"to extend it: --trials {more} (or make tune TRIALS={more})")
    best = best_path(exp, study.study_name)
    return TuneResult(trial_rows, budget, metric.name, metric.direction,
                      best if best.is_file() else None, [note])


def _sampler_seeds(exp: Experiment, study: Any, jobs: int) -> list[int]:
    """One sampler seed per worker, recorded in the study.

    A resumed study must not replay the first run's random start: the seeds depend on how
    many trials it already holds.
    """
    import numpy as np

    n_before = len(study.trials)
    sequence = np.random.SeedSequence([exp.tune.seed, n_before])
    seeds = [int(s) for s in sequence.generate_state(jobs)]
    study.set_user_attr(f"sampler_seeds@{n_before}", seeds)
    return seeds


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
            "optuna.study_id": study_id(study), "data_fingerprint": fingerprint,
            "folds": exp.fold_scheme(),
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
    exp: Experiment, study: Any, tracker: Tracker, args: WorkerArgs, seconds: float,
    notes: list[str],
) -> TuneResult:
    """best.json, and (once the budget is spent) the best trial and study plots on the parent
    run; the study as it ends."""
    metric = METRICS[exp.competition.metric]
    trial_rows = rows(study)
    order = ranked(trial_rows, metric.direction)
    finished = sum(r.state in ("complete", "pruned") for r in trial_rows)
    if finished >= args.budget and tracker.enabled:  # first: the writer draws while we go on
        metrics, tags = _parent_summary(order, metric, finished, seconds)
        tracker.finish_parent(args.parent_run, metrics, tags, stored_study_figures,
                              (args.storage, args.study))
    best_path = _write_best(exp, study.study_name, metric, order[0]) if order else None
    return TuneResult(trial_rows, args.budget, metric.name, metric.direction, best_path, notes)


def _parent_summary(
    order: list[TrialRow], metric: Metric, finished: int, seconds: float
) -> tuple[dict[str, float], dict[str, Any]]:
    """The parent run's closing metrics and tags: the study's size and its best trial."""
    metrics: dict[str, float] = {}
    tags: dict[str, Any] = {"trials_finished": finished, "seconds": round(seconds, 1)}
    if order:
        best = order[0]
        metrics = {f"best_cv_{metric.key}": best.value,
                   f"best_cv_{metric.key}_std": best.attrs.get("cv_std", float("nan")),
                   "best_trial": best.number, "best_n_iter": best.attrs.get("n_iter", 0)}
        metrics.update({f"best_fold{f}/{metric.key}": s
                        for f, s in enumerate(best.attrs.get("fold_scores", []))})
        tags.update({"best_trial": best.number, "best_run_id": best.attrs.get("mlflow_run_id")})
        tags.update({f"best.{k}": v for k, v in best.params.items()})
    return metrics, tags


def best_path(exp: Experiment, study_name: str) -> Path:
    """experiments/<name>.best.json; another study's (--study) beside it, not over it:
    experiments/<name>.<study>.best.json."""
    stem = exp.name if study_name == exp.name else f"{exp.name}.{study_name}"
    return exp.path.parent / f"{stem}.best.json"


def _write_best(exp: Experiment, study_name: str, metric: Metric, best: TrialRow) -> Path:
    """The study's best trial, enough to re-run it exactly (`best_path`)."""
    import json

    path = best_path(exp, study_name)
    write_text_atomic(path, json.dumps({
        "experiment": exp.name, "study": study_name, "trial": best.number,
        "metric": metric.name, "score": best.value, "cv_std": best.attrs.get("cv_std"),
        "n_iter": best.attrs.get("n_iter"), "random_state": best.attrs.get("random_state"),
        "params": best.attrs.get("params"), "search": best.params,
        "mlflow_run_id": best.attrs.get("mlflow_run_id"),
    }, indent=2) + "\n")
    return path


# --- what the submission stage asks of the study -------------------------------------------


def best_trials(
    exp: Experiment, *, trial: int | None = None, top_k: int = 1, storage: str | None = None,
    study_name: str | None = None,
) -> list[TrialSpec]:
    """The best complete trial (or trial number `trial`, or the `top_k` best), best first."""
    from optuna.trial import TrialState

    from pipeline.prepare import fingerprint

    study = _load_study(exp, storage, study_name)
    # the fingerprint alone: a read-only check neither loads nor builds the arrays
    url = storage_url(storage, exp.tune.storage)
    check_identity(exp, study, fingerprint(exp), url, record=False)
    # complete trials of every fidelity on all rows: never a subsample score (tune.fidelity)
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if "params" in t.user_attrs and full_fidelity(t)]
    if trial is not None:
        chosen = [t for t in done if t.number == trial]
        if not chosen:
            raise PipelineError(
                f"--trial {trial}: no complete trial with that number in study "
                f"{study.study_name!r} (complete: {', '.join(str(t.number) for t in done)})")
    else:
        if top_k > len(done):  # silently fewer members would name and score another ensemble
            raise PipelineError(
                f"--top-k {top_k}: study {study.study_name!r} has {len(done)} complete "
                f"trial{'s' if len(done) != 1 else ''}; use --top-k {max(1, len(done))} or "
                "tune more (--trials)")
        chosen = sorted(done, key=lambda t: t.value, reverse=study.direction.name == "MAXIMIZE")
        chosen = chosen[:top_k]
    return [TrialSpec(number=t.number, params=dict(t.user_attrs["params"]), score=t.value,
                      n_iter=int(t.user_attrs.get("n_iter", 1)), study=study.study_name,
                      run_id=t.user_attrs.get("mlflow_run_id")) for t in chosen]


def study_run_id(
    exp: Experiment, *, storage: str | None = None, study_name: str | None = None
) -> str | None:
    """The study's MLflow parent run (where its submissions are logged), if it has one."""
    return _load_study(exp, storage, study_name).user_attrs.get(PARENT_ATTR)


def _load_study(exp: Experiment, storage: str | None, study_name: str | None) -> Any:
    import optuna

    quiet_optuna()
    url, name = storage_url(storage, exp.tune.storage), study_name or exp.name
    try:
        return optuna.load_study(study_name=name, storage=make_storage(url))
    except KeyError:
        raise PipelineError(
            f"no study {name!r} in {redact_url(url)}; run `pipeline tune {exp.name}` first"
        ) from None
