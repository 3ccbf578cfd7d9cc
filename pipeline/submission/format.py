"""The competition's submission format, read from its own files, and Kaggle's parser checks.

`sample_submission.csv` fixes the header, the column order and the row order; `test.csv` fixes
the id set; `train.csv` fixes how labels are spelled. Every id and label is handled as the
string the files spell it, so `007`, `True` or `>50K` survive the round trip unchanged.
"""

from __future__ import annotations

import io
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.decision import Decision, apply
from pipeline.errors import PipelineError
from pipeline.experiment import Experiment
from pipeline.files import check_delimiter
from pipeline.metrics import METRICS, to_labels, top_k, top_k_of
from pipeline.metrics import TOP_K as NEEDS_TOP_K

# kinds of submission: what the value column(s) hold
PROBA = "proba"  # one column: P(positive class)
CLASS_PROBA = "class_proba"  # one probability column per class, named by the class label
LABEL = "label"  # one column: class labels spelled like train.csv
VALUE = "value"  # one column: regression values
TOP_K = "top_k"  # one column: the k likeliest labels, space-separated, likeliest first (map@k)
MULTI_TARGET = "multi_target"  # one column per target: P(1) (binary) or values (regression)

SHOWN = 5  # bad ids named in a message


@dataclass(frozen=True)
class Format:
    sample: Path
    test: Path
    id: str
    header: tuple[str, ...]
    ids: tuple[str, ...]  # the sample's ids in its order, spelled as the sample spells them
    test_ids: tuple[str, ...]  # test.csv order
    kind: str
    labels: tuple[str, ...]  # train.csv's target spellings (classification), sorted
    class_columns: dict[str, str]  # label spelling -> column (CLASS_PROBA only)
    k: int = 0  # labels listed per row at most (TOP_K only)
    targets: tuple[str, ...] = ()  # the experiment's target columns, prediction order
    probabilities: bool = False  # MULTI_TARGET: every value is a P(1), in [0, 1]

    @property
    def value_columns(self) -> tuple[str, ...]:
        return tuple(c for c in self.header if c != self.id)


# --- reading the competition ---------------------------------------------------------------


def _read(path: Path | io.StringIO, **kwargs: Any) -> pd.DataFrame:
    """Cells as the strings the file spells (no NA guessing); bad files -> PipelineError.

    Spaces after a comma are skipped, as `files.read_csv` skips them for init and prepare:
    a 'id, y' file is read alike by every stage."""
    try:
        return pd.read_csv(
            path, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8-sig",
            skipinitialspace=True, **kwargs
        )
    except FileNotFoundError:
        raise PipelineError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise PipelineError(f"{path}: is a directory, expected a CSV file") from None
    except pd.errors.EmptyDataError:
        raise PipelineError(f"{path}: file is empty (expected a CSV with a header row)") from None
    except pd.errors.ParserError as e:
        raise PipelineError(f"{path}: not a valid CSV ({' '.join(str(e).split())})") from None
    except UnicodeDecodeError:
        raise PipelineError(f"{path}: not UTF-8 text") from None
    except OSError as e:
        raise PipelineError(f"{path}: cannot read ({e.strerror or e})") from None


def read_csv_text(path: Path | io.StringIO) -> pd.DataFrame:
    """A whole CSV, strictly: the header exactly as spelled (duplicates kept) and a row with
    more fields than the header is an error (pandas would silently make it an index)."""
    raw = _read(path, header=None)
    frame = raw.iloc[1:].reset_index(drop=True)
    frame.columns = list(raw.iloc[0])
    return frame


def header_of(path: Path) -> list[str]:
    return list(_read(path, header=None, nrows=1).iloc[0])


def _column(path: Path, column: str, what: str) -> pd.Series:
    header = header_of(path)
    if column not in header:
        raise PipelineError(f"{path}: no {what} column {column!r} in header {header}")
    return _read(path, usecols=[column])[column]


def train_labels(exp: Experiment) -> tuple[str, ...]:
    """The target's spellings in train.csv (blank cells are missing targets, not a class)."""
    comp = exp.competition
    values = _column(comp.data_dir / "train.csv", comp.target, "target")
    return tuple(sorted(set(values[values.str.strip() != ""])))


def load_format(exp: Experiment) -> Format:
    comp = exp.competition
    sample, test = comp.data_dir / "sample_submission.csv", comp.data_dir / "test.csv"
    if not sample.is_file():
        raise PipelineError(
            f"{sample}: file not found (the competition's sample submission fixes the header "
            "and row order of every submission)"
        )
    frame = read_csv_text(sample)
    header = tuple(frame.columns)
    if comp.id not in header:
        raise PipelineError(
            f"{sample}: header {list(header)} has no id column {comp.id!r} "
            "(the experiment's [competition] id)"
        )
    if len(header) < 2:
        raise PipelineError(f"{sample}: header {list(header)} has no prediction column")
    ids = tuple(frame[comp.id])
    test_ids = tuple(_column(test, comp.id, "id"))
    problems = id_problems(ids, test_ids)
    if problems:
        raise PipelineError(f"{sample}: ids do not match {test}: {'; '.join(problems)}")
    labels = train_labels(exp) if comp.task != "regression" and not comp.multi_target else ()
    kind, class_columns = _kind(exp, header, labels, sample)
    first = frame[[c for c in header if c != comp.id][0]]
    if kind == LABEL:
        labels = _spelled_like_sample(labels, first)
    k = 0
    if kind == TOP_K:
        k = top_k_of(METRICS[comp.metric])
        labels = _spelled_like_sample(labels, pd.Series(" ".join(first).split(), dtype=str))
        if spaced := [lab for lab in labels if len(lab.split()) != 1]:
            raise PipelineError(f"{comp.data_dir / 'train.csv'}: label {spaced[0]!r} of "
                                f"{comp.target!r} cannot be listed space-separated ({comp.metric})")
    return Format(sample, test, comp.id, header, ids, test_ids, kind, labels, class_columns, k,
                  comp.targets, kind == MULTI_TARGET and comp.task == "binary")


def _kind(
    exp: Experiment, header: tuple[str, ...], labels: tuple[str, ...], sample: Path
) -> tuple[str, dict[str, str]]:
    comp = exp.competition
    values = [c for c in header if c != comp.id]
    if comp.multi_target:
        if sorted(values) != sorted(comp.targets):
            raise PipelineError(f"{sample}: columns {values} are not the targets "
                                f"{list(comp.targets)} of the experiment (one column each)")
        return MULTI_TARGET, {}
    if comp.task == "regression":
        if len(values) != 1:
            raise PipelineError(f"{sample}: regression needs one value column, found {values}")
        return VALUE, {}
    if len(values) > 1:
        matched = match_class_columns(values, labels)
        if matched is None:
            raise PipelineError(
                f"{sample}: columns {values} do not name the classes of train.csv's "
                f"{comp.target!r} ({', '.join(labels)})"
            )
        return CLASS_PROBA, matched
    if METRICS[comp.metric].needs == "proba" and comp.task == "binary":
        return PROBA, {}
    if METRICS[comp.metric].needs == NEEDS_TOP_K:
        return TOP_K, {}
    # accuracy, or a multiclass sample with a single column: the sample's shape wins
    return LABEL, {}


def _spelled_like_sample(labels: tuple[str, ...], cells: pd.Series) -> tuple[str, ...]:
    """Whole-number labels that train.csv spells as floats ('0.0', '1.0') are written as the
    sample writes them ('0') when it writes integers: the answer key is spelled like the sample.
    Any other spelling ('01', 'yes') is kept."""
    sample = [c.strip() for c in cells if c.strip()]
    if not sample or not all(re.fullmatch(r"[+-]?\d+", c) for c in sample):
        return labels
    whole = re.compile(r"([+-]?\d+)\.0*")
    return tuple(sorted({m[1] if (m := whole.fullmatch(s)) else s for s in labels}))


def match_class_columns(columns: list[str], labels: tuple[str, ...]) -> dict[str, str] | None:
    """label -> column: exact names, else case-insensitive, else after a shared prefix
    (`Class_1`, `Class_2` for labels 1, 2)."""
    if len(columns) != len(labels):
        return None
    shared = os.path.commonprefix(columns)
    keys = [(lambda c: c), str.lower] + [
        (lambda c, k=k: c[k:].lower()) for k in range(len(shared), 0, -1)
    ]
    for n, key in enumerate(keys):
        by_key = {key(c): c for c in columns}
        found = {lab: by_key.get(lab if n == 0 else lab.lower()) for lab in labels}
        chosen = {lab: col for lab, col in found.items() if col is not None}
        if len(chosen) == len(labels) and len(set(chosen.values())) == len(labels):
            return chosen
    return None


# --- class labels: codes <-> the competition's spellings ----------------------------------


def same_label(spelled: str, label: Any) -> bool:
    """Does a file's spelling denote the class `label` (as prepare parsed it)?"""
    s = str(spelled).strip()
    if isinstance(label, bool | np.bool_):
        return s.lower() == str(bool(label)).lower()
    if isinstance(label, int | float | np.integer | np.floating):
        try:
            return float(s) == float(label)
        except ValueError:
            return False
    return s == str(label).strip()


def spellings(classes: tuple | list, labels: tuple[str, ...]) -> list[str]:
    """How train.csv spells each class code (code i = classes[i])."""
    out = []
    for c in classes:
        match = [s for s in labels if same_label(s, c)]
        exact = [s for s in match if s == str(c)]
        out.append((exact or match or [str(c)])[0])
    return out


def codes_of(spelled: pd.Series, classes: tuple | list, where: str) -> np.ndarray:
    """Map label spellings (from any file) back to class codes; unknown labels are an error."""
    lookup: dict[str, int] = {}
    for s in pd.unique(spelled):
        hits = [i for i, c in enumerate(classes) if same_label(s, c)]
        if not hits:
            known = ", ".join(str(c) for c in classes)
            raise PipelineError(f"{where}: label {s!r} is not a class of train.csv ({known})")
        lookup[s] = hits[0]
    return spelled.map(lookup).to_numpy(np.int64)


# --- predictions -> frame ------------------------------------------------------------------


def decided(kind: str, decision: Decision, pred: np.ndarray) -> np.ndarray:
    """What a file of this kind writes after the decision chosen on OOF: class codes for a
    label file, integer ratings for qwk's value file; probabilities stay as they are."""
    if decision.kind == "none" or kind not in (LABEL, VALUE):
        return pred
    return apply(decision, pred)


def values_cell(pred: np.ndarray) -> np.ndarray:
    """A value column: integers (decided ratings) stay integers, `3` as the sample spells
    them; anything else is written as a float."""
    pred = np.asarray(pred)
    return pred.astype(np.int64) if pred.dtype.kind in "iu" else pred.astype(np.float64)


def value_cells(
    kind: str, pred: np.ndarray, columns: tuple[str, ...] | list[str], spelled: list[str], *,
    k: int, targets: tuple[str, ...] | list[str], class_columns: list[str],
) -> dict[str, Any]:
    """A submission's value columns from decided predictions, one writer for `submit` and the
    registered model (`tracking.scoring`): `spelled[i]` is class code i as train.csv spells
    it; `class_columns[i]` its probability column."""
    first = columns[0]
    if kind in (VALUE, PROBA):
        return {first: values_cell(pred)}
    if kind == LABEL:
        return {first: np.array(spelled, dtype=object)[to_labels(pred)]}
    if kind == TOP_K:
        listed = np.array(spelled, dtype=object)[top_k(pred, k)]
        return {first: [" ".join(row) for row in listed]}
    if kind == MULTI_TARGET:
        return {target: pred[:, j].astype(np.float64) for j, target in enumerate(targets)}
    proba = np.column_stack([1 - pred, pred]) if pred.ndim == 1 else pred
    return {column: proba[:, code].astype(np.float64)
            for code, column in enumerate(class_columns)}


def to_frame(
    fmt: Format, pred: np.ndarray, pred_ids: np.ndarray, classes: tuple | None
) -> pd.DataFrame:
    """Metric-form predictions (rows in `pred_ids` order) -> the submission, sample's order."""
    position = {str(i): n for n, i in enumerate(pred_ids)}
    missing = [i for i in fmt.ids if i not in position]
    if missing:
        raise PipelineError(
            f"{fmt.sample}: {len(missing)} id(s) have no prediction (the prepared test ids "
            f"differ): {_first(missing)}"
        )
    pred = np.asarray(pred)[[position[i] for i in fmt.ids]]
    spelled = spellings(classes or (), fmt.labels)
    class_columns = [fmt.class_columns[s] for s in spelled] if fmt.kind == CLASS_PROBA else []
    columns: dict[str, Any] = {fmt.id: list(fmt.ids)}
    columns.update(value_cells(fmt.kind, pred, fmt.value_columns, spelled, k=fmt.k,
                               targets=fmt.targets, class_columns=class_columns))
    return pd.DataFrame(columns)[list(fmt.header)]


def to_csv_text(frame: pd.DataFrame) -> str:
    # repr floats: probabilities round-trip exactly, so the file scores as the model did
    return frame.to_csv(index=False, lineterminator="\n")


def parse_text(text: str) -> pd.DataFrame:
    return read_csv_text(io.StringIO(text))


# --- Kaggle's checks -----------------------------------------------------------------------


def id_problems(ids: tuple[str, ...] | list[str], expected: tuple[str, ...]) -> list[str]:
    """Duplicate, unexpected and missing ids (the first few of each) and the row count."""
    seen: set[str] = set()
    dups = []
    for i in ids:
        if i in seen:
            dups.append(i)
        seen.add(i)
    want = set(expected)
    extra = [i for i in dict.fromkeys(ids) if i not in want]
    missing = [i for i in expected if i not in seen]
    problems = [
        f"{len(dict.fromkeys(bad))} {what} id(s): {_first(bad)}"
        for what, bad in (("duplicate", dups), ("unexpected", extra), ("missing", missing))
        if bad
    ]
    if len(ids) != len(expected):
        problems.append(f"{len(ids)} rows, expected {len(expected)}")
    return problems


def _first(values: list[str]) -> str:
    unique = list(dict.fromkeys(values))
    return ", ".join(repr(v) for v in unique[:SHOWN]) + (", ..." if len(unique) > SHOWN else "")


def check(frame: pd.DataFrame, fmt: Format, where: str | Path) -> None:
    """Raise PipelineError naming every problem Kaggle would reject the file for."""
    header = tuple(frame.columns)
    if len(header) == 1 and header != fmt.header:
        check_delimiter(Path(where), str(header[0]))
    if header != fmt.header:
        raise PipelineError(
            f"{where}: header is {list(header)}, expected {list(fmt.header)} "
            f"(the header of {fmt.sample})"
        )
    ids = list(frame[fmt.id])
    problems = id_problems(ids, fmt.test_ids)
    for column in fmt.value_columns:
        problems += _value_problems(frame[column], ids, column, fmt)
    if problems:
        raise PipelineError(f"{where}: {'; '.join(problems)}")


def _value_problems(cells: pd.Series, ids: list[str], column: str, fmt: Format) -> list[str]:
    if fmt.kind == LABEL:
        bad = ~cells.isin(fmt.labels).to_numpy()
        allowed = ", ".join(fmt.labels)
        return _report(bad, ids, cells, column, f"is not in {{{allowed}}}")
    if fmt.kind == TOP_K:
        return _listed_problems(cells, ids, column, fmt)
    values = numeric(cells)
    what = "is empty, NaN, infinite or non-numeric"
    problems = _report(~np.isfinite(values), ids, cells, column, what)
    if fmt.kind in (PROBA, CLASS_PROBA) or fmt.probabilities:
        with np.errstate(invalid="ignore"):
            out = np.isfinite(values) & ((values < 0) | (values > 1))
        problems += _report(out, ids, cells, column, "is outside [0, 1]")
    return problems


def _listed_problems(cells: pd.Series, ids: list[str], column: str, fmt: Format) -> list[str]:
    """A TOP_K cell lists 1..k distinct labels of train.csv, space-separated."""
    lists = [str(c).split() for c in cells]
    known = set(fmt.labels)
    count = np.array([not 1 <= len(ls) <= fmt.k for ls in lists])
    dup = np.array([len(set(ls)) < len(ls) for ls in lists])
    unknown = np.array([not set(ls) <= known for ls in lists])
    allowed = ", ".join(fmt.labels)
    return (_report(count, ids, cells, column, f"does not list 1 to {fmt.k} labels")
            + _report(dup & ~count, ids, cells, column, "lists a label twice")
            + _report(unknown, ids, cells, column, f"lists a label not in {{{allowed}}}"))


def numeric(cells: pd.Series) -> np.ndarray:
    """Cells as floats; anything unparsable becomes NaN."""
    parsed = pd.to_numeric(cells.astype(str).str.strip(), errors="coerce")
    return parsed.to_numpy(np.float64, na_value=math.nan)


def _report(
    bad: np.ndarray, ids: list[str], cells: pd.Series, column: str, problem: str
) -> list[str]:
    """`data row 1444 (id 12345), column 'ripe': 1.2 is outside [0, 1]`: rows counted from 1
    after the header, as an editor past the header line shows them; the first few, and how many."""
    rows = np.flatnonzero(bad)
    if not rows.size:
        return []

    def where(i: int) -> str:
        return f"data row {i + 1} (id {ids[i]})"

    def value(i: int) -> str:
        text = str(cells.iloc[i])
        return text if text.strip() else repr(text)

    first = rows[0]
    text = f"{where(first)}, column {column!r}: {value(first)} {problem}"
    if rows.size > 1:
        text += "; also " + ", ".join(f"{where(i)}: {value(i)}" for i in rows[1:SHOWN])
    if rows.size > SHOWN:
        text += f", ... ({rows.size} rows in all)"
    return [text]


def check_file(fmt: Format, file: Path) -> pd.DataFrame:
    frame = read_csv_text(file)
    check(frame, fmt, file)
    return frame


# --- file frame -> metric form (local scoring) ---------------------------------------------


def metric_form(
    frame: pd.DataFrame, fmt: Format, order: list[str], classes: tuple | None, where: str | Path
) -> np.ndarray:
    """A checked submission as the metric expects it, rows in `order` (ids)."""
    frame = frame.set_index(fmt.id).loc[order]
    if fmt.kind in (VALUE, PROBA):
        return numeric(frame[fmt.value_columns[0]])
    if fmt.kind == CLASS_PROBA:
        columns = [fmt.class_columns[s] for s in spellings(classes or (), fmt.labels)]
        return np.column_stack([numeric(frame[c]) for c in columns])
    if fmt.kind == MULTI_TARGET:
        return np.column_stack([numeric(frame[t]) for t in fmt.targets])
    if fmt.kind == TOP_K:
        return _ranked_codes(frame[fmt.value_columns[0]], fmt.k, classes or (), str(where))
    codes = codes_of(frame[fmt.value_columns[0]], classes or (), str(where))
    return np.eye(len(classes or ()))[codes]  # one-hot: the metrics argmax it back to codes


def _ranked_codes(cells: pd.Series, k: int, classes: tuple | list, where: str) -> np.ndarray:
    """Listed labels -> (n, k) class codes, likeliest first; a shorter list ends in -1 (a code
    no answer has), so MAP@k scores its missing ranks 0."""
    lists = [str(c).split()[:k] for c in cells]
    tokens = pd.Series([t for ls in lists for t in ls], dtype=str)
    codes = iter(codes_of(tokens, classes, where))
    out = np.full((len(lists), k), -1, dtype=np.int64)
    for i, ls in enumerate(lists):
        for j in range(len(ls)):
            out[i, j] = next(codes)
    return out
