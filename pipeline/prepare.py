"""Data prep: a competition's raw CSVs -> numeric arrays plus a fitted preprocessor (JSON).

Fit on train only (median imputation + missing indicators, one-hot encoding, standardisation),
apply to test aligned by column name, and cache the result under
data/<competition>/prepared/<fingerprint>/ so a second run with the same inputs is free.
Every problem with the input is a `PipelineError` that names the file, column or key.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pipeline.errors import PipelineError
from pipeline.experiment import Competition, Experiment
from pipeline.files import (
    COMPETITION_FILES,
    DATE_PARTS,
    ISO,
    date_format,
    one_line,
    parse_dates,
    read_csv,
)

# Bump when the transform changes, so old caches are not reused.
PREP_VERSION = 3
MISSING = "<missing>"  # a missing categorical value is a category of its own
# One-hot columns per categorical column, the last one shared by all rarer levels: a zip code
# or user id with thousands of levels would otherwise make X dense gigabytes.
MAX_CATEGORIES = 50
OTHER = "<other>"  # the feature-name label of that shared column
DATA_DIR = Path("data")

if TYPE_CHECKING:  # sklearn costs ~1 s to import; only a cache miss needs it
    from sklearn.compose import ColumnTransformer


@dataclass(frozen=True)
class Prepared:
    X_train: np.ndarray  # (n_train, n_features) float64
    y: np.ndarray  # int64 codes 0..k-1 (code i = classes[i]); float64 for regression
    train_ids: np.ndarray  # 'U' strings, train.csv order
    X_test: np.ndarray  # (n_test, n_features) float64, test.csv order
    test_ids: np.ndarray  # 'U' strings, test.csv order
    feature_names: tuple[str, ...]
    classes: tuple | None  # original target labels, sorted; None for regression
    fingerprint: str
    path: Path
    groups: np.ndarray | None = None  # [cv] kind = "group": each train row's group ('U')
    order: np.ndarray | None = None  # [cv] kind = "time": each train row's time (float64)


def prepare(exp: Experiment, *, force: bool = False) -> Prepared:
    """The prepared arrays for `exp`, from the cache when inputs and settings are unchanged."""
    comp = exp.competition
    files = {name: comp.data_dir / name for name in COMPETITION_FILES}
    for path in files.values():
        if not path.is_file():
            raise PipelineError(f"{path}: file not found (expected a Kaggle-layout competition)")
    fingerprint = _fingerprint(files, comp, _fold_column(exp))
    out = cache_root(comp) / fingerprint
    if not force and (cached := _load_cached(out, fingerprint)) is not None:
        return cached
    arrays, spec = _build(exp, files)
    spec["fingerprint"] = fingerprint
    _write_cache(out, arrays, spec)
    return _from_arrays(arrays, spec, out)


def cache_root(comp: Competition) -> Path:
    """data/<basename of data_dir>/prepared, relative to the project root (the cwd)."""
    return DATA_DIR / comp.data_dir.resolve().name / "prepared"


def load_preprocessor(prepared: Prepared) -> dict[str, Any]:
    """The fitted preprocessor (feature names, medians, categories, scales, target classes)."""
    return json.loads((prepared.path / "preprocessor.json").read_text(encoding="utf-8"))


# --- fingerprint and cache -----------------------------------------------------------------


def _fingerprint(files: dict[str, Path], comp: Competition, fold_column: str | None) -> str:
    h = hashlib.sha256(f"prep-v{PREP_VERSION}\n".encode())
    settings: dict[str, Any] = {
        k: getattr(comp, k) for k in ("id", "target", "task", "drop", "categorical", "dates")}
    if fold_column is not None:  # group / time folds add an array; other kinds change nothing
        settings["folds"] = fold_column
    h.update(json.dumps(settings, sort_keys=True).encode())
    for name, path in sorted(files.items()):
        h.update(f"\n{name}\n".encode())
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def _load_cached(out: Path, fingerprint: str) -> Prepared | None:
    try:
        spec = json.loads((out / "preprocessor.json").read_text(encoding="utf-8"))
        with np.load(out / "arrays.npz", allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, KeyError):
        return None  # absent or damaged: rebuild
    if spec.get("fingerprint") != fingerprint or spec.get("version") != PREP_VERSION:
        return None
    return _from_arrays(arrays, spec, out)


def _from_arrays(arrays: dict[str, np.ndarray], spec: dict[str, Any], out: Path) -> Prepared:
    classes = spec["target"]["classes"]
    return Prepared(
        X_train=arrays["X_train"],
        y=arrays["y"],
        train_ids=arrays["train_ids"],
        X_test=arrays["X_test"],
        test_ids=arrays["test_ids"],
        feature_names=tuple(spec["feature_names"]),
        classes=tuple(classes) if classes is not None else None,
        fingerprint=spec["fingerprint"],
        path=out,
        groups=arrays.get("groups"),
        order=arrays.get("order"),
    )


def _write_cache(out: Path, arrays: dict[str, np.ndarray], spec: dict[str, Any]) -> None:
    """Write into a temp dir beside `out`, then rename: a failed run leaves nothing behind."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    tmp.chmod(0o755)  # mkdtemp makes it private; the cache is ordinary project output
    try:
        np.savez(tmp / "arrays.npz", **arrays)
        (tmp / "preprocessor.json").write_text(json.dumps(spec, indent=1), encoding="utf-8")
        if out.exists():  # --force, or a damaged cache
            shutil.rmtree(out)
        try:
            os.replace(tmp, out)
        except OSError:
            if not (out / "preprocessor.json").is_file():  # not a parallel run that won
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --- building ------------------------------------------------------------------------------


def _build(exp: Experiment, files: dict[str, Path]) -> tuple[dict[str, np.ndarray], dict]:
    comp = exp.competition
    train_file, test_file = files["train.csv"], files["test.csv"]
    declared = tuple(comp.dates)  # read as the text the format is for: 20150731 too
    train = read_csv(train_file, id_col=comp.id, str_cols=declared)
    test = read_csv(test_file, id_col=comp.id, str_cols=declared)
    _require_columns(train, train_file, (comp.target,))
    _require_columns(test, test_file, (comp.id,))
    # Many competitions keep the id in test.csv and the sample only: train rows are numbered.
    train_ids = (_ids(train[comp.id], train_file, comp.id) if comp.id in train.columns
                 else np.arange(len(train)).astype(str))
    test_ids = _ids(test[comp.id], test_file, comp.id)
    y, target_spec = encode_target(train[comp.target], comp, train_file, train_ids)
    fold_keys = _fold_keys(exp, train, train_file)

    features = _feature_columns(train, comp, exp.path, train_file)
    _require_columns(test, test_file, features, why="a feature column of train.csv")
    categorical = [c for c in features if c in comp.categorical or not _is_numeric(train[c])]
    dates = _date_specs(exp, categorical, (train, train_file), (test, test_file))
    date_cols = {d["name"] for d in dates}
    categorical = [c for c in categorical if c not in date_cols]
    numeric = [c for c in features if c not in categorical and c not in date_cols]
    numeric += [f"{d['name']}.{part}" for d in dates for part in d["parts"]]
    train, test = _with_dates(train, dates), _with_dates(test, dates)
    X_train_df = _frame(train, numeric, categorical, train_file)
    X_test_df = _frame(test, numeric, categorical, test_file, numeric_in=train_file)

    ct = _transformer(numeric, categorical).fit(X_train_df)
    X_train = np.asarray(ct.transform(X_train_df), dtype=np.float64)
    X_test = np.asarray(ct.transform(X_test_df), dtype=np.float64)
    spec = _describe(ct, numeric, categorical, comp, target_spec)
    spec["dates"] = dates
    spec["n_train"], spec["n_test"] = len(train), len(test)
    arrays = {"X_train": X_train, "y": y, "train_ids": train_ids, "X_test": X_test,
              "test_ids": test_ids, **fold_keys}
    return arrays, spec


def _fold_column(exp: Experiment) -> str | None:
    """`group:<column>` / `time:<column>` when the folds need a column of train.csv."""
    kind = exp.fold_kind
    column = {"group": exp.cv.group, "time": exp.cv.time}.get(kind)
    return f"{kind}:{column}" if column is not None else None


def _fold_keys(exp: Experiment, train: pd.DataFrame, file: Path) -> dict[str, np.ndarray]:
    """What evaluate.folds needs besides y: each row's group, or its time as a number (a date
    column in days since 1970, parsed as prepare parses dates). The column may be a feature."""
    if (kind_column := _fold_column(exp)) is None:
        return {}
    kind, column = kind_column.split(":", 1)
    _require_columns(train, file, (column,), why=f"[cv] {kind} in {exp.path}")
    s = train[column]
    if s.isna().any():
        rows = ", ".join(str(i + 2) for i in np.flatnonzero(s.isna().to_numpy())[:5])
        raise PipelineError(
            f"{file}: column {column!r} ([cv] {kind}) has {int(s.isna().sum())} empty value(s) "
            f"(lines {rows}); every row needs its {kind} for the folds"
        )
    if kind == "group":
        return {"groups": _categories(s).to_numpy(dtype=str)}
    fmt = exp.competition.dates.get(column) or date_format(s, file=file)
    if fmt is not None:  # the declared format, or the one that reads the whole column
        order = (parse_dates(s, fmt) - pd.Timestamp("1970-01-01")) / pd.Timedelta(days=1)
    else:
        order = pd.to_numeric(s, errors="coerce")  # numbers (or an id column read as text)
    bad = s[order.isna().to_numpy()]
    if len(bad):
        raise PipelineError(
            f"{file}: column {column!r} ([cv] time) holds {bad.iloc[:3].tolist()!r}; "
            "expected dates or numbers to order the rows by"
        )
    return {"order": order.to_numpy(dtype=np.float64)}


def _require_columns(
    df: pd.DataFrame, file: Path, columns: Any, why: str = "a required column"
) -> None:
    for col in columns:
        if col not in df.columns:
            shown = ", ".join(map(str, df.columns[:12])) + (" ..." if df.shape[1] > 12 else "")
            raise PipelineError(f"{file}: no column {col!r} ({why}); columns are: {shown}")


def _ids(ids: pd.Series, file: Path, col: str) -> np.ndarray:
    if ids.isna().any():
        rows = ", ".join(str(i + 2) for i in np.flatnonzero(ids.isna().to_numpy())[:5])
        raise PipelineError(f"{file}: id column {col!r} has empty values (lines {rows})")
    dup = ids[ids.duplicated()].unique()
    if len(dup):
        shown = ", ".join(repr(str(v)) for v in dup[:5]) + (" ..." if len(dup) > 5 else "")
        raise PipelineError(
            f"{file}: id column {col!r} has {len(dup)} duplicated id(s): {shown} "
            "(expected one row per id)"
        )
    return ids.to_numpy(dtype=str)


def _is_numeric(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s)


def _plain(v: Any) -> Any:
    """numpy scalar -> the Python value, so labels go to JSON as they were."""
    return v.item() if isinstance(v, np.generic) else v


def encode_target(
    y: pd.Series, comp: Competition, file: Path, ids: np.ndarray
) -> tuple[np.ndarray, dict[str, Any]]:
    """Class codes (sorted original labels) or float values, plus the mapping for the JSON."""
    where = f"{file}: target {comp.target!r}"
    if y.isna().any():
        missing = ", ".join(repr(str(i)) for i in ids[y.isna().to_numpy()][:5])
        raise PipelineError(
            f"{where} has {int(y.isna().sum())} missing value(s) (ids {missing}); "
            "expected a value in every row"
        )
    if comp.task == "regression":
        if not _is_numeric(y) or pd.api.types.is_bool_dtype(y):
            bad = y[pd.to_numeric(y, errors="coerce").isna()].iloc[:3].tolist()
            raise PipelineError(f"{where} must be numeric for task regression, got {bad!r}")
        return y.to_numpy(dtype=np.float64), {"classes": None}
    classes = sorted(_plain(v) for v in y.unique())
    if len(classes) < 2:
        raise PipelineError(
            f"{where} has only one class {classes!r} (task {comp.task} expects at least 2)"
        )
    if comp.task == "binary" and len(classes) > 2:
        shown = ", ".join(map(repr, classes[:6])) + (" ..." if len(classes) > 6 else "")
        raise PipelineError(
            f"{where} has {len(classes)} classes ({shown}); task binary expects 2 "
            "(set task = \"multiclass\" in the experiment file)"
        )
    codes = pd.Categorical(y.map(_plain), categories=classes).codes
    return codes.astype(np.int64), {"classes": classes}


def _feature_columns(
    train: pd.DataFrame, comp: Competition, exp_path: Path, train_file: Path
) -> list[str]:
    for key in ("drop", "categorical"):
        for col in getattr(comp, key):
            if col not in train.columns or col in (comp.id, comp.target):
                what = "is the id or target" if col in train.columns else f"is not in {train_file}"
                raise PipelineError(
                    f"{exp_path}: [competition] {key} names column {col!r}, which {what}"
                )
    # A column with no value in train.csv teaches nothing, whatever test.csv holds in it (a
    # category first seen in test would otherwise be "text in a numeric column").
    features = [c for c in train.columns
                if c not in (comp.id, comp.target, *comp.drop) and train[c].notna().any()]
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
        cols[c] = _categories(df[c])
    return pd.DataFrame(cols, index=df.index)


def _numbers(s: pd.Series, col: str, file: Path, numeric_in: Path | None) -> pd.Series:
    """A numeric column as float64. A gap turns a bool column into objects (True / False /
    NaN), which are still numbers; only real text is an error."""
    if _is_numeric(s):
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


def _categories(s: pd.Series) -> pd.Series:
    """Text labels; 3 and 3.0 both become '3' so an int test column matches a float train one."""
    if _is_numeric(s) and not pd.api.types.is_bool_dtype(s):
        labels = [MISSING if pd.isna(v) else _number_label(v) for v in s.tolist()]
    else:
        labels = [MISSING if pd.isna(v) else str(v) for v in s.tolist()]
    return pd.Series(labels, index=s.index, dtype=object)


def _number_label(v: Any) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def _transformer(numeric: list[str], categorical: list[str]) -> ColumnTransformer:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import MissingIndicator, SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    scale = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    parts: list[tuple[str, Any, list[str]]] = []
    if numeric:
        parts.append(("num", scale, numeric))
        # Indicators only where train has gaps; a gap first seen in test is just imputed.
        parts.append(("missing", MissingIndicator(features="missing-only", error_on_new=False),
                      numeric))
    if categorical:
        parts.append(("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False,
                                           max_categories=MAX_CATEGORIES, dtype=np.float64),
                      categorical))
    return ColumnTransformer(parts, remainder="drop", sparse_threshold=0.0)


def _describe(
    ct: ColumnTransformer,
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
    if numeric:
        num = ct.named_transformers_["num"]
        imputer, scaler = num.named_steps["impute"], num.named_steps["scale"]
        kept = list(imputer.get_feature_names_out(numeric))  # all-empty columns are dropped
        for i, c in enumerate(kept):
            median = float(imputer.statistics_[numeric.index(c)])
            mean, scale = float(scaler.mean_[i]), float(scaler.scale_[i])
            spec["numeric"].append({"name": c, "median": median, "mean": mean, "scale": scale})
        names += kept
        flagged = [numeric[i] for i in ct.named_transformers_["missing"].features_]
        spec["missing_indicators"] = flagged
        names += [f"{c}[missing]" for c in flagged]
    if categorical:
        enc = ct.named_transformers_["cat"]
        rare = enc.infrequent_categories_
        for c, cats, other in zip(categorical, enc.categories_, rare, strict=True):
            other = [] if other is None else [str(v) for v in other]
            kept = [str(v) for v in cats if str(v) not in set(other)]
            spec["categorical"].append({"name": c, "categories": kept, "other": other})
            names += [f"{c}={v}" for v in kept] + ([f"{c}={OTHER}"] if other else [])
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
        labels = _categories(df[col["name"]]).to_numpy()
        blocks += [(labels == v).astype(np.float64) for v in col["categories"]]
        if col.get("other"):
            blocks.append(np.isin(labels, col["other"]).astype(np.float64))
    return np.column_stack(blocks) if blocks else np.empty((len(df), 0))
