"""The things we need from Optuna that it has no public API for, in one place.

If an Optuna upgrade moves them, this module is the only one to change (tests/test_tune.py
covers each: recovery of a crashed trial, the parent run's study-id tag, and the atomic claim
of an enqueued trial).
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


def claiming_rdb_storage() -> type:
    """`RDBStorage` whose WAITING -> RUNNING step is one conditional UPDATE.

    Optuna pops an enqueued (WAITING) trial by reading its row `FOR UPDATE`, then writing
    RUNNING. SQLite ignores `FOR UPDATE` and reads outside the write transaction, so two
    workers starting together could both claim one enqueued trial (the baseline trials every
    study starts with) and the second crashed with "Cannot tell a COMPLETE trial".
    `UPDATE ... WHERE state = 'WAITING'` is atomic on every database: exactly one claim
    changes the row. Uses Optuna's table model (`optuna.storages._rdb.models`).
    """
    from datetime import datetime

    import sqlalchemy
    from optuna.storages import RDBStorage
    from optuna.storages._rdb import models
    from optuna.trial import TrialState

    class ClaimingRDBStorage(RDBStorage):
        def set_trial_state_values(self, trial_id: int, state: TrialState,
                                   values: Any = None) -> bool:
            if state != TrialState.RUNNING or values is not None:
                return super().set_trial_state_values(trial_id, state, values)
            table = models.TrialModel
            claim = (sqlalchemy.update(table)
                     .where(table.trial_id == trial_id, table.state == TrialState.WAITING)
                     .values(state=TrialState.RUNNING, datetime_start=datetime.now()))
            with self.engine.begin() as connection:
                return connection.execute(claim).rowcount == 1

    return ClaimingRDBStorage
