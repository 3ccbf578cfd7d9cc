"""Multi-fidelity tuning against the same study at full fidelity, and HistGradientBoosting.

On a generated Playground-style competition (`scale_data.py`), each study goes the way a user
goes: `pipeline init` -> `pipeline tune --trials N` -> `pipeline submit`, each in a fresh
project folder, timed from the outside. `multi` is the experiment file `init` writes (from
100,000 rows: subsample + promote + Hyperband, 3 folds); `full` is the same file with
`subsample` / `promote` removed and the median pruner (what `init` wrote before): same space,
folds, seeds and trial count. Private AUC is scored on solution.csv's Private rows;
HistGradientBoosting trains on the same train.csv and is scored on the same rows.

    python benchmarks/bench_fidelity.py --rows 300000 --trials 10 [--studies multi,full]
    python benchmarks/bench_fidelity.py --rows 1000000 --trials 30 --studies multi

Prints one table; the goals (issue 21): multi within 0.002 private AUC of full at 300k rows;
at 1M rows init -> tune --trials 30 -> submit under 60 minutes and within 0.01 of HGB.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TARGET = "target"


def run(cmd: list[str], cwd: Path) -> float:
    """Run a pipeline command in `cwd`; its minutes. Output goes to cwd/log.txt."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.monotonic()
    with (cwd / "log.txt").open("a") as log:
        log.write(f"$ {' '.join(cmd)}\n")
        log.flush()
        done = subprocess.run([sys.executable, "-m", "pipeline", *cmd], cwd=cwd, env=env,
                              stdout=log, stderr=subprocess.STDOUT)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed (exit {done.returncode}); see {cwd}/log.txt")
    return (time.monotonic() - started) / 60


def full_fidelity(path: Path) -> None:
    """The experiment at full fidelity: no subsample / promote, the median pruner."""
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"(?m)^(subsample|promote) = .*\n", "", text)
    text = re.sub(r'(?m)^pruner = ".*"$', 'pruner = "median"', text)
    path.write_text(text, encoding="utf-8")


def private_auc(pred: pd.DataFrame, solution: pd.DataFrame) -> float:
    from sklearn.metrics import roc_auc_score

    merged = solution[solution["Usage"] == "Private"].merge(pred, on="id", suffixes=("", "_p"))
    return float(roc_auc_score(merged[TARGET], merged[f"{TARGET}_p"]))


def study(kind: str, data: Path, work: Path, trials: int) -> dict[str, object]:
    """init -> tune -> submit of one study in a fresh project; minutes and private AUC."""
    import optuna

    project = work / kind
    project.mkdir(parents=True, exist_ok=True)
    for old in ("optuna.db", "mlflow.db"):
        (project / old).unlink(missing_ok=True)
    minutes = {"init": run(["init", str(data), "--name", "scale", "--force"], project)}
    if kind == "full":
        full_fidelity(project / "experiments" / "scale.toml")
    minutes["tune"] = run(["tune", "scale", "--trials", str(trials), "--fresh"], project)
    minutes["submit"] = run(["submit", "scale"], project)
    newest = max((project / "submissions" / "scale").glob("*.csv"), key=lambda p: p.stat().st_mtime)
    auc = private_auc(pd.read_csv(newest), pd.read_csv(data / "solution.csv"))
    s = optuna.load_study(study_name="scale", storage=f"sqlite:///{project / 'optuna.db'}")
    states = [t.state.name for t in s.trials]
    return {"study": kind, "trials": trials, "all rows": states.count("COMPLETE"),
            "pruned": states.count("PRUNED"), **minutes,
            "total": sum(minutes.values()), "private AUC": auc}


def hgb(data: Path) -> dict[str, object]:
    """HistGradientBoosting on the same train.csv, the same Private rows: categories native
    up to its 255 levels, integer codes above."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    started = time.monotonic()
    train, test = pd.read_csv(data / "train.csv"), pd.read_csv(data / "test.csv")
    features = [c for c in train.columns if c not in ("id", TARGET)]
    for c in features:
        if not pd.api.types.is_numeric_dtype(train[c]):
            levels = pd.CategoricalDtype(sorted(set(train[c].dropna())))
            unseen = ~test[c].isin(levels.categories)  # NaN for HGB, like a missing value
            train[c], test[c] = train[c].astype(levels), test[c].mask(unseen).astype(levels)
            if len(levels.categories) > 255:
                train[c], test[c] = train[c].cat.codes, test[c].cat.codes
    model = HistGradientBoostingClassifier(max_iter=500, categorical_features="from_dtype",
                                           random_state=0)
    model.fit(train[features], train[TARGET])
    pred = pd.DataFrame({"id": test["id"], TARGET: model.predict_proba(test[features])[:, 1]})
    auc = private_auc(pred, pd.read_csv(data / "solution.csv"))
    return {"study": "HistGradientBoosting", "total": (time.monotonic() - started) / 60,
            "private AUC": auc}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # `make bench` runs the defaults: the smallest size init stages (minutes, not an hour)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--trials", type=int, default=6)
    ap.add_argument("--studies", default="multi,full", help="comma-separated: multi, full")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "bench_fidelity")
    ap.add_argument("--no-hgb", action="store_true")
    args = ap.parse_args()
    data = args.work / f"data{args.rows}"
    if not (data / "solution.csv").is_file():
        subprocess.run([sys.executable, str(HERE / "scale_data.py"), str(data),
                        "--rows", str(args.rows)], check=True)
    results = []
    for kind in args.studies.split(","):
        results.append(study(kind, data, args.work / str(args.rows), args.trials))
        print(results[-1], flush=True)
    if not args.no_hgb:
        results.append(hgb(data))
    table = pd.DataFrame(results).set_index("study")
    if {"multi", "full"} <= set(table.index):
        table.loc["multi - full", "private AUC"] = (table.loc["multi", "private AUC"]
                                                    - table.loc["full", "private AUC"])
        table.loc["multi / full", "total"] = table.loc["multi", "total"] / table.loc["full",
                                                                                     "total"]
    if "multi" in table.index and "HistGradientBoosting" in table.index:
        table.loc["multi - HGB", "private AUC"] = (
            table.loc["multi", "private AUC"] - table.loc["HistGradientBoosting", "private AUC"])
    for col in ("trials", "all rows", "pruned"):
        table[col] = table[col].astype("Int64").astype(object) if col in table else None
    print(f"\n{args.rows:,} training rows, {args.trials} trials (minutes; {os.cpu_count()} cores)")
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(table.map(lambda v: "" if v is None or pd.isna(v) else
                        (f"{v:.4f}" if isinstance(v, float) else v)).to_string())


if __name__ == "__main__":
    main()
