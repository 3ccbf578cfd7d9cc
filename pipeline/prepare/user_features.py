"""The experiment's own feature code: `[competition] features = "experiments/x_features.py"`,
a file defining `features(df: pandas.DataFrame) -> pandas.DataFrame`.

It runs on the raw rows (train.csv without its target, test.csv, every predicted or served
row) before the fitted preprocessing, so the columns it adds are typed, scaled and encoded like
any other. Its source is part of the data fingerprint (`source`); the prepared folder keeps a
copy (`SOURCE_FILE`), which the registered MLflow model carries and `load_function` runs. What
goes wrong in it is one `PipelineError` line naming the file (and the line, where there is one).
"""

from __future__ import annotations

import hashlib
import sys
import traceback
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.errors import PipelineError
from pipeline.files import one_line

FUNCTION = "features"
SOURCE_FILE = "features.py"  # the copy in data/<competition>/prepared/<fingerprint>/


def source(path: Path) -> bytes:
    """The feature file's text, as the fingerprint hashes it."""
    if not path.is_file():
        raise PipelineError(f"{path}: feature file not found ([competition] features names it; "
                            "a path relative to the project folder)")
    try:
        return path.read_bytes()
    except OSError as e:
        raise PipelineError(f"{path}: cannot read ({one_line(e)})") from None


@dataclass(frozen=True)
class FeatureCode:
    """The loaded `features` function and the file it came from (`shown`: the name in errors,
    the experiment's path rather than the prepared copy)."""

    function: Callable[[pd.DataFrame], Any]
    file: str  # where the code runs from: tracebacks name it
    shown: str

    def apply(self, df: pd.DataFrame, id_col: str, what: str) -> pd.DataFrame:
        """features(a copy of df), checked: a DataFrame with df's rows, in df's order, with
        the id as it came in; its index is df's. `what` names the rows (train.csv ...)."""
        try:
            out = self.function(df.copy())
        except Exception as e:  # the user's code: any error is theirs, said in one line
            raise PipelineError(f"{self.shown}: {self.where(e)}{type(e).__name__}: "
                                f"{one_line(e)} (running {FUNCTION}() on {what})") from None
        said = f"{self.shown}: {FUNCTION}() on {what}"
        if not isinstance(out, pd.DataFrame):
            raise PipelineError(f"{said} returned {type(out).__name__}, expected a "
                                "pandas.DataFrame")
        if len(out) != len(df):
            raise PipelineError(f"{said} returned {len(out)} rows for {len(df)}; it must keep "
                                "every row (add columns, do not filter or join)")
        bad = [c for c in out.columns if not isinstance(c, str)]
        if bad or out.columns.has_duplicates:
            shown = bad[:3] if bad else out.columns[out.columns.duplicated()].tolist()[:3]
            raise PipelineError(f"{said} returned column names {shown!r}; expected distinct "
                                "text names")
        if id_col in df.columns:
            if id_col not in out.columns:
                raise PipelineError(f"{said} dropped the id column {id_col!r}; keep it")
            if not np.array_equal(out[id_col].astype(str).to_numpy(),
                                  df[id_col].astype(str).to_numpy()):
                raise PipelineError(f"{said} changed or reordered the id column {id_col!r}; "
                                    "keep the rows in their order")
        return out.set_axis(df.index, axis=0)

    def where(self, e: BaseException) -> str:
        """'line 7 (in hour_of_week): ', the innermost frame of the feature file."""
        frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == self.file]
        if isinstance(e, SyntaxError) and e.filename == self.file:
            return f"line {e.lineno}: "
        return f"line {frames[-1].lineno} (in {frames[-1].name}): " if frames else ""


def load_function(path: Path, shown: Path | str | None = None,
                  text: bytes | None = None) -> FeatureCode:
    """Execute the feature file (or `text`, the source prepare fingerprinted) as a module of
    its own and return its `features` function. This is the one piece of user code the
    pipeline, and the registered model when it loads, runs."""
    text = source(path) if text is None else text
    file = str(Path(path).resolve())
    code = FeatureCode(lambda df: df, file, str(shown or path))
    name = f"pipeline_features_{hashlib.sha256(text).hexdigest()[:12]}"
    module = types.ModuleType(name)
    module.__file__ = file
    sys.modules[name] = module  # dataclasses look their module up by name
    try:
        exec(compile(text, file, "exec"), module.__dict__)
    except Exception as e:  # SyntaxError, ImportError, ...: one line, as in features()
        sys.modules.pop(name, None)
        raise PipelineError(f"{code.shown}: {code.where(e)}{type(e).__name__}: "
                            f"{one_line(e)} (loading the feature file)") from None
    function = getattr(module, FUNCTION, None)
    if not callable(function):
        raise PipelineError(f"{code.shown}: no function {FUNCTION}(df) -> DataFrame defined "
                            "(see README: Feature code)")
    return FeatureCode(function, file, code.shown)


def apply_pair(code: FeatureCode, train: pd.DataFrame, test: pd.DataFrame, id_col: str,
               targets: tuple[str, ...]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The feature code on train.csv (without its target: the code never sees it) and on
    test.csv; both must come back with the same columns. The target is put back on train."""
    new_train = code.apply(train.drop(columns=list(targets)), id_col, "train.csv")
    new_test = code.apply(test, id_col, "test.csv")
    if clash := [t for t in targets if t in new_train.columns]:
        raise PipelineError(f"{code.shown}: {FUNCTION}() returned a column named like the "
                            f"target {clash[0]!r}; the target is not a feature")
    others = {id_col}  # train.csv may have no id column: its rows are numbered
    train_cols = [c for c in new_train.columns if c not in others]
    test_cols = [c for c in new_test.columns if c not in others]
    if set(train_cols) != set(test_cols):
        only_train = [c for c in train_cols if c not in set(test_cols)]
        only_test = [c for c in test_cols if c not in set(train_cols)]
        raise PipelineError(
            f"{code.shown}: {FUNCTION}() returned different columns for train.csv and "
            f"test.csv (train.csv only: {only_train[:5]!r}; test.csv only: {only_test[:5]!r})")
    return pd.concat([new_train, train[list(targets)]], axis=1), new_test


# --- the served side: rows as the feature code saw them in train.csv --------------------------


def column_kinds(df: pd.DataFrame) -> dict[str, str]:
    """Each raw column's kind as prepare read it: int, float, bool or text."""

    def kind(s: pd.Series) -> str:
        if pd.api.types.is_bool_dtype(s):
            return "bool"
        if pd.api.types.is_integer_dtype(s):
            return "int"
        return "float" if pd.api.types.is_numeric_dtype(s) else "text"

    return {str(c): kind(df[c]) for c in df.columns}


def as_read(df: pd.DataFrame, kinds: dict[str, str]) -> pd.DataFrame:
    """`df` with each column of `kinds` in the dtype prepare read it with: served rows come as
    MLflow's schema has them (an int column of train.csv as float64 or int64, an id as a
    number), and the feature code should see what it saw in training (`hour.astype(str)` is
    '3', not '3.0'). An int column with a gap or a fraction stays float, as pandas reads it."""
    out = df.copy()
    for col, kind in kinds.items():
        if col not in out.columns:
            continue
        s = out[col]
        if kind == "text":
            out[col] = s.astype("str")
        elif kind in ("int", "float"):
            x = pd.to_numeric(s, errors="coerce").astype(np.float64)
            whole = kind == "int" and x.notna().all() and bool((x == np.round(x)).all())
            out[col] = x.astype(np.int64) if whole else x
    return out
