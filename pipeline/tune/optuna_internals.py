"""The two things we need from Optuna that it has no public API for, in one place.

If an Optuna upgrade moves them, this module is the only one to change (tests/test_tune.py
covers both paths: recovery of a crashed trial, and the parent run's study-id tag).
"""

from __future__ import annotations

from typing import Any


def study_id(study: Any) -> int:
    """The study's id in its storage (`study._study_id`).

    Names alone are not enough: a study deleted with `--fresh` and created again under the same
    name is another study, and workers that look for its MLflow parent run must not find the
    old one. The parent run is tagged with this id.
    """
    return study._study_id


def fail_trial(study: Any, trial: Any, error: str) -> Any | None:
    """Mark a RUNNING trial of another (dead) process FAIL, with `user_attrs["error"]`.

    Optuna only fails other processes' trials through its heartbeat (RDB storages, after a
    grace period); a worker that died on this host is known dead at once, so we write the
    state through the storage (`study._storage`, `trial._trial_id`). Returns the trial as
    stored now, or None when another process changed its state first.
    """
    from optuna.trial import TrialState

    storage, trial_id = study._storage, trial._trial_id
    storage.set_trial_user_attr(trial_id, "error", error)
    if not storage.set_trial_state_values(trial_id, TrialState.FAIL):
        return None
    return storage.get_trial(trial_id)
