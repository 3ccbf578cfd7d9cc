"""Baselines on the avocado competition: the oracle, logistic regression and a small MLP.

    python benchmarks/bench_avocado_baselines.py              # seed 0, 8,000 / 4,000 rows
    python benchmarks/bench_avocado_baselines.py --seed 1 --rows 4000

Generates the competition into a temporary folder, prints prevalence and missing values, then
one row per model: ROC AUC on the Private split, on the whole test set, and seconds to fit.
The oracle submits p_true itself (the best possible); logistic regression shows how far a
linear model gets; scikit-learn's MLPClassifier((32,)) shows what one hidden layer reaches.
Takes a few seconds.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402

from pipeline.competitions import avocado  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rows", type=int, default=8000, help="train rows; test gets half")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        avocado.generate(out, seed=args.seed, rows=args.rows)
        train = pd.read_csv(out / "train.csv")
        test = pd.read_csv(out / "test.csv")
        solution = pd.read_csv(out / "solution.csv")
        oracle = pd.read_csv(out / "oracle_submission.csv")

    features = list(avocado.FEATURES)
    y = train[avocado.TARGET].to_numpy()
    y_test = solution[avocado.TARGET].to_numpy()
    private = (solution["Usage"] == "Private").to_numpy()

    print(f"avocado seed={args.seed}: {len(train)} train / {len(test)} test rows")
    print(f"prevalence: train {y.mean():.3f}, test {y_test.mean():.3f}")
    missing = train[features].isna().mean()
    print("missing %: " + ", ".join(f"{c} {100 * m:.1f}" for c, m in missing.items() if m > 0))
    print()

    warnings.filterwarnings("ignore", category=UserWarning)
    models = {
        "logistic regression": LogisticRegression(max_iter=1000),
        "MLP (32,)": MLPClassifier(
            (32,), early_stopping=True, max_iter=500, random_state=args.seed
        ),
    }
    results = [("oracle", oracle[avocado.TARGET].to_numpy(), 0.0)]
    for name, model in models.items():
        start = time.perf_counter()
        fitted = avocado.baseline(model).fit(train[features], y)
        p = fitted.predict_proba(test[features])[:, 1]
        results.append((name, p, time.perf_counter() - start))

    print(f"{'model':<22}{'private AUC':>12}{'test AUC':>10}{'seconds':>9}")
    for name, p, seconds in results:
        auc_private = roc_auc_score(y_test[private], np.asarray(p)[private])
        auc_test = roc_auc_score(y_test, p)
        print(f"{name:<22}{auc_private:>12.3f}{auc_test:>10.3f}{seconds:>9.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
