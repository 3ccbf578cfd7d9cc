"""Cost against rows (issue 21): `prepare`, `tune` and `submit` on generated 100k / 300k / 1M-row
competitions, beside scikit-learn's HistGradientBoosting on the same folds and private split.

Per size, in a scratch folder (the competition from `scale_data.py`, seeded, no download):
`pipeline init` -> `prepare` -> `tune --trials T` -> `submit`, each a subprocess, each timed,
and the peak memory of its whole process tree (workers and MLflow writer included). Memory is
the sum of PSS (proportional set size, /proc/PID/smaps_rollup) sampled every 0.2 s: a page
memory-mapped by several workers counts once in total, not once per process as RSS would.
`--max-iter` caps the epochs of every fit (tune and submit) so the run stays bounded; per
epoch figures do not depend on it. HistGradientBoosting (scikit-learn's defaults, categorical
columns of up to 255 levels as categories) is fitted on the prepared arrays, fold by fold on
our folds, and averaged on test like our fold models.

    python benchmarks/bench_scale.py [--sizes 100000,300000,1000000] [--trials 2]
        [--max-iter 10] [--jobs 1] [--keep DIR]

Goal (issue 21): peak memory of `tune` at 1M rows < 3x the float32 feature matrix + 500 MB,
at 300k rows < 1 GB.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import scale_data  # noqa: E402

MB = 1 << 20


# ---------------------------------------------------------------- memory of a process tree
def _children() -> dict[int, list[int]]:
    """ppid -> pids, from /proc/*/stat."""
    kids: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(entry.name))
    return kids


def tree(pid: int) -> list[int]:
    """`pid` and every descendant."""
    kids, out, todo = _children(), [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, ()))
    return out


def pss(pid: int) -> int:
    """Proportional set size of one process in bytes (0 when it is gone)."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    m = re.search(r"^Pss:\s+(\d+) kB", text, re.M)
    return int(m.group(1)) * 1024 if m else 0


class PeakSampler(threading.Thread):
    """Samples the summed PSS of a process tree every `period` seconds; `peak` in bytes."""

    def __init__(self, pid: int, period: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.pid, self.period, self.peak = pid, period, 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, sum(pss(p) for p in tree(self.pid)))
            self.done.wait(self.period)


def measured(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, int]:
    """(seconds, peak PSS of the tree in bytes) of one command; its output goes to cwd/log."""
    with (cwd / "bench.log").open("a") as log:
        log.write(f"\n$ {' '.join(cmd)}\n")
        log.flush()
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
        sampler = PeakSampler(proc.pid)
        sampler.start()
        code = proc.wait()
        seconds = time.perf_counter() - start
        sampler.done.set()
        sampler.join()
    if code != 0:
        raise SystemExit(f"{' '.join(cmd)} failed (exit {code}); see {cwd / 'bench.log'}")
    return seconds, sampler.peak


# ---------------------------------------------------------------- one size
@dataclass
class Row:
    rows: int
    matrix: int = 0  # bytes of the float32 training matrix
    prepare_s: float = 0.0
    prepare_mem: int = 0
    tune_s: float = 0.0
    tune_mem: int = 0
    trial_s: list[float] = field(default_factory=list)
    epochs: list[int] = field(default_factory=list)
    submit_s: float = 0.0
    submit_mem: int = 0
    cv_auc: float = float("nan")
    private_auc: float = float("nan")
    hgb_fit_s: float = 0.0  # per fold
    hgb_cv_auc: float = float("nan")
    hgb_private_auc: float = float("nan")

    @property
    def goal(self) -> int | None:
        """The issue's memory goal for `tune` at this size, bytes (None: none stated)."""
        if self.rows >= 1_000_000:
            return 3 * self.matrix + 500 * MB
        if self.rows >= 300_000:
            return 1024 * MB
        return None


def run_size(n: int, scratch: Path, args: argparse.Namespace) -> Row:
    name = f"scale{n}"
    data, project = scratch / "data" / name, scratch / f"project{n}"
    if not (data / "solution.csv").is_file():
        scale_data.write(data, n, seed=0)
    if project.exists():
        shutil.rmtree(project)
    project.mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    py = [sys.executable, "-m", "pipeline"]
    measured([*py, "init", str(data), "--name", name], project, env)
    toml = project / "experiments" / f"{name}.toml"
    text = re.sub(r"(?m)^max_iter = \d+", f"max_iter = {args.max_iter}", toml.read_text())
    toml.write_text(text)
    row = Row(n)
    row.prepare_s, row.prepare_mem = measured([*py, "prepare", name], project, env)
    row.tune_s, row.tune_mem = measured(
        [*py, "tune", name, "--trials", str(args.trials), "--jobs", str(args.jobs), "--quiet"],
        project, env)
    row.submit_s, row.submit_mem = measured([*py, "submit", name], project, env)
    _read_study(row, project, name)
    _score(row, project, name, data)
    return row


def _read_study(row: Row, project: Path, name: str) -> None:
    """Each finished trial's duration and epochs (summed over folds), from the Optuna store."""
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{project / 'optuna.db'}")
    for t in study.get_trials(states=(TrialState.COMPLETE,)):
        row.trial_s.append((t.datetime_complete - t.datetime_start).total_seconds())
        row.epochs.append(int(sum(t.user_attrs.get("n_iters", [0]))))
    row.cv_auc = study.best_value


def _score(row: Row, project: Path, name: str, data: Path) -> None:
    """Our submission's private AUC; HistGradientBoosting's on the same folds and rows."""
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    from pipeline.evaluate import folds
    from pipeline.experiment import load
    from pipeline.prepare import prepare

    solution = pd.read_csv(data / "solution.csv")
    private = solution[solution["Usage"] == "Private"]
    newest = max((project / "submissions" / name).glob("*.csv"), key=lambda p: p.stat().st_mtime)
    ours = pd.read_csv(newest).set_index("id").loc[private["id"], "target"]
    row.private_auc = roc_auc_score(private["target"], ours.to_numpy())
    cwd = os.getcwd()
    os.chdir(project)  # the cache and experiments/ are the project's
    try:
        exp = load(name)
        prep = prepare(exp)
        splits = folds(prep, exp)
    finally:
        os.chdir(cwd)
    row.matrix = prep.X_train.shape[0] * prep.X_train.shape[1] * 4
    X, y, Xt = prep.X_train, prep.y, prep.X_test
    cats = np.zeros(X.shape[1], bool)  # HGB takes up to 255 levels; more stay ordinal codes
    cats[[j for j in prep.categorical if X[:, j].max() < 255]] = True
    scores, test, fits = [], np.zeros(len(Xt)), []
    for tr, va in splits:
        model = HistGradientBoostingClassifier(categorical_features=cats, random_state=0)
        start = time.perf_counter()
        model.fit(X[tr], y[tr])
        fits.append(time.perf_counter() - start)
        scores.append(roc_auc_score(y[va], model.predict_proba(X[va])[:, 1]))
        test += model.predict_proba(Xt)[:, 1] / len(splits)
    at = pd.Series(np.arange(len(prep.test_ids)), index=prep.test_ids.astype(np.int64))
    row.hgb_fit_s, row.hgb_cv_auc = float(np.mean(fits)), float(np.mean(scores))
    row.hgb_private_auc = roc_auc_score(private["target"], test[at[private["id"]].to_numpy()])


# ---------------------------------------------------------------- the table
def table(rows: list[Row], args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"bench_scale: tune --trials {args.trials} --jobs {args.jobs}, "
                    f"max_iter {args.max_iter}, 5 folds; memory = peak summed PSS of the tree")
    for col in ("rows", "X float32", "prepare", "prep mem", "tune", "tune mem", "goal",
                "s / trial", "s / epoch", "submit", "CV AUC", "private AUC",
                "HGB fit / fold", "HGB CV AUC", "HGB private"):
        t.add_column(col, justify="right")
    for r in rows:
        goal = "-" if r.goal is None else (
            f"< {r.goal / MB:.0f} MB {'PASS' if r.tune_mem < r.goal else 'FAIL'}")
        t.add_row(
            f"{r.rows:,}", f"{r.matrix / MB:.0f} MB", f"{r.prepare_s:.1f} s",
            f"{r.prepare_mem / MB:.0f} MB", f"{r.tune_s:.0f} s", f"{r.tune_mem / MB:.0f} MB",
            goal, f"{np.mean(r.trial_s):.0f}",
            ", ".join(f"{s / max(e, 1):.2f}" for s, e in zip(r.trial_s, r.epochs, strict=True)),
            f"{r.submit_s:.0f} s", f"{r.cv_auc:.4f}", f"{r.private_auc:.4f}",
            f"{r.hgb_fit_s:.1f} s", f"{r.hgb_cv_auc:.4f}", f"{r.hgb_private_auc:.4f}")
    Console(width=200).print(t)
    print("s / epoch: each trial's time over the epochs its folds trained (trial 0: the linear "
          "model every study measures first; then init's [model] network)\n"
          "HGB: scikit-learn defaults, fold models averaged on test")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100000,300000,1000000",
                    help="training rows, comma-separated [default: 100000,300000,1000000]")
    ap.add_argument("--trials", type=int, default=2)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--max-iter", type=int, default=10, help="epochs per fit at most")
    ap.add_argument("--keep", type=Path, help="scratch folder to keep (default: a temporary one)")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    scratch = args.keep or Path(tempfile.mkdtemp(prefix="bench_scale."))
    rows = []
    try:
        for n in sizes:
            rows.append(run_size(n, scratch, args))
            print(rows[-1], flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(scratch, ignore_errors=True)
    table(rows, args)


if __name__ == "__main__":
    main()
