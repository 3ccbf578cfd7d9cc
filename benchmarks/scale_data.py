"""A seeded Playground-style binary competition of any size, in Kaggle's layout (issue 21).

24 numeric and 6 categorical columns (3 to 500 levels, the largest one embedded by default),
a target driven by linear terms, interactions, smooth non-linearities and per-level effects,
so that neither a linear model nor a shallow tree gets it all. Written as `train.csv`,
`test.csv`, `sample_submission.csv` and `solution.csv` (Public/Private split of the test
rows) like `../shared/competitions/adult`; no download, same seed -> same bytes.

    python benchmarks/scale_data.py OUT_DIR --rows 300000 [--seed 0]

`--rows` counts training rows; the test set has a third as many.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

N_NUMERIC = 24
LEVELS = (3, 5, 8, 12, 40, 500)
TARGET = "target"


def frame(rows: int, seed: int) -> pd.DataFrame:
    """Features and target of `rows` rows; a fixed data-generating process, `seed` draws rows."""
    # The process (weights, level effects) is fixed by its own seed so train and test, and every
    # size, share one ground truth; `seed` only draws the rows.
    truth = np.random.default_rng(12345)
    w = truth.normal(0, 1, N_NUMERIC) * (truth.random(N_NUMERIC) < 0.6)
    pairs = truth.choice(N_NUMERIC, size=(6, 2), replace=False)
    effects = [truth.normal(0, 0.8, k) for k in LEVELS]
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(rows, 4)).astype(np.float32)
    mix = truth.normal(0, 1, (4, N_NUMERIC)).astype(np.float32)
    x = (0.6 * base @ mix / 2 + rng.normal(size=(rows, N_NUMERIC)).astype(np.float32))
    x = x.astype(np.float32)
    logit = x @ w.astype(np.float32) * 0.35
    for a, b in pairs:
        logit += 0.4 * x[:, a] * x[:, b]
    logit += 1.2 * np.sin(1.5 * x[:, 0]) + 0.8 * np.abs(x[:, 1]) - 0.8
    cats = {}
    for j, k in enumerate(LEVELS):
        # Zipf-like level frequencies, as real categorical columns have.
        p = 1.0 / np.arange(1, k + 1) ** 0.9
        idx = rng.choice(k, size=rows, p=p / p.sum())
        logit += effects[j][idx]
        cats[f"cat{j}"] = np.char.add(f"c{j}_", idx.astype(str))
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    df = pd.DataFrame({f"num{i}": np.round(x[:, i], 4) for i in range(N_NUMERIC)})
    for name, values in cats.items():
        df[name] = values
    # A few missing cells, as real data has.
    holes = rng.random(rows) < 0.01
    df.loc[holes, "num3"] = np.nan
    df[TARGET] = y
    return df


def write(out: Path, rows: int, seed: int = 0) -> Path:
    """Write the competition into `out` (created); returns `out`."""
    out.mkdir(parents=True, exist_ok=True)
    n_test = max(rows // 3, 1)
    full = frame(rows + n_test, seed)
    full.insert(0, "id", np.arange(len(full)))
    train, test = full.iloc[:rows], full.iloc[rows:]
    train.to_csv(out / "train.csv", index=False)
    test.drop(columns=[TARGET]).to_csv(out / "test.csv", index=False)
    pd.DataFrame({"id": test["id"], TARGET: 0.5}).to_csv(out / "sample_submission.csv",
                                                          index=False)
    usage = np.where(np.random.default_rng(seed + 1).random(len(test)) < 0.3,
                     "Public", "Private")
    pd.DataFrame({"id": test["id"], TARGET: test[TARGET], "Usage": usage}).to_csv(
        out / "solution.csv", index=False)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--rows", type=int, default=300_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    write(args.out, args.rows, args.seed)
    print(f"wrote {args.out} ({args.rows} training rows)")


if __name__ == "__main__":
    main()
