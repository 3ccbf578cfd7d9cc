"""Multi-fidelity tuning for big data ([tune] subsample, promote, pruner = "hyperband").

Two fidelities: rows and epochs. With `subsample` < 1 every trial first cross-validates on a
fixed, seeded share of the training rows (stratified for one column of classes; the same rows
for every trial, so their scores compare); only a trial whose subsample score ranks in the best
`promote` share of the subsample scores so far goes on to all rows. That is asynchronous
successive halving (Optuna's SuccessiveHalvingPruner rule: promote when in the best 1/eta of
the trials that reached the rung, the first one always) over three rungs: CV on the subsample,
the first fold on all rows, the other folds on all rows. The second rung is there because a
fold on all rows is what costs (minutes at 1M rows): a promoted trial whose first fold ranks
outside the best `promote` share of the first folds so far stops there (the same rows for
every trial: the folds are seeded). A trial not promoted ends PRUNED, so its subsample or
one-fold score never meets a full CV score: only COMPLETE trials (all rows, every fold) are
stored, ranked, submitted and registered. Along the epochs, Optuna's Hyperband /
successive-halving pruner (`study.make_pruner`) stops the fold-0 curves of the subsample stage.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.errors import PipelineError

if TYPE_CHECKING:
    from pipeline.experiment import Experiment
    from pipeline.prepare import Prepared

SUBSAMPLE_ATTR = "subsample_score"  # a trial's CV score on the subsample (user attribute)
ROWS_ATTR = "subsample_rows"  # how many rows it was: a changed share starts a new ranking
FOLD_ATTR = "first_fold_score"  # the score of its first fold on all rows (user attribute)
FIDELITY_ATTR = "fidelity"  # "subsample" or "first fold" (not promoted) or "full"


def subsample(prepared: Prepared, exp: Experiment) -> Prepared:
    """The training rows a trial starts on: `[tune] subsample` of them, drawn with [cv] seed,
    stratified by class when there is one column of classes; rows keep their order (time
    folds). The test rows stay (a subsample trial predicts nothing)."""
    from sklearn.model_selection import train_test_split

    share, n = exp.tune.subsample, len(prepared.y)
    stratify = prepared.y if prepared.classes is not None and prepared.y.ndim == 1 else None
    keep = round(share * n)
    if keep < 2 * exp.cv.folds or (stratify is not None and keep < len(prepared.classes)):
        raise PipelineError(
            f"{exp.path}: [tune] subsample = {share} keeps {keep} of {n} training rows, too "
            f"few for {exp.cv.folds} folds; raise it (or 1.0: all rows)")
    try:
        idx, _ = train_test_split(np.arange(n), train_size=keep, stratify=stratify,
                                  random_state=exp.cv.seed)
    except ValueError as e:  # a class too rare to stratify at this share
        raise PipelineError(f"{exp.path}: [tune] subsample = {share}: {e}; raise it") from None
    idx = np.sort(idx)
    return replace(
        prepared, X_train=prepared.X_train[idx], y=prepared.y[idx],
        train_ids=prepared.train_ids[idx],
        groups=None if prepared.groups is None else prepared.groups[idx],
        order=None if prepared.order is None else prepared.order[idx])


def promoted(value: float, others: list[float], share: float, maximize: bool) -> bool:
    """Whether `value` ranks in the best `share` of `others` + itself (at least the best one
    always): the rule of Optuna's successive halving with reduction factor 1 / share."""
    ranked = sorted([*others, value], reverse=maximize)
    cut = ranked[max(1, int(len(ranked) * share)) - 1]
    return value >= cut if maximize else value <= cut


def subsample_scores(study: Any, number: int, rows: int) -> list[float]:
    """The subsample scores of every other trial that finished its subsample stage on as
    many rows (the same rows: the subsample is seeded)."""
    return [t.user_attrs[SUBSAMPLE_ATTR] for t in study.get_trials(deepcopy=False)
            if t.number != number and SUBSAMPLE_ATTR in t.user_attrs
            and t.user_attrs.get(ROWS_ATTR) == rows]


def first_fold_scores(study: Any, number: int) -> list[float]:
    """The first-fold scores on all rows of every other trial that reached that rung."""
    return [t.user_attrs[FOLD_ATTR] for t in study.get_trials(deepcopy=False)
            if t.number != number and FOLD_ATTR in t.user_attrs]


def full_fidelity(trial: Any) -> bool:
    """A complete trial's score is a CV score on all rows (every trial of a study without
    subsample; with one, the promoted ones)."""
    return trial.user_attrs.get(FIDELITY_ATTR, "full") == "full"
