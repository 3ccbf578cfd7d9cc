"""A tuned trial as the later stages take it.

`tune.best_trials` produces them from the study; `submit` and `show` consume them and find the
trial's stored result (`trials.store`) by experiment, study and number.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrialSpec:
    number: int
    params: dict  # full network kwargs, including random_state
    score: float  # the trial's CV score (mean over folds)
    n_iter: int  # mean epochs of its folds: the refit trains this long
    study: str = ""  # the Optuna study: with the experiment, where its stored result lives
    run_id: str | None = None  # its MLflow child run, where the stored files are logged too
