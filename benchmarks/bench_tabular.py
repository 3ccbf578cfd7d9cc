"""Real tabular data: the tuned network beside logistic / ridge regression, gradient boosting and
scikit-learn's MLP, on the same folds, out-of-fold and private scores in one table.

Issue 11. Competitions: ../shared/competitions/adult (skipped with a message when absent) and
the pip-installable datasets of benchmarks/tabular_datasets.py, built into a cache folder
outside the repository. For each, in a throwaway project folder:

- ours, as a user runs it: `pipeline init DATA --name NAME` (then the metric the dataset names,
  where the files cannot show it: rmsle, qwk, f1_macro), `pipeline tune NAME --trials N`,
  `pipeline submit NAME`, then `pipeline leaderboard NAME --csv` scores the file on
  solution.csv's Public / Private rows; OOF is the ledger's cv_score. The bagging ablation is
  submit's own options on the same best trial: one refit model (`--refit --seeds 1`) and the
  fold models of one seed (`--no-refit --seeds 1`) beside what init's [submit] configures;
- baselines fitted here on the same folds (`pipeline.evaluate.folds`): logistic regression
  (ridge for regression) and `MLPClassifier((64,))` on the pipeline's prepared arrays,
  `HistGradientBoosting*` (defaults) on the raw columns with native categorical support;
  for rmsle every baseline fits log1p(y), as ours does; label metrics score 0.5 / argmax /
  rounding; private = refit on every training row; one thread each, as the network trains;
- ablations: `pipeline.evaluate.cross_validate` of the experiment's [model] (what `init` wrote)
  with one change each (plain, PLE, periodic, no hidden layer); private = the fold models'
  averaged test predictions (no refit).

OOF is everywhere the mean of the folds' scores on their held-out rows, the number the
pipeline's studies and ledger use. Margins (the issue's): ours may trail logistic / ridge
regression, and should not trail gradient boosting, by at most 0.005 in the metric (0.5%
relative for RMSE and MAE); adult needs private ROC AUC >= 0.920 with init + tune + submit < 600 s.

    python benchmarks/bench_tabular.py                      # everything, 30 trials (~15-30 min)
    python benchmarks/bench_tabular.py --quick              # 5 trials, small datasets (~3 min)
    python benchmarks/bench_tabular.py --only adult --no-ablations --out adult.csv
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import tabular_datasets as td  # noqa: E402

ADULT = HERE.parent.parent / "shared" / "competitions" / "adult"
QUICK = ("breast_cancer", "penguins", "diabetes")  # seconds each, not minutes
MARGIN = 0.005  # absolute; relative (0.5%) for metrics in the target's units
RELATIVE = ("rmse", "mae")  # scale-dependent: the margin is a share of the reference
ADULT_GOAL, BUDGET = 0.920, 600.0
# One change each to the experiment's [model]; `pipeline train NAME --set ...` runs the same.
ABLATIONS: dict[str, dict[str, Any]] = {
    "plain (no encoding)": {"numeric_encoding": "none"},
    "PLE (tree, 16 bins)": {"numeric_encoding": "ple", "binning": "tree", "n_bins": 16},
    "periodic (scale 10)": {"numeric_encoding": "periodic", "periodic_scale": 10.0},
    "no hidden layer": {"hidden_layer_sizes": ()},
}
OURS = "ours: init+tune+submit"  # submit as init's [submit] says (bagging, where it does)
# The bagging ablation: the same best trial submitted without bagging, by submit's own options.
SUBMITS = {"submit --refit --seeds 1": ("--refit", "--seeds", "1"),
           "submit --no-refit --seeds 1": ("--no-refit", "--seeds", "1")}
LOGISTIC, BOOSTING = "logistic regression", "gradient boosting"


@dataclass
class Row:
    dataset: str
    rows: int  # train.csv rows
    features: int  # raw feature columns the experiment uses
    metric: str
    model: str
    oof: float | None
    public: float | None
    private: float | None
    seconds: float


class BenchError(Exception):
    """One competition could not be measured; the others go on."""


# --- ours, through the command line -------------------------------------------------------


def cli(project: Path, *args: str) -> str:
    """`pipeline ARGS` from this interpreter's environment, run in `project`; its stdout."""
    exe = Path(sys.executable).with_name("pipeline")
    command = [str(exe)] if exe.is_file() else [sys.executable, "-m", "pipeline"]
    # the stores must be the project's own: a user's server URLs would mix runs in
    env = {k: v for k, v in os.environ.items()
           if k not in ("MLFLOW_TRACKING_URI", "OPTUNA_STORAGE")}
    run = subprocess.run([*command, *args], cwd=project, env=env, capture_output=True,
                         text=True, timeout=3 * 3600)  # a hang must not block `make bench`
    if run.returncode:
        raise BenchError(f"`pipeline {' '.join(args)}` failed ({run.returncode}): "
                         f"{(run.stderr or run.stdout).strip()[-1500:]}")
    return run.stdout


def run_ours(project: Path, name: str, data: Path, trials: int) -> tuple[dict, dict[str, float]]:
    """init, tune, submit as init configured it, then each SUBMITS variant; leaderboard rows
    by model label, and the seconds of each stage."""
    seconds: dict[str, float] = {}
    files: dict[str, str] = {}
    steps = [("init", ("init", str(data), "--name", name)),
             ("tune", ("tune", name, "--trials", str(trials), "--quiet")),
             (OURS, ("submit", name)),
             *((label, ("submit", name, *args)) for label, args in SUBMITS.items())]
    for stage, args in steps:
        start = time.perf_counter()
        out = cli(project, *args)
        if stage == "init" and name in td.DATASETS:  # the metric the competition page names
            td.set_metric(project / "experiments" / f"{name}.toml", td.DATASETS[name].metric)
        seconds[stage] = time.perf_counter() - start
        print(f"  {'submit' if stage == OURS else stage}: {seconds[stage]:.0f} s", flush=True)
        if args[0] == "submit":  # "wrote FILE", or "identical to FILE" (nothing new written)
            found = re.search(r"(submissions/\S+?\.csv)", out)
            if found is None:
                raise BenchError(f"`pipeline {' '.join(args)}` named no file: {out[-500:]}")
            files[stage] = found.group(1)
    board = {r["file"]: r for r in csv.DictReader(io.StringIO(
        cli(project, "leaderboard", name, "--csv")))}
    return {stage: board[file] for stage, file in files.items()}, seconds


def number(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


# --- baselines and ablations, in process on the pipeline's own arrays and folds -----------


def fit_score(make: Callable[[], Any], X: Any, y: Any, X_test: Any, splits: list,
              metric: Any) -> tuple[float, Any]:
    """Mean fold score of a fresh model per fold, and a model refitted on every row's test
    predictions (metric form)."""
    from sklearn.exceptions import ConvergenceWarning

    from pipeline.evaluate import predict

    def take(data: Any, idx: Any) -> Any:
        return data.iloc[idx] if hasattr(data, "iloc") else data[idx]

    scores = []
    with warnings.catch_warnings():  # the MLP hitting max_iter is not news here
        warnings.simplefilter("ignore", ConvergenceWarning)
        for tr, va in splits:
            model = make().fit(take(X, tr), y[tr])
            scores.append(metric(y[va], predict(model, take(X, va))))
        test = predict(make().fit(X, y), X_test)
    return sum(scores) / len(scores), test


def raw_features(exp: Any, prepared: Any) -> tuple[Any, Any]:
    """train / test feature frames for gradient boosting: text columns as pandas categories
    (train's levels), in the row order of the prepared arrays."""
    import pandas as pd

    comp = exp.competition
    train = pd.read_csv(comp.data_dir / "train.csv", dtype={comp.id: str})
    test = pd.read_csv(comp.data_dir / "test.csv", dtype={comp.id: str})
    if list(train[comp.id]) != list(prepared.train_ids) or \
            list(test[comp.id]) != list(prepared.test_ids):
        raise BenchError(f"{comp.data_dir}: raw rows are not in the prepared arrays' order")
    columns = [c for c in train.columns if c not in (comp.id, comp.target, *comp.drop)]
    train, test = train[columns].copy(), test[columns].copy()
    for c in columns:
        if c in comp.categorical or not pd.api.types.is_numeric_dtype(train[c]):
            levels = pd.CategoricalDtype(sorted(train[c].dropna().astype(str).unique()))
            train[c] = train[c].astype(str).where(train[c].notna()).astype(levels)
            test[c] = test[c].astype(str).where(test[c].notna()).astype(levels)
    return train, test


def baselines(exp: Any, prepared: Any) -> dict[str, Callable[[], tuple[Any, Any, Callable]]]:
    """model label -> (X, X_test, estimator factory)."""
    import numpy as np
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    X, X_test = prepared.X_train, prepared.X_test
    # Early stopping as bench_avocado_baselines on large data (adult's fits took minutes
    # without); on a few hundred rows its 10% hold-out stopped penguins' MLP before it learned.
    mlp_args = {"hidden_layer_sizes": (64,), "early_stopping": len(X) >= 10_000,
                "max_iter": 500, "random_state": 0}
    if exp.competition.task == "regression":
        # rmsle: every baseline fits log1p(y) and predicts expm1, as ours does (the line a
        # Kaggle notebook writes for an RMSLE contest); the MLP also gets the standardised
        # target ours trains on (`scale_target`)
        log = exp.competition.metric == "rmsle"

        def fitted(make: Callable[[], Any]) -> Callable[[], Any]:
            return (lambda: TransformedTargetRegressor(make(), func=np.log1p,
                                                       inverse_func=np.expm1)) if log else make

        def mlp() -> Any:
            scale = (make_pipeline(FunctionTransformer(np.log1p, np.expm1), StandardScaler())
                     if log else StandardScaler())
            return TransformedTargetRegressor(MLPRegressor(**mlp_args), transformer=scale)
        return {
            "ridge regression": lambda: (X, X_test, fitted(Ridge)),
            BOOSTING: lambda: (*raw_features(exp, prepared),
                               fitted(HistGradientBoostingRegressor)),
            "MLPRegressor((64,))": lambda: (X, X_test, mlp),
        }
    return {
        LOGISTIC: lambda: (X, X_test, lambda: LogisticRegression(max_iter=2000)),
        BOOSTING: lambda: (*raw_features(exp, prepared), HistGradientBoostingClassifier),
        "MLPClassifier((64,))": lambda: (X, X_test, lambda: MLPClassifier(**mlp_args)),
    }


def measure_in_process(exp: Any, ablations: bool) -> list[tuple[str, float, Any, float]]:
    """(label, OOF, test predictions in test.csv order, seconds) of every baseline and, if
    asked, every ablation."""
    import numpy as np
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency

    from pipeline.evaluate import cross_validate, folds, predict
    from pipeline.metrics import METRICS
    from pipeline.prepare import prepare

    prepared = prepare(exp)
    splits = folds(prepared, exp)
    metric = METRICS[exp.competition.metric]
    out = []
    for label, setup in baselines(exp, prepared).items():
        start = time.perf_counter()
        X, X_test, make = setup()
        # one thread, as the network trains: the seconds compare, and on a busy machine
        # OpenMP's spinning made gradient boosting on 300 rows take a minute
        with threadpool_limits(limits=1):
            oof, test = fit_score(make, X, prepared.y, X_test, splits, metric)
        out.append((label, oof, test, time.perf_counter() - start))
        print(f"  {label}: {time.perf_counter() - start:.0f} s", flush=True)
    for label, change in ABLATIONS.items() if ablations else ():
        start = time.perf_counter()
        res = cross_validate(prepared, exp, {**exp.model.params(), **change}, keep_models=True)
        test = np.mean([predict(m, prepared.X_test) for m in res.models], axis=0)
        out.append((label, res.mean, test, time.perf_counter() - start))
        print(f"  {label}: {time.perf_counter() - start:.0f} s", flush=True)
    return out


def public_private(exp: Any, pred: Any) -> tuple[float | None, float | None]:
    """Scores of test predictions (test.csv order) on solution.csv's Public / Private rows,
    with the leaderboard's own reading of solution.csv."""
    import numpy as np

    from pipeline.metrics import METRICS
    from pipeline.prepare import prepare
    from pipeline.submission.format import load_format
    from pipeline.submission.leaderboard import load_solution

    prepared = prepare(exp)  # cached
    solution = load_solution(exp, load_format(exp), prepared.classes)
    if solution is None:
        return None, None
    where = {i: k for k, i in enumerate(prepared.test_ids)}
    pred = np.asarray(pred)[[where[i] for i in solution.ids]]
    metric = METRICS[exp.competition.metric]
    return tuple(metric(solution.y[rows], pred[rows]) if rows.any() else None
                 for rows in (solution.public, solution.private))


# --- one competition ----------------------------------------------------------------------


def bench(name: str, data: Path, trials: int, ablations: bool, keep: bool
          ) -> tuple[list[Row], dict[str, float]]:
    from pipeline.experiment import load

    project = Path(tempfile.mkdtemp(prefix=f"bench-tabular-{name}-"))
    try:
        print(f"{name}: {data} -> project {project}", flush=True)
        board, seconds = run_ours(project, name, data, trials)
        with contextlib.chdir(project):  # prepare's cache is relative to the project
            exp = load(Path("experiments") / f"{name}.toml")
            measured = measure_in_process(exp, ablations)
            scored = [(label, oof, *public_private(exp, test), s)
                      for label, oof, test, s in measured]
            rows, features = shape(exp)
        metric = exp.competition.metric
        before = seconds["init"] + seconds["tune"]  # each submit starts from the same study
        out = [Row(name, rows, features, metric, label, number(board[label]["cv_score"]),
                   number(board[label]["public"]), number(board[label]["private"]),
                   before + seconds[label])
               for label in (OURS, *SUBMITS)]
        out += [Row(name, rows, features, metric, label, oof, public, private, s)
                for label, oof, public, private, s in scored]
        return out, seconds
    finally:
        if keep:
            print(f"{name}: project kept at {project}")
        else:
            shutil.rmtree(project, ignore_errors=True)  # our own mkdtemp folder only


def shape(exp: Any) -> tuple[int, int]:
    import pandas as pd

    comp = exp.competition
    header = pd.read_csv(comp.data_dir / "train.csv", nrows=0).columns
    n_rows = sum(1 for _ in (comp.data_dir / "train.csv").open(encoding="utf-8")) - 1
    return n_rows, sum(c not in (comp.id, comp.target, *comp.drop) for c in header)


# --- the report ---------------------------------------------------------------------------


def fmt(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return ""
    return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"


def table(rows: list[Row]) -> str:
    head = (f"{'dataset':<13} {'rows':>6} {'features':>8} {'metric':<8} {'model':<27} "
            f"{'OOF':>9} {'private':>9} {'seconds':>7}")
    lines = [head, "-" * len(head)]
    for i, r in enumerate(rows):
        if i and r.dataset != rows[i - 1].dataset:
            lines.append("")
        lines.append(f"{r.dataset:<13} {r.rows:>6} {r.features:>8} {r.metric:<8} "
                     f"{r.model:<27} {fmt(r.oof):>9} {fmt(r.private):>9} {r.seconds:>7.1f}")
    return "\n".join(lines)


def gap(metric: str, ours: float | None, ref: float | None) -> tuple[str, bool | None]:
    """ours - ref as text, and whether ours is within the margin of ref (None: no scores)."""
    from pipeline.metrics import METRICS

    if ours is None or ref is None:
        return "n/a", None
    if metric in RELATIVE:
        worse = (ours - ref) / ref
        return f"{worse:+.2%}", worse <= MARGIN
    worse = ref - ours if METRICS[metric].direction == "maximize" else ours - ref
    return f"{ours - ref:+.4f}", worse <= MARGIN


def verdicts(rows: list[Row], seconds: dict[str, float]) -> list[str]:
    by_model = {r.model: r for r in rows}
    ours = by_model[OURS]
    lines = []
    for label in (LOGISTIC, "ridge regression", BOOSTING):
        if (ref := by_model.get(label)) is None:
            continue
        parts = []
        for column in ("oof", "private"):
            text, ok = gap(ours.metric, getattr(ours, column), getattr(ref, column))
            parts.append(f"{column.replace('oof', 'OOF')} {text:>7} "
                         f"{'    ' if ok is None else 'PASS' if ok else 'FAIL'}")
        lines.append(f"  {ours.dataset:<13} ours - {label:<19} {'  '.join(parts)}")
    if ours.dataset == "adult":
        ok = ours.private is not None and ours.private >= ADULT_GOAL
        lines.append(f"  {'adult':<13} private >= {ADULT_GOAL:.3f}: {'PASS' if ok else 'FAIL'} "
                     f"({fmt(ours.private)})")
        total = seconds["init"] + seconds["tune"] + seconds[OURS]
        lines.append(f"  {'adult':<13} init + tune + submit under {BUDGET:.0f} s: "
                     f"{'PASS' if total < BUDGET else 'FAIL'} ({total:.0f} s: init "
                     f"{seconds['init']:.0f}, tune {seconds['tune']:.0f}, "
                     f"submit {seconds[OURS]:.0f})")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, help="trials per study [default: 30; --quick: 5]")
    ap.add_argument("--quick", action="store_true",
                    help=f"smoke run: 5 trials, only {', '.join(QUICK)}")
    ap.add_argument("--only", nargs="+", metavar="NAME", choices=["adult", *td.DATASETS],
                    help="these competitions only")
    ap.add_argument("--no-ablations", dest="ablations", action="store_false",
                    help="skip the fixed-configuration rows")
    ap.add_argument("--out", type=Path, help="also write the rows as CSV here")
    ap.add_argument("--keep", action="store_true", help="keep the scratch projects")
    args = ap.parse_args()
    trials = args.trials or (5 if args.quick else 30)
    names = args.only or (list(QUICK) if args.quick else ["adult", *td.DATASETS])

    rows: list[Row] = []
    notes: list[str] = []
    start = time.perf_counter()
    for name in names:
        if name == "adult":
            if not (ADULT / "train.csv").is_file():
                print(f"adult: skipped, {ADULT} not found")
                continue
            data = ADULT
        elif not td.available(name):
            print(f"{name}: skipped, {td.DATASETS[name].package} is not installed "
                  "(pip install -e '.[bench]')")
            continue
        else:
            data = td.build(name)
        try:
            measured, seconds = bench(name, data, trials, args.ablations, args.keep)
        except BenchError as e:
            print(f"{name}: FAILED: {e}", flush=True)
            notes.append(f"  {name}: FAILED (see above)")
            continue
        rows += measured
        notes += verdicts(measured, seconds)

    print(f"\n{trials} trials per study, {time.perf_counter() - start:.0f} s in all. OOF: mean "
          "fold score (ours: the ledger's cv_score);\nprivate: the file submit wrote (ours), "
          "a refit on all rows (baselines), fold models averaged (ablations)")
    print(table(rows))
    if notes:
        print(f"\nours - X, PASS within {MARGIN} of X in the metric ({', '.join(RELATIVE)}: "
              f"{MARGIN:.1%} relative), on OOF and on private:")
        print("\n".join(notes))
    if args.out is not None and rows:
        with args.out.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(asdict(rows[0])))
            writer.writeheader()
            writer.writerows(asdict(r) for r in rows)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
