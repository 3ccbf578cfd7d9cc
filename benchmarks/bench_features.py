"""Feature code in the experiment (issue #20): the same study with and without a few lines of
`features(df)`, on bike-sharing-style hourly data (benchmarks/bike_demand.py, metric rmsle).

For each variant, in one throwaway project folder, as a user runs it:
`pipeline init data/bike --name NAME` (then metric rmsle, as the competition page says),
for the coded variant the `# features = ...` line init wrote uncommented and FEATURE_CODE
written to that file, then `pipeline tune NAME --trials N`, `pipeline submit NAME --refit
--seeds 1` (one refit model, the same for both, to keep the run short) and
`pipeline leaderboard NAME --csv` for the CV, Public and Private scores. Everything else
(data, folds, [tune] seed and search space) is what init wrote, identical for both.

Without the code the network still gets the date's parts (prepare turns `datetime` into year,
month, day, weekday, hour and a day count); what it lacks is that an hour means one thing on
a working day and another on a weekend or holiday.

    python benchmarks/bench_features.py                 # 12 trials each (~10-20 min on 2 cores)
    python benchmarks/bench_features.py --trials 4      # a quick look
"""

from __future__ import annotations

import argparse
import csv
import io
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bike_demand  # noqa: E402
from bench_tabular import cli, number  # noqa: E402
from tabular_datasets import set_metric  # noqa: E402

FEATURE_CODE = '''\
import pandas as pd


def features(df: pd.DataFrame) -> pd.DataFrame:
    t = pd.to_datetime(df["datetime"])
    free = (t.dt.day_of_week >= 5) | (df["holiday"] == 1)
    # an hour means one thing on a working day, another on a weekend: 48 one-hot levels
    df["day_hour"] = free.map({True: "free ", False: "work "}) + t.dt.hour.astype(str)
    df["hour_of_week"] = t.dt.day_of_week * 24 + t.dt.hour  # Monday 0:00 = 0 .. 167
    return df
'''
VARIANTS = {"bike": None, "bike_hours": FEATURE_CODE}
SUBMIT = ("--refit", "--seeds", "1")


def run(project: Path, name: str, code: str | None, trials: int) -> dict[str, str]:
    """init (+ the feature code), tune, submit, leaderboard; the submission's leaderboard row."""
    cli(project, "init", "data/bike", "--name", name)
    toml = project / "experiments" / f"{name}.toml"
    set_metric(toml, "rmsle")
    if code is not None:  # uncomment the line init wrote, write the file it names
        text = toml.read_text(encoding="utf-8")
        line = re.search(r'(?m)^# (features = "([^"]+)")', text)
        assert line is not None, "init wrote no features line"
        toml.write_text(text.replace(line.group(0), line.group(1)), encoding="utf-8")
        (project / line.group(2)).write_text(code, encoding="utf-8")
    start = time.perf_counter()
    cli(project, "tune", name, "--trials", str(trials), "--quiet")
    out = cli(project, "submit", name, *SUBMIT)
    file = re.search(r"(submissions/\S+?\.csv)", out)
    assert file is not None, out[-500:]
    board = {r["file"]: r for r in csv.DictReader(io.StringIO(
        cli(project, "leaderboard", name, "--csv")))}
    row = board[file.group(1)]
    print(f"  {name}: tune + submit {time.perf_counter() - start:.0f} s", flush=True)
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=12, help="trials per study [12]")
    ap.add_argument("--seed", type=int, default=0, help="bike_demand's data seed [0]")
    ap.add_argument("--keep", action="store_true", help="keep the project folder")
    args = ap.parse_args()
    project = Path(tempfile.mkdtemp(prefix="bench-features-"))
    try:
        bike_demand.build(project / "data" / "bike", seed=args.seed)
        rows = {name: run(project, name, code, args.trials) for name, code in VARIANTS.items()}
    finally:
        if args.keep:
            print(f"project kept: {project}")
        else:
            shutil.rmtree(project, ignore_errors=True)
    print(f"\nrmsle (lower is better), {args.trials} trials each, submit {' '.join(SUBMIT)}")
    print(f"{'experiment':<12} {'cv':>8} {'public':>8} {'private':>8}")
    for name, row in rows.items():
        print(f"{name:<12} {number(row['cv_score']):>8.4f} {number(row['public']):>8.4f} "
              f"{number(row['private']):>8.4f}")
    plain, coded = (number(rows[n]["private"]) for n in VARIANTS)
    delta = coded - plain
    print(f"private: without feature code {plain:.4f}, with {coded:.4f}, delta {delta:+.4f} "
          f"({100 * delta / plain:+.1f}%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
