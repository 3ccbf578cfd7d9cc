"""Adult: our best submission blended with a HistGradientBoosting OOF / test pair (issue #20).

Runs, in a temporary project folder (or --project DIR, reusing its submission when it has one):
`pipeline init` (defaults) -> `tune adult` (30 trials) -> `submit adult`, then
`benchmarks/hgb_oof.py adult` (on our folds) -> `pipeline blend adult_hgb --from adult --oof
hgb.oof.csv --test hgb.test.csv`, and prints each one's CV (mean of the folds' AUC, the blend's
with weights chosen on the other folds), Public and Private AUC from solution.csv. Goal: the blend
beats both members out of fold and on Private; Private >= 0.928.

    python benchmarks/bench_blend.py                       # ~5-20 min: the study dominates
    python benchmarks/bench_blend.py --project /tmp/adult  # keep the folder; re-runs are quick
    python benchmarks/bench_blend.py --hgb "--defaults"     # scikit-learn's defaults instead

It also prints, for the same two members, what other ways of combining them would score (honest
CV as the blend's; Private only to report, never to choose): Caruana's selection on the logits
of the probabilities (the blend sigmoid of their weighted mean) and on their ranks.
"""

from __future__ import annotations

import argparse
import csv
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "competitions" / "adult"
GOAL = 0.928


def pipeline(*args: str) -> str:
    env = os.environ | {"PYTHONPATH": str(ROOT), "MLFLOW_DISABLE_TELEMETRY": "true"}
    out = subprocess.run([sys.executable, "-m", "pipeline", *args], env=env, check=True,
                         capture_output=True, text=True).stdout
    print(out, end="", flush=True)
    return out


def scores(test_csv: Path, oof_csv: Path, data: Path) -> tuple[float, float, float]:
    """(CV: mean of the folds' AUC, Public, Private) of a predictions pair."""
    import numpy as np
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    oof = pd.read_csv(oof_csv)
    cv = np.mean([roc_auc_score(g["target"], g["p_1"]) for _, g in oof.groupby("fold")])
    sol = pd.read_csv(data / "solution.csv")
    test = pd.read_csv(test_csv).set_index("id").loc[sol["id"], "p_1"].to_numpy()
    public, private = ((sol["Usage"] == u).to_numpy() for u in ("Public", "Private"))
    return (float(cv), roc_auc_score(sol["over_50k"][public], test[public]),
            roc_auc_score(sol["over_50k"][private], test[private]))


def spaces(oofs: list[Path], data: Path) -> dict[str, tuple[float, float]]:
    """(honest CV, Private) of Caruana's selection on the members' probabilities, logits and
    ranks (each fold weighted on the others, as `pipeline blend` scores)."""
    import numpy as np
    import pandas as pd
    from scipy.special import logit
    from scipy.stats import rankdata
    from sklearn.metrics import roc_auc_score

    from pipeline.blend import mix, select

    sol = pd.read_csv(data / "solution.csv")
    private = (sol["Usage"] == "Private").to_numpy()
    frames = [pd.read_csv(o).set_index("id").sort_index() for o in oofs]
    tests = [pd.read_csv(o.with_name(o.name.replace(".oof.", ".test.")))
             .set_index("id").loc[sol["id"], "p_1"].to_numpy() for o in oofs]
    y, fold = frames[0]["target"].to_numpy(), frames[0]["fold"].to_numpy()
    out = {}
    for name, f in (("probabilities", lambda p: p), ("logits", logit),
                    ("ranks", lambda p: rankdata(p) / len(p))):
        oof = [f(np.clip(df["p_1"].to_numpy(), 1e-7, 1 - 1e-7)) for df in frames]
        test = [f(np.clip(t, 1e-7, 1 - 1e-7)) for t in tests]
        cv = [roc_auc_score(y[fold == k], mix(oof, select("roc_auc", y[fold != k],
                                                          [p[fold != k] for p in oof]))[fold == k])
              for k in np.unique(fold)]
        w = select("roc_auc", y, oof)
        out[name] = (float(np.mean(cv)),
                     float(roc_auc_score(sol["over_50k"][private], mix(test, w)[private])))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--project", type=Path, help="project folder [default: a temporary one]")
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--hgb", default="", help="options for hgb_oof.py, e.g. '--max-iter 300'")
    ap.add_argument("--data", type=Path, default=DATA, help=f"adult's folder [default: {DATA}]")
    args = ap.parse_args()
    data = args.data.resolve()
    if not data.is_dir():
        print(f"skipped: {data} not found")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        project = (args.project or Path(tmp)).resolve()
        project.mkdir(parents=True, exist_ok=True)
        os.chdir(project)
        if not list(Path("submissions/adult/predictions").glob("*.oof.csv")):
            pipeline("init", str(data), "--name", "adult", "--force")
            pipeline("tune", "adult", "--trials", str(args.trials), "--quiet")
            pipeline("submit", "adult")
        env = os.environ | {"PYTHONPATH": str(ROOT)}
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "hgb_oof.py"), "adult",
                        *shlex.split(args.hgb)], env=env, check=True)
        pipeline("blend", "adult_hgb", "--from", "adult", "--oof", "hgb.oof.csv",
                 "--test", "hgb.test.csv")
        ours = sorted(Path("submissions/adult/predictions").glob("*.oof.csv"))[-1]
        blend = sorted(Path("submissions/adult_hgb/predictions").glob("*.oof.csv"))[-1]
        rows = {"ours (network)": ours, "HistGradientBoosting": Path("hgb.oof.csv"),
                "blend": blend}
        measured = {name: scores(oof.with_name(oof.name.replace(".oof.", ".test.")), oof, data)
                     for name, oof in rows.items()}
        # the blend's CV is the ledger's, the honest one (each fold weighted on the others),
        # not its OOF file's (whose weights saw every fold)
        row = [r for r in csv.DictReader(open("submissions/ledger.csv", encoding="utf-8"))
               if r["experiment"] == "adult_hgb"][-1]
        measured["blend"] = (float(row["cv_score"]), *measured["blend"][1:])
        other = spaces([ours, Path("hgb.oof.csv")], data)
    print("\n| adult, AUC | CV | Public | Private |\n|---|---|---|---|")
    for name, values in measured.items():
        print(f"| {name} | " + " | ".join(f"{v:.5f}" for v in values) + " |")
    print("\n| Caruana's selection on the members' | honest CV | Private |\n|---|---|---|")
    for name, (cv, private) in other.items():
        print(f"| {name} | {cv:.5f} | {private:.5f} |")
    b, best = measured["blend"], [measured["ours (network)"], measured["HistGradientBoosting"]]
    beats = all(b[2] > m[2] for m in best) and all(b[0] > m[0] for m in best)
    print(f"blend beats both (CV and Private): {'PASS' if beats else 'FAIL'}; "
          f"Private {b[2]:.5f} vs goal {GOAL}: {'PASS' if b[2] >= GOAL else 'MISS'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
