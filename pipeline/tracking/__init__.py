"""The MLflow side: experiment, parent and child runs, batched per-epoch metrics, artifacts.

The only package that imports mlflow, and only inside functions: `pipeline --help` stays fast.
We use `MlflowClient` with explicit run ids, never the fluent `mlflow.start_run` state, so
several trials (threads or processes) never share an "active run".

Layout: one MLflow experiment per experiment file; one parent run per Optuna study; one
child run per trial (tag `mlflow.parentRunId`), with per-epoch curves as metric steps: one
series per fold (`fold0/val_loss`) and the fold mean (`val_loss`).

Modules: `runs` (the Tracker interface, runs, the MlflowTracker); `store` (URIs, the
race-safe schema set-up lock, small helpers); `writer` (the writes, inline or in the writer
process); `plots` (the convergence figure); `ui` (`make ui`); `artifacts` (a trial's stored
files read back from its run); `registry` and `scoring` (the registered model, `predict`).
This module only re-exports.
"""

from pipeline.tracking.runs import (
    MlflowRunLog,
    MlflowTracker,
    NullTracker,
    RunLog,
    Tracker,
    make_tracker,
)
from pipeline.tracking.ui import free_port, serve_ui, ui_command, ui_env

__all__ = [
    "MlflowRunLog", "MlflowTracker", "NullTracker", "RunLog", "Tracker", "free_port",
    "make_tracker", "serve_ui", "ui_command", "ui_env",
]
