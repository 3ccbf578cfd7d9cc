"""A submission's members: each chosen trial's models and its test and out-of-fold predictions,
`seeds` times, from the trials store where it holds them (only what it lacks trains), and the
out-of-fold score and decision of what is submitted.

`evaluate` is passed in by the caller (imported at the first submission: `pipeline validate`
stays light).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.decision import Decision, decide, fold_scores
from pipeline.errors import PipelineError
from pipeline.experiment import Experiment
from pipeline.metrics import METRICS
from pipeline.trials import Fetch, StoredTrial, TrialKey, TrialSpec, load


@dataclass(frozen=True)
class EnsembleScore:
    members: int
    score: float  # OOF score of the members' mean prediction, over the same folds
    best_member: float  # the best single member's OOF score


@dataclass
class Member:
    trial: TrialSpec
    models: list  # fitted estimators whose test predictions were averaged
    folds: bool  # models are fold models (else one refit model)
    test_pred: np.ndarray  # metric form, test.csv order
    oof: np.ndarray  # metric form, train order: the mean over its seeds
    stored: StoredTrial | None = None  # its oof is exactly the stored trial's (one seed)


SEED_STRIDE = 7919  # bagging seed s trains with the trial's random_state + s * SEED_STRIDE


def trial_params(trial: TrialSpec) -> dict[str, Any]:
    params = dict(trial.params)
    if isinstance(params.get("hidden_layer_sizes"), list):  # JSON round trips make lists
        params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
    return params


def refit_params(trial: TrialSpec) -> dict[str, Any]:
    """Train exactly the folds' mean epochs: no early stopping and no loss-plateau stop."""
    epochs = max(1, int(round(trial.n_iter)))
    return trial_params(trial) | {
        "max_iter": epochs,
        "early_stopping": False,
        "n_iter_no_change": epochs + 1,
    }


def member(
    evaluate: Any, prepared: Any, exp: Experiment, trial: TrialSpec, *, refit: bool, seeds: int,
    fetch: Fetch | None, notes: list[str],
) -> Member:
    """The trial's model(s), `seeds` times: test predictions and out-of-fold predictions, each
    the mean over the seeds (seed 0 is the trial's own random_state). Seed 0's fold models,
    test and out-of-fold predictions come from the trials store when it holds them: only the
    other seeds and a refit train."""
    models: list = []
    tests, oofs = [], []
    base = int(trial.params.get("random_state") or 0)
    evaluate.check_target(prepared, exp, trial_params(trial))  # before a refit's fit, too
    stored = stored_trial(exp, prepared, trial, fetch, notes, need_models=not refit)
    try:
        for s in range(seeds):
            seed = {"random_state": (base + s * SEED_STRIDE) % 2**31}
            if refit:
                models.append(refit_model(evaluate, prepared, exp, trial, seed))
                tests.append(evaluate.predict(models[-1], prepared.X_test))
            if s == 0 and stored is not None:
                models += [] if refit else stored.models
                tests += [] if refit else [stored.test]
                oofs.append(stored.oof)
            elif refit:
                oofs.append(evaluate.cross_validate(prepared, exp, trial_params(trial) | seed).oof)
            else:
                cv = evaluate.cross_validate(prepared, exp, trial_params(trial) | seed,
                                             keep_models=True)
                models += cv.models
                tests.append(np.mean([evaluate.predict(m, prepared.X_test) for m in cv.models],
                                     axis=0))
                oofs.append(cv.oof)
    except FloatingPointError as e:  # the network's DivergenceError
        doing, other = ("refitting", "--no-refit") if refit else ("rebuilding its folds", "--refit")
        raise PipelineError(
            f"trial {trial.number} diverged while {doing} ({e}); try {other} or another --trial"
        ) from None
    reuse = stored if stored is not None and seeds == 1 else None  # what it measured is ours
    return Member(trial, models, not refit, np.mean(tests, axis=0), np.mean(oofs, axis=0),
                   reuse)


def refit_model(evaluate: Any, prepared: Any, exp: Experiment, trial: TrialSpec,
           seed: dict[str, int]) -> Any:
    from sklearn.exceptions import ConvergenceWarning

    est = evaluate.build_estimator(
        exp.competition.task, evaluate.network_params(prepared, refit_params(trial) | seed))
    with warnings.catch_warnings():  # stopping at max_iter is the point of a refit
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(prepared.X_train, prepared.y)
    return est


def stored_trial(exp: Experiment, prepared: Any, trial: TrialSpec, fetch: Fetch | None,
                 notes: list[str], *, need_models: bool,
                 doing: str = "training its folds again") -> StoredTrial | None:
    """The trial's stored result when it was measured on these data with these parameters
    (and, for `need_models`, still has its fold models); else None and one line in `notes`
    saying why its folds train again."""
    stored = load(TrialKey(exp.name, trial.study or exp.name, trial.number),
                  run_id=trial.run_id, fetch=fetch)
    where = TrialKey(exp.name, trial.study or exp.name, trial.number).folder
    if stored is None:
        why = f"no stored result in {where}/"
    elif stored.info.get("fingerprint") != prepared.fingerprint:
        why = f"{where}/ was measured on other data (fingerprint {stored.info.get('fingerprint')})"
    elif json_safe(stored.info.get("params")) != json_safe(trial.params):
        why = f"{where}/ holds other parameters (a study of the same name started again?)"
    elif need_models and not stored.models:
        why = f"its fold models are not kept in {where}/ ([tune] keep, deleted or damaged)"
    else:
        return stored
    notes.append(f"trial {trial.number}: {why}; {doing}")
    return None


def oof_score(evaluate: Any, prepared: Any, exp: Experiment, oof: np.ndarray) -> float:
    """A CV score computed like the trials' own: the metric per fold (a label metric's with
    the decision chosen on the other folds), then the mean. Only the folds' validation rows
    are read: rows no fold validates (time folds) hold NaN."""
    comp = exp.competition
    rows = [val for _, val in evaluate.folds(prepared, exp)]
    return float(np.mean(fold_scores(comp.metric, comp.task, prepared.y, oof, rows)))


def bag_score(evaluate: Any, prepared: Any, exp: Experiment, members: list[Member],
            oof: np.ndarray) -> tuple[float, Decision]:
    """(out-of-fold score, decision) of what is submitted; a single stored trial's own."""
    if len(members) == 1 and (stored := members[0].stored) is not None:
        return float(stored.info["score"]), Decision.from_dict(stored.info.get("decision"))
    comp = exp.competition
    rows = [val for _, val in evaluate.folds(prepared, exp)]
    scores, decision = decide(comp.metric, comp.task, prepared.y, oof, rows)
    return float(np.mean(scores)), decision


def ensemble_score(
    evaluate: Any, prepared: Any, exp: Experiment, members: list[Member]
) -> EnsembleScore:
    """The ensemble's CV score, computed like the members' (mean over the same folds)."""
    metric = METRICS[exp.competition.metric]

    def cv_of(oof: np.ndarray) -> float:
        return oof_score(evaluate, prepared, exp, oof)

    score = cv_of(np.mean([m.oof for m in members], axis=0))
    singles = [cv_of(m.oof) for m in members]
    best = max(singles) if metric.direction == "maximize" else min(singles)
    return EnsembleScore(len(members), score, best)


def json_safe(value: Any) -> Any:
    def plain(v: Any) -> Any:
        if isinstance(v, np.generic):
            return v.item()
        if isinstance(v, np.ndarray):
            return v.tolist()
        return str(v)

    return json.loads(json.dumps(value, default=plain))
