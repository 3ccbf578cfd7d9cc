"""The tracker: the `Tracker` interface (a no-op `NullTracker`), one run being written
(`RunLog`), and the `MlflowTracker` that writes inline or through its writer process."""


from __future__ import annotations

import os
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from pipeline.curves import Curve, fold_key, record
from pipeline.provenance import git_commit
from pipeline.tracking.datasets import EXPERIMENT_KIND, log_train_dataset
from pipeline.tracking.store import (
    ARTIFACT_DIR,
    SETUP_ATTEMPTS,
    check_server,
    is_local,
    param_str,
    redact_url,
    resolve_uri,
    schema_lock,
    sqlite_path,
    str_tags,
)
from pipeline.tracking.writer import (
    Call,
    CloseRun,
    EndRun,
    FinishParent,
    LogDict,
    LogMetrics,
    LogParams,
    Message,
    write,
    writer_main,
)

CLOSE_TIMEOUT = 300  # seconds close() waits for the writer to drain its queue
SETTLE = 1.5  # seconds workers without a parent id wait before agreeing on one (rare path)


class Tracker:
    """What tune and train need from a tracker. This base class is the no-op `NullTracker`."""

    enabled = False

    def setup(self, exp: Any) -> None:
        """Create the store's schema and the experiment once, before any worker starts."""

    def parent_run(
        self, exp: Any, study_name: str, run_id: str | None, tags: dict, settle: bool = False
    ) -> str:
        """The study's parent run: `run_id` if it still exists here, else a new one."""
        return run_id or "null-parent"

    def start_run(
        self, exp: Any, name: str, params: dict, tags: dict, parent_id: str | None = None
    ) -> RunLog:
        return RunLog(self, "null-run")

    def close_run(self, run_id: str, state: str) -> None:
        """End a run (also one a dead worker left RUNNING) with `state` as tag and status."""

    def close_if_running(self, run_ids: list[str]) -> None:
        """Runs of trials failed elsewhere (heartbeat) that still say RUNNING end FAILED."""

    def close(self) -> None:
        """Finish pending writes."""

    def finish_parent(
        self, parent_id: str, metrics: dict[str, float], tags: dict[str, str],
        figures: Callable[..., dict[str, Any]] | None = None, figure_args: tuple = (),
    ) -> None:
        """Best trial's metrics and the study plots onto the parent run; the run ends FINISHED.

        `figures(*figure_args)` draws the plots ({name: matplotlib figure}) where the write
        happens: in the writer process for a background tracker, off the tune process's path.
        It must be a module-level function (it is pickled by reference).
        """

    def preload(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run `fn(*args)` in the writer process while it is idle (imports for later writes)."""

    def log_files(self, run_id: str, files: Iterable[Path], artifact_path: str | None) -> None:
        pass

    def log_network(self, run_id: str, model: Any, feature_names: Iterable[str], title: str,
                    artifact_path: str | None = None, classes: Sequence | None = None) -> None:
        """network.png / .svg of `model` on the run: every figure of a network logged (a
        trial's fold 0, a submission's model) is drawn here."""
        if not self.enabled:
            return
        import tempfile

        from pipeline.drawing import save_network

        names = list(feature_names)
        with tempfile.TemporaryDirectory() as tmp:
            paths = save_network(model, Path(tmp) / "network",
                                 names if model.n_features_in_ == len(names) else None, title,
                                 classes=classes)
            self.log_files(run_id, paths, artifact_path)


NullTracker = Tracker


class RunLog:
    """One run being written: curves are buffered and sent with log_batch per fold."""

    def __init__(self, tracker: Tracker, run_id: str, name: str = "") -> None:
        self.tracker = tracker
        self.run_id = run_id
        self.name = name
        self.curves: list[Curve] = []
        self._sent = 0  # folds already sent
        self._ended = False

    def epoch(self, fold: int, metrics: dict[str, float]) -> None:
        record(self.curves, fold, metrics)

    def flush(self, final: bool = False) -> None:
        """Send the folds that are over (all of them when `final`)."""

    def end(
        self, state: str, metrics: dict[str, float] | None = None,
        config: dict | None = None, plot: bool = True, tags: dict[str, str] | None = None,
    ) -> None:
        self._ended = True


class MlflowRunLog(RunLog):
    """Curves leave as plain tuples; `MlflowTracker.send` writes them (maybe in the writer)."""

    tracker: MlflowTracker

    def flush(self, final: bool = False) -> None:
        done = len(self.curves) if final else max(0, len(self.curves) - 1)
        if done <= self._sent:
            return
        ts = int(time.time() * 1000)
        points = [
            (fold_key(f, key), v, ts, step)
            for f in range(self._sent, done)
            for key, values in self.curves[f].items()
            for step, v in enumerate(values, start=1)
        ]
        self._sent = done
        self.tracker.send(LogMetrics(self.run_id, points))

    def end(
        self, state: str, metrics: dict[str, float] | None = None,
        config: dict | None = None, plot: bool = True, tags: dict[str, str] | None = None,
    ) -> None:
        if self._ended:
            return
        self._ended = True
        try:
            self.flush(final=True)
        finally:
            title = f"{self.name or self.run_id[:8]} ({state})"
            self.tracker.send(EndRun(self.run_id, state, self.curves if plot else None,
                                     metrics or {}, config, title, str_tags(tags or {})))


class MlflowTracker(Tracker):
    enabled = True

    def __init__(self, tracking_uri: str | None = None, background: bool = False) -> None:
        self.uri = resolve_uri(tracking_uri)
        self.background = background
        self._client: Any = None
        self._experiment_ids: dict[str, str] = {}
        self._queue: Any = None
        self._writer: Any = None

    def send(self, msg: Message) -> None:
        """A run's writes: inline, or queued to the writer process when `background`.

        MLflow's SQL store costs ~0.1-0.2 ms per metric point and a PNG ~0.1 s: inline that is
        10% of a small trial; the writer does it on the other core while the next epochs train.
        """
        if self.background:
            self.start_writer()
            if self._writer.is_alive():
                self._queue.put(msg)
                return
            self._writer_gone()
        write(self.client, msg)

    def start_writer(self) -> None:
        """Start the writer early: its imports then overlap with the first trial."""
        if self.background and self._writer is None:
            import multiprocessing as mp

            ctx = mp.get_context("spawn")
            self._queue = ctx.Queue()
            self._writer = ctx.Process(
                target=writer_main, args=(self.uri, self._queue, os.getpid()),
                name="mlflow-writer", daemon=True,
            )
            self._writer.start()

    def _writer_gone(self) -> None:
        """The writer died (it printed why): say what that means, go on writing inline.

        Printed here, not returned: this happens mid-trial, often in a spawned tune worker,
        where no caller could pass it on. The same holds for the warnings of `close`.
        """
        print(f"warning: the MLflow writer process exited (code {self._writer.exitcode}); "
              "runs it had queued may be incomplete; writing from this process from now on",
              file=sys.stderr, flush=True)
        self._drop_writer()
        self.background = False

    def _drop_writer(self) -> None:
        # a dead reader leaves the queue's pipe full: never wait for it to drain at exit
        self._queue.cancel_join_thread()
        self._queue.close()
        self._writer = self._queue = None

    def close(self) -> None:
        """Wait until every queued write is done (before reading runs back or exiting)."""
        if self._writer is None:
            return
        if self._writer.is_alive():
            self._queue.put(None)
            self._writer.join(timeout=CLOSE_TIMEOUT)
        if self._writer.is_alive():
            self._writer.terminate()
            print(f"warning: the MLflow writer did not finish within {CLOSE_TIMEOUT} s; "
                  "stopped it: the last runs may be incomplete", file=sys.stderr, flush=True)
        elif self._writer.exitcode != 0:
            print(f"warning: the MLflow writer process exited (code {self._writer.exitcode}); "
                  "runs it had queued may be incomplete", file=sys.stderr, flush=True)
        self._drop_writer()

    @property
    def client(self) -> Any:
        if self._client is None:
            os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
            import logging

            from mlflow import MlflowClient

            logging.getLogger("mlflow").setLevel(logging.WARNING)  # "Creating tables..." noise

            self._client = MlflowClient(tracking_uri=self.uri)
        return self._client

    # --- set-up ----------------------------------------------------------------------------

    def setup(self, exp: Any) -> None:
        """Schema and experiment, idempotent and safe when N workers start at the same second.

        MLflow creates its tables on the first client use of a fresh database, unguarded across
        processes: on PostgreSQL the losers crash (UniqueViolation on alembic_version). So the
        first use runs under a PostgreSQL advisory lock (one worker creates, the others wait and
        find the tables), and every database error of the set-up is retried with back-off; what
        still fails after that is one PipelineError line, never a traceback.
        """
        from pipeline.errors import PipelineError

        last: Exception | None = None
        for attempt in range(SETUP_ATTEMPTS):
            try:
                with schema_lock(self.uri):
                    self.experiment_id(exp)
                break
            except Exception as e:  # sqlalchemy / MlflowException from the schema race
                last = e
                self._client = None  # the next attempt builds a fresh store
                time.sleep(min(4.0, 0.25 * 2**attempt))
        else:
            first = str(last).strip().splitlines()[0] if str(last).strip() else type(last).__name__
            raise PipelineError(f"--tracking-uri {redact_url(self.uri)}: cannot set up MLflow "
                                f"({type(last).__name__}: {first[:200]})")
        path = sqlite_path(self.uri)
        if path is not None:
            # WAL lets several worker processes read while one writes; persistent in the file.
            with sqlite3.connect(path, timeout=60) as con:
                con.execute("PRAGMA journal_mode=WAL")

    def experiment_id(self, exp: Any) -> str:
        if exp.name in self._experiment_ids:
            return self._experiment_ids[exp.name]
        from mlflow.exceptions import MlflowException

        client = self.client
        found = client.get_experiment_by_name(exp.name)
        if found is None:
            location = None
            if is_local(self.uri):
                location = (Path.cwd() / ARTIFACT_DIR).resolve().as_uri()
            try:
                eid = client.create_experiment(
                    exp.name, artifact_location=location,
                    tags={"experiment_file": str(exp.path), **EXPERIMENT_KIND},
                )
            except MlflowException:  # another process created it first
                found = client.get_experiment_by_name(exp.name)
                if found is None:
                    raise
                eid = found.experiment_id
        else:
            eid = found.experiment_id
            self.mark_kind(found)
        self._experiment_ids[exp.name] = eid
        return eid

    def mark_kind(self, experiment: Any) -> None:
        """Experiments made before the kind tag existed get it once."""
        for key, value in EXPERIMENT_KIND.items():
            if experiment.tags.get(key) != value:
                self.client.set_experiment_tag(experiment.experiment_id, key, value)

    def log_dataset(self, exp: Any, run_id: str, tags: dict) -> None:
        """The run's training data in the UI's Dataset column (runs tagged with a fingerprint)."""
        if tags.get("data_fingerprint"):
            log_train_dataset(self.client, run_id, exp, str(tags["data_fingerprint"]))

    # --- runs ------------------------------------------------------------------------------

    def parent_run(
        self, exp: Any, study_name: str, run_id: str | None, tags: dict, settle: bool = False
    ) -> str:
        """`run_id` if it is still active here; else (with `settle`) the earliest existing run
        tagged as this study's parent; else a new one.

        `settle` is for a worker that found the study without a parent id: all such workers
        create at most one run each, wait a moment, look again and agree on the earliest
        (start time, then id); the losers delete their own run, so one parent remains.
        """
        from mlflow.exceptions import MlflowException

        if run_id:
            try:
                run = self.client.get_run(run_id)
                if run.info.lifecycle_stage == "active":
                    self._reopen(run)
                    return run_id
            except MlflowException:
                pass  # a different tracking store than the study was first logged to
        key = {k: str(tags[k]) for k in ("optuna.study", "optuna.study_id") if k in tags}
        if settle and key:
            found = self.study_parents(exp, key)
            if found:
                self._reopen(found[0])
                return found[0].info.run_id
        run = self.client.create_run(
            self.experiment_id(exp),
            run_name=study_name,
            tags={**str_tags(tags), "git_commit": git_commit(), "kind": "study"},
        )
        rid = run.info.run_id
        self.log_dataset(exp, rid, tags)
        if settle and key:
            time.sleep(SETTLE)  # let the parents other workers are creating right now land
            found = self.study_parents(exp, key)
            winner = found[0].info.run_id if found else rid
            if winner != rid:
                self.client.delete_run(rid)
                self._reopen(found[0])
                return winner
        self.send(LogDict(rid, exp.as_dict(), "config.json"))
        return rid

    def study_parents(self, exp: Any, key: dict[str, str]) -> list:
        """Active parent runs tagged with this study's name and id, earliest first."""
        terms = [f"tags.`{k}` = '{v}'" for k, v in key.items() if "'" not in v]
        where = " AND ".join(["tags.kind = 'study'", *terms])
        runs = self.client.search_runs([self.experiment_id(exp)], where, max_results=100)
        return sorted(runs, key=lambda r: (r.info.start_time, r.info.run_id))

    def _reopen(self, run: Any) -> None:
        if run.info.status != "RUNNING":  # resumed: the parent runs again
            self.client.update_run(run.info.run_id, status="RUNNING")

    def start_run(
        self, exp: Any, name: str, params: dict, tags: dict, parent_id: str | None = None
    ) -> MlflowRunLog:
        all_tags = {**str_tags(tags), "git_commit": git_commit(), "state": "running",
                    "mlflow.source.name": "pipeline"}
        if parent_id:
            all_tags["mlflow.parentRunId"] = parent_id
        run = self.client.create_run(self.experiment_id(exp), run_name=name, tags=all_tags)
        rid = run.info.run_id
        self.log_dataset(exp, rid, tags)
        # params go through the writer too: only create_run (for the id) waits
        plist = [(k, param_str(v)) for k, v in sorted(params.items())]
        self.send(LogParams(rid, plist))
        return MlflowRunLog(self, rid, name)

    def close_run(self, run_id: str, state: str) -> None:
        from mlflow.exceptions import MlflowException

        try:
            write(self.client, CloseRun(run_id, state))
        except MlflowException:
            pass  # the run is gone (deleted by the user): nothing left to close

    def close_if_running(self, run_ids: list[str]) -> None:
        from mlflow.exceptions import MlflowException

        for run_id in run_ids:
            try:
                if self.client.get_run(run_id).info.status == "RUNNING":
                    self.close_run(run_id, "failed")
            except MlflowException:
                continue

    def finish_parent(
        self, parent_id: str, metrics: dict[str, float], tags: dict[str, str],
        figures: Callable[..., dict[str, Any]] | None = None, figure_args: tuple = (),
    ) -> None:
        self.send(FinishParent(parent_id, metrics, str_tags(tags), figures, figure_args))

    def preload(self, fn: Callable[..., Any], *args: Any) -> None:
        if self.background:
            self.send(Call(fn, args))

    def log_files(self, run_id: str, files: Iterable[Path], artifact_path: str | None) -> None:
        for f in files:
            if Path(f).exists():
                self.client.log_artifact(run_id, str(f), artifact_path)


def make_tracker(
    tracking_uri: str | None, enabled: bool = True, background: bool = False
) -> Tracker:
    if enabled:
        check_server(resolve_uri(tracking_uri))  # a dead server: one line now, not a hang
    return MlflowTracker(tracking_uri, background) if enabled else NullTracker()
