"""k-fold cross-validation of one parameter set: fold scores, out-of-fold predictions, curves.

The folds come from scikit-learn as `[cv] kind` says (stratified, kfold, group or time),
shuffled with `[cv] seed` (time folds are not shuffled), so every trial of a study is scored
on the same rows. Time folds never validate their first block: those rows have no out-of-fold
prediction (NaN in `CVResult.oof`), and every score is the mean of the folds' scores.

Each fold's held-out rows are also the network's `eval_set`: that is for the per-epoch curves
and for pruning only, never for early stopping (the network's own `early_stopping` carves
its validation split out of the training rows).

A label metric (accuracy, f1, f1_macro, mcc, qwk) scores a decision chosen on out-of-fold
predictions (`pipeline.decision`: a threshold, class weights, ordinal cuts). Its fold scores are
honest: fold f is scored with the decision chosen on the other folds' out-of-fold predictions.
`raw_scores` keep the plain 0.5 / argmax / rounding scores; `decision` is the one chosen on
every out-of-fold row, the one a submission applies.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.curves import Curve, record
from pipeline.decision import Decision, decide
from pipeline.errors import PipelineError
from pipeline.metrics import METRICS

if TYPE_CHECKING:
    from pipeline.experiment import Experiment
    from pipeline.prepare import Prepared

FoldEpochCallback = Callable[[int, int, dict[str, float]], object]


@dataclass
class CVResult:
    scores: list[float]  # per fold; a label metric's with the decision (module docstring)
    mean: float
    std: float
    oof: np.ndarray  # metric-form out-of-fold predictions, train row order; NaN: not validated
    curves: list[Curve]  # per fold: curves.CURVE_KEYS -> one value per epoch
    n_iters: list[int]  # epochs each fold trained
    best_epochs: list[int]  # epochs of the weights each fold kept (early stopping's best)
    models: list = field(default_factory=list)  # fold estimators when keep_models=True
    stop_reasons: list[str] = field(default_factory=list)  # per fold: converged, max_iter...
    raw_scores: list[float] = field(default_factory=list)  # per fold, 0.5 / argmax / rounding
    decision: Decision = field(default_factory=Decision)  # chosen on every OOF row

    @property
    def validated(self) -> np.ndarray:
        """Rows some fold validated: all of them, except the first block of time folds."""
        return validated(self.oof)


def validated(oof: np.ndarray) -> np.ndarray:
    """Boolean mask of the rows with an out-of-fold prediction (not NaN)."""
    return ~np.isnan(oof.reshape(len(oof), -1)).any(axis=1)


def build_estimator(task: str, params: dict[str, Any]) -> Any:
    """The network for `task` from the hyperparameter table's keyword arguments; the regressor
    trains on a standardised target and predicts in its units (`scale_target`)."""
    from pipeline.network import SigmoidNetworkClassifier, SigmoidNetworkRegressor

    cls = SigmoidNetworkRegressor if task == "regression" else SigmoidNetworkClassifier
    known = cls().get_params()
    return cls(**{k: v for k, v in params.items() if k in known})


def network_params(prepared: Prepared, params: dict[str, Any]) -> dict[str, Any]:
    """`params` for a network trained on `prepared`'s columns: which hold level codes
    (`categorical_columns`), so it embeds them. Every fit on prepared arrays goes through
    this."""
    return {**params, "categorical_columns": prepared.categorical}


def folds(prepared: Prepared, exp: Experiment) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train_idx, val_idx) per fold, as [cv] kind says: stratified (classification's
    default), kfold (regression's), group (a group's rows in one fold, stratified for
    classification) or time (fold f trains on the rows before its validation block)."""
    from sklearn.model_selection import (
        GroupKFold,
        KFold,
        StratifiedGroupKFold,
        StratifiedKFold,
    )

    k, kind, seed = exp.cv.folds, exp.fold_kind, exp.cv.seed
    y = prepared.y
    n = len(y)
    if n < k:
        raise PipelineError(f"{exp.path}: [cv] folds = {k} but the training data has {n} rows")
    if kind == "time":
        return _scorable(_time_folds(prepared, exp), prepared, exp)
    classify = exp.competition.task != "regression" and y.ndim == 1  # one column of classes
    if classify and kind in ("stratified", "group"):
        _check_classes(prepared, exp)
    groups = _groups(prepared, exp) if kind == "group" else None
    splitter: Any
    if kind == "group":
        cls = StratifiedGroupKFold if classify else GroupKFold
        splitter = cls(n_splits=k, shuffle=True, random_state=seed)
    elif kind == "kfold":
        splitter = KFold(n_splits=k, shuffle=True, random_state=seed)
    else:
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # StratifiedGroupKFold's "least populated class" note
        warnings.simplefilter("ignore", UserWarning)
        out = [(tr, va) for tr, va in splitter.split(np.zeros((n, 1)), y, groups)]
    return _scorable(out, prepared, exp) if kind == "group" else out


def _scorable(out: list[tuple[np.ndarray, np.ndarray]], prepared: Prepared,
              exp: Experiment) -> list[tuple[np.ndarray, np.ndarray]]:
    """Group and time folds can't stratify fully: AUC needs every class in every fold's
    validation rows, else each trial would fail (or score NaN) on that fold."""
    metric = exp.competition.metric
    if metric not in ("roc_auc", "roc_auc_ovr") or prepared.classes is None:
        return out
    for f, (_, va) in enumerate(out):
        absent = np.setdiff1d(np.arange(len(prepared.classes)), prepared.y[va])
        if len(absent):
            raise PipelineError(
                f"{exp.path}: [cv] fold {f + 1} of {len(out)} ({exp.fold_scheme()}) validates "
                f"on no row of class {prepared.classes[int(absent[0])]!r}; {metric} needs "
                "every class in every fold (lower folds)"
            )
    return out


def _check_classes(prepared: Prepared, exp: Experiment) -> None:
    """Stratified folds need every class in every fold: say what to change when they can't."""
    y, k = prepared.y, exp.cv.folds
    smallest = int(np.bincount(y).min()) if len(y) else 0
    if smallest < 2:  # no number of folds helps: say what does
        rare = prepared.classes[int(np.bincount(y).argmin())] if prepared.classes else None
        raise PipelineError(
            f"{exp.competition.data_dir / 'train.csv'}: class {rare!r} of "
            f"{exp.competition.target!r} has a single row; stratified folds need at least "
            "2 per class (remove that row or merge the class)"
        )
    if smallest < k:
        raise PipelineError(
            f"{exp.path}: [cv] folds = {k} but the rarest class of "
            f"{exp.competition.target!r} has only {smallest} rows (lower folds)"
        )


def _groups(prepared: Prepared, exp: Experiment) -> np.ndarray:
    groups = _fold_array(prepared, exp, prepared.groups)
    n_groups = len(np.unique(groups))
    if n_groups < exp.cv.folds:
        raise PipelineError(
            f"{exp.path}: [cv] folds = {exp.cv.folds} but column {exp.cv.group!r} of "
            f"{exp.competition.data_dir / 'train.csv'} has only {n_groups} groups (lower folds)"
        )
    return groups


def _time_folds(prepared: Prepared, exp: Experiment) -> list[tuple[np.ndarray, np.ndarray]]:
    """TimeSeriesSplit over the distinct times, so rows of one time never straddle a fold's
    train and validation: every training row is earlier than every validation row. Blocks
    hold equal numbers of distinct times; the first block is never validated."""
    from sklearn.model_selection import TimeSeriesSplit

    k = exp.cv.folds
    times, rank = np.unique(_fold_array(prepared, exp, prepared.order), return_inverse=True)
    if len(times) < k + 1:
        raise PipelineError(
            f"{exp.path}: [cv] folds = {k} with kind = \"time\" needs at least {k + 1} "
            f"distinct values of {exp.cv.time!r} in {exp.competition.data_dir / 'train.csv'}, "
            f"found {len(times)} (lower folds)"
        )
    out = []
    for tr, va in TimeSeriesSplit(n_splits=k).split(times):  # contiguous blocks of ranks
        out.append((np.flatnonzero(rank <= tr.max()),
                    np.flatnonzero((rank >= va.min()) & (rank <= va.max()))))
    return out


def _fold_array(prepared: Prepared, exp: Experiment, values: np.ndarray | None) -> np.ndarray:
    if values is None:  # prepared for another [cv]: its cache has no such array
        raise PipelineError(
            f"{prepared.path}: prepared without the [cv] {exp.fold_kind} column of {exp.path}; "
            "prepare again with this experiment"
        )
    return values


def predict(model: Any, X: np.ndarray) -> np.ndarray:
    """Metric-form prediction: P(class 1) for binary, (n, k) probabilities, or values; several
    targets: (n, m) P(1) of each, or values."""
    if not hasattr(model, "predict_proba"):
        return np.asarray(model.predict(X), dtype=np.float64)
    proba = np.asarray(model.predict_proba(X), dtype=np.float64)
    if getattr(model, "multilabel_", False):
        return proba
    return proba[:, 1] if proba.shape[1] == 2 else proba


def cross_validate(
    prepared: Prepared,
    exp: Experiment,
    params: dict[str, Any],
    *,
    on_epoch: FoldEpochCallback | None = None,
    keep_models: bool = False,
    diagnostics: bool = False,
    on_stop: Callable[[list[float]], None] | None = None,
    on_fold: Callable[[int, float], object] | None = None,
) -> CVResult:
    """Fit one network per fold; fold f uses `random_state + f` so folds differ but repeat.

    Exceptions from `on_epoch` (pruning), `on_fold(f, plain score)` (a multi-fidelity rung
    after the first fold) and the network (DivergenceError) propagate; before
    they do, `on_stop` gets the scores reached: the finished folds' and the stopped fold's at
    the weights it had (the metric's plain score; nothing when those cannot be scored).
    `diagnostics` adds each hidden layer's health (saturation, gradient, weight and update
    norms, `network.diagnostics`) to the per-epoch metrics, measured on the fold's held-out rows.
    """
    from sklearn.exceptions import ConvergenceWarning

    check_target(prepared, exp, params)
    task = exp.competition.task
    metric = METRICS[exp.competition.metric]
    X, y = prepared.X_train, prepared.y
    n_classes = len(prepared.classes) if prepared.classes is not None else 0
    # NaN marks rows no fold validates (time folds' first block): see CVResult.validated
    oof = np.full((len(y), n_classes) if task == "multiclass" else y.shape, np.nan)
    seed = int(params.get("random_state") or 0)
    scores: list[float] = []
    curves: list[Curve] = []
    n_iters, best_epochs, stop_reasons, models = [], [], [], []  # per fold
    splits = folds(prepared, exp)
    for f, (tr, va) in enumerate(splits):
        record(curves, f, {})  # the fold's curve exists from its start

        def report(epoch: int, m: dict[str, float], f: int = f) -> None:
            record(curves, f, m)
            if on_epoch is not None:
                on_epoch(f, epoch, m)

        est = build_estimator(task, network_params(prepared, {**params, "random_state": seed + f}))
        try:
            with warnings.catch_warnings():  # hitting max_iter is a tuning outcome, not news
                warnings.simplefilter("ignore", ConvergenceWarning)
                # rows by index: the fold never copies X (a memory map all workers share)
                est.fit(X, y, rows=tr, eval_set=(X, y), eval_rows=va, on_epoch=report,
                        diagnostics=layer_health(diagnostics, seed + f))
        except BaseException:
            if on_stop is not None:
                _report_reached(on_stop, scores, metric, est, X[va], y[va])
            raise
        pred = predict(est, X[va])
        oof[va] = pred
        scores.append(metric(y[va], pred))
        n_iters.append(int(est.n_iter_))
        best_epochs.append(int(est.best_epoch_))
        stop_reasons.append(est.stop_reason_)
        if keep_models:
            models.append(est)
        _fold_done(on_fold, on_stop, f, scores)
    name = exp.competition.metric
    rows = [va for _, va in splits]
    decided, decision = decide(name, task, y, oof, rows)  # one pass: this runs every trial
    return CVResult(
        scores=decided,
        mean=float(np.mean(decided)),
        std=float(np.std(decided)),
        oof=oof,
        curves=curves,
        n_iters=n_iters,
        best_epochs=best_epochs,
        models=models,
        stop_reasons=stop_reasons,
        raw_scores=scores,
        decision=decision,
    )


def _fold_done(on_fold: Callable[[int, float], object] | None,
               on_stop: Callable[[list[float]], None] | None, f: int, scores: list[float]) -> None:
    """`on_fold` after fold f; when it stops the CV, `on_stop` gets the folds' scores first."""
    if on_fold is None:
        return
    try:
        on_fold(f, scores[-1])
    except BaseException:
        if on_stop is not None:
            on_stop(list(scores))
        raise


def _report_reached(on_stop: Callable[[list[float]], None], scores: list[float], metric: Any,
                    est: Any, X_val: np.ndarray, y_val: np.ndarray) -> None:
    """`on_stop`: the finished folds' scores and the stopped fold's, at its weights so far."""
    try:
        last = float(metric(y_val, predict(est, X_val)))
    except Exception:  # diverged weights, a fold stopped before its first epoch: no score
        return
    if np.isfinite(last):
        on_stop([*scores, last])


def check_target(prepared: Prepared, exp: Experiment, params: dict[str, Any]) -> None:
    """A log1p target needs y >= 0: one line naming the column, before any training."""
    y = prepared.y
    if params.get("target_transform") != "log1p" or exp.competition.task != "regression":
        return
    if len(y) and float(np.min(y)) < 0:
        raise PipelineError(
            f"{exp.competition.data_dir / 'train.csv'}: target {exp.competition.target!r} has "
            f"negative values (min {float(np.min(y)):g}); target_transform = \"log1p\" needs "
            f"y >= 0 (set it to \"none\" in [model] of {exp.path})"
        )


def layer_health(on: bool, seed: int) -> Any:
    """A fresh per-fold diagnostics hook, or None (plain fit: no cost at all)."""
    if not on:
        return None
    from pipeline.network.diagnostics import LayerHealth

    return LayerHealth(seed=seed)


def summarise_stops(reasons: list[str]) -> str:
    """`converged (5/5 folds)`; mixed, commonest first: `converged 3, max_iter 2 (5 folds)`."""
    from collections import Counter

    if not reasons:
        return "-"
    counts = Counter(reasons).most_common()
    if len(counts) == 1:
        return f"{counts[0][0]} ({len(reasons)}/{len(reasons)} folds)"
    return ", ".join(f"{r} {n}" for r, n in counts) + f" ({len(reasons)} folds)"
