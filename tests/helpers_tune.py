"""A tiny competition + experiment for the evaluate / tracking / tune tests (seconds, not minutes).

`tiny_project(root)` writes data/tiny/{train,test,sample_submission}.csv and
experiments/tiny.toml (2 folds, few epochs, small search space) and returns the toml path.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def tiny_frames(n: int, seed: int, task: str = "binary") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1 = rng.normal(0, 1, n)
    x2 = rng.normal(0, 1, n)
    colour = rng.choice(["green", "black"], n)
    band = np.abs(x1 + 0.5 * (colour == "black")) < 0.8  # needs a hidden layer
    if task == "regression":
        y: np.ndarray = np.sin(x1) + 0.3 * x2 + rng.normal(0, 0.1, n)
    elif task == "multiclass":  # three classes, one of them the band
        y = np.where(band, 2, (x2 > 0).astype(int))
    else:
        y = (band ^ (rng.random(n) < 0.1)).astype(int)
    return pd.DataFrame({"id": np.arange(n), "x1": x1, "x2": x2, "colour": colour, "y": y})


def tiny_project(
    root: Path, *, n: int = 240, task: str = "binary", metric: str = "roc_auc",
    folds: int = 2, max_iter: int = 6, trials: int = 3, pruner: str = "none",
    space: str | None = None, model_extra: str = "", tune_extra: str = "",
) -> Path:
    folder = root / "data" / "tiny"
    folder.mkdir(parents=True, exist_ok=True)
    train = tiny_frames(n, 0, task)
    test = tiny_frames(n // 2, 1, task).drop(columns="y")
    test["id"] += n
    train.to_csv(folder / "train.csv", index=False)
    test.to_csv(folder / "test.csv", index=False)
    pd.DataFrame({"id": test["id"], "y": 0.5}).to_csv(folder / "sample_submission.csv", index=False)
    if space is None:
        space = (
            "n_layers = { low = 1, high = 2 }\n"
            "units = { low = 4, high = 16, log = true }\n"
            "learning_rate_init = { low = 0.005, high = 0.05, log = true }\n"
            'activation = ["tanh", "relu"]\n'
        )
    path = root / "experiments" / "tiny.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "[competition]\n"
        'data_dir = "data/tiny"\nid = "id"\ntarget = "y"\n'
        f'task = "{task}"\nmetric = "{metric}"\n\n'
        "[model]\n"
        f"hidden_layer_sizes = [8]\nmax_iter = {max_iter}\nbatch_size = 32\n"
        f"learning_rate_init = 0.02\n{model_extra}\n"
        f"[cv]\nfolds = {folds}\nseed = 7\n\n"
        f'[tune]\ntrials = {trials}\nseed = 3\npruner = "{pruner}"\n'
        f"pruner_startup_trials = 1\npruner_warmup_epochs = 1\n{tune_extra}\n"
        f"[tune.space]\n{space}",
        encoding="utf-8",
    )
    return path


_TEMPLATE: dict[str, bytes] = {}


def fresh_mlflow_db(root: Path) -> str:
    """root/mlflow.db with MLflow's schema already in place (built once per session: ~2 s)."""
    import sqlite3
    import tempfile

    if "db" not in _TEMPLATE:
        from mlflow import MlflowClient

        with tempfile.TemporaryDirectory() as tmp:
            db = Path(tmp) / "mlflow.db"
            MlflowClient(f"sqlite:///{db}").search_experiments()
            with sqlite3.connect(db) as con:  # fold any WAL back into the file before copying
                con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            _TEMPLATE["db"] = db.read_bytes()
    (root / "mlflow.db").write_bytes(_TEMPLATE["db"])
    return "sqlite:///mlflow.db"


def one_line_error(result, *expected: str) -> str:
    """A CliRunner result refused as the contract says: exit 2 and one `error:` line holding
    every `expected` text; returns that line."""
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]
