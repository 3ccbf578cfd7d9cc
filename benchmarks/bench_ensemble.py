"""What `pipeline submit --top-k K` gains: out-of-fold and Public/Private scores for K = 1, 3, 5.

Issue 5 asks to report what a top-k ensemble gains on the avocado and adult out-of-fold scores.
For each competition, in a throwaway project folder:

1. a study: avocado = `pipeline data avocado` + the repository's experiments/avocado.toml;
   adult = the experiment of benchmarks/bench_adult.py on ../shared/competitions/adult (skipped
   with a message when that folder is absent);
2. `pipeline submit --top-k K --no-refit` for each K: the K best trials' fold models averaged;
3. `pipeline leaderboard --csv`: each file scored on solution.csv's Public and Private rows.

The OOF column is the submission stage's own ensemble score (the ledger's `cv_score`): the mean
over the study's folds of the metric of the members' averaged out-of-fold predictions
(`submit._ensemble_report`; for K = 1 the trial's mean fold score), so it is comparable with the
trial scores Optuna ranked. Nothing here re-implements it.

    python benchmarks/bench_ensemble.py                       # both, 30 trials each
    python benchmarks/bench_ensemble.py --only avocado --trials 20 --keep
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_adult import DATA as ADULT  # noqa: E402
from bench_adult import EXPERIMENT as ADULT_EXPERIMENT  # noqa: E402

KS = (1, 3, 5)


def cli(project: Path, *args: str) -> str:
    """Run `python -m pipeline ARGS` in `project`; its stdout, or exit with its stderr."""
    env = os.environ | {"MLFLOW_DISABLE_TELEMETRY": "true"}
    run = subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=project, env=env,
                         capture_output=True, text=True, timeout=1800)  # a hang must not block
    if run.returncode:
        sys.exit(f"`pipeline {' '.join(args)}` failed ({run.returncode}):\n"
                 f"{run.stdout[-2000:]}{run.stderr[-2000:]}")
    return run.stdout


def setup(project: Path, name: str, epochs: int) -> bool:
    (project / "experiments").mkdir(exist_ok=True)
    if name == "avocado":
        shutil.copy(ROOT / "experiments" / "avocado.toml", project / "experiments")
        cli(project, "data", "avocado")
        return True
    if not (ADULT / "train.csv").is_file():
        print(f"adult skipped: {ADULT} not found")
        return False
    (project / "experiments" / "adult.toml").write_text(
        ADULT_EXPERIMENT.format(data=ADULT, epochs=epochs, trials=30, warmup=max(3, epochs // 4)),
        encoding="utf-8")
    return True


def bench(name: str, trials: int, jobs: int, epochs: int, keep: bool) -> list[dict] | None:
    project = Path(tempfile.mkdtemp(prefix=f"bench-ensemble-{name}-"))
    try:
        if not setup(project, name, epochs):
            return None
        start = time.perf_counter()
        cli(project, "tune", name, "--trials", str(trials), "--jobs", str(jobs), "--quiet")
        tuned = time.perf_counter() - start
        print(f"{name}: {trials} trials tuned in {tuned:.0f} s", flush=True)
        for k in KS:
            start = time.perf_counter()
            cli(project, "submit", name, "--top-k", str(k), "--no-refit",
                "--message", f"bench top-{k}")
            print(f"{name}: top-{k} submitted in {time.perf_counter() - start:.0f} s", flush=True)
        board = list(csv.DictReader(io.StringIO(cli(project, "leaderboard", name, "--csv"))))
        rows = []
        for k in KS:  # one ledger row per submit, told apart by the message
            row = next(r for r in board if r["message"] == f"bench top-{k}")
            rows.append({"competition": name, "k": k, "trials": row["trials"],
                         "oof": num(row["cv_score"]), "public": num(row["public"]),
                         "private": num(row["private"]), "metric": row["metric"]})
        oracle = [r for r in board if "oracle" in Path(r["file"]).name]  # avocado's ceiling
        if oracle:
            rows.append({"competition": name, "k": "oracle", "trials": "", "oof": None,
                         "public": num(oracle[0]["public"]),
                         "private": num(oracle[0]["private"]), "metric": rows[0]["metric"]})
        return rows
    finally:
        if keep:
            print(f"{name}: project kept at {project}")
        else:
            shutil.rmtree(project, ignore_errors=True)  # our own mkdtemp folder only


def num(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:  # "" where the leaderboard has no score
        return None


def table(rows: list[dict]) -> str:
    lines = [f"{'competition':<11} {'k':>6} {'OOF':>8} {'gain':>8} {'public':>8} {'gain':>8} "
             f"{'private':>8} {'gain':>8}  trials"]
    def score(v: float | None) -> str:
        return "" if v is None else f"{v:.5f}"

    def gain(r: dict, key: str) -> str:
        if r["k"] in (1, "oracle") or r[key] is None or base.get(key) is None:
            return ""
        return f"{r[key] - base[key]:+.5f}"

    base: dict = {}
    for r in rows:
        if r["k"] == 1:
            base = r
        lines.append(f"{r['competition']:<11} {r['k']!s:>6} {score(r['oof']):>8} "
                     f"{gain(r, 'oof'):>8} {score(r['public']):>8} {gain(r, 'public'):>8} "
                     f"{score(r['private']):>8} {gain(r, 'private'):>8}  {r['trials']}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=30, help="study budget per competition")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=40, help="adult max_iter cap (bench_adult's)")
    ap.add_argument("--only", choices=("avocado", "adult"))
    ap.add_argument("--keep", action="store_true", help="keep the scratch projects")
    args = ap.parse_args()
    rows: list[dict] = []
    for name in ("avocado", "adult"):
        if args.only in (None, name):
            rows += bench(name, args.trials, args.jobs, args.epochs, args.keep) or []
    if rows:
        print(f"\ntop-k ensembles (--no-refit: fold models averaged), metric {rows[0]['metric']}; "
              "gain = change vs k=1")
        print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
