"""An outside model for `pipeline blend`: scikit-learn's HistGradientBoosting, on our folds.

Run it in the project folder. It reads the latest submission of EXP (its
`predictions/<stem>.oof.csv`: the `fold` column is our folds), trains one model per fold on
the raw columns of the other folds' rows (text as categories, gaps as they are), and writes

    <out>.oof.csv   id, fold, target, prediction columns: our header, our rows
    <out>.test.csv  id, prediction columns: the mean of the fold models on test.csv

    python benchmarks/hgb_oof.py adult --out hgb
    pipeline blend adult_hgb --from adult --oof hgb.oof.csv --test hgb.test.csv

scikit-learn's defaults unless told otherwise (the README's "gradient boosting with default
settings" reference); choose other settings by the printed out-of-fold score only, never by the
leaderboard. Fold models averaged on test. Binary, multiclass and one regression target.
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
from pipeline.drift import features
from pipeline.files import read_csv


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("experiment")
    ap.add_argument("--out", default="hgb", help="output stem [default: hgb]")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--learning-rate", type=float, default=0.1)
    ap.add_argument("--max-iter", type=int, default=100, help="boosting rounds at most; "
                    "scikit-learn stops early on a 10%% split above 10,000 rows")
    ap.add_argument("--max-leaf-nodes", type=int, default=31)
    ap.add_argument("--l2", type=float, default=0.0, help="l2_regularization")
    args = ap.parse_args()
    settings = {"learning_rate": args.learning_rate, "max_iter": args.max_iter,
                "max_leaf_nodes": args.max_leaf_nodes, "l2_regularization": args.l2,
                "categorical_features": "from_dtype", "random_state": args.seed}
    member = ours(args.experiment)  # the latest standing submission and its OOF / test files
    exp, oof = member.experiment, member.oof
    comp = exp.competition
    train, test, _ = features(exp)
    ids = read_csv(comp.data_dir / "train.csv", id_col=comp.id)[comp.id].astype(str)
    at = pd.Series(np.arange(len(ids)), index=ids.to_numpy())[oof.ids].to_numpy()
    X, truth, fold = train.iloc[at], oof.truth, oof.fold
    regression = comp.task == "regression"
    y = truth.astype(np.float64) if regression else truth
    make = HistGradientBoostingRegressor if regression else HistGradientBoostingClassifier
    pred = np.zeros(oof.pred.shape)
    test_pred = np.zeros((len(test), *oof.pred.shape[1:]))
    # one thread, as our network trains: OpenMP threads spin on a busy machine
    with threadpool_limits(1):
        for f in np.unique(fold):
            model = make(**settings)
            model.fit(X[fold != f], y[fold != f])
            pred[fold == f] = values(model, X[fold == f], oof.columns, regression)
            test_pred += values(model, test, oof.columns, regression) / len(np.unique(fold))
    test_ids = read_csv(comp.data_dir / "test.csv", id_col=comp.id)[comp.id].astype(str)
    write(Path(f"{args.out}.oof.csv"), ["id", "fold", "target", *oof.columns],
          [[i, int(f), t, *np.atleast_1d(p)] for i, f, t, p in
          zip(oof.ids, fold, truth, pred, strict=True)])
    write(Path(f"{args.out}.test.csv"), ["id", *oof.columns],
          [[i, *np.atleast_1d(p)] for i, p in zip(test_ids, test_pred, strict=True)])
    from pipeline.decision import fold_scores

    labels = [c[2:] for c in oof.columns]  # p_<label>: P(positive) or P per class
    y_codes = y if regression else ((truth == labels[0]).astype(np.int64) if len(labels) == 1
                                    else np.array([labels.index(t) for t in truth]))
    cv = np.mean(fold_scores(comp.metric, comp.task, y_codes, pred,
                             [np.flatnonzero(fold == f) for f in np.unique(fold)]))
    print(f"wrote {args.out}.oof.csv ({len(pred)} rows, {len(np.unique(fold))} folds of "
          f"{member.label}; cv {comp.metric} {cv:.5f}) and {args.out}.test.csv "
          f"({len(test_pred)} rows)")
    return 0


def values(model: object, X: pd.DataFrame, columns: tuple[str, ...], regression: bool):
    """Our prediction columns: the value, P(positive) (`p_<label>`), or P per class."""
    if regression:
        return model.predict(X)
    proba = model.predict_proba(X)
    order = [list(map(str, model.classes_)).index(c[2:]) for c in columns]  # p_<label>
    out = proba[:, order]
    return out[:, 0] if len(columns) == 1 else out


def write(path: Path, header: list[str], rows: list[list]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        w = csv.writer(handle, lineterminator="\n")
        w.writerow(header)
        w.writerows([[v if isinstance(v, str | int) else repr(float(v)) for v in r]
                     for r in rows])


if __name__ == "__main__":
    sys.exit(main())
