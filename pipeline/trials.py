"""A tuned trial as the submission stage takes it.

`tune.best_trials` produces them from the study, `submit.submit` consumes them; neither stage
imports the other, so the record they exchange lives here, below both.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrialSpec:
    number: int
    params: dict  # full network kwargs, including random_state
    score: float  # the trial's CV score (mean over folds)
    n_iter: int  # mean epochs of its folds: the refit trains this long
