"""The experiment file: `experiments/<name>.toml` loaded into small frozen dataclasses.

Every key is validated here, once, so the stages can trust what they get: an unknown key or
a wrong type is a `PipelineError` naming the file and the key.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError

# [tune] lives in its own module; its classes are re-exported, as every stage reads them here
from pipeline.experiment_tune import Choice, Range, Tune, parse_tune
from pipeline.files import ISO
from pipeline.metrics import fit_problem
from pipeline.network.params import (
    BY_NAME,
    EXPERIMENT_PARAMS,
    config_class,
)
from pipeline.toml_checks import (
    check_keys,
    int_value,
    is_type,
    one_of,
    str_list,
    table_of,
    typed,
)

TASKS = ("binary", "multiclass", "regression")
# [cv] kind: stratified (classification only), kfold, group (a group's rows in one fold),
# time (validate on later rows only).
CV_KINDS = ("stratified", "kfold", "group", "time")
EXPERIMENTS_DIR = Path("experiments")
ONE_HOT_MAX = 20  # [competition] one_hot_max's default
MAX_LEVELS = 10_000  # most levels a categorical column may have to be kept (init), one-hot
# An experiment name keys experiments/<name>.toml, its study, submissions/<name>/ and its
# registered model: a file name on every system, never an option (`-x`) or a path (`..`).
NAME_RULE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


def check_name(name: str, where: str = "--name") -> str:
    """`name` when it follows NAME_RULE; else one line saying the rule (and the fix)."""
    if name.endswith(".toml") and NAME_RULE.fullmatch(name.removesuffix(".toml")):
        raise PipelineError(f"{where} {name!r}: give the name without .toml "
                            f"(--name {name.removesuffix('.toml')})")
    if not NAME_RULE.fullmatch(name):
        shown = name if len(name) <= 40 else name[:37] + "..."
        raise PipelineError(
            f"{where} {shown!r}: an experiment name is 1-100 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit"
        )
    return name


@dataclass(frozen=True)
class Competition:
    data_dir: Path
    id: str
    target: str | tuple[str, ...]  # a tuple: several target columns, the sample's order
    task: str
    metric: str
    drop: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    # Text / categorical columns with more levels in train.csv than this are embedded by the
    # network (a learned vector per level); up to this many are one-hot encoded.
    one_hot_max: int = ONE_HOT_MAX
    kaggle: str | None = None
    # Date column -> strptime format, where the data cannot tell (01/02/2015) or to pin one.
    dates: dict[str, str] = field(default_factory=dict)
    # The experiment's feature code (`features(df) -> df`), relative to the project folder.
    features: Path | None = None

    @property
    def targets(self) -> tuple[str, ...]:
        """The target column(s), always a tuple."""
        return (self.target,) if isinstance(self.target, str) else self.target

    @property
    def multi_target(self) -> bool:
        return len(self.targets) > 1


class Model(config_class("ModelFields", EXPERIMENT_PARAMS, "[model]'s fields.")):
    """[model]: this experiment's network defaults. Keys, defaults and constraints are the
    network's hyperparameter table (`pipeline.network.params`), scikit-learn's MLP names."""

    def params(self) -> dict[str, Any]:
        """Constructor keyword arguments for the network estimators."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class CV:
    folds: int = 5
    seed: int = 42
    kind: str | None = None  # None: stratified for classification, kfold for regression
    group: str | None = None  # the column that keeps a group's rows in one fold (kind group)
    time: str | None = None  # the date or number column that orders rows (kind time)


@dataclass(frozen=True)
class Submit:
    """[submit]: what `pipeline submit` trains (the command line's --refit / --seeds win)."""

    refit: bool = True  # one model on every row; false: average the fold models
    seeds: int = 1  # bagging: repeat with this many seeds and average every model


@dataclass(frozen=True)
class Experiment:
    name: str
    path: Path
    competition: Competition
    model: Model = Model()
    cv: CV = CV()
    tune: Tune = Tune()
    submit: Submit = Submit()

    @property
    def fold_kind(self) -> str:
        """[cv] kind, or the task's default: stratified for classification, else kfold."""
        return self.cv.kind if self.cv.kind is not None else default_fold_kind(self.competition)

    def fold_scheme(self) -> str:
        """The folds in one string (study identity, run tag): `stratified/5/seed42`,
        `group(store)/5/seed42`, `time(date)/5` (time folds have no randomness)."""
        kind, cv = self.fold_kind, self.cv
        if kind == "time":
            return f"time({cv.time})/{cv.folds}"
        name = f"group({cv.group})" if kind == "group" else kind
        return f"{name}/{cv.folds}/seed{cv.seed}"

    def as_dict(self) -> dict[str, Any]:
        """The resolved configuration, for logging with every run."""

        def plain(v: Any) -> Any:
            if isinstance(v, Path):
                return str(v)
            if isinstance(v, tuple):
                return [plain(x) for x in v]
            if isinstance(v, Range | Choice):
                return {k: plain(x) for k, x in v.__dict__.items()}
            if isinstance(v, dict):
                return {k: plain(x) for k, x in v.items()}
            return v

        out: dict[str, Any] = {"name": self.name}
        for section in ("competition", "model", "cv", "tune", "submit"):
            obj = getattr(self, section)
            out[section] = {f.name: plain(getattr(obj, f.name)) for f in fields(obj)}
        out["cv"]["kind"] = self.fold_kind
        return out


# --- loading -------------------------------------------------------------------------------


def resolve(name_or_path: str | Path) -> Path:
    """`avocado` -> experiments/avocado.toml; a path is taken as given."""
    s = str(name_or_path)
    if s.endswith(".toml") or "/" in s or Path(s).is_file():
        path = Path(s)
    else:
        path = EXPERIMENTS_DIR / f"{s}.toml"
    if not path.is_file():
        found = EXPERIMENTS_DIR.glob("*.toml") if EXPERIMENTS_DIR.is_dir() else []
        known = sorted(p.stem for p in found)
        hint = f"; known experiments: {', '.join(known)}" if known else ""
        raise PipelineError(
            f"{path}: experiment file not found (run `pipeline init DATA_DIR`{hint})"
        )
    return path


def load(name_or_path: str | Path) -> Experiment:
    path = resolve(name_or_path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise PipelineError(f"{path}: not valid TOML ({e})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise PipelineError(f"{path}: cannot read ({e})") from None
    return parse(raw, path)


def parse(raw: dict[str, Any], path: Path) -> Experiment:
    """Validate a parsed TOML document; every problem names `path` and the key."""
    check_keys(raw, {"competition", "model", "cv", "tune", "submit"}, path, "")
    if "competition" not in raw:
        raise PipelineError(f"{path}: missing section [competition]")
    comp = table_of(raw, "competition", path)
    check_keys(comp, {f.name for f in fields(Competition)}, path, "competition")
    for key in ("data_dir", "id", "target", "task", "metric"):
        if key not in comp:
            raise PipelineError(f"{path}: missing key [competition] {key}")
    competition = Competition(
        data_dir=Path(typed(comp, "data_dir", str, path, "competition")),
        id=typed(comp, "id", str, path, "competition"),
        target=_target(comp["target"], path),
        task=one_of(comp, "task", TASKS, path, "competition"),
        metric=typed(comp, "metric", str, path, "competition"),
        drop=tuple(str_list(comp, "drop", path, "competition")),
        categorical=tuple(str_list(comp, "categorical", path, "competition")),
        one_hot_max=_one_hot_max(comp, path),
        kaggle=typed(comp, "kaggle", str, path, "competition") if "kaggle" in comp else None,
        dates=_dates(comp, path),
        features=_features_file(comp, path),
    )
    if problem := fit_problem(competition.metric, competition.task,
                              multi_target=competition.multi_target):
        raise PipelineError(
            f"{path}: [competition] metric = {competition.metric!r} {problem}")
    if competition.id in competition.targets:
        raise PipelineError(f"{path}: [competition] id and target are both {competition.id!r}")

    model = _parse_model(table_of(raw, "model", path), path, competition.metric)

    cv = _parse_cv(table_of(raw, "cv", path), competition, path)

    tune = parse_tune(table_of(raw, "tune", path), path)
    sub_raw = table_of(raw, "submit", path)
    check_keys(sub_raw, {"refit", "seeds"}, path, "submit")
    refit = sub_raw.get("refit", Submit.refit)
    if not isinstance(refit, bool):
        raise PipelineError(f"{path}: [submit] refit must be true or false, got {refit!r}")
    submit = Submit(refit=refit, seeds=int_value(sub_raw, "seeds", path, "submit", Submit.seeds,
                                            minimum=1))
    return Experiment(name=path.stem, path=path, competition=competition, model=model, cv=cv,
                      tune=tune, submit=submit)


def default_fold_kind(comp: Competition) -> str:
    """Stratified for one column of classes; kfold for regression and several targets
    (stratifying on several columns at once is out of scope)."""
    return "kfold" if comp.task == "regression" or comp.multi_target else "stratified"


def _parse_cv(raw: dict[str, Any], comp: Competition, path: Path) -> CV:
    check_keys(raw, {f.name for f in fields(CV)}, path, "cv")
    given = one_of(raw, "kind", CV_KINDS, path, "cv") if "kind" in raw else None
    kind = given or default_fold_kind(comp)
    if kind == "stratified" and default_fold_kind(comp) != "stratified":
        what = "several targets" if comp.multi_target else "task regression"
        raise PipelineError(
            f'{path}: [cv] kind = "stratified" needs one column of classes; {what} uses '
            '"kfold" (or "group" / "time")'
        )
    columns: dict[str, str | None] = {}
    for key in ("group", "time"):
        if key in raw and kind != key:
            raise PipelineError(
                f'{path}: [cv] {key} is only used with kind = "{key}" (kind is "{kind}")'
            )
        if kind == key and key not in raw:
            raise PipelineError(
                f'{path}: [cv] kind = "{key}" needs {key} = "<column of train.csv>"'
            )
        columns[key] = typed(raw, key, str, path, "cv") if key in raw else None
    return CV(
        folds=int_value(raw, "folds", path, "cv", CV.folds, minimum=2),
        seed=int_value(raw, "seed", path, "cv", CV.seed, minimum=0),
        kind=given, **columns,
    )


def _target(value: Any, path: Path) -> str | tuple[str, ...]:
    """One column name, or a list of several distinct ones (several targets)."""
    if isinstance(value, str) and value:
        return value
    if (isinstance(value, list) and value and all(isinstance(v, str) and v for v in value)):
        if len(set(value)) < len(value):
            dup = next(v for v in value if value.count(v) > 1)
            raise PipelineError(f"{path}: [competition] target names {dup!r} twice")
        return value[0] if len(value) == 1 else tuple(value)
    raise PipelineError(f"{path}: [competition] target must be a column name or a list of "
                        f"column names, got {value!r}")


def metric_fit(metric: str) -> dict[str, Any]:
    """[model] entries that fit the regressor's loss to the metric (README "Metric-fitted
    training", measured by benchmarks/bench_metric_fit.py): rmsle is the squared error of
    log1p(y), so the network trains on it; mae and mape are L1-like, so a robust loss.
    They are the defaults of an experiment with that metric; [model] keys win over them."""
    if metric == "rmsle":
        return {"target_transform": "log1p"}
    if metric in ("mae", "mape"):
        return {"loss": "huber"}
    return {}


def _parse_model(raw: dict[str, Any], path: Path, metric: str) -> Model:
    check_keys(raw, set(EXPERIMENT_PARAMS), path, "model")
    given = {key: model_value(key, value, path, f"[model] {key}") for key, value in raw.items()}
    return Model(**{**metric_fit(metric), **given})


def model_value(key: str, value: Any, path: Path | str, where: str) -> Any:
    """One network parameter checked by the hyperparameter table (the estimator's own check),
    as the canonical value; used for [model], search choices and --set."""
    constraint = BY_NAME[key].constraint
    if not constraint.accepts(value):
        raise PipelineError(f"{path}: {where} must be {constraint.describe()}, got {value!r}")
    return constraint.canonical(value)


def toml_value(value: Any) -> str:
    """A value as TOML source (the experiment files `init` writes)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON's escapes are valid TOML
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return repr(value)


def model_lines(values: dict[str, Any]) -> str:
    """[model] entries as TOML, each under its meaning from the hyperparameter table."""
    return "".join(f"# {BY_NAME[k].help}\n{k} = {toml_value(v)}\n" for k, v in values.items())


def parse_overrides(exp: Experiment, overrides: list[str]) -> dict[str, Any]:
    """`key=value` strings -> validated [model] values (TOML syntax: 0.01, [64, 32], "relu")."""
    out: dict[str, Any] = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        key, text = key.strip(), text.strip()
        if not sep or not key:
            raise PipelineError(f"--set {item!r}: expected key=value, e.g. learning_rate_init=0.01")
        if key not in EXPERIMENT_PARAMS:
            raise PipelineError(
                f"--set {key}: unknown [model] key (expected one of {', '.join(EXPERIMENT_PARAMS)})"
            )
        try:
            value = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            value = text  # a bare word such as relu
        out[key] = model_value(key, value, exp.path, f"--set {key}")
    return out


def _dates(raw: dict[str, Any], path: Path) -> dict[str, str]:
    """[competition] dates: a table column -> strptime format ("%d/%m/%Y"); whether the
    column exists and the format reads it is prepare's check (it needs the data)."""
    value = raw.get("dates", {})
    if not isinstance(value, dict):
        raise PipelineError(
            f'{path}: [competition] dates must be a table {{ column = "format" }}, '
            f'e.g. dates = {{ sold = "%d/%m/%Y" }}, got {value!r}'
        )
    for col, fmt in value.items():
        if not isinstance(fmt, str) or ("%" not in fmt and fmt != ISO):
            raise PipelineError(
                f'{path}: [competition] dates.{col} must be a strptime format such as '
                f'"%d/%m/%Y" (or "{ISO}"), got {fmt!r}'
            )
    return dict(value)


def _features_file(raw: dict[str, Any], path: Path) -> Path | None:
    """[competition] features: a .py file; whether it exists and defines `features` is
    prepare's check (the file is read there, for the fingerprint)."""
    if "features" not in raw:
        return None
    value = raw["features"]
    if not isinstance(value, str) or not value.endswith(".py"):
        raise PipelineError(
            f'{path}: [competition] features must be the path of a .py file, e.g. '
            f'features = "experiments/{path.stem}_features.py", got {value!r}')
    return Path(value)


def _one_hot_max(comp: dict[str, Any], path: Path) -> int:
    value = comp.get("one_hot_max", ONE_HOT_MAX)
    if not is_type(value, int) or not 2 <= value <= MAX_LEVELS:
        raise PipelineError(f"{path}: [competition] one_hot_max must be an integer in "
                            f"[2, {MAX_LEVELS}], got {value!r}")
    return value
