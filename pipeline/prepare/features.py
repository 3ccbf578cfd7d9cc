"""The feature transform: which columns are features, numbers / categories / dates, the fitted
transformers (median imputation + missing indicators, one-hot encoding, standardisation),
the level codes of high-cardinality columns (more than `[competition] one_hot_max` levels:
the network embeds them) and its JSON form, and `transform`, which replays that JSON on raw
rows without sklearn (the MLflow model does, in pipeline.tracking.scoring). sklearn is imported
only when fitting.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.errors import PipelineError
from pipeline.experiment import Competition, Experiment
from pipeline.files import DATE_PARTS, ISO, date_format, one_line, parse_dates
from pipeline.processes import trim_heap

# Bump when the transform changes, so old caches are not reused.
PREP_VERSION = 4
MISSING = "<missing>"  # a missing categorical value is a category of its own
UNSEEN = -1  # the level code of a value train.csv never had (the network's "other" row)
TRANSFORM_ROWS = 65_536  # rows per block of the fitted transform (`_transformed`)
NUM_GROUP = 4  # numeric columns fitted together (`_groups`)


@dataclass(frozen=True)
class Blocks:
    """A float32 matrix made a block of rows at a time by `make`: the cache writes each block
    to its .npy file as it comes, so the whole matrix is never in memory (280 MB at 1M rows)."""

    shape: tuple[int, int]
    make: Callable[[], Iterator[np.ndarray]]
    dtype = np.dtype(np.float32)


def encode_features(
    exp: Experiment, train_in: tuple[pd.DataFrame, Path], test_in: tuple[pd.DataFrame, Path],
    target_spec: dict[str, Any],
) -> tuple[Blocks, Blocks, dict[str, Any]]:
    """train.csv's and test.csv's feature matrices, fitted on train only, and the JSON
    preprocessor (`transform` redoes it without sklearn). The matrices are made as the cache
    writes them."""
    comp = exp.competition
    (train, train_file), (test, test_file) = train_in, test_in
    features = _feature_columns(train, comp, exp.path, train_file)
    require_columns(test, test_file, features, why="a feature column of train.csv")
    categorical = [c for c in features if c in comp.categorical or not is_numeric(train[c])]
    dates = _date_specs(exp, categorical, (train, train_file), (test, test_file))
    date_cols = {d["name"] for d in dates}
    categorical = [c for c in categorical if c not in date_cols]
    numeric = [c for c in features if c not in categorical and c not in date_cols]
    numeric += [f"{d['name']}.{part}" for d in dates for part in d["parts"]]
    train, test = _with_dates(train, dates), _with_dates(test, dates)
    X_train_df = _frame(train, numeric, categorical, train_file)
    X_test_df = _frame(test, numeric, categorical, test_file, numeric_in=train_file)
    # The vocabulary needs no labels: every train.csv row's level; the network counts which
    # are rare on its own training rows (each fold's), so none of that sees held-out rows.
    embedded = {c: sorted(X_train_df[c].unique()) for c in categorical
                if X_train_df[c].nunique() > comp.one_hot_max}
    one_hot = [c for c in categorical if c not in embedded]

    ct = _fitted(numeric, one_hot, X_train_df)
    trim_heap()  # the fit's copies (median sorts, validation) are freed in small blocks
    X_train = _transformed(ct, X_train_df, embedded)
    X_test = _transformed(ct, X_test_df, embedded)
    spec = _describe(ct, numeric, one_hot, comp, target_spec)
    spec["embedded"] = [{"name": c, "levels": levels} for c, levels in embedded.items()]
    spec["feature_names"] += list(embedded)
    spec["dates"] = dates
    return X_train, X_test, spec


def embedded_columns(spec: dict[str, Any]) -> tuple[int, ...]:
    """The prepared columns holding level codes (the last ones), for the network's
    ``categorical_columns``."""
    n, k = len(spec["feature_names"]), len(spec.get("embedded", ()))
    return tuple(range(n - k, n))


def level_codes(labels: Any, levels: list[str]) -> np.ndarray:
    """Each label's index in `levels` (train.csv's sorted levels), UNSEEN for the others."""
    codes = pd.Index(levels).get_indexer(pd.Index(labels))
    codes[codes < 0] = UNSEEN
    return codes.astype(np.float64)


def _transformed(ct: FittedParts, df: pd.DataFrame, embedded: dict[str, list[str]]
                 ) -> Blocks:
    """`ct.transform(df)` with the level codes, float32, a block of rows at a time: the
    parts' float64 outputs and their stacked copy stay a block's size. Every step works row
    by row, so the values are those of one call on every row."""
    def make() -> Iterator[np.ndarray]:
        for start in range(0, len(df), TRANSFORM_ROWS):
            part = df.iloc[start:start + TRANSFORM_ROWS]
            yield _with_codes(ct.transform(part), part, embedded)

    return Blocks((len(df), ct.width + len(embedded)), make)


def _with_codes(X: Any, df: pd.DataFrame, embedded: dict[str, list[str]]) -> np.ndarray:
    codes = [level_codes(df[c].to_numpy(), levels)[:, None] for c, levels in embedded.items()]
    # float32 end to end (level codes are exact below 2**24): half the memory of float64, and
    # what the network trains in
    return np.hstack([np.asarray(X, dtype=np.float32), *codes], dtype=np.float32)


def require_columns(
    df: pd.DataFrame, file: Path, columns: Any, why: str = "a required column"
) -> None:
    for col in columns:
        if col not in df.columns:
            shown = ", ".join(map(str, df.columns[:12])) + (" ..." if df.shape[1] > 12 else "")
            raise PipelineError(f"{file}: no column {col!r} ({why}); columns are: {shown}")


def is_numeric(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s)


def _feature_columns(
    train: pd.DataFrame, comp: Competition, exp_path: Path, train_file: Path
) -> list[str]:
    for key in ("drop", "categorical"):
        for col in getattr(comp, key):
            if col not in train.columns or col in (comp.id, *comp.targets):
                what = "is the id or target" if col in train.columns else f"is not in {train_file}"
                raise PipelineError(
                    f"{exp_path}: [competition] {key} names column {col!r}, which {what}"
                )
    # A column with no value in train.csv teaches nothing, whatever test.csv holds in it (a
    # category first seen in test would otherwise be "text in a numeric column").
    features = [c for c in train.columns
                if c not in (comp.id, *comp.targets, *comp.drop) and train[c].notna().any()]
    if not features:
        raise PipelineError(
            f"{exp_path}: no feature columns left in {train_file} after drop "
            "(columns without a value are left out too)"
        )
    return features


def _frame(
    df: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    file: Path,
    numeric_in: Path | None = None,
) -> pd.DataFrame:
    """The feature columns by name: numbers as float64, categories as normalised strings."""
    cols: dict[str, pd.Series] = {}
    for c in numeric:
        cols[c] = _numbers(df[c], c, file, numeric_in)
    for c in categorical:
        cols[c] = category_labels(df[c])
    return pd.DataFrame(cols, index=df.index, copy=False)  # the numbers: no second copy


def _numbers(s: pd.Series, col: str, file: Path, numeric_in: Path | None) -> pd.Series:
    """A numeric column as float64. A gap turns a bool column into objects (True / False /
    NaN), which are still numbers; only real text is an error."""
    if is_numeric(s):
        return s.astype(np.float64)
    parsed = pd.to_numeric(s, errors="coerce")
    bad = s[parsed.isna() & s.notna()]
    if len(bad):
        raise PipelineError(
            f"{file}: column {col!r} is numeric in {numeric_in} but holds "
            f"{bad.iloc[:3].tolist()!r} here"
        )
    return parsed.astype(np.float64)


def _date_specs(
    exp: Experiment, text_columns: list[str], *frames: tuple[pd.DataFrame, Path]
) -> list[dict[str, Any]]:
    """The text columns that hold dates, each with the one format that reads it: declared in
    [competition] dates, else found in train and test together (`files.date_format`)."""
    comp = exp.competition
    (train, train_file), (test, _) = frames
    for col in comp.dates:
        if col not in text_columns or col in comp.categorical:
            raise PipelineError(f"{exp.path}: [competition] dates names column {col!r}, which "
                                f"{_not_a_date_feature(col, comp, train, train_file)}")
    specs = []
    for col in text_columns:
        if col in comp.dates:
            fmt: str | None = _checked_format(exp, col, frames)
        elif col in comp.categorical:
            continue
        else:
            fmt = date_format(train[col], test[col], file=train_file)
        if fmt is not None:
            t = parse_dates(train[col], fmt).dropna()
            has_time = bool((t != t.dt.normalize()).any())
            specs.append({"name": col, "format": fmt,
                          "parts": [*DATE_PARTS, *(["hour"] if has_time else [])]})
    return specs


def _not_a_date_feature(col: str, comp: Competition, train: pd.DataFrame, file: Path) -> str:
    if col in comp.categorical:
        return "is categorical too"
    if col in (comp.id, comp.target):
        return "is the id or target"
    if col in comp.drop:
        return "is dropped"
    return "has no value" if col in train.columns else f"is not in {file}"


def _checked_format(exp: Experiment, col: str, frames: tuple[tuple[pd.DataFrame, Path], ...]
                    ) -> str:
    """A declared format, once it reads every value of the column in train and test."""
    fmt = exp.competition.dates[col]
    where = f"{exp.path}: [competition] dates.{col} = {fmt!r}"
    for df, file in frames:
        try:
            t = parse_dates(df[col], fmt)
        except ValueError as e:
            raise PipelineError(f"{where} is not a strptime format ({one_line(e)})") from None
        bad = df[col][t.isna() & df[col].notna()]
        if len(bad):
            raise PipelineError(
                f"{where} does not read column {col!r} of {file}: {bad.iloc[:3].tolist()!r}"
            )
    return fmt


def _with_dates(df: pd.DataFrame, dates: list[dict[str, Any]]) -> pd.DataFrame:
    """`df` plus a numeric column `<name>.<part>` per date part (the text column stays)."""
    if not dates:
        return df
    parts: dict[str, pd.Series] = {}
    for d in dates:
        # a preprocessor.json older than formats read ISO dates only
        t = parse_dates(df[d["name"]], d.get("format", ISO))
        epoch_days = (t - pd.Timestamp("1970-01-01")) / pd.Timedelta(days=1)
        values = {"year": t.dt.year, "month": t.dt.month, "day": t.dt.day,
                  "weekday": t.dt.day_of_week, "hour": t.dt.hour, "days": epoch_days}
        for part in d["parts"]:
            parts[f"{d['name']}.{part}"] = values[part].astype(np.float64)
    return pd.concat([df, pd.DataFrame(parts, index=df.index)], axis=1)


def category_labels(s: pd.Series) -> pd.Series:
    """Text labels; 3 and 3.0 both become '3' so an int test column matches a float train one.
    Made once per distinct value and shared by its rows: a million rows of 500 levels hold
    500 strings, not a million (~330 MB for six such columns)."""
    codes, values = pd.factorize(s, use_na_sentinel=True)  # a gap: code -1, the last label
    label = _number_label if is_numeric(s) and not pd.api.types.is_bool_dtype(s) else str
    labels = np.array([*(label(v) for v in values.tolist()), MISSING], dtype=object)
    return pd.Series(labels[codes], index=s.index, dtype=object)


def _number_label(v: Any) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


class FittedParts:
    """The fitted transformers of the prepared columns, by part: "num0", "num1", ... (median
    imputation, then standardisation, `_groups`), "missing0", ... (indicators where train.csv
    has gaps, the same groups) and "cat" (one-hot).
    Each is fitted on its own columns with `fit`: a ColumnTransformer's fit runs fit_transform
    on every part and stacks the outputs, a float64 copy of every row twice over that is thrown
    away (~800 MB at 1M rows). `transform` stacks the parts like a ColumnTransformer."""

    def __init__(self, parts: dict[str, tuple[Any, list[str]]], width: int) -> None:
        self.parts, self.width = parts, width  # name -> (transformer, columns); output columns

    def transform(self, df: pd.DataFrame) -> np.ndarray:
        blocks = [np.asarray(tr.transform(df[cols]), dtype=np.float64)
                  for tr, cols in self.parts.values()]
        return np.hstack(blocks) if blocks else np.empty((len(df), 0))


def _groups(numeric: list[str]) -> list[list[str]]:
    """The numeric columns in groups of NUM_GROUP (at least 2 a group): the imputer, scaler and
    missing indicator work column by column, so a group's statistics are those of a fit on
    every column, while their validation copies and the median's sort hold a group's rows, not
    every column's (~850 MB at 1M x 24; the indicator alone ~230 MB). One column alone would
    be summed pairwise, not row by row: other last bits."""
    groups = [numeric[i:i + NUM_GROUP] for i in range(0, len(numeric), NUM_GROUP)]
    if len(groups) > 1 and len(groups[-1]) == 1:
        last = groups.pop()
        groups[-1] = groups[-1] + last
    return groups


def _fitted(numeric: list[str], categorical: list[str], df: pd.DataFrame) -> FittedParts:
    from sklearn.impute import MissingIndicator, SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    parts: dict[str, tuple[Any, list[str]]] = {}
    groups = _groups(numeric)
    for g, cols in enumerate(groups):  # num0, num1, ...: in numeric's order
        parts[f"num{g}"] = (Pipeline([("impute", SimpleImputer(strategy="median")),
                                      ("scale", StandardScaler())]), cols)
    for g, cols in enumerate(groups):  # missing0, ...: the indicators, in numeric's order
        # Indicators only where train has gaps; a gap first seen in test is just imputed.
        parts[f"missing{g}"] = (MissingIndicator(features="missing-only", error_on_new=False),
                                cols)
    if categorical:
        parts["cat"] = (OneHotEncoder(handle_unknown="ignore", sparse_output=False,
                                      dtype=np.float64), categorical)
    for tr, cols in parts.values():
        tr.fit(df[cols])
    width = int(FittedParts(parts, 0).transform(df.iloc[:1]).shape[1])
    return FittedParts(parts, width)


def _describe(
    ct: FittedParts,
    numeric: list[str],
    categorical: list[str],
    comp: Competition,
    target: dict[str, Any],
) -> dict[str, Any]:
    """Everything needed to redo the transform without sklearn: the JSON preprocessor."""
    spec: dict[str, Any] = {
        "version": PREP_VERSION,
        "id": comp.id,
        "target": {"column": comp.target, "task": comp.task, **target},
        "drop": list(comp.drop),
        "numeric": [],
        "missing_indicators": [],
        "categorical": [],
        "missing_category": MISSING,
    }
    names: list[str] = []
    for name, (num, cols) in ct.parts.items():
        if not name.startswith("num"):
            continue
        imputer, scaler = num.named_steps["impute"], num.named_steps["scale"]
        kept = list(imputer.get_feature_names_out(cols))  # all-empty columns are dropped
        for i, c in enumerate(kept):
            median = float(imputer.statistics_[cols.index(c)])
            mean, scale = float(scaler.mean_[i]), float(scaler.scale_[i])
            spec["numeric"].append({"name": c, "median": median, "mean": mean, "scale": scale})
        names += kept
    flagged = [cols[i] for name, (indicator, cols) in ct.parts.items()
               if name.startswith("missing") for i in indicator.features_]
    spec["missing_indicators"] = flagged
    names += [f"{c}[missing]" for c in flagged]
    if categorical:
        enc = ct.parts["cat"][0]
        for c, cats in zip(categorical, enc.categories_, strict=True):
            kept = [str(v) for v in cats]
            spec["categorical"].append({"name": c, "categories": kept})
            names += [f"{c}={v}" for v in kept]
    spec["feature_names"] = names
    return spec


def transform(spec: dict[str, Any], df: pd.DataFrame) -> np.ndarray:
    """Apply a saved preprocessor.json to a frame (no sklearn, no pickle): same columns as prep."""
    blocks: list[np.ndarray] = []
    df = _with_dates(df, spec.get("dates", []))
    for col in spec["numeric"]:
        x = df[col["name"]].astype(np.float64).fillna(col["median"]).to_numpy()
        blocks.append((x - col["mean"]) / col["scale"])
    for name in spec["missing_indicators"]:
        blocks.append(df[name].isna().to_numpy(dtype=np.float64))
    for col in spec["categorical"]:
        labels = category_labels(df[col["name"]]).to_numpy()
        blocks += [(labels == v).astype(np.float64) for v in col["categories"]]
        if col.get("other"):  # a PREP_VERSION 3 preprocessor's column of rare levels
            blocks.append(np.isin(labels, col["other"]).astype(np.float64))
    for col in spec.get("embedded", []):  # level codes; a level train.csv never had: UNSEEN
        blocks.append(level_codes(category_labels(df[col["name"]]).to_numpy(), col["levels"]))
    # float32 like the prepared arrays, so raw rows predict exactly as prepared ones do
    return (np.column_stack(blocks).astype(np.float32) if blocks
            else np.empty((len(df), 0), np.float32))
