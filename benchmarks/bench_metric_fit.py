"""Metric-fitted training (issue #14): what the regressor's target transform and loss buy.

For each data set, in a throwaway project folder: `pipeline init` writes the experiment, its
metric is set, and `pipeline.evaluate.cross_validate` scores init's [model] with one change at a
time, on the same folds, over a few seeds (mean of the fold scores, as the studies report):

- rmsle: the standardised target (`target_transform = "none"`) vs `log1p`;
- mae, mape: squared error vs `loss = "huber"` (both on the standardised target);
- label metrics: init's [model] scored with the plain rule (0.5 / argmax / rounding) vs the
  decision chosen on out-of-fold predictions (`pipeline.decision`), each fold scored with the
  decision chosen on the other folds (`CVResult.raw_scores` vs `scores`).

Data sets ship in pip packages (nothing is downloaded): statsmodels' RAND health insurance
experiment (`randhie6k`, outpatient visits: a skewed count with a long tail, 20,190 rows of
which a fixed 6,000 are used), scikit-learn's diabetes (442 rows) and a synthetic log-normal target
(3,000 rows, 8 features, log-normal noise with sd 0.4), and for the label metrics statsmodels'
affairs survey (`fair`, binary, 32% positive), palmerpenguins (3 classes), statsmodels' 1996
election survey (`anes96`, party identification on a 7-point scale, as classes and as a
regression target) and `ratings`: the
synthetic target cut into 5 ordered ratings by quantiles (qwk on a regression target).

    python benchmarks/bench_metric_fit.py            # ~5-10 min on 2 busy cores
    python benchmarks/bench_metric_fit.py --seeds 1 --only lognormal
    python benchmarks/bench_metric_fit.py --set learning_rate_init=0.01   # [model] changed
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import tabular_datasets as td  # noqa: E402

RANDHIE_ROWS = 6_000
OVERRIDES: dict = {}  # --set: [model] values changed for every measurement


def _randhie() -> tuple[pd.DataFrame, str]:
    from statsmodels.datasets import randhie

    frame = randhie.load_pandas().data
    return frame.sample(RANDHIE_ROWS, random_state=0).reset_index(drop=True), "mdvis"


def _lognormal() -> tuple[pd.DataFrame, str]:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((3_000, 8))
    log_y = 1.0 + X[:, 0] - 0.5 * X[:, 1] + 0.5 * np.tanh(X[:, 2] * X[:, 3]) \
        + 0.4 * rng.standard_normal(3_000)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(8)])
    frame["y"] = np.round(np.exp(log_y), 3)  # > 0: mape is defined
    return frame, "y"


# tabular_datasets' randhie has every row; a fixed sample keeps this benchmark in minutes
td.DATASETS["randhie6k"] = td.Dataset("randhie6k", "regression", "rmsle", "statsmodels",
                                      "RAND HIE (Deb & Trivedi 2002), as shipped by statsmodels",
                                      _randhie)
def _ratings() -> tuple[pd.DataFrame, str]:
    frame, target = _lognormal()
    edges = np.quantile(frame[target], [0.1, 0.3, 0.7, 0.9])
    frame["rating"] = np.digitize(frame.pop(target), edges) + 1  # 1..5, rarer at the ends
    return frame, "rating"


td.DATASETS["ratings"] = td.Dataset("ratings", "regression", "qwk", "numpy", "synthetic",
                                    _ratings)
td.DATASETS["lognormal"] = td.Dataset("lognormal", "regression", "rmsle", "numpy", "synthetic",
                                      _lognormal)

# (data set, metric, parameter, values compared)
CASES = [
    ("lognormal", "rmsle", "target_transform", ("none", "log1p")),
    ("randhie6k", "rmsle", "target_transform", ("none", "log1p")),
    ("randhie6k", "mae", "loss", ("squared", "huber")),
    ("diabetes", "mae", "loss", ("squared", "huber")),
    ("lognormal", "mae", "loss", ("squared", "huber")),
    ("diabetes", "mape", "loss", ("squared", "huber")),
    ("lognormal", "mape", "loss", ("squared", "huber")),
]
# (data set, task, metric): plain rule vs the decision chosen on OOF
DECIDED = [
    ("fair", "binary", "f1"),
    ("fair", "binary", "mcc"),
    ("fair", "binary", "accuracy"),
    ("penguins", "multiclass", "f1_macro"),
    ("anes96", "multiclass", "qwk"),
    ("anes96", "regression", "qwk"),
    ("ratings", "regression", "qwk"),
]


def experiment_for(name: str, metric: str, root: Path, task: str = "regression"):
    """init's experiment for data set `name`, with `metric` and `task`, in folder `root`."""
    from pipeline import experiment
    from pipeline.init import init_experiment

    data = td.build(name, root / "data" / name)
    with contextlib.redirect_stdout(io.StringIO()):
        path = init_experiment(data, name=f"{name}_{metric}_{task}", force=True)
    text = path.read_text(encoding="utf-8")
    fixed = {"metric = ": f'metric = "{metric}"', "task = ": f'task = "{task}"'}  # counts
    if task == "regression":  # init saw classes: regression folds are plain k-fold
        fixed["kind = "] = 'kind = "kfold"'
    lines = [next((v for k, v in fixed.items() if line.startswith(k)), line)
             for line in text.splitlines()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return experiment.load(path.stem)


def measure(name: str, metric: str, key: str, values: tuple[str, ...], seeds: int,
            root: Path) -> dict[str, float]:
    from pipeline.evaluate import cross_validate
    from pipeline.prepare import prepare

    exp = experiment_for(name, metric, root)
    prepared = prepare(exp)
    out = {}
    for value in values:
        scores = []
        for seed in range(seeds):
            params = {**exp.model.params(), **OVERRIDES, key: value, "random_state": seed}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                scores.append(cross_validate(prepared, exp, params).mean)
        out[value] = float(np.mean(scores))
    return out


def measure_decision(name: str, task: str, metric: str, seeds: int,
                     root: Path) -> tuple[float, float, str]:
    """(plain CV, decided CV, the decision of the last seed) of init's [model]."""
    from pipeline.evaluate import cross_validate
    from pipeline.prepare import prepare

    exp = experiment_for(name, metric, root, task)
    prepared = prepare(exp)
    plain, decided, last = [], [], ""
    for seed in range(seeds):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = cross_validate(prepared, exp, {**exp.model.params(), **OVERRIDES,
                                                 "random_state": seed})
        plain.append(float(np.mean(res.raw_scores)))
        decided.append(res.mean)
        last = res.decision.describe()
    return float(np.mean(plain)), float(np.mean(decided)), last


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=2, help="network seeds averaged per setting")
    ap.add_argument("--only", nargs="*", help="data sets to run [default: all]")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="[model] values for every measurement (TOML values)")
    args = ap.parse_args()
    import tomllib

    for item in args.set:
        key, _, text = item.partition("=")
        OVERRIDES[key] = tomllib.loads(f"v = {text}")["v"]
    cases = [c for c in CASES if not args.only or c[0] in args.only]
    decided = [c for c in DECIDED if not args.only or c[0] in args.only]
    print(f"{'data':<10} {'rows':>5} {'metric':<6} {'setting':<17} {'CV (mean of folds)':<30}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "experiments").mkdir()
        old = Path.cwd()
        os.chdir(root)
        try:
            for name, metric, key, values in cases:
                got = measure(name, metric, key, values, args.seeds, root)
                rows = len(pd.read_csv(root / "data" / name / "train.csv"))
                text = "  ".join(f"{v} {s:.4f}" for v, s in got.items())
                a, b = (got[v] for v in values)
                change = (b - a) / a * 100 if a else float("nan")
                print(f"{name:<10} {rows:>5} {metric:<6} {key:<17} {text}  ({change:+.1f}%)",
                      flush=True)
            for name, task, metric in decided:
                plain, chosen, how = measure_decision(name, task, metric, args.seeds, root)
                rows = len(pd.read_csv(root / "data" / name / "train.csv"))
                print(f"{name:<10} {rows:>5} {metric:<6} {task:<17} plain {plain:.4f}  "
                      f"decided {chosen:.4f}"
                      f"  ({chosen - plain:+.4f}; {how})", flush=True)
        finally:
            os.chdir(old)
    return 0


if __name__ == "__main__":
    sys.exit(main())
