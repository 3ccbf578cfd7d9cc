"""MLflow writes: carried out inline or in the writer process (off the trial's path).

Every write is one small frozen message (`LogMetrics`, `EndRun`, ...): the tracker builds it,
`write` carries it out, the same code inline or in the writer process after a trip through
its queue (so every field pickles; `FinishParent.figures` must be a module-level function).

The writer reads ahead: once the study's closing `FinishParent` is queued it forks a child
that draws Optuna's study plots (~0.4 s) while the writer still finishes the runs queued before
it (quickly pruned trials leave a backlog of convergence plots at the end). That is the one wait
`pipeline tune` has after its last trial; on one core it would be the sum of the two.

The writer process prints its own warnings to stderr: it has no caller to hand them to.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pipeline.curves import Curve, mean_curves
from pipeline.tracking.plots import close_figure, convergence_figure

BATCH = 1000  # MLflow's per-call limit for metrics in log_batch
PARAM_BATCH = 100  # and for params
TERMINAL = {"complete": "FINISHED", "pruned": "KILLED", "failed": "FAILED", "interrupted": "KILLED"}
Point = tuple[str, float, int, int]  # (key, value, timestamp in ms, step)


@dataclass(frozen=True)
class LogMetrics:
    run_id: str
    points: list[Point]


@dataclass(frozen=True)
class LogParams:
    run_id: str
    params: list[tuple[str, str]]  # (name, value as MLflow shows it)


@dataclass(frozen=True)
class LogDict:
    run_id: str
    data: dict
    name: str  # artifact file name, e.g. config.json


@dataclass(frozen=True)
class EndRun:
    """A trial's run is over: fold-mean curves, final metrics, config, convergence plot, state."""

    run_id: str
    state: str  # complete | pruned | failed | interrupted
    curves: list[Curve] | None  # per fold; None: no convergence figure
    metrics: dict[str, float]
    config: dict | None
    title: str  # of the convergence figure
    tags: dict[str, str] = field(default_factory=dict)  # e.g. stop_reason, saturated


@dataclass(frozen=True)
class FinishParent:
    """The study's closing write: best-trial metrics and tags, the study plots, FINISHED."""

    run_id: str
    metrics: dict[str, float]
    tags: dict[str, str]
    figures: Callable[..., dict[str, Any]] | None  # figures(*figure_args) -> {name: figure}
    figure_args: tuple
    drawing: _Drawing | None = None  # the plots drawn ahead (set in the writer process only)


@dataclass(frozen=True)
class CloseRun:
    run_id: str
    state: str


@dataclass(frozen=True)
class Call:
    """Run `fn(*args)` in the writer process (imports it will need for later writes)."""

    fn: Callable[..., Any]
    args: tuple


Message = LogMetrics | LogParams | LogDict | EndRun | FinishParent | CloseRun | Call


def write(client: Any, msg: Message) -> None:
    """Carry out one write; the same code runs inline or in the writer process."""
    match msg:
        case LogMetrics():
            _log_metrics(client, msg.run_id, msg.points)
        case LogParams():
            _log_params(client, msg.run_id, msg.params)
        case LogDict():
            client.log_dict(msg.run_id, msg.data, msg.name)
        case EndRun():
            _end_run(client, msg)
        case FinishParent():
            _finish_parent(client, msg)
        case CloseRun():
            _close_run(client, msg.run_id, msg.state)
        case Call():
            msg.fn(*msg.args)
        case _:
            raise TypeError(f"not a writer message: {msg!r}")


def _log_metrics(client: Any, run_id: str, points: list[Point]) -> None:
    from mlflow.entities import Metric

    batch = [Metric(k, float(v), ts, step) for k, v, ts, step in points]
    for i in range(0, len(batch), BATCH):
        client.log_batch(run_id, metrics=batch[i : i + BATCH])


def _log_params(client: Any, run_id: str, plist: list[tuple[str, str]]) -> None:
    from mlflow.entities import Param

    params = [Param(k, v) for k, v in plist]
    for i in range(0, len(params), PARAM_BATCH):
        client.log_batch(run_id, params=params[i : i + PARAM_BATCH])


def _close_run(client: Any, run_id: str, state: str) -> None:
    client.set_tag(run_id, "state", state)
    client.set_terminated(run_id, TERMINAL.get(state, "FAILED"))


def _end_run(client: Any, msg: EndRun) -> None:
    try:
        ts = int(time.time() * 1000)
        points = [(k, v, ts, step) for k, values in mean_curves(msg.curves or []).items()
                  for step, v in enumerate(values, start=1)]
        points += [(k, float(v), ts, 0) for k, v in msg.metrics.items()]
        _log_metrics(client, msg.run_id, points)
        if msg.tags:
            from mlflow.entities import RunTag

            client.log_batch(msg.run_id, tags=[RunTag(k, v) for k, v in msg.tags.items()])
        if msg.config is not None:
            client.log_dict(msg.run_id, msg.config, "config.json")
        if msg.curves and any(c.get("val_loss") for c in msg.curves):
            figure = convergence_figure(msg.curves, msg.title)
            client.log_figure(msg.run_id, figure, "convergence.png")
    finally:
        _close_run(client, msg.run_id, msg.state)


def _finish_parent(client: Any, msg: FinishParent) -> None:
    from mlflow.entities import Metric, RunTag

    try:
        ts = int(time.time() * 1000)
        client.log_batch(msg.run_id,
                         metrics=[Metric(k, float(v), ts, 0) for k, v in msg.metrics.items()],
                         tags=[RunTag(k, v) for k, v in msg.tags.items()])
        pngs = msg.drawing.result() if msg.drawing is not None else None
        if pngs is not None:
            for png in pngs:
                client.log_artifact(msg.run_id, str(png), "study")
        else:  # not drawn ahead (no fork, or the child failed): draw here
            for name, fig in (msg.figures(*msg.figure_args) if msg.figures else {}).items():
                fig.set_dpi(72)
                client.log_figure(msg.run_id, fig, f"study/{name}.png")
                close_figure(fig)
    finally:
        client.set_terminated(msg.run_id, "FINISHED")


class _Drawing:
    """Study plots drawn into PNG files by a forked child while the writer goes on."""

    def __init__(self, figures: Any, figure_args: tuple) -> None:
        import tempfile

        self.dir = Path(tempfile.mkdtemp(prefix="pipeline-study-plots-"))
        self.pid = os.fork()
        if self.pid == 0:  # the child: draw, save, leave without touching the parent's state
            code = 1
            try:
                figs = list(figures(*figure_args).items())
                # one process per figure: rendering is most of the time, and the cores are idle
                kids, mine = [], figs[:1]
                for item in figs[1:]:
                    pid = os.fork()
                    if pid == 0:
                        kids, mine = [], [item]
                        break
                    kids.append(pid)
                for name, fig in mine:
                    fig.set_dpi(72)
                    fig.savefig(self.dir / f"{name}.png")
                code = int(any([os.waitpid(pid, 0)[1] for pid in kids]))
            except BaseException as e:
                print(f"warning: study plots: {type(e).__name__}: {e}", file=sys.stderr)
            finally:
                sys.stderr.flush()
                os._exit(code)

    def result(self) -> list[Path] | None:
        """The PNG files; None when the child failed (the caller then draws them itself)."""
        _, status = os.waitpid(self.pid, 0)
        return sorted(self.dir.glob("*.png")) if status == 0 else None

    def cleanup(self) -> None:
        import shutil

        shutil.rmtree(self.dir, ignore_errors=True)


def _admit(msg: Message | None) -> Message | None:
    """A queued message as the writer will run it: the study's closing one starts its plots."""
    if isinstance(msg, FinishParent) and msg.figures is not None and hasattr(os, "fork"):
        return replace(msg, drawing=_Drawing(msg.figures, msg.figure_args))
    return msg


def _read_ahead(queue: Any, pending: Any) -> None:
    """Move what is already queued to `pending` (so the study plots start early)."""
    from queue import Empty

    while True:
        try:
            pending.append(_admit(queue.get_nowait()))
        except Empty:
            return


def writer_main(uri: str, queue: Any, owner: int) -> None:
    """The writer process: MLflow writes off the trial's critical path (on the other core)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the owner ends us after draining
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    try:
        _serve(uri, queue, owner)
    except Exception as e:  # the owner sees our exit code and says what it means for the runs
        first = (str(e).strip().splitlines() or [""])[0][:300]
        print(f"warning: MLflow writer stopped: {type(e).__name__}: {first}", file=sys.stderr)
        sys.stderr.flush()
        os._exit(1)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # skips ~1 s of interpreter teardown (mlflow, sqlalchemy, matplotlib)


def _serve(uri: str, queue: Any, owner: int) -> None:
    import logging
    from collections import deque

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    # its store errors come with a traceback each; our warning below names them in one line
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
    pending: deque = deque()
    failures = _Failures()
    try:
        _loop(uri, queue, owner, pending, failures)
    finally:
        failures.summary()


class _Failures:
    """Warnings for failed writes, the same fault said once (a full disk fails every write)."""

    def __init__(self) -> None:
        self.last, self.repeated = "", 0

    def warn(self, what: str, e: Exception) -> None:
        fault = (str(e).strip().splitlines() or [""])[0][:300]
        if fault == self.last:
            self.repeated += 1
            return
        self.summary()
        self.last = fault
        print(f"warning: MLflow {what} failed: {fault}", file=sys.stderr)

    def summary(self) -> None:
        if self.repeated:
            print(f"warning: {self.repeated} more MLflow write(s) failed the same way",
                  file=sys.stderr)
        self.repeated = 0


def _loop(uri: str, queue: Any, owner: int, pending: Any, failures: _Failures) -> None:
    from queue import Empty

    from mlflow import MlflowClient  # the import (~1.5 s) overlaps with the owner's start

    # The store is opened at the first write, never before: the owner creates the schema
    # first (two processes migrating a fresh database crash) and only then queues writes.
    client: Any = None
    while True:
        if not pending:
            try:
                pending.append(_admit(queue.get(timeout=2.0)))
            except Empty:
                if os.getppid() != owner:  # the owner was killed (-9): nothing more will come
                    return
                continue
        _read_ahead(queue, pending)
        msg = pending.popleft()
        if msg is None:  # drained: every write is committed
            return
        if client is None and not isinstance(msg, Call):
            client = MlflowClient(tracking_uri=uri)
        try:
            write(client, msg)
        except Exception as e:  # one bad write must not lose the others
            failures.warn(f"{type(msg).__name__} for run {getattr(msg, 'run_id', '-')}", e)
        finally:
            if isinstance(msg, FinishParent) and msg.drawing is not None:
                msg.drawing.cleanup()
