"""The experiment's own feature code (issue #20): `[competition] features = "<file>.py"` runs
before the fitted preprocessing on train and test, is part of the fingerprint, and every way it
can go wrong is one line naming the file."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import make_competition, toy_frames, write_experiment
from typer.testing import CliRunner

from pipeline import experiment
from pipeline.cli import app
from pipeline.errors import PipelineError
from pipeline.prepare import SOURCE_FILE, as_read, cache_root, prepare

FEATURES = 'features = "experiments/comp_features.py"'
GOOD = """\
import numpy as np

def features(df):
    df["num_sq"] = df["num"] ** 2
    df["count_odd"] = np.where(df["count"] % 2 == 1, "odd", "even")
    return df
"""


def _project(root: Path, code: str = GOOD, extra: str = FEATURES) -> experiment.Experiment:
    train, test = toy_frames()
    folder = make_competition(root, train, test)
    write_experiment(root, "comp", folder.relative_to(root), extra=extra)
    (root / "experiments" / "comp_features.py").write_text(textwrap.dedent(code),
                                                           encoding="utf-8")
    return experiment.load("comp")


def test_added_columns_are_scaled_and_encoded_like_any_other(project):
    p = prepare(_project(project))
    assert "num_sq" in p.feature_names  # a number: imputed and standardised
    assert {"count_odd=odd", "count_odd=even"} <= set(p.feature_names)  # text: one-hot
    col = p.X_train[:, p.feature_names.index("num_sq")].astype(np.float64)  # float32 arrays
    assert abs(col.mean()) < 1e-6 and abs(col.std() - 1) < 1e-6
    # the code the arrays were made with is kept beside them (the registered model's copy)
    assert (p.path / SOURCE_FILE).read_text(encoding="utf-8") == GOOD


def _plain(root: Path) -> experiment.Experiment:
    write_experiment(root, "plain", "data/comp")
    return experiment.load("plain")


def test_the_code_is_part_of_the_fingerprint(project):
    exp = _project(project)
    first = prepare(exp).fingerprint
    assert prepare(_plain(project)).fingerprint != first  # same data without the code
    assert prepare(exp).fingerprint == first  # unchanged code: the cache
    file = project / "experiments" / "comp_features.py"
    file.write_text(GOOD.replace("** 2", "** 3"), encoding="utf-8")
    edited = prepare(exp)
    assert edited.fingerprint != first
    assert (edited.path / SOURCE_FILE).read_text(encoding="utf-8").count("** 3") == 1


def test_drop_and_categorical_may_name_columns_the_code_adds(project):
    code = """\
    def features(df):
        df["bucket"] = (df["num"].fillna(0) > 10).astype(int)
        df["unused"] = 1.0
        return df
    """
    extra = f'{FEATURES}\ndrop = ["unused", "colour"]\ncategorical = ["bucket"]'
    p = prepare(_project(project, code, extra))
    assert {"bucket=0", "bucket=1"} <= set(p.feature_names)
    assert not [n for n in p.feature_names if n.startswith(("unused", "colour"))]


def test_the_code_never_sees_the_target(project):
    code = """\
    def features(df):
        assert "y" not in df.columns, "saw the target"
        df["leak"] = 0.0
        return df
    """
    p = prepare(_project(project, code))
    assert "leak" in p.feature_names and p.y.shape == (60,)


@pytest.mark.parametrize("code,expected", [
    ("def features(df):\n    return df['nope']\n",
     "comp_features.py: line 2 (in features): KeyError: 'nope' (running features() on "
     "train.csv)"),
    ("def helper(df):\n    return 1 / 0\n\ndef features(df):\n    return helper(df)\n",
     "line 2 (in helper): ZeroDivisionError: division by zero"),
    ("def features(df):\n    return df.values\n", "returned ndarray, expected a pandas.DataFrame"),
    ("def features(df):\n    return df.head(5)\n", "returned 5 rows for 60; it must keep"),
    ("def features(df):\n    return df.drop(columns='id')\n", "dropped the id column 'id'"),
    ("def features(df):\n    return df.iloc[::-1]\n", "changed or reordered the id column 'id'"),
    ("def features(df):\n    df['extra'] = 1.0 if len(df) == 60 else 2.0\n"
     "    if len(df) != 60:\n        df['other'] = 1\n    return df\n",
     "different columns for train.csv and test.csv (train.csv only: []; test.csv only: "
     "['other'])"),
    ("def features(df):\n    df['y'] = 1\n    return df\n", "named like the target 'y'"),
    ("def features(df):\n    df[3] = 1\n    return df\n", "returned column names [3]"),
    ("def feature(df):\n    return df\n", "no function features(df) -> DataFrame defined"),
    ("def features(df)\n    return df\n", "comp_features.py: line 1: SyntaxError"),
    ("import not_a_module_here\n", "line 1 (in <module>): ModuleNotFoundError"),
])
def test_bad_feature_code_is_one_line_and_writes_nothing(project, code, expected):
    _project(project, code)
    result = CliRunner().invoke(app, ["prepare", "comp"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.output
    assert "experiments/comp_features.py" in lines[0]
    assert not cache_root(experiment.load("comp").competition).exists()


def test_a_missing_file_is_one_line(project):
    exp = _project(project)
    (project / "experiments" / "comp_features.py").unlink()
    with pytest.raises(PipelineError, match=r"^experiments/comp_features.py: feature file not "
                                            r"found \(\[competition\] features names it"):
        prepare(exp)


def test_served_rows_are_typed_as_prepare_read_them():
    """MLflow hands an int column over as float64 (or an id as a number): the code sees ints
    and text again, where the values allow it."""
    raw = pd.DataFrame({"id": [1.0, 2.0], "count": [3.0, 4.0], "gap": [1.0, np.nan],
                        "num": [1, 2], "colour": ["a", None]})
    kinds = {"id": "text", "count": "int", "gap": "int", "num": "float", "colour": "text"}
    out = as_read(raw, kinds)
    assert out["count"].astype(str).tolist() == ["3", "4"]
    assert out["gap"].dtype == np.float64  # a gap: float, as pandas reads it
    assert out["num"].dtype == np.float64
    assert out["id"].tolist() == ["1.0", "2.0"] and out["colour"].isna().tolist() == [False, True]
