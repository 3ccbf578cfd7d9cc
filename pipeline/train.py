"""The `train` stage: cross-validate one parameter set ([model] + --set overrides) and log it
as one MLflow run, with no Optuna study.

`logged_cv` is "cross-validate one parameter set and log its run", here once: `train` calls it
with a plain run, each `tune` trial with its child run and its pruning hook. The run gets the
per-epoch curves (one series per fold), the fold scores, the CV score and its std, the epochs a
refit would train, the label metric's plain score beside the decided one, and the config.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.decision import kind_for
from pipeline.errors import PipelineError
from pipeline.experiment import parse_overrides
from pipeline.metrics import METRICS
from pipeline.submission import predictions
from pipeline.tracking import make_tracker

if TYPE_CHECKING:
    from pipeline.evaluate import CVResult, FoldEpochCallback
    from pipeline.experiment import Experiment
    from pipeline.tracking import RunLog

# an exception that ended the cross-validation -> (the run's state, its tags)
Stopped = Callable[[BaseException], tuple[str, dict[str, str]]]


@dataclass(frozen=True)
class CvRun:
    result: CVResult
    metric: str
    seconds: float
    run_id: str | None  # the MLflow run, when tracked


def logged_cv(
    prepared: Any, exp: Experiment, params: dict[str, Any], run: RunLog, *,
    config: dict, on_epoch: FoldEpochCallback | None = None, stopped: Stopped | None = None,
    tags: Callable[[CVResult], dict[str, str]] | None = None,
    metrics: dict[str, float] | None = None, **cv: Any,
) -> CVResult:
    """k-fold CV of `params` (`evaluate.cross_validate`, with `cv`'s options) logged on `run`:
    the curves as they come (`on_epoch` runs after), the scores (and `metrics`, measured
    before) when it ends. An exception ends the run as `stopped(e)` says (default: failed)
    and propagates."""
    from pipeline.evaluate import cross_validate, summarise_stops

    def report(fold: int, epoch: int, m: dict[str, float]) -> None:
        run.epoch(fold, m)
        if epoch == 1 and fold > 0:
            run.flush()  # the previous fold is over: one log_batch for its curves
        if on_epoch is not None:
            on_epoch(fold, epoch, m)

    started = time.monotonic()
    metric = METRICS[exp.competition.metric]
    name = f"cv_{metric.key}"
    reached: list[float] = []  # the scores a stopped cross-validation had reached
    try:
        res = cross_validate(prepared, exp, params, on_epoch=report, diagnostics=True,
                             on_stop=reached.extend, **cv)
    except BaseException as e:  # the run must not stay RUNNING
        state, stop_tags = stopped(e) if stopped is not None else ("failed", {})
        scored = reached_score(name, metric.key, reached, exp.cv.folds) if state == "pruned" else {}
        run.end(state, metrics={**(metrics or {}), **scored.get("metrics", {})}, config=config,
                tags={**stop_tags, **scored.get("tags", {})})
        raise
    # a label metric's CV is the decided one (or the plain one, when no decision beat it);
    # the plain 0.5 / argmax / rounding score beside it
    plain = ({f"{name}_plain": float(np.mean(res.raw_scores))}
             if kind_for(metric.name, exp.competition.task) != "none" else {})
    run.end(
        "complete",
        metrics={name: res.mean, f"{name}_std": res.std, "n_iter": refit_epochs(res),
                 "seconds": time.monotonic() - started, **plain, **(metrics or {}),
                 **{f"fold{f}/{metric.key}": s for f, s in enumerate(res.scores)}},
        config=config,
        tags={"stop_reason": summarise_stops(res.stop_reasons), **(tags(res) if tags else {})},
    )
    return res


def reached_score(name: str, key: str, reached: list[float], folds: int) -> dict[str, Any]:
    """A pruned run's score: the mean of what its folds reached (the finished ones and the
    stopped one at its weights when stopped; pruning stops fold 1) under the complete runs'
    key, so the UI's score column has it; `score_from` says what it is."""
    if not reached:
        return {}
    stopped = len(reached)
    done = f"folds 1-{stopped - 1} finished, " if stopped > 2 else (
        "fold 1 finished, " if stopped == 2 else "")
    return {"metrics": {name: float(np.mean(reached)),
                        **{f"fold{f}/{key}": s for f, s in enumerate(reached)}},
            "tags": {"score_from": f"{done}fold {stopped} of {folds} when stopped (partial)"}}


def refit_epochs(res: CVResult) -> int:
    """A refit trains this long: the mean of the epochs whose weights the folds kept."""
    return round(sum(res.best_epochs) / len(res.best_epochs))


def cross_validate_and_log(
    exp: Experiment, *, overrides: list[str], tracking_uri: str | None = None, track: bool = True
) -> CvRun:
    """k-fold CV of [model] + overrides; one MLflow run with curves, OOF predictions, config."""
    from pipeline.evaluate import folds
    from pipeline.network import DivergenceError
    from pipeline.prepare import prepare

    values = parse_overrides(exp, overrides)
    params = {**exp.model.params(), **values, "random_state": exp.tune.seed}
    prepared = prepare(exp)
    tracker = make_tracker(tracking_uri, track)
    tracker.setup(exp)
    run = tracker.start_run(
        exp, "train", params=params,
        tags={"kind": "train", "data_fingerprint": prepared.fingerprint,
              "folds": exp.fold_scheme(),
              "overrides": " ".join(overrides) or "-"},
    )
    started = time.monotonic()
    try:
        res = logged_cv(prepared, exp, params, run, config=exp.as_dict())
    except DivergenceError as e:
        raise PipelineError(
            f"{exp.path}: training diverged ({e}); try --set learning_rate_init=<smaller>"
        ) from None
    seconds = time.monotonic() - started
    metric = METRICS[exp.competition.metric].name
    if not tracker.enabled:
        return CvRun(res, metric, seconds, None)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "oof.csv"
        write_oof(path, prepared, res.oof, exp.competition.targets,
                  predictions.fold_of(len(res.oof), folds(prepared, exp)))
        tracker.log_files(run.run_id, [path], None)
    return CvRun(res, metric, seconds, run.run_id)


def write_oof(path: Path, prepared: Any, oof: np.ndarray, targets: tuple[str, ...],
              fold: np.ndarray | None = None) -> None:
    """Out-of-fold predictions by id, in the metric's form (P(class) / value; one column per
    target for several), with the fold that validated each row; rows no fold validated (time
    folds' first block) are left out."""
    several = targets if len(targets) > 1 else ()
    path.write_text(predictions.to_csv(prepared.train_ids, oof, prepared.classes, prepared.y,
                                       several, fold), encoding="utf-8")
