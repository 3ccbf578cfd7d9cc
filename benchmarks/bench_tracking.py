"""Tracking overhead: the same small study with MLflow tracking on and with the no-op tracker.

The study is `make tune`'s: experiments/avocado.toml on the generated avocado data with its own
budget (30 trials; --trials for fewer). Both runs tune it in fresh stores of their own with the
same seeds, so they sample, prune and train exactly the same trials (tracking never touches the
numbers). They alternate in back-to-back pairs; the result is the median of the pairs' ratios
(the best time of each is printed too). The wall time includes waiting for every MLflow write
(the writer process is drained) and Optuna's study plots on the parent run.
Goal: tracked / untracked <= 1.05.

Two measurements:
- in-process (the goal): `tune()` called in this process, mlflow and optuna imported beforehand
  (a process pays their imports once, not per study). What tracking costs a study.
- fresh process (--fresh, 4 more minutes; shown, no goal): each run is a new interpreter, as
  `pipeline tune` is; the tracked one also imports mlflow (~1.5 s here) and opens the store in
  the main process.

    python benchmarks/bench_tracking.py [--trials 30] [--repeat 5] [--fresh] [--check]  # ~4 min
    python benchmarks/bench_tracking.py --small     # a toy study: fixed costs dominate it
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

GOAL = 1.05
EXPERIMENT = """[competition]
data_dir = "data/avocado"
id = "id"
target = "ripe"
task = "binary"
metric = "roc_auc"

[model]
hidden_layer_sizes = [16]
activation = "tanh"
batch_size = 64
max_iter = {epochs}
n_iter_no_change = 1000

[cv]
folds = 5
seed = 42

[tune]
trials = {trials}
seed = 0
pruner = "none"

[tune.space]
learning_rate_init = {{ low = 0.001, high = 0.02, log = true }}
alpha = {{ low = 1e-6, high = 1e-3, log = true }}
"""


FRESH = """import os, sys
os.chdir(sys.argv[1])
from pipeline.experiment import load
from pipeline.tune import tune
tune(load("bench"), trials=int(sys.argv[2]), track=sys.argv[3] == "1", storage=sys.argv[4],
     tracking_uri=sys.argv[5])
"""


def one_run(root: Path, track: bool, trials: int, n: int, fresh: bool) -> float:
    """Wall time of one study in fresh stores: in this process, or in a new interpreter."""
    from pipeline.experiment import load
    from pipeline.tune import tune

    os.chdir(root)
    # fresh stores per run (MLflow caches engines by URI: never delete a file it has open)
    storage, uri = f"sqlite:///{root}/optuna-{n}.db", f"sqlite:///{root}/mlflow-{n}.db"
    exp = load("bench")
    if track:  # the schema is created once per store (`make tune` pays it once): not timed
        from pipeline.tracking import MlflowTracker

        MlflowTracker(uri).setup(exp)
    start = time.perf_counter()
    if fresh:
        subprocess.run([sys.executable, "-c", FRESH, str(root), str(trials), str(int(track)),
                        storage, uri], check=True, stdout=subprocess.DEVNULL)
    else:
        tune(exp, trials=trials, track=track, storage=storage, tracking_uri=uri)  # prints nothing
    return time.perf_counter() - start


def compare(root: Path, trials: int, repeat: int, fresh: bool, first: int) -> float:
    """Alternating runs; prints the best of each and returns the median of the pairs' ratios.

    Each pair runs back to back, so slow drifts of this shared machine cancel in its ratio;
    the median drops the pairs a neighbour's burst hit.
    """
    times: dict[bool, list[float]] = {True: [], False: []}
    for i in range(repeat):
        for track in (False, True) if i % 2 == 0 else (True, False):
            times[track].append(one_run(root, track, trials, first + 2 * i + track, fresh))
            label = "mlflow" if track else "null  "
            print(f"  run {i + 1} {label}: {times[track][-1]:.2f} s", flush=True)
    on, off = min(times[True]), min(times[False])
    pairs = statistics.median(a / b for a, b in zip(times[True], times[False], strict=True))
    where = "fresh process" if fresh else "in-process"
    print(f"{where}: best of each: tracking {on:.2f} s, no-op tracker {off:.2f} s "
          f"(+{on - off:.2f} s), ratio {on / off:.3f}; median of the {repeat} run pairs "
          f"{pairs:.3f}", flush=True)
    return pairs


ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, help="default: the experiment's budget (30)")
    ap.add_argument("--small", action="store_true", help="toy study: 30 epochs, 4000 rows")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--fresh", action="store_true", help="also time fresh processes")
    ap.add_argument("--check", action="store_true", help="exit 1 when the ratio misses the goal")
    args = ap.parse_args()

    import mlflow  # noqa: F401  (one-time import cost, outside the timings)
    import optuna  # noqa: F401

    from pipeline.competitions import generate
    from pipeline.prepare import prepare

    with tempfile.TemporaryDirectory(prefix="bench-tracking-") as tmp:
        root = Path(tmp)
        generate("avocado", root / "data" / "avocado", seed=0, rows=4000 if args.small else None)
        (root / "experiments").mkdir()
        text = (EXPERIMENT.format(epochs=30, trials=args.trials or 12) if args.small
                else (ROOT / "experiments" / "avocado.toml").read_text(encoding="utf-8"))
        (root / "experiments" / "bench.toml").write_text(text, encoding="utf-8")
        os.chdir(root)
        from pipeline.experiment import load

        bench = load("bench")
        prepare(bench)  # the cache, shared by both
        trials = args.trials or bench.tune.trials
        study = "a toy study" if args.small else "experiments/avocado.toml"
        print(f"{trials} trials of {study}, best of {args.repeat} runs each", flush=True)
        ratio = compare(root, trials, args.repeat, fresh=False, first=0)
        if args.fresh:
            compare(root, trials, args.repeat, fresh=True, first=2 * args.repeat)
        os.chdir("/")
    verdict = "ok" if ratio <= GOAL else "MISSED"
    print(f"in-process ratio (median of pairs) {ratio:.3f} (goal <= {GOAL}): {verdict}")
    return 1 if args.check and ratio > GOAL else 0


if __name__ == "__main__":
    sys.exit(main())
