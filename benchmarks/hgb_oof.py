"""An outside model for `pipeline blend`: tuned HistGradientBoosting (scikit-learn), on our folds.

Run it in the project folder. It reads the latest submission of EXP (its
`predictions/<stem>.oof.csv`: the `fold` column is our folds), and for each fold trains on the
raw columns of the other folds' rows (text as native categories, gaps as they are) and writes

    <out>.oof.csv   id, fold, target, prediction columns: our header, our rows
    <out>.test.csv  id, prediction columns: the mean of every fold's models on test.csv

    python benchmarks/hgb_oof.py adult --out hgb
    pipeline blend adult_hgb --from adult --oof hgb.oof.csv --test hgb.test.csv

How a competitor sets up boosted trees, each choice made on the printed out-of-fold score only
(never on the leaderboard; docs/benchmarks.md has the grid measured on adult):
- text columns split natively (`categorical_features`), not one-hot or ordinal codes;
- a low learning rate (0.03) with many rounds (up to 3,000), stopped early on an inner,
  stratified 10% of the fold's training rows (loss, 100 rounds without gain): the fold's
  validation rows never choose anything;
- small trees, 15 leaves, with L2 1.0 and 80% of the columns per split; leaves may be as small
  as 2 rows (on adult each step 50 -> 20 -> 10 -> 5 -> 2 gained out of fold);
- bagged seeds (3): each seed draws another inner split and other columns; their mean is kept.
Binary, multiclass and one regression target. `--defaults` gives scikit-learn's defaults.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

from pipeline.blend import ours
from pipeline.decision import fold_scores
from pipeline.drift import features
from pipeline.files import read_csv


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("experiment")
    ap.add_argument("--out", default="hgb", help="output stem [default: hgb]")
    ap.add_argument("--seeds", type=int, default=3, help="bagged seeds [default: 3]")
    ap.add_argument("--learning-rate", type=float, default=0.03)
    ap.add_argument("--max-iter", type=int, default=3000, help="rounds at most [3000]")
    ap.add_argument("--patience", type=int, default=100, help="rounds without gain [100]")
    ap.add_argument("--max-leaf-nodes", type=int, default=15)
    ap.add_argument("--min-samples-leaf", type=int, default=2)
    ap.add_argument("--l2", type=float, default=1.0, help="l2_regularization [1.0]")
    ap.add_argument("--max-features", type=float, default=0.8, help="columns per split [0.8]")
    ap.add_argument("--defaults", action="store_true", help="scikit-learn's defaults, 1 seed")
    a = ap.parse_args()
    member = ours(a.experiment)  # the latest standing submission and its OOF / test files
    oof, comp = member.oof, member.experiment.competition
    train, test, kinds = features(member.experiment)
    settings = {"categorical_features": [c for c, k in kinds.items() if k == "text"]}
    if a.defaults:
        a.seeds = 1
    else:
        settings |= {"learning_rate": a.learning_rate, "max_iter": a.max_iter,
                     "early_stopping": True, "validation_fraction": 0.1,
                     "n_iter_no_change": a.patience, "max_leaf_nodes": a.max_leaf_nodes,
                     "min_samples_leaf": a.min_samples_leaf, "l2_regularization": a.l2,
                     "max_features": a.max_features}
    ids = read_csv(comp.data_dir / "train.csv", id_col=comp.id)[comp.id].astype(str)
    X = train.iloc[pd.Series(np.arange(len(ids)), index=ids.to_numpy())[oof.ids].to_numpy()]
    regression, folds = comp.task == "regression", np.unique(oof.fold)
    y = oof.truth.astype(np.float64) if regression else oof.truth
    make = HistGradientBoostingRegressor if regression else HistGradientBoostingClassifier
    pred, test_pred = np.zeros(oof.pred.shape), np.zeros((len(test), *oof.pred.shape[1:]))
    rounds = []
    with threadpool_limits(1):  # one thread, as our network trains: OpenMP spins when busy
        for f in folds:
            fit, held = oof.fold != f, oof.fold == f
            for seed in range(a.seeds):
                model = make(**settings, random_state=seed).fit(X[fit], y[fit])
                rounds.append(model.n_iter_)
                pred[held] += values(model, X[held], oof.columns, regression) / a.seeds
                test_pred += values(model, test, oof.columns, regression) / a.seeds / len(folds)
    test_ids = read_csv(comp.data_dir / "test.csv", id_col=comp.id)[comp.id].astype(str)
    write(Path(f"{a.out}.oof.csv"), ["id", "fold", "target", *oof.columns],
          [[i, int(f), t, *np.atleast_1d(p)] for i, f, t, p in
           zip(oof.ids, oof.fold, oof.truth, pred, strict=True)])
    write(Path(f"{a.out}.test.csv"), ["id", *oof.columns],
          [[i, *np.atleast_1d(p)] for i, p in zip(test_ids, test_pred, strict=True)])
    labels = [c[2:] for c in oof.columns]  # p_<label>: P(positive) or P per class
    codes = y if regression else ((oof.truth == labels[0]).astype(np.int64) if len(labels) == 1
                                  else np.array([labels.index(t) for t in oof.truth]))
    cv = np.mean(fold_scores(comp.metric, comp.task, codes, pred,
                             [np.flatnonzero(oof.fold == f) for f in folds]))
    print(f"wrote {a.out}.oof.csv ({len(pred)} rows, {len(folds)} folds of {member.label}; "
          f"cv {comp.metric} {cv:.5f}; {a.seeds} seed(s), rounds {min(rounds)}-{max(rounds)}) "
          f"and {a.out}.test.csv ({len(test_pred)} rows)")
    return 0


def values(model: object, X: pd.DataFrame, columns: tuple[str, ...], regression: bool):
    """Our prediction columns: the value, P(positive) (`p_<label>`), or P per class."""
    if regression:
        return model.predict(X)
    proba = model.predict_proba(X)
    out = proba[:, [list(map(str, model.classes_)).index(c[2:]) for c in columns]]
    return out[:, 0] if len(columns) == 1 else out


def write(path: Path, header: list[str], rows: list[list]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        w = csv.writer(handle, lineterminator="\n")
        w.writerow(header)
        w.writerows([[v if isinstance(v, str | int) else repr(float(v)) for v in r]
                     for r in rows])


if __name__ == "__main__":
    sys.exit(main())
