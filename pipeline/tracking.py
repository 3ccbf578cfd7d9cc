"""The MLflow side: experiment, parent and child runs, batched per-epoch metrics, artifacts.

The only module that imports mlflow, and only inside functions: `pipeline --help` stays fast.
We use `MlflowClient` with explicit run ids, never the fluent `mlflow.start_run` state, so
several trials (threads or processes) never share an "active run".

Layout: one MLflow experiment per experiment file; one parent run per Optuna study; one
child run per trial (tag `mlflow.parentRunId`), with per-epoch curves as metric steps: one
series per fold (`fold0/val_loss`) and the fold mean (`val_loss`).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
ARTIFACT_DIR = "mlartifacts"
BATCH = 1000  # MLflow's per-call limit for metrics in log_batch
CURVE_KEYS = ("train_loss", "val_loss", "val_error")
TERMINAL = {"complete": "FINISHED", "pruned": "KILLED", "failed": "FAILED", "interrupted": "KILLED"}


def resolve_uri(tracking_uri: str | None) -> str:
    """The URI to use; a relative SQLite path is made absolute (MLflow caches engines by URI,
    so `sqlite:///mlflow.db` must not mean another file after a chdir)."""
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    path = _sqlite_path(uri)
    if path is not None and not Path(path).is_absolute():
        uri = "sqlite:///" + str(Path.cwd() / path)
    return uri


@cache
def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def mean_curves(curves: list[dict[str, list[float]]]) -> dict[str, list[float]]:
    """Fold mean per epoch, over the folds that reached that epoch (folds stop early)."""
    out: dict[str, list[float]] = {}
    for key in CURVE_KEYS:
        series = [c.get(key, []) for c in curves if c.get(key)]
        if not series:
            continue
        longest = max(len(s) for s in series)
        out[key] = [
            sum(s[i] for s in series if i < len(s)) / sum(1 for s in series if i < len(s))
            for i in range(longest)
        ]
    return out


def convergence_figure(curves: list[dict[str, list[float]]], title: str) -> Any:
    """Loss and error per epoch, one thin line per fold and the mean in bold."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3.4), dpi=72)
    # fixed margins instead of a layout engine: half the drawing time
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.14, top=0.82, wspace=0.2)
    ax_loss, ax_err = fig.subplots(1, 2)
    for f, c in enumerate(curves):
        for key, ls in (("train_loss", "--"), ("val_loss", "-")):
            if c.get(key):
                ax_loss.plot(range(1, len(c[key]) + 1), c[key], ls, lw=0.7, color=f"C{f % 10}")
        if c.get("val_error"):
            values = c["val_error"]
            ax_err.plot(range(1, len(values) + 1), values, lw=0.7, color=f"C{f % 10}")
    mean = mean_curves(curves)
    for key, ax in (("val_loss", ax_loss), ("val_error", ax_err)):
        if key in mean:
            ax.plot(range(1, len(mean[key]) + 1), mean[key], color="black", lw=1.8, label="mean")
    ax_loss.set(title="loss (-- train, — validation)", xlabel="epoch")
    ax_err.set(title="validation error", xlabel="epoch")
    fig.suptitle(title, fontsize=9)
    return fig


class Tracker:
    """What tune/train need from a tracker. This base class is the no-op `NullTracker`."""

    enabled = False

    def setup(self, exp: Any) -> None:
        """Create the store's schema and the experiment once, before any worker starts."""

    def parent_run(self, exp: Any, study_name: str, run_id: str | None, tags: dict) -> str:
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
        figures: dict[str, Any], files: Iterable[Path] = (),
    ) -> None:
        """Best trial's metrics and the study plots onto the parent run."""

    def log_files(self, run_id: str, files: Iterable[Path], artifact_path: str | None) -> None:
        pass


NullTracker = Tracker


class RunLog:
    """One run being written: curves are buffered and sent with log_batch per fold."""

    def __init__(self, tracker: Tracker, run_id: str, name: str = "") -> None:
        self.tracker = tracker
        self.run_id = run_id
        self.name = name
        self.curves: list[dict[str, list[float]]] = []
        self._sent = 0  # folds already sent
        self._ended = False

    def epoch(self, fold: int, metrics: dict[str, float]) -> None:
        while len(self.curves) <= fold:
            self.curves.append({k: [] for k in CURVE_KEYS})
        for key in CURVE_KEYS:
            if key in metrics:
                self.curves[fold][key].append(float(metrics[key]))

    def flush(self, final: bool = False) -> None:
        """Send the folds that are over (all of them when `final`)."""

    def end(
        self, state: str, metrics: dict[str, float] | None = None,
        config: dict | None = None, plot: bool = True,
    ) -> None:
        self._ended = True


class MlflowRunLog(RunLog):
    """Curves leave as plain tuples; `MlflowTracker.submit` writes them (maybe in the writer)."""

    tracker: MlflowTracker

    def flush(self, final: bool = False) -> None:
        done = len(self.curves) if final else max(0, len(self.curves) - 1)
        if done <= self._sent:
            return
        ts = int(time.time() * 1000)
        points = [
            (f"fold{f}/{key}", v, ts, step)
            for f in range(self._sent, done)
            for key, values in self.curves[f].items()
            for step, v in enumerate(values, start=1)
        ]
        self._sent = done
        self.tracker.submit("metrics", self.run_id, points)

    def end(
        self, state: str, metrics: dict[str, float] | None = None,
        config: dict | None = None, plot: bool = True,
    ) -> None:
        if self._ended:
            return
        self._ended = True
        try:
            self.flush(final=True)
        finally:
            title = f"{self.name or self.run_id[:8]} ({state})"
            self.tracker.submit("end", self.run_id, state, self.curves if plot else None,
                                metrics or {}, config, title)


def _write(client: Any, op: str, args: tuple) -> None:
    """Carry out one write; the same code runs inline or in the writer process."""
    from mlflow.entities import Metric, Param

    if op == "metrics":
        run_id, points = args
        batch = [Metric(k, float(v), ts, step) for k, v, ts, step in points]
        for i in range(0, len(batch), BATCH):
            client.log_batch(run_id, metrics=batch[i : i + BATCH])
    elif op == "end":
        run_id, state, curves, metrics, config, title = args
        try:
            ts = int(time.time() * 1000)
            points = [(k, v, ts, step) for k, values in mean_curves(curves or []).items()
                      for step, v in enumerate(values, start=1)]
            points += [(k, float(v), ts, 0) for k, v in metrics.items()]
            _write(client, "metrics", (run_id, points))
            if config is not None:
                client.log_dict(run_id, config, "config.json")
            if curves and any(c.get("val_loss") for c in curves):
                fig = convergence_figure(curves, title)
                client.log_figure(run_id, fig, "convergence.png")
                _close_figure(fig)
        finally:
            _write(client, "close", (run_id, state))
    elif op == "params":
        run_id, plist = args
        params = [Param(k, v) for k, v in plist]
        for i in range(0, len(params), 100):  # MLflow's limit per call
            client.log_batch(run_id, params=params[i : i + 100])
    elif op == "close":
        run_id, state = args
        client.set_tag(run_id, "state", state)
        client.set_terminated(run_id, TERMINAL.get(state, "FAILED"))


def _writer_main(uri: str, queue: Any, owner: int) -> None:
    """The writer process: MLflow writes off the trial's critical path (on the other core)."""
    import signal
    from queue import Empty

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the owner ends us after draining
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import logging

    from mlflow import MlflowClient

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    client = MlflowClient(tracking_uri=uri)
    while True:
        try:
            item = queue.get(timeout=2.0)
        except Empty:
            if os.getppid() != owner:  # the owner was killed (-9): nothing more will come
                return
            continue
        if item is None:
            return
        op, args = item
        try:
            _write(client, op, args)
        except Exception as e:  # one bad write must not lose the others
            print(f"warning: MLflow {op} for run {args[0]} failed: {e}", file=sys.stderr)


class MlflowTracker(Tracker):
    enabled = True

    def __init__(self, tracking_uri: str | None = None, background: bool = False) -> None:
        self.uri = resolve_uri(tracking_uri)
        self.background = background
        self._client: Any = None
        self._experiment_ids: dict[str, str] = {}
        self._queue: Any = None
        self._writer: Any = None

    def submit(self, op: str, *args: Any) -> None:
        """A run's writes: inline, or queued to the writer process when `background`.

        MLflow's SQL store costs ~0.1-0.2 ms per metric point and a PNG ~0.1 s: inline that is
        10% of a small trial; the writer does it on the other core while the next epochs train.
        """
        if not self.background:
            _write(self.client, op, args)
            return
        self.start_writer()
        self._queue.put((op, args))

    def start_writer(self) -> None:
        """Start the writer early: its imports then overlap with the first trial."""
        if self.background and self._writer is None:
            import multiprocessing as mp

            ctx = mp.get_context("spawn")
            self._queue = ctx.Queue()
            self._writer = ctx.Process(
                target=_writer_main, args=(self.uri, self._queue, os.getpid()),
                name="mlflow-writer", daemon=True,
            )
            self._writer.start()

    def close(self) -> None:
        """Wait until every queued write is done (before reading runs back or exiting)."""
        if self._writer is not None:
            self._queue.put(None)
            self._writer.join(timeout=300)
            self._writer = self._queue = None

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
        """Schema (first MlflowClient use on a fresh SQLite file) and experiment, idempotent."""
        self.experiment_id(exp)
        path = _sqlite_path(self.uri)
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
            if _is_local(self.uri):
                location = (Path.cwd() / ARTIFACT_DIR).resolve().as_uri()
            try:
                eid = client.create_experiment(
                    exp.name, artifact_location=location, tags={"experiment_file": str(exp.path)}
                )
            except MlflowException:  # another process created it first
                found = client.get_experiment_by_name(exp.name)
                if found is None:
                    raise
                eid = found.experiment_id
        else:
            eid = found.experiment_id
        self._experiment_ids[exp.name] = eid
        return eid

    # --- runs ------------------------------------------------------------------------------

    def parent_run(self, exp: Any, study_name: str, run_id: str | None, tags: dict) -> str:
        from mlflow.exceptions import MlflowException

        if run_id:
            try:
                run = self.client.get_run(run_id)
                if run.info.lifecycle_stage == "active":
                    if run.info.status != "RUNNING":  # resumed: the parent runs again
                        self.client.update_run(run_id, status="RUNNING")
                    return run_id
            except MlflowException:
                pass  # a different tracking store than the study was first logged to
        run = self.client.create_run(
            self.experiment_id(exp),
            run_name=study_name,
            tags={**_str_tags(tags), "git_commit": git_commit(), "kind": "study"},
        )
        rid = run.info.run_id
        self.client.log_dict(rid, exp.as_dict(), "config.json")
        return rid

    def start_run(
        self, exp: Any, name: str, params: dict, tags: dict, parent_id: str | None = None
    ) -> MlflowRunLog:
        all_tags = {**_str_tags(tags), "git_commit": git_commit(), "state": "running",
                    "mlflow.source.name": "pipeline"}
        if parent_id:
            all_tags["mlflow.parentRunId"] = parent_id
        run = self.client.create_run(self.experiment_id(exp), run_name=name, tags=all_tags)
        rid = run.info.run_id
        # params go through the writer too: only create_run (for the id) waits
        plist = [(k, _param_str(v)) for k, v in sorted(params.items())]
        self.submit("params", rid, plist)
        return MlflowRunLog(self, rid, name)

    def close_run(self, run_id: str, state: str) -> None:
        from mlflow.exceptions import MlflowException

        try:
            _write(self.client, "close", (run_id, state))
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
        figures: dict[str, Any], files: Iterable[Path] = (),
    ) -> None:
        from mlflow.entities import Metric, RunTag

        ts = int(time.time() * 1000)
        self.client.log_batch(
            parent_id,
            metrics=[Metric(k, float(v), ts, 0) for k, v in metrics.items()],
            tags=[RunTag(k, v) for k, v in _str_tags(tags).items()],
        )
        for name, fig in figures.items():
            fig.set_dpi(72)
            self.client.log_figure(parent_id, fig, f"study/{name}.png")
            _close_figure(fig)
        self.log_files(parent_id, files, "study")
        self.client.set_terminated(parent_id, "FINISHED")

    def log_files(self, run_id: str, files: Iterable[Path], artifact_path: str | None) -> None:
        for f in files:
            if Path(f).exists():
                self.client.log_artifact(run_id, str(f), artifact_path)


def make_tracker(
    tracking_uri: str | None, enabled: bool = True, background: bool = False
) -> Tracker:
    return MlflowTracker(tracking_uri, background) if enabled else NullTracker()


# --- the UI ----------------------------------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def ui_command(host: str, port: int, tracking_uri: str | None) -> list[str]:
    """`mlflow server` on the project's backend store, serving the local artifacts."""
    uri = resolve_uri(tracking_uri)
    if uri.startswith(("http://", "https://")):
        from pipeline.errors import PipelineError

        raise PipelineError(f"--tracking-uri {uri} is already a server: open it in a browser")
    return [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", uri,
        "--default-artifact-root", (Path.cwd() / ARTIFACT_DIR).resolve().as_uri(),
        "--host", host, "--port", str(port), "--workers", "1",
    ]


def ui_env() -> dict[str, str]:
    """No telemetry, and no background job runner (GenAI scorers): it only slows the boot."""
    return {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true",
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def serve_ui(
    host: str = "127.0.0.1", port: int | None = None, tracking_uri: str | None = None
) -> None:
    """Start the MLflow UI, print its URL, run until Ctrl-C."""
    port = port or free_port(host)
    cmd = ui_command(host, port, tracking_uri)
    env = ui_env()
    print(f"MLflow UI: http://{host}:{port}  (Ctrl-C to stop)", flush=True)
    proc = subprocess.Popen(cmd, env=env)
    try:
        proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        raise


# --- helpers ---------------------------------------------------------------------------------


def _close_figure(fig: Any) -> None:
    """Free a figure; pyplot ones (Optuna's plots) stay registered until closed."""
    import sys

    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        plt.close(fig)


def _sqlite_path(uri: str) -> str | None:
    if not uri.startswith("sqlite:///"):
        return None
    path = uri.removeprefix("sqlite:///")
    return None if path in ("", ":memory:") else path


def _is_local(uri: str) -> bool:
    return not uri.startswith(("http://", "https://", "databricks"))


def _param_str(v: Any) -> str:
    if isinstance(v, tuple | list):
        return json.dumps(list(v))
    return str(v)


def _str_tags(tags: dict) -> dict[str, str]:
    return {str(k): str(v) for k, v in tags.items() if v is not None}
