"""`submit` and `show` reuse the trials store (issue 19): wall times beside the code before it.

On a tuned adult study (init defaults: 30 trials), side by side in one run:
    submit --seeds 3            old (every seed's folds train) vs new (only the 2 extra seeds)
    submit --seeds 1 --no-refit old (the trial's folds train again) vs new (nothing trains)
    show adult --trial N        new (the kept fold-0 model)
and the disk the kept files take. Wall and CPU (user + system) seconds: on a shared machine the
wall time also holds the other processes' share of the cores. The two `--seeds 1` submissions'
test predictions must be equal within 1e-9. Each submission is withdrawn before the next, so
none is "already submitted". Both codes log to MLflow and register the model, as `pipeline
submit` does.

    python benchmarks/bench_submit.py --old-code /path/to/old/checkout [--project DIR]
        [--new-code /path/to/new/checkout]

Without --project a temporary project is made and tuned first (5-10 minutes on 2 cores), on
an experiment both codes read (`old_readable`: adult's native_country dropped, not embedded).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "competitions" / "adult"


CPU: dict[str, float] = {}  # the last command's user + system seconds (a busy machine's
# wall time also counts the other processes' share of the cores)


def pipeline(code: Path, project: Path, *args: str) -> float:
    """Run `python -m pipeline ARGS` with `code` first on the path; its wall time."""
    env = {**os.environ, "PYTHONPATH": str(code), "MLFLOW_DISABLE_TELEMETRY": "true"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=project, env=env,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU["last"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        sys.exit(f"pipeline {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return seconds


def last_file(project: Path) -> str:
    with open(project / "submissions" / "ledger.csv", encoding="utf-8") as f:
        return list(csv.DictReader(f))[-1]["file"]


def submit(code: Path, project: Path, *args: str) -> tuple[float, float, pd.DataFrame]:
    """Time one submission (wall, CPU), read its test predictions, withdraw it."""
    seconds = pipeline(code, project, "submit", "adult", *args)
    cpu = CPU["last"]
    file = Path(last_file(project))
    test = pd.read_csv(project / file.parent / "predictions" / f"{file.stem}.test.csv")
    pipeline(code, project, "withdraw", "adult", file.name, "--message", "benchmark")
    return seconds, cpu, test


def old_readable(toml: Path) -> None:
    """The experiment as the old code reads it, before tuning: it knows neither `[tune] keep`
    (10, the default, either way) nor categorical embeddings, so the columns `init` embeds go
    under `drop` (as the old `init` put them) and the embedding keys go; both codes then
    prepare and train the same networks."""
    text = toml.read_text()
    embedded = re.findall(r"(?m)^#\s+(\S+): \d+ levels \(> one_hot_max", text)
    text = re.sub(r"(?m)^(keep|one_hot_max|categorical_dim) = .*\n", "", text)
    text = re.sub(r"(?m)^drop = \[(.*)\]", lambda m: "drop = [" + ", ".join(
        filter(None, [m.group(1), *(f'"{c}"' for c in embedded if f'"{c}"' not in m.group(1))])
    ) + "]", text)  # idempotent: a second call (a tuned --project) changes nothing
    toml.write_text(text)


def du(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--old-code", type=Path,
                        help="a checkout of the code before the trials store (required)")
    parser.add_argument("--new-code", type=Path, default=ROOT,
                        help="the code with the trials store [default: this checkout]")
    parser.add_argument("--project", type=Path, help="a project with a tuned adult study")
    args = parser.parse_args()
    if args.old_code is None:  # `make bench` runs every benchmark without arguments
        print("skipped: needs --old-code (a checkout from before the trials store)")
        return
    project = args.project or Path(tempfile.mkdtemp(prefix="bench-submit-"))
    if not (project / "optuna.db").is_file():
        if not DATA.is_dir():
            sys.exit(f"skipped: {DATA} not found")
        pipeline(ROOT, project, "init", str(DATA))
        old_readable(project / "experiments" / "adult.toml")
        print(f"tuning adult in {project} (30 trials) ...", flush=True)
        print(f"tune: {pipeline(ROOT, project, 'tune', 'adult', '--quiet'):.0f} s")
    old_readable(project / "experiments" / "adult.toml")
    best = json.loads((project / "experiments" / "adult.best.json").read_text())["trial"]
    rows = []
    for label, extra in (("--seeds 3", ["--seeds", "3"]),
                         ("--seeds 1 --no-refit", ["--seeds", "1", "--no-refit"])):
        old, old_cpu, old_test = submit(args.old_code, project, *extra)
        new, new_cpu, new_test = submit(args.new_code, project, *extra)
        rows.append((f"submit {label}", old, new, old_cpu, new_cpu))
        if label.startswith("--seeds 1"):
            gap = float(np.max(np.abs(old_test.iloc[:, 1:].to_numpy()
                                      - new_test.iloc[:, 1:].to_numpy())))
            print(f"--seeds 1 --no-refit: largest test prediction gap old vs new {gap:.1e}")
            assert gap <= 1e-9, gap
    show = pipeline(args.new_code, project, "show", "adult", "--trial", str(best),
                    "-o", str(project / "bench-show.png"))
    show_cpu = CPU["last"]
    print(f"\n{'':28} {'old s':>7} {'new s':>7} {'ratio':>6}   "
          f"{'old cpu':>7} {'new cpu':>7} {'ratio':>6}")
    for name, old, new, old_cpu, new_cpu in rows:
        print(f"{name:28} {old:7.1f} {new:7.1f} {old / new:5.1f}x   "
              f"{old_cpu:7.1f} {new_cpu:7.1f} {old_cpu / new_cpu:5.1f}x")
    print(f"{f'show adult --trial {best}':28} {'':7} {show:7.1f} {'':6}   {'':7} {show_cpu:7.1f}")
    print(f"kept files (trials/): {du(project / 'trials') / 1e6:.1f} MB "
          f"in {len(list((project / 'trials').glob('*/*/*')))} trials")


if __name__ == "__main__":
    main()
