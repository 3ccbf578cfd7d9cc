"""Adult census income: tune the network with 30 trials, report out-of-fold ROC AUC and time.

Goal (issue 4): >= 0.915 out-of-fold ROC AUC with 5 folds, aiming for 0.92 (references measured
with the same folds: logistic regression 0.907, MLPClassifier((64,)) 0.914, gradient boosting
0.9275). The data is ../shared/competitions/adult next to the repository; the benchmark skips
with a message when it is absent. Everything is written to a temporary project folder.

The result is printed beside those reference scores and beside a logistic regression fitted in
the same run on the same prepared features and the same folds, so a change to `prepare` shows
up in both columns.

    python benchmarks/bench_adult.py                 # 30 trials, 5 folds
    python benchmarks/bench_adult.py --jobs 2        # two worker processes on the study
    python benchmarks/bench_adult.py --quick         # 6 trials, short epochs: an estimate
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "competitions" / "adult"
GOAL, AIM = 0.915, 0.92
REFERENCES = {  # ../shared/README.md, 5-fold out-of-fold ROC AUC
    "logistic regression (README)": 0.907,
    "MLPClassifier((64,)) (README)": 0.914,
    "gradient boosting (README)": 0.9275,
}
# Single 5-fold runs showed relu nets overfit within ~20 epochs here (0.90-0.91) while sigmoid
# and tanh nets with some L2 reach ~0.915: the space is narrowed to those.

EXPERIMENT = """[competition]
data_dir = "{data}"
id = "id"
target = "over_50k"
task = "binary"
metric = "roc_auc"

[model]
hidden_layer_sizes = [64]
activation = "sigmoid"
solver = "adam"
batch_size = 256
max_iter = {epochs}
n_iter_no_change = 5
learning_rate_init = 0.003
alpha = 0.0001

[cv]
folds = 5
seed = 42

[tune]
trials = {trials}
seed = 0
pruner = "median"
pruner_startup_trials = 4
pruner_warmup_epochs = {warmup}

[tune.space]
n_layers = {{ low = 1, high = 2 }}
units = {{ low = 32, high = 128, log = true }}
activation = ["sigmoid", "tanh"]
learning_rate_init = {{ low = 0.0005, high = 0.005, log = true }}
alpha = {{ low = 1e-5, high = 1e-2, log = true }}
batch_size = [256, 512]
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--epochs", type=int, default=40, help="max_iter cap per fold")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="6 trials of at most 12 epochs")
    args = ap.parse_args()
    if not (DATA / "train.csv").is_file():
        print(f"skipped: {DATA} not found (the adult competition is not on this machine)")
        return 0
    trials, epochs = (6, 12) if args.quick else (args.trials, args.epochs)

    from sklearn.metrics import roc_auc_score

    from pipeline.evaluate import cross_validate
    from pipeline.experiment import load
    from pipeline.prepare import prepare
    from pipeline.tune import open_study, storage_url, tune

    with tempfile.TemporaryDirectory(prefix="bench-adult-") as tmp:
        os.chdir(tmp)
        Path("experiments").mkdir()
        Path("experiments/adult.toml").write_text(
            EXPERIMENT.format(data=DATA, epochs=epochs, trials=trials,
                              warmup=max(3, epochs // 4)),
            encoding="utf-8",
        )
        exp = load("adult")
        prepared = prepare(exp)
        print(f"adult: {prepared.X_train.shape[0]} rows x {prepared.X_train.shape[1]} features; "
              f"{trials} trials, 5 folds, <= {epochs} epochs, {args.jobs} worker(s)", flush=True)
        start = time.perf_counter()
        tune(exp, trials=trials, jobs=args.jobs, track=False)  # prints nothing
        seconds = time.perf_counter() - start
        study, _ = open_study(storage_url(None), "adult", "maximize")
        best = study.best_trial
        counts = {s: sum(t.state.name == s for t in study.trials) for s in ("COMPLETE", "PRUNED")}
        # the best trial again, to pool its out-of-fold predictions (same seed: same numbers)
        params = dict(best.user_attrs["params"])
        params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
        res = cross_validate(prepared, exp, params)
        oof_auc = roc_auc_score(prepared.y, res.oof)
        lr_auc, lr_seconds = logistic_baseline(prepared, exp)
        os.chdir(ROOT)
    print(f"budget: {trials} trials ({counts['COMPLETE']} complete, {counts['PRUNED']} pruned), "
          f"wall time {seconds:.0f} s")
    print(f"best trial #{best.number}: mean fold AUC {best.value:.4f}; params {best.params}")
    verdict = "aim reached" if oof_auc >= AIM else "ok" if oof_auc >= GOAL else "below goal"
    print(f"out-of-fold ROC AUC {oof_auc:.4f} (goal >= {GOAL}, aim {AIM}): {verdict}")
    print("\nout-of-fold ROC AUC, 5 folds:")
    scores = {**REFERENCES,
              f"logistic regression (this run, same folds, {lr_seconds:.0f} s)": lr_auc,
              f"network, {trials} trials (this run, {seconds:.0f} s)": oof_auc}
    for name, auc in sorted(scores.items(), key=lambda kv: kv[1]):
        print(f"  {auc:.4f}  {name}")
    return 0


def logistic_baseline(prepared, exp) -> tuple[float, float]:
    """Pooled out-of-fold ROC AUC of a plain logistic regression on the same features and folds."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    from pipeline.evaluate import folds

    start = time.perf_counter()
    oof = np.zeros(len(prepared.y))
    for tr, va in folds(prepared, exp):
        lr = LogisticRegression(max_iter=2000).fit(prepared.X_train[tr], prepared.y[tr])
        oof[va] = lr.predict_proba(prepared.X_train[va])[:, 1]
    return float(roc_auc_score(prepared.y, oof)), time.perf_counter() - start


if __name__ == "__main__":
    sys.exit(main())
