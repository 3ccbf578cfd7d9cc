"""MLflow writes: carried out inline or in the writer process (off the trial's path).

The writer reads ahead: once the study's closing "parent" op is queued it forks a child that
draws Optuna's study plots (~0.4 s) while the writer still finishes the runs queued before it
(quickly pruned trials leave a backlog of convergence plots at the end). That is the one wait
`pipeline tune` has after its last trial; on one core it would be the sum of the two.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from pipeline.curves import mean_curves
from pipeline.tracking.plots import _close_figure, convergence_figure

BATCH = 1000  # MLflow's per-call limit for metrics in log_batch
TERMINAL = {"complete": "FINISHED", "pruned": "KILLED", "failed": "FAILED", "interrupted": "KILLED"}


def _write(client: Any, op: str, args: tuple) -> None:
    """Carry out one write; the same code runs inline or in the writer process."""
    from mlflow.entities import Metric, Param, RunTag

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
                client.log_figure(run_id, convergence_figure(curves, title), "convergence.png")
        finally:
            _write(client, "close", (run_id, state))
    elif op == "params":
        run_id, plist = args
        params = [Param(k, v) for k, v in plist]
        for i in range(0, len(params), 100):  # MLflow's limit per call
            client.log_batch(run_id, params=params[i : i + 100])
    elif op == "parent":
        run_id, metrics, tags, figures, figure_args, files, drawn = (*args, None)[:7]
        try:
            ts = int(time.time() * 1000)
            client.log_batch(run_id, metrics=[Metric(k, float(v), ts, 0)
                                              for k, v in metrics.items()],
                             tags=[RunTag(k, v) for k, v in tags.items()])
            pngs = drawn.result() if drawn is not None else None
            if pngs is not None:
                for png in pngs:
                    client.log_artifact(run_id, str(png), "study")
            else:
                for name, fig in (figures(*figure_args) if figures else {}).items():
                    fig.set_dpi(72)
                    client.log_figure(run_id, fig, f"study/{name}.png")
                    _close_figure(fig)
            for f in files:
                if Path(f).exists():
                    client.log_artifact(run_id, f, "study")
        finally:
            client.set_terminated(run_id, "FINISHED")
    elif op == "dict":
        run_id, data, name = args
        client.log_dict(run_id, data, name)
    elif op == "call":
        fn, fargs = args
        fn(*fargs)
    elif op == "close":
        run_id, state = args
        client.set_tag(run_id, "state", state)
        client.set_terminated(run_id, TERMINAL.get(state, "FAILED"))


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


def _admit(item: Any) -> Any:
    """A queued op as the writer will run it: the study's closing op starts its plots now."""
    if item is not None and item[0] == "parent" and hasattr(os, "fork"):
        _, _, _, figures, figure_args, _ = item[1]
        if figures is not None:
            return ("parent", (*item[1], _Drawing(figures, figure_args)))
    return item


def _read_ahead(queue: Any, pending: Any) -> None:
    """Move what is already queued to `pending` (so the study plots start early)."""
    from queue import Empty

    while True:
        try:
            pending.append(_admit(queue.get_nowait()))
        except Empty:
            return


def _writer_main(uri: str, queue: Any, owner: int) -> None:
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
    from queue import Empty

    from mlflow import MlflowClient  # the import (~1.5 s) overlaps with the owner's start

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    # The store is opened at the first write, never before: the owner creates the schema
    # first (two processes migrating a fresh database crash) and only then queues writes.
    client: Any = None
    pending: deque = deque()
    while True:
        if not pending:
            try:
                pending.append(_admit(queue.get(timeout=2.0)))
            except Empty:
                if os.getppid() != owner:  # the owner was killed (-9): nothing more will come
                    return
                continue
        _read_ahead(queue, pending)
        item = pending.popleft()
        if item is None:  # drained: every write is committed
            return
        op, args = item
        if client is None and op != "call":
            client = MlflowClient(tracking_uri=uri)
        try:
            _write(client, op, args)
        except Exception as e:  # one bad write must not lose the others
            print(f"warning: MLflow {op} for run {args[0]} failed: {e}", file=sys.stderr)
        finally:
            if op == "parent" and len(args) > 6:
                args[6].cleanup()
