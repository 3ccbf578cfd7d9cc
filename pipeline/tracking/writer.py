"""MLflow writes: carried out inline or in the writer process (off the trial's path)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from pipeline.tracking.plots import _close_figure, convergence_figure, mean_curves

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
    elif op == "parent":
        run_id, metrics, tags, figures, figure_args, files = args
        try:
            ts = int(time.time() * 1000)
            client.log_batch(run_id, metrics=[Metric(k, float(v), ts, 0)
                                              for k, v in metrics.items()],
                             tags=[RunTag(k, v) for k, v in tags.items()])
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
        if item is None:  # drained: every write is committed, nothing is left to tear down
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)  # skips ~1 s of interpreter teardown (mlflow, sqlalchemy, matplotlib)
        op, args = item
        try:
            _write(client, op, args)
        except Exception as e:  # one bad write must not lose the others
            print(f"warning: MLflow {op} for run {args[0]} failed: {e}", file=sys.stderr)
