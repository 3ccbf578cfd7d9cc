"""Worker processes on one study, for tests/test_distributed.py and benchmarks/bench_workers.py.

- `uniform_study(root, name, data=..., epochs=...)` writes root/data/<data>/{train,test,
sample_submission}.csv (once per folder) and root/experiments/<name>.toml: 8 numeric columns,
a binary target with an interaction, a fixed (32,) network, 3 folds, no pruning and no early
stop; only the learning rate and L2 are searched. At 150 epochs a trial takes ~1-3 s on one
core, so trials of parallel workers overlap and a kill lands mid-trial.
- `worker_env(**extra)`: the environment of a `pipeline tune` worker: one BLAS thread (one core
  per worker), no stores inherited from the caller's environment.
- `stop(proc, sig)`: end a process started with `start_new_session=True`, and its children.
- `start_proxy(storage, log, env, port)`: a `pipeline storage-proxy` in front of `storage`.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

N_TRAIN, N_TEST = 1200, 300

EXPERIMENT = """[competition]
data_dir = "data/{data}"
id = "id"
target = "y"
task = "binary"
metric = "roc_auc"

[model]
hidden_layer_sizes = [32]
max_iter = {epochs}
batch_size = 32
n_iter_no_change = 100000
tol = 0.0

[cv]
folds = 3
seed = 0

[tune]
seed = 0
pruner = "none"

[tune.space]
learning_rate_init = {{ low = 0.001, high = 0.03, log = true }}
alpha = {{ low = 0.00001, high = 0.01, log = true }}
"""


def uniform_study(root: Path, name: str, *, data: str = "uniform", epochs: int = 150) -> Path:
    """The competition (if root/data/<data> is new) and experiments/<name>.toml; its path."""
    folder = root / "data" / data
    if not folder.exists():
        rng = np.random.default_rng(6)
        n, m = N_TRAIN + N_TEST, 8
        X = rng.normal(size=(n, m)).round(4)
        logit = X[:, 0] - X[:, 1] + X[:, 2] * X[:, 3]
        y = (rng.random(n) < 1 / (1 + np.exp(-2 * logit))).astype(int)
        df = pd.DataFrame(X, columns=[f"x{i}" for i in range(m)])
        df.insert(0, "id", np.arange(n))
        folder.mkdir(parents=True)
        df.iloc[:N_TRAIN].assign(y=y[:N_TRAIN]).to_csv(folder / "train.csv", index=False)
        df.iloc[N_TRAIN:].to_csv(folder / "test.csv", index=False)
        pd.DataFrame({"id": df["id"].iloc[N_TRAIN:], "y": 0.5}).to_csv(
            folder / "sample_submission.csv", index=False)
    path = root / "experiments" / f"{name}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(EXPERIMENT.format(data=data, epochs=epochs), encoding="utf-8")
    return path


def worker_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPTUNA_STORAGE", "MLFLOW_TRACKING_URI")}
    env.update({"MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONUNBUFFERED": "1",
                "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                **extra})
    return env


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """Stop a process we started (it leads its own session) and whatever it spawned."""
    for s in (sig, signal.SIGKILL):  # then SIGKILL: mlflow server's job runners linger
        try:
            os.killpg(proc.pid, s)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            continue


def ask_many(url: str, n: int, out: Any) -> None:
    """A spawned process: ask `n` trials of study "race" through the pipeline's storage."""
    import warnings

    import optuna

    from pipeline.tune.study import make_storage

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.simplefilter("ignore")  # heartbeat storages warn when asked outside optimize
    study = optuna.load_study(study_name="race", storage=make_storage(url))
    out.put([study.ask().number for _ in range(n)])


def start_proxy(
    storage: str, log: Path, env: dict[str, str], port: int, threads: int = 16,
    timeout: float = 60,
) -> tuple[subprocess.Popen, str]:
    """`pipeline storage-proxy` for `storage` on 127.0.0.1:port, in a session of its own (stop
    it with `stop`); returns it and its grpc:// address once it says it listens."""
    import sys
    import time

    cmd = [sys.executable, "-m", "pipeline", "storage-proxy", "--storage", storage,
           "--port", str(port), "--threads", str(threads)]
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)
    deadline = time.monotonic() + timeout
    while "workers:" not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            raise RuntimeError(f"storage-proxy did not start: {log.read_text()[-2000:]}")
        time.sleep(0.2)
    return proc, f"grpc://127.0.0.1:{port}"
