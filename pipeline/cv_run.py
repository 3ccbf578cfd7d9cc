"""Cross-validate one parameter set ([model] + --set overrides) and log it as one MLflow run.

The `pipeline train` command's stage: one run with the per-epoch curves, fold scores, the
out-of-fold predictions (oof.csv) and the config; no Optuna study.
"""

from __future__ import annotations

import tempfile
import time
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
    from pipeline.evaluate import CVResult
    from pipeline.experiment import Experiment


@dataclass(frozen=True)
class CvRun:
    result: CVResult
    metric: str
    seconds: float
    run_id: str | None  # the MLflow run, when tracked


def cross_validate_and_log(
    exp: Experiment, *, overrides: list[str], tracking_uri: str | None = None, track: bool = True
) -> CvRun:
    """k-fold CV of [model] + overrides; one MLflow run with curves, OOF predictions, config."""
    from pipeline.evaluate import cross_validate, folds, summarise_stops
    from pipeline.network import DivergenceError
    from pipeline.prepare import prepare

    values = parse_overrides(exp, overrides)
    params = {**exp.model.params(), **values, "random_state": exp.tune.seed}
    metric = METRICS[exp.competition.metric]
    prepared = prepare(exp)
    tracker = make_tracker(tracking_uri, track)
    tracker.setup(exp)
    run = tracker.start_run(
        exp, "train", params=params,
        tags={"kind": "train", "data_fingerprint": prepared.fingerprint,
              "folds": exp.fold_scheme(),
              "overrides": " ".join(overrides) or "-"},
    )

    def on_epoch(fold: int, epoch: int, m: dict[str, float]) -> None:
        run.epoch(fold, m)
        if epoch == 1 and fold > 0:
            run.flush()

    started = time.monotonic()
    try:
        res = cross_validate(prepared, exp, params, on_epoch=on_epoch, diagnostics=True)
    except DivergenceError as e:
        run.end("failed", config=exp.as_dict())
        raise PipelineError(
            f"{exp.path}: training diverged ({e}); try --set learning_rate_init=<smaller>"
        ) from None
    except BaseException:
        run.end("failed", config=exp.as_dict())
        raise
    seconds = time.monotonic() - started
    name = f"cv_{metric.key}"
    # a label metric's CV is the decided one (or the plain one, when no decision beat it);
    # the plain 0.5 / argmax / rounding score beside it
    plain = ({f"{name}_plain": float(np.mean(res.raw_scores))}
             if kind_for(metric.name, exp.competition.task) != "none" else {})
    run.end(
        "complete",
        metrics={name: res.mean, f"{name}_std": res.std, "seconds": seconds, **plain,
                 **{f"fold{f}/{metric.key}": s for f, s in enumerate(res.scores)}},
        config=exp.as_dict(), tags={"stop_reason": summarise_stops(res.stop_reasons)},
    )
    if not tracker.enabled:
        return CvRun(res, metric.name, seconds, None)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "oof.csv"
        write_oof(path, prepared, res.oof, exp.competition.targets,
                  predictions.fold_of(len(res.oof), folds(prepared, exp)))
        tracker.log_files(run.run_id, [path], None)
    return CvRun(res, metric.name, seconds, run.run_id)


def write_oof(path: Path, prepared: Any, oof: np.ndarray, targets: tuple[str, ...],
              fold: np.ndarray | None = None) -> None:
    """Out-of-fold predictions by id, in the metric's form (P(class) / value; one column per
    target for several), with the fold that validated each row; rows no fold validated (time
    folds' first block) are left out."""
    several = targets if len(targets) > 1 else ()
    path.write_text(predictions.to_csv(prepared.train_ids, oof, prepared.classes, prepared.y,
                                       several, fold), encoding="utf-8")
