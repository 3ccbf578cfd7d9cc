"""High-cardinality categoricals (issue #20): a learned embedding per level vs one-hot vs
dropping the column, where the level carries the signal.

The data (seeded, nothing downloaded): 24,000 rows, one text column `city` with 2,000 levels
of uneven popularity (log-normal weights: many levels have a handful of rows, a few have
hundreds), four numeric columns, and a binary target drawn from

    P(y = 1) = sigmoid(1.5 effect[city] + x0 - 0.5 x1 + 0.5 tanh(x2 x3)),   effect ~ N(0, 1)

written as a Kaggle-layout competition by `tabular_datasets.build` (2/3 train.csv; test.csv
scored by solution.csv, Public 30% / Private 70%). In a throwaway project `pipeline init`
writes the experiment and the network trains init's [model] (fixed, no tuning) three ways,
the only change being the experiment's [competition]:

- embed: the default, `one_hot_max = 20`: city's codes, a learned `categorical_dim`-vector
  per level (rare levels share the "other" vector);
- one-hot: `one_hot_max = 10000`: 2,000 one-hot columns;
- drop: `drop = ["city"]`.

OOF is the mean of the 5 folds' AUC (as a study reports); private is the AUC on solution.csv's
Private rows of the mean of the fold models' test predictions (`pipeline submit --no-refit`).
For reference, scikit-learn's HistGradientBoosting on the same train.csv: its native
categorical support takes at most 255 levels, so city's 254 most frequent levels (in train)
and one shared level for the rest; and with city target-encoded (`TargetEncoder`,
cross-fitted).

    python benchmarks/bench_embeddings.py                       # ~10 min on 2 busy cores
    python benchmarks/bench_embeddings.py --seeds 2 --set categorical_dim=16
    python benchmarks/bench_embeddings.py --data-seed 1 --zipf 1 --set numeric_encoding='"none"'

`--data-seed` draws other data (levels, effects, rows, the train / test split); `--zipf S` gives
the levels Zipf's popularity 1 / rank^S (S = 1, of 16,000 rows: the commonest city 12%, 733 levels
on fewer than 2 rows; log-normal: 0.7% and 358), the shape of real city / product ids.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import tabular_datasets as td  # noqa: E402

ROWS, LEVELS = 24_000, 2_000
SPREAD = [1.0]  # sigma of the levels' log-normal popularity (--spread)
DATA = {"seed": 0, "zipf": 0.0}  # --data-seed; --zipf s: popularity 1 / rank^s instead
NAME = "cities"
VARIANTS = {  # [competition] line -> its replacement
    "embed": {},
    "one-hot": {"one_hot_max = ": "one_hot_max = 10000"},
    "drop": {"drop = ": 'drop = ["city"]'},
}
OVERRIDES: dict = {}  # --set: [model] values changed for every variant


def _cities() -> tuple[pd.DataFrame, str]:
    rng = np.random.default_rng(DATA["seed"])
    popularity = rng.lognormal(0.0, SPREAD[0], LEVELS)
    if DATA["zipf"] > 0:  # Zipf's law, as city / product ids follow: a few huge, a long tail
        popularity = 1.0 / rng.permutation(np.arange(1, LEVELS + 1)) ** DATA["zipf"]
    city = rng.choice(LEVELS, ROWS, p=popularity / popularity.sum())
    effect = rng.standard_normal(LEVELS)
    x = rng.standard_normal((ROWS, 4))
    logit = 1.5 * effect[city] + x[:, 0] - 0.5 * x[:, 1] + 0.5 * np.tanh(x[:, 2] * x[:, 3])
    y = (rng.random(ROWS) < 1 / (1 + np.exp(-logit))).astype(int)
    frame = pd.DataFrame(np.round(x, 4), columns=[f"x{i}" for i in range(4)])
    frame.insert(0, "city", [f"city{c:04d}" for c in city])
    frame["y"] = y
    return frame, "y"


td.DATASETS[NAME] = td.Dataset(NAME, "binary", "roc_auc", "numpy", "synthetic", _cities)


def experiment_for(variant: str, root: Path):
    from pipeline import experiment
    from pipeline.init import init_experiment

    data = root / "data" / NAME
    if not data.is_dir():
        td.build(NAME, data, seed=DATA["seed"])
    with contextlib.redirect_stdout(io.StringIO()):
        path = init_experiment(Path("data") / NAME, name=f"{NAME}_{variant.replace('-', '_')}",
                               force=True)
    fixed = VARIANTS[variant]
    lines = [next((v for k, v in fixed.items() if line.startswith(k)), line)
             for line in path.read_text(encoding="utf-8").splitlines()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return experiment.load(path.stem)


def private_rows(root: Path, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mask of Private rows among `ids`, their labels), from solution.csv."""
    solution = pd.read_csv(root / "data" / NAME / "solution.csv", dtype={td.ID: str})
    solution = solution.set_index(td.ID).loc[ids]
    private = (solution["Usage"] == "Private").to_numpy()
    return private, solution["y"].to_numpy()[private]


def network(variant: str, root: Path, seeds: int) -> tuple[float, float, int, float]:
    """(OOF AUC, private AUC, prepared columns, seconds) of init's [model] on `variant`."""
    from sklearn.metrics import roc_auc_score

    from pipeline.evaluate import cross_validate, network_params, predict
    from pipeline.prepare import prepare

    exp = experiment_for(variant, root)
    prepared = prepare(exp)
    private, y_private = private_rows(root, prepared.test_ids)
    start, oof, tests = time.perf_counter(), [], []
    for seed in range(seeds):
        params = {**exp.model.params(), **OVERRIDES, "random_state": seed}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = cross_validate(prepared, exp, params, keep_models=True)
        oof.append(res.mean)
        tests += [predict(m, prepared.X_test) for m in res.models]
    assert all(network_params(prepared, {})["categorical_columns"] == m.categorical_columns
               for m in res.models)
    test = np.mean(tests, axis=0)
    return (float(np.mean(oof)), float(roc_auc_score(y_private, test[private])),
            prepared.X_train.shape[1], time.perf_counter() - start)


def boosted(root: Path) -> dict[str, tuple[float, float]]:
    """HistGradientBoosting references: (OOF AUC, private AUC) per way of reading city."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import TargetEncoder

    train = pd.read_csv(root / "data" / NAME / "train.csv", dtype={td.ID: str})
    test = pd.read_csv(root / "data" / NAME / "test.csv", dtype={td.ID: str})
    private, y_private = private_rows(root, test[td.ID].to_numpy())
    y, numeric = train.pop("y").to_numpy(), [f"x{i}" for i in range(4)]
    folds = list(StratifiedKFold(5, shuffle=True, random_state=42).split(train, y))

    def native(fit: pd.DataFrame, other: pd.DataFrame) -> tuple[pd.DataFrame, ...]:
        top = fit["city"].value_counts().index[:254]  # the 255th level: every other one
        cats = pd.CategoricalDtype([*top, "other"])
        return tuple(df[numeric].assign(city=df["city"].where(df["city"].isin(top), "other")
                                        .astype(cats)) for df in (fit, other))

    def target_encoded(fit: pd.DataFrame, other: pd.DataFrame,
                       y_fit: np.ndarray) -> tuple[pd.DataFrame, ...]:
        enc = TargetEncoder(cv=StratifiedKFold(5, shuffle=True, random_state=0))
        a = fit[numeric].assign(city=enc.fit_transform(fit[["city"]], y_fit)[:, 0])
        return a, other[numeric].assign(city=enc.transform(other[["city"]])[:, 0])

    out = {}
    for label, encode in (("HistGB native (top 254 + other)", native),
                          ("HistGB + TargetEncoder", target_encoded)):
        scores, tests = [], []
        for tr, va in folds:
            extra = (y[tr],) if encode is target_encoded else ()
            a, b = encode(train.iloc[tr], train.iloc[va], *extra)
            _, t = encode(train.iloc[tr], test, *extra)
            model = HistGradientBoostingClassifier(categorical_features="from_dtype",
                                                   random_state=0).fit(a, y[tr])
            scores.append(roc_auc_score(y[va], model.predict_proba(b)[:, 1]))
            tests.append(model.predict_proba(t)[:, 1])
        out[label] = (float(np.mean(scores)),
                      float(roc_auc_score(y_private, np.mean(tests, axis=0)[private])))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=1, help="network seeds averaged per variant")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="[model] values for every variant (TOML values)")
    ap.add_argument("--only", nargs="*", choices=list(VARIANTS), help="network variants to run")
    ap.add_argument("--spread", type=float, default=SPREAD[0],
                    help="sigma of the levels' log-normal popularity: larger, a longer tail")
    ap.add_argument("--data-seed", type=int, default=0, help="the data's seed [default: 0]")
    ap.add_argument("--zipf", type=float, default=0.0, metavar="S",
                    help="levels' popularity 1 / rank^S (Zipf) instead of log-normal")
    ap.add_argument("--no-boosted", action="store_true", help="skip the boosting references")
    args = ap.parse_args()
    SPREAD[0] = args.spread
    DATA.update(seed=args.data_seed, zipf=args.zipf)
    import tomllib

    for item in args.set:
        key, _, text = item.partition("=")
        OVERRIDES[key] = tomllib.loads(f"v = {text}")["v"]
    shape = f"Zipf s={args.zipf:g}" if args.zipf > 0 else f"log-normal spread {args.spread:g}"
    print(f"{ROWS:,} rows ({ROWS * 2 // 3:,} train), city: {LEVELS:,} levels (popularity "
          f"{shape}, data seed {args.data_seed}); binary, roc_auc; "
          f"init's [model]{' + ' + ' '.join(args.set) if args.set else ''}")
    print(f"{'model':<34} {'columns':>7} {'OOF AUC':>8} {'private':>8} {'seconds':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "experiments").mkdir()
        old = Path.cwd()
        os.chdir(root)
        try:
            for variant in args.only or VARIANTS:
                oof, private, columns, seconds = network(variant, root, args.seeds)
                print(f"{'network, city ' + variant:<34} {columns:>7} {oof:>8.4f} "
                      f"{private:>8.4f} {seconds:>8.0f}", flush=True)
            for label, (oof, private) in ({} if args.no_boosted else boosted(root)).items():
                print(f"{label:<34} {'':>7} {oof:>8.4f} {private:>8.4f}", flush=True)
        finally:
            os.chdir(old)
    return 0


if __name__ == "__main__":
    sys.exit(main())
