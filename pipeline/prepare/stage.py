"""The prepare stage itself (the package's __init__ re-exports it): read the CSVs, check the
ids, hand the parts to their owners, cache the result; big inputs are built in a child."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.errors import PipelineError
from pipeline.experiment import Experiment
from pipeline.files import COMPETITION_FILES, read_csv
from pipeline.prepare.cache import (
    cache_root,
    input_fingerprint,
    load_cached,
    write_cache,
)
from pipeline.prepare.features import (
    Blocks,
    embedded_columns,
    encode_features,
    require_columns,
)
from pipeline.prepare.targets import encode_target, encode_targets, fold_column, fold_keys
from pipeline.prepare.user_features import (
    SOURCE_FILE,
    apply_pair,
    column_kinds,
    load_function,
    source,
)
from pipeline.processes import trim_heap

# Raw CSVs from this size on are prepared apart by a long-lived process (`prepare(apart=True)`):
# below it the heap left behind is small and a child's imports (~1.5 s) would cost more.
APART_BYTES = 32 << 20


@dataclass(frozen=True)
class Prepared:
    X_train: np.ndarray  # (n_train, n_features) float32, memory-mapped from the cache
    y: np.ndarray  # int64 codes 0..k-1 (code i = classes[i]); float64 for regression;
    # (n, m) float64 for several targets (0/1 for binary), the experiment's target order
    train_ids: np.ndarray  # 'U' strings, train.csv order
    X_test: np.ndarray  # (n_test, n_features) float32, test.csv order, memory-mapped
    test_ids: np.ndarray  # 'U' strings, test.csv order
    feature_names: tuple[str, ...]
    classes: tuple | None  # original target labels, sorted; None for regression / several
    fingerprint: str
    path: Path
    groups: np.ndarray | None = None  # [cv] kind = "group": each train row's group ('U')
    order: np.ndarray | None = None  # [cv] kind = "time": each train row's time (float64)
    # columns of X holding level codes (more than one_hot_max levels): the network embeds them
    categorical: tuple[int, ...] = ()


def prepare(exp: Experiment, *, force: bool = False, apart: bool = False) -> Prepared:
    """The prepared arrays for `exp`, from the cache when inputs and settings are unchanged.

    `apart`: a long-lived process (tune) builds a missing cache of big inputs in a child
    process and only maps the result: building holds pandas frames and Python strings several
    times the float32 arrays, and glibc hands little of a freed heap back, so the tune process
    would carry ~450 MB of it through the study (measured at 1M rows)."""
    comp = exp.competition
    files, code, fingerprint = _inputs(exp)
    out = cache_root(comp) / fingerprint
    # the feature code the arrays were made with, kept beside them for the registered model
    extra = {SOURCE_FILE: code} if code is not None else {}
    if not force and (cached := load_cached(out, fingerprint, tuple(extra))) is not None:
        return _from_arrays(*cached, out)
    if apart and big_inputs(exp):
        _build_in_child(exp, force)
        return prepare(exp)
    arrays, spec = _build(exp, files, code)
    spec["fingerprint"] = fingerprint
    write_cache(out, arrays, spec, extra, replace=force)
    del arrays  # read back memory-mapped: the same pages every worker reads
    cached = load_cached(out, fingerprint, tuple(extra))
    if cached is None:  # a parallel run replaced it with other arrays meanwhile
        raise PipelineError(f"{out}: the prepared arrays changed while being written; "
                            "run the command again")
    return _from_arrays(*cached, out)


def big_inputs(exp: Experiment) -> bool:
    """Whether `prepare(exp, apart=True)` builds a missing cache in a child process: raw
    files of APART_BYTES and more (False when a file is missing: `prepare` says which)."""
    files = [exp.competition.data_dir / name for name in COMPETITION_FILES]
    try:
        return sum(p.stat().st_size for p in files) >= APART_BYTES
    except OSError:
        return False


def _build_in_child(exp: Experiment, force: bool) -> None:
    """`prepare(exp)` in a fresh process (spawn: no copy of this one's threads or heap); its
    PipelineError comes back as it is. The child ends with us, however we end."""
    import os
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    with ProcessPoolExecutor(1, mp_context=get_context("spawn"), initializer=_child,
                             initargs=(os.getpid(),)) as pool:
        pool.submit(_prepare_only, exp, force).result()


def _child(parent: int) -> None:
    import signal

    from pipeline.processes import default_signals, die_with_parent

    default_signals()  # whatever it inherited (a script's background job ignores SIGINT)
    die_with_parent(signal.SIGTERM, parent)  # kill -9 of tune: the child does not finish alone


def _prepare_only(exp: Experiment, force: bool) -> None:
    prepare(exp, force=force)


def fingerprint(exp: Experiment) -> str:
    """The data fingerprint `prepare` would give, without reading or building the arrays."""
    return _inputs(exp)[2]


def _inputs(exp: Experiment) -> tuple[dict[str, Path], bytes | None, str]:
    """The raw files, the feature code's text and their fingerprint."""
    comp = exp.competition
    files = {name: comp.data_dir / name for name in COMPETITION_FILES}
    for path in files.values():
        if not path.is_file():
            raise PipelineError(f"{path}: file not found (expected a Kaggle-layout competition)")
    code = source(comp.features) if comp.features is not None else None
    return files, code, input_fingerprint(files, comp, fold_column(exp), code)


def load_preprocessor(prepared: Prepared) -> dict[str, Any]:
    """The fitted preprocessor (feature names, medians, categories, scales, target classes)."""
    return json.loads((prepared.path / "preprocessor.json").read_text(encoding="utf-8"))


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
        categorical=embedded_columns(spec),
    )


def _build(exp: Experiment, files: dict[str, Path], code: bytes | None
           ) -> tuple[dict[str, np.ndarray | Blocks], dict]:
    comp = exp.competition
    train_file, test_file = files["train.csv"], files["test.csv"]
    declared = tuple(comp.dates)  # read as the text the format is for: 20150731 too
    train = read_csv(train_file, id_col=comp.id, str_cols=declared)
    trim_heap()  # the CSV parser's buffers: ~200 MB at 1M rows that would stay resident
    test = read_csv(test_file, id_col=comp.id, str_cols=declared)
    trim_heap()
    require_columns(train, train_file, comp.targets)
    require_columns(test, test_file, (comp.id,))
    features_spec = None
    if code is not None:  # the experiment's own columns, before anything is typed or fitted
        features_spec = {"file": str(comp.features), "input": column_kinds(test)}
        train, test = apply_pair(load_function(comp.features, text=code), train, test,
                                 comp.id, comp.targets)
        features_spec["columns"] = [str(c) for c in test.columns if c != comp.id]
    # Many competitions keep the id in test.csv and the sample only: train rows are numbered.
    train_ids = (_ids(train[comp.id], train_file, comp.id) if comp.id in train.columns
                 else np.arange(len(train)).astype(str))
    test_ids = _ids(test[comp.id], test_file, comp.id)
    if comp.multi_target:
        y, target_spec = encode_targets(train, comp, train_file, train_ids)
    else:
        y, target_spec = encode_target(train[comp.target], comp, train_file, train_ids)
    keys = fold_keys(exp, train, train_file)

    X_train, X_test, spec = encode_features(exp, (train, train_file), (test, test_file),
                                            target_spec)
    spec["n_train"], spec["n_test"] = len(train), len(test)
    if features_spec is not None:  # what the registered model needs to rerun the code
        spec["features"] = features_spec
    arrays = {"X_train": X_train, "y": y, "train_ids": train_ids, "X_test": X_test,
              "test_ids": test_ids, **keys}
    return arrays, spec


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
