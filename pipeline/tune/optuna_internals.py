"""The things we need from Optuna that it has no public API for, in one place.

If an Optuna upgrade moves them, this module is the only one to change (tests/test_tune.py
covers each: recovery of a crashed trial, the parent run's study-id tag, and the atomic claim
of an enqueued trial; tests/test_proxy.py the gRPC proxy's server and heartbeat).
"""

from __future__ import annotations

from typing import Any

# The trial system attribute a proxy client writes as its heartbeat: Optuna's gRPC API has no
# heartbeat call, so the proxy's storage turns this write into `record_heartbeat` (never stored).
HEARTBEAT_ATTR = "pipeline:heartbeat"


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

        def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
            if key == HEARTBEAT_ATTR:  # a worker behind the gRPC proxy (grpc_storage)
                self.record_heartbeat(trial_id)
                return
            super().set_trial_system_attr(trial_id, key, value)

    return ClaimingRDBStorage


def grpc_storage(host: str, port: int, heartbeat_interval: int) -> Any:
    """Optuna's gRPC proxy client, with a heartbeat.

    `GrpcStorageProxy` is no `BaseHeartbeat`, so Optuna would run trials through it without
    one and a worker that died on another machine would hold its trial RUNNING for ever. This
    subclass is one (`optuna.storages._heartbeat.BaseHeartbeat`): Optuna's own heartbeat thread
    runs beside each trial and stamps it through the proxy (HEARTBEAT_ATTR, which the proxy's
    ClaimingRDBStorage records as a heartbeat, on the proxy's clock). Stale trials are failed
    and re-queued by the proxy itself (`pipeline.tune.proxy`), which can read the heartbeat
    table; the client reports none.
    """
    from optuna.storages import GrpcStorageProxy
    from optuna.storages._heartbeat import BaseHeartbeat

    class HeartbeatGrpcStorageProxy(GrpcStorageProxy, BaseHeartbeat):
        def record_heartbeat(self, trial_id: int) -> None:
            self.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, None)

        def _get_stale_trial_ids(self, study_id: int) -> list[int]:
            return []  # the proxy fails them: it reads the heartbeat table

        def get_heartbeat_interval(self) -> int | None:
            return heartbeat_interval

        def get_heartbeat_stale_trial_callback(self) -> None:
            return None

    return HeartbeatGrpcStorageProxy(host=host, port=port)


def grpc_server(storage: Any, host: str, port: int, threads: int) -> Any:
    """A gRPC server serving `storage` with Optuna's proxy service, not yet started.

    Built here rather than by `run_grpc_proxy_server`, which blocks for ever, cannot be
    stopped, and lets a second server bind the same port (gRPC's SO_REUSEPORT default: two
    proxies would share the workers silently). Uses Optuna's servicer and generated stubs
    (`optuna.storages._grpc`). Raises RuntimeError when the address cannot be bound.
    """
    from concurrent.futures import ThreadPoolExecutor

    import grpc
    from optuna.storages._grpc.auto_generated import api_pb2_grpc
    from optuna.storages._grpc.servicer import OptunaStorageProxyService

    server = grpc.server(ThreadPoolExecutor(max_workers=threads, thread_name_prefix="proxy"),
                         options=[("grpc.so_reuseport", 0)])
    api_pb2_grpc.add_StorageServiceServicer_to_server(OptunaStorageProxyService(storage), server)
    server.add_insecure_port(f"{host}:{port}")
    return server
