"""Real public tabular datasets from pip packages, written as Kaggle-layout competitions.

Each dataset ships inside a package (nothing is downloaded at run time), so the benchmark runs
offline. `build(name)` writes train.csv (id, features, target), test.csv (no target),
sample_submission.csv and solution.csv (id, target, Usage = Public / Private, about 30 / 70)
into a cache folder outside the repository: the data is not ours to commit.

| name          | rows  | shape                                     | metric   | package        |
|---------------|-------|-------------------------------------------|----------|----------------|
| breast_cancer | 569   | binary, 30 numeric columns                | roc_auc  | scikit-learn   |
| penguins      | 344   | 3 classes, 2 text columns, missing values | log_loss | palmerpenguins |
| diabetes      | 442   | regression, 10 numeric columns            | rmse     | scikit-learn   |
| fair          | 6,366 | binary, 5 text (survey answer) columns    | roc_auc  | statsmodels    |
| wine          | 178   | 3 classes, 13 numeric columns             | f1_macro | scikit-learn   |
| anes96        | 944   | 7 ordered classes (party identification)  | qwk      | statsmodels    |
| randhie       | 20,190| regression, a skewed count (doctor visits)| rmsle    | statsmodels    |

A sample submission holds what the metric scores: probabilities (one column per class for a
multiclass log-loss), labels for label metrics (f1_macro, qwk: the commonest class), values for
regression. Where `pipeline init` cannot tell the metric from the files (rmsle looks like rmse,
qwk like accuracy), the benchmark sets the one named here, as a user copies it from the
competition's page.

    python benchmarks/tabular_datasets.py              # build all into the cache, print paths
    python benchmarks/tabular_datasets.py penguins --out /tmp/penguins
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

TEST_SHARE = 1 / 3  # of all rows; the rest is train.csv
PUBLIC_SHARE = 0.3  # of the test rows; the rest is Private
ID = "id"


@dataclass(frozen=True)
class Dataset:
    name: str
    task: str  # binary | multiclass | regression
    metric: str  # what Kaggle would score it with; `pipeline init` should infer the same
    package: str  # the pip package that ships the data (the `bench` extra)
    license: str
    load: Callable[[], tuple[pd.DataFrame, str]]  # -> (frame, target column)


def _breast_cancer() -> tuple[pd.DataFrame, str]:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    # sklearn codes malignant as 0; the positive class of a screening contest is malignant
    frame["malignant"] = 1 - frame.pop("target")
    return frame, "malignant"


def _diabetes() -> tuple[pd.DataFrame, str]:
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True, scaled=False).frame  # raw units, as a user would get
    return frame.rename(columns={"target": "progression"}), "progression"


def _penguins() -> tuple[pd.DataFrame, str]:
    from palmerpenguins import load_penguins

    return load_penguins(), "species"


# statsmodels' codebook for Fair's survey (statsmodels.datasets.fair.DESCRLONG): the answers a
# Kaggle upload would spell out as text, which is what makes this the categorical-heavy set.
_FAIR_LEVELS = {
    "rate_marriage": {1: "very poor", 2: "poor", 3: "fair", 4: "good", 5: "very good"},
    "religious": {1: "not", 2: "mildly", 3: "fairly", 4: "strongly"},
    "educ": {9: "grade school", 12: "high school", 14: "some college", 16: "college graduate",
             17: "some graduate school", 20: "advanced degree"},
}
_OCCUPATIONS = {1: "student", 2: "farming, semi-skilled or unskilled", 3: "white-collar",
                4: "teacher, nurse, artist or skilled", 5: "managerial or business",
                6: "professional with advanced degree"}


def _fair() -> tuple[pd.DataFrame, str]:
    from statsmodels.datasets import fair

    frame = fair.load_pandas().data
    for col, levels in {**_FAIR_LEVELS, "occupation": _OCCUPATIONS,
                        "occupation_husb": _OCCUPATIONS}.items():
        frame[col] = frame[col].round().astype(int).map(levels)
    # statsmodels' own example models `affairs > 0`: whether she had an affair at all
    frame["had_affair"] = (frame.pop("affairs") > 0).astype(int)
    return frame, "had_affair"


def _wine() -> tuple[pd.DataFrame, str]:
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame
    frame["cultivar"] = frame.pop("target").map({0: "class_0", 1: "class_1", 2: "class_2"})
    return frame, "cultivar"


def _anes96() -> tuple[pd.DataFrame, str]:
    from statsmodels.datasets import anes96

    frame = anes96.load_pandas().data
    # PID: party identification, 0 strong Democrat .. 6 strong Republican, an ordered scale;
    # logpopul repeats popul
    frame["PID"] = frame["PID"].astype(int)
    return frame.drop(columns=["logpopul"]), "PID"


def _randhie() -> tuple[pd.DataFrame, str]:
    from statsmodels.datasets import randhie

    frame = randhie.load_pandas().data
    return frame, "mdvis"  # outpatient doctor visits a year: counts, mostly small


DATASETS: dict[str, Dataset] = {d.name: d for d in (
    Dataset("breast_cancer", "binary", "roc_auc", "scikit-learn",
            "UCI Breast Cancer Wisconsin (Diagnostic), CC BY 4.0", _breast_cancer),
    Dataset("penguins", "multiclass", "log_loss", "palmerpenguins",
            "Palmer penguins (Gorman, Williams & Fraser 2014), CC0", _penguins),
    Dataset("diabetes", "regression", "rmse", "scikit-learn",
            "Efron et al. (2004) diabetes data as shipped by scikit-learn (BSD-3)", _diabetes),
    Dataset("fair", "binary", "roc_auc", "statsmodels",
            "Fair (1978) affairs survey; statsmodels ships it with the author's permission: "
            "not for redistribution here", _fair),
    Dataset("wine", "multiclass", "f1_macro", "scikit-learn",
            "UCI Wine (Forina et al.), CC BY 4.0, as shipped by scikit-learn", _wine),
    Dataset("anes96", "multiclass", "qwk", "statsmodels",
            "American National Election Studies 1996 extract, as shipped by statsmodels",
            _anes96),
    Dataset("randhie", "regression", "rmsle", "statsmodels",
            "RAND Health Insurance Experiment extract, as shipped by statsmodels", _randhie),
)}


def set_metric(experiment_file: Path, metric: str) -> bool:
    """Set `[competition] metric` in a file `init` wrote, as a user does when the competition
    scores with a metric the files cannot show (rmsle vs rmse); True if it changed."""
    import re

    text = experiment_file.read_text(encoding="utf-8")
    new = re.sub(r'(?m)^metric = "[^"]*"', f'metric = "{metric}"', text, count=1)
    experiment_file.write_text(new, encoding="utf-8")
    return new != text


def cache_dir() -> Path:
    """Where competitions are built by default: a user cache, never the repository tree."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "avocado-pipeline" / "competitions"


def available(name: str) -> bool:
    """Whether the package that ships `name` is installed (the `bench` extra)."""
    import importlib.util

    module = {"scikit-learn": "sklearn"}.get(DATASETS[name].package, DATASETS[name].package)
    return importlib.util.find_spec(module) is not None


def build(name: str, out: Path | None = None, *, seed: int = 0) -> Path:
    """Write dataset `name` as a Kaggle-layout competition into `out`; return the folder.

    The same seed gives the same bytes, so a rebuilt folder keeps its prepare fingerprint.
    """
    from sklearn.model_selection import train_test_split

    ds = DATASETS[name]
    frame, target = ds.load()
    frame = frame.dropna(subset=[target]).reset_index(drop=True)
    # ids in a shuffled order, so an id says nothing about the row's place in the source
    frame.insert(0, ID, np.random.default_rng(seed).permutation(len(frame)) + 1)
    classify = ds.task != "regression"
    train, test = train_test_split(frame, test_size=TEST_SHARE, random_state=seed,
                                   stratify=frame[target] if classify else None)
    public, _ = train_test_split(test[ID], train_size=PUBLIC_SHARE, random_state=seed,
                                 stratify=test[target] if classify else None)
    train, test = train.sort_values(ID), test.sort_values(ID)

    solution = test[[ID, target]].assign(
        Usage=np.where(test[ID].isin(public), "Public", "Private"))
    if ds.metric in ("f1_macro", "qwk", "accuracy", "f1", "mcc"):  # labels: the commonest
        sample = test[[ID]].assign(**{target: train[target].mode().iloc[0]})
    elif ds.task == "multiclass":  # one probability column per class, as Kaggle's samples do
        classes = sorted(train[target].unique())
        sample = test[[ID]].assign(**{str(c): 1 / len(classes) for c in classes})
    elif ds.task == "binary":
        sample = test[[ID]].assign(**{target: 0.5})
    else:
        sample = test[[ID]].assign(**{target: round(float(train[target].mean()), 4)})

    out = Path(out) if out is not None else cache_dir() / name
    out.mkdir(parents=True, exist_ok=True)
    for file, df in (("train.csv", train), ("test.csv", test.drop(columns=target)),
                     ("sample_submission.csv", sample), ("solution.csv", solution)):
        df.to_csv(out / file, index=False)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", metavar="NAME",
                    help=f"datasets to build [default: all of {', '.join(DATASETS)}]")
    ap.add_argument("--out", type=Path, help="folder for a single dataset [default: the cache]")
    args = ap.parse_args()
    names = args.names or list(DATASETS)
    if unknown := [n for n in names if n not in DATASETS]:
        ap.error(f"unknown dataset(s) {', '.join(unknown)} (expected {', '.join(DATASETS)})")
    if args.out is not None and len(names) != 1:
        ap.error("--out takes exactly one dataset name")
    for name in names:
        if not available(name):
            print(f"{name}: skipped, {DATASETS[name].package} is not installed "
                  "(pip install -e '.[bench]')")
            continue
        print(f"{name}: {build(name, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
