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
from pipeline.files import ISO
from pipeline.metrics import fit_problem
from pipeline.network.params import (
    BY_NAME,
    EXPERIMENT_PARAMS,
    Constraint,
    Either,
    Interval,
    config_class,
)

TASKS = ("binary", "multiclass", "regression")
# median: Optuna's MedianPruner; hyperband / halving: its HyperbandPruner /
# SuccessiveHalvingPruner on the epoch curve (multi-fidelity, README "Multi-fidelity tuning").
PRUNERS = ("median", "hyperband", "halving", "none")
# [cv] kind: stratified (classification only), kfold, group (a group's rows in one fold),
# time (validate on later rows only).
CV_KINDS = ("stratified", "kfold", "group", "time")
# Search-space keys that are not network parameters: they build `hidden_layer_sizes`
# (n_layers = 0 is the linear model).
SPACE_EXTRAS: dict[str, Interval] = {
    "n_layers": Interval(True, 0, None, "left"),
    "units": Interval(True, 1, None, "left"),
}

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
class Range:
    low: float
    high: float
    log: bool = False
    integer: bool = False
    step: float | None = None


@dataclass(frozen=True)
class Choice:
    choices: tuple[Any, ...]


@dataclass(frozen=True)
class Tune:
    trials: int = 30
    timeout: float | None = None
    seed: int = 0
    pruner: str = "median"
    # Trials completed before the pruner may stop anything, and epochs before it looks.
    pruner_startup_trials: int = 5
    pruner_warmup_epochs: int = 5
    keep: int = 10  # trials whose fold models the trials store keeps (the best ones)
    # Row fidelity: a trial first cross-validates on this share of the training rows; only
    # those whose score ranks in the best `promote` share so far go on to all rows (1.0: off).
    subsample: float = 1.0
    promote: float = 0.3
    # Optuna storage URL when neither --storage nor OPTUNA_STORAGE is given (e.g. grpc://h:p)
    storage: str | None = None
    space: dict[str, Range | Choice] = field(default_factory=dict)


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
    _check_keys(raw, {"competition", "model", "cv", "tune", "submit"}, path, "")
    if "competition" not in raw:
        raise PipelineError(f"{path}: missing section [competition]")
    comp = _section(raw, "competition", path)
    _check_keys(comp, {f.name for f in fields(Competition)}, path, "competition")
    for key in ("data_dir", "id", "target", "task", "metric"):
        if key not in comp:
            raise PipelineError(f"{path}: missing key [competition] {key}")
    competition = Competition(
        data_dir=Path(_typed(comp, "data_dir", str, path, "competition")),
        id=_typed(comp, "id", str, path, "competition"),
        target=_target(comp["target"], path),
        task=_one_of(comp, "task", TASKS, path, "competition"),
        metric=_typed(comp, "metric", str, path, "competition"),
        drop=tuple(_str_list(comp, "drop", path, "competition")),
        categorical=tuple(_str_list(comp, "categorical", path, "competition")),
        one_hot_max=_one_hot_max(comp, path),
        kaggle=_typed(comp, "kaggle", str, path, "competition") if "kaggle" in comp else None,
        dates=_dates(comp, path),
        features=_features_file(comp, path),
    )
    if problem := fit_problem(competition.metric, competition.task,
                              multi_target=competition.multi_target):
        raise PipelineError(
            f"{path}: [competition] metric = {competition.metric!r} {problem}")
    if competition.id in competition.targets:
        raise PipelineError(f"{path}: [competition] id and target are both {competition.id!r}")

    model = _parse_model(_section(raw, "model", path), path, competition.metric)

    cv = _parse_cv(_section(raw, "cv", path), competition, path)

    tune = _parse_tune(_section(raw, "tune", path), path)
    sub_raw = _section(raw, "submit", path)
    _check_keys(sub_raw, {"refit", "seeds"}, path, "submit")
    refit = sub_raw.get("refit", Submit.refit)
    if not isinstance(refit, bool):
        raise PipelineError(f"{path}: [submit] refit must be true or false, got {refit!r}")
    submit = Submit(refit=refit, seeds=_int(sub_raw, "seeds", path, "submit", Submit.seeds,
                                            minimum=1))
    return Experiment(name=path.stem, path=path, competition=competition, model=model, cv=cv,
                      tune=tune, submit=submit)


def default_fold_kind(comp: Competition) -> str:
    """Stratified for one column of classes; kfold for regression and several targets
    (stratifying on several columns at once is out of scope)."""
    return "kfold" if comp.task == "regression" or comp.multi_target else "stratified"


def _parse_cv(raw: dict[str, Any], comp: Competition, path: Path) -> CV:
    _check_keys(raw, {f.name for f in fields(CV)}, path, "cv")
    given = _one_of(raw, "kind", CV_KINDS, path, "cv") if "kind" in raw else None
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
        columns[key] = _typed(raw, key, str, path, "cv") if key in raw else None
    return CV(
        folds=_int(raw, "folds", path, "cv", CV.folds, minimum=2),
        seed=_int(raw, "seed", path, "cv", CV.seed, minimum=0),
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
    _check_keys(raw, set(EXPERIMENT_PARAMS), path, "model")
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


def _parse_tune(raw: dict[str, Any], path: Path) -> Tune:
    known = {f.name for f in fields(Tune)}
    _check_keys(raw, known, path, "tune")
    timeout = raw.get("timeout")
    if timeout is not None and (not _is_type(timeout, float) or timeout <= 0):
        raise PipelineError(
            f"{path}: [tune] timeout must be a positive number of seconds, got {timeout!r}"
        )
    space_raw = raw.get("space", {})
    if not isinstance(space_raw, dict):
        raise PipelineError(f"{path}: [tune] space must be a table, got {space_raw!r}")
    space: dict[str, Range | Choice] = {}
    allowed = {*EXPERIMENT_PARAMS, *SPACE_EXTRAS}
    for key, spec in space_raw.items():
        if key not in allowed:
            raise PipelineError(
                f"{path}: unknown key [tune.space] {key} "
                f"(expected one of {', '.join(sorted(allowed))})"
            )
        space[key] = _parse_dimension(key, spec, path)
    if ("units" in space) != ("n_layers" in space):
        raise PipelineError(
            f"{path}: [tune.space] n_layers and units go together; give both or neither"
        )
    if "hidden_layer_sizes" in space and "units" in space:
        raise PipelineError(
            f"{path}: [tune.space] give hidden_layer_sizes or n_layers/units, not both"
        )
    return Tune(
        trials=_int(raw, "trials", path, "tune", Tune.trials, minimum=1),
        timeout=float(timeout) if timeout is not None else None,
        seed=_int(raw, "seed", path, "tune", Tune.seed, minimum=0),
        pruner=_one_of(raw, "pruner", PRUNERS, path, "tune") if "pruner" in raw else Tune.pruner,
        pruner_startup_trials=_int(
            raw, "pruner_startup_trials", path, "tune", Tune.pruner_startup_trials, minimum=0
        ),
        pruner_warmup_epochs=_int(
            raw, "pruner_warmup_epochs", path, "tune", Tune.pruner_warmup_epochs, minimum=0
        ),
        keep=_int(raw, "keep", path, "tune", Tune.keep, minimum=0),
        storage=_storage(raw, path),
        space=space,
        **_fidelity(raw, path),
    )


def _fidelity(raw: dict[str, Any], path: Path) -> dict[str, float]:
    """[tune] subsample and promote: shares in (0, 1]; promote only means something with a
    subsample (a full-row study promotes nothing)."""
    out = {}
    for key, of in (("subsample", "the training rows"), ("promote", "the trials")):
        value = raw.get(key, getattr(Tune, key))
        if not _is_type(value, float) or not 0 < value <= 1:
            raise PipelineError(f"{path}: [tune] {key} must be a share of {of} in (0, 1], "
                                f"e.g. 0.2, got {value!r}")
        out[key] = float(value)
    if "promote" in raw and out["subsample"] == 1:
        raise PipelineError(f"{path}: [tune] promote only applies with subsample < 1 (trials "
                            "on a share of the rows first); set subsample or drop promote")
    return out


def _storage(raw: dict[str, Any], path: Path) -> str | None:
    """[tune] storage: an Optuna storage URL without a password (the file is logged with every
    run and usually committed; ~/.pgpass or OPTUNA_STORAGE keep it out)."""
    if "storage" not in raw:
        return None
    url = _typed(raw, "storage", str, path, "tune")
    creds = url.split("://", 1)[1].rpartition("@")[0] if "://" in url else ""
    if ":" in creds:
        raise PipelineError(f"{path}: [tune] storage must not hold a password (it is logged "
                            "with every run); use ~/.pgpass, or --storage / OPTUNA_STORAGE")
    return url


def _parse_dimension(key: str, spec: Any, path: Path) -> Range | Choice:
    where = f"[tune.space] {key}"
    constraint = SPACE_EXTRAS.get(key) or BY_NAME[key].constraint
    if isinstance(spec, list):
        if not spec:
            raise PipelineError(f"{path}: {where} is an empty list of choices")
        return Choice(tuple(_choice(constraint, v, path, where) for v in spec))
    if not isinstance(spec, dict):
        raise PipelineError(
            f"{path}: {where} must be a list of choices or a range "
            f"{{ low = .., high = .. }}, got {spec!r}"
        )
    _check_keys(spec, {"low", "high", "log", "step"}, path, f"tune.space.{key}")
    if "low" not in spec or "high" not in spec:
        raise PipelineError(f"{path}: {where} range needs both low and high")
    interval = _interval(constraint)
    if interval is None:
        raise PipelineError(f"{path}: {where} takes a list of choices, not a range")
    low, high = spec["low"], spec["high"]
    if not (_is_type(low, float) and _is_type(high, float)) or not low < high:
        raise PipelineError(
            f"{path}: {where} needs numbers low < high, got low={low!r} high={high!r}"
        )
    if interval.integer and not (_is_type(low, int) and _is_type(high, int)):
        raise PipelineError(f"{path}: {where} is a whole number: low and high must be integers")
    for end, value in (("low", low), ("high", high)):
        if not interval.accepts(value):
            raise PipelineError(
                f"{path}: {where} {end} must be {interval.describe()}, got {value!r}"
            )
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise PipelineError(f"{path}: {where} log must be true or false, got {log!r}")
    if log and low <= 0:
        raise PipelineError(f"{path}: {where} log scale needs low > 0, got {low!r}")
    step = spec.get("step")
    if step is not None and (not _is_type(step, float) or step <= 0 or log):
        raise PipelineError(f"{path}: {where} step must be a positive number (and not with log)")
    return Range(float(low), float(high), log=log, integer=interval.integer, step=step)


def _choice(constraint: Constraint, value: Any, path: Path, where: str) -> Any:
    if not constraint.accepts(value):
        raise PipelineError(
            f"{path}: {where} choices must be {constraint.describe()}, got {value!r}"
        )
    return constraint.canonical(value)


def _interval(constraint: Constraint) -> Interval | None:
    """The numeric part of a constraint a range can be drawn from (batch_size: the ints)."""
    if isinstance(constraint, Interval):
        return constraint
    if isinstance(constraint, Either):
        return next((c for c in constraint.options if isinstance(c, Interval)), None)
    return None


# --- small checkers ------------------------------------------------------------------------


def _is_type(value: Any, expected: type) -> bool:
    if isinstance(value, bool):
        return expected is bool
    if expected is float:
        return isinstance(value, int | float)
    return isinstance(value, expected)


def _section(raw: dict[str, Any], name: str, path: Path) -> dict[str, Any]:
    value = raw.get(name, {})
    if not isinstance(value, dict):
        raise PipelineError(f"{path}: [{name}] must be a table, got {value!r}")
    return value


def _check_keys(raw: dict[str, Any], known: set[str], path: Path, section: str) -> None:
    for key in raw:
        if key not in known:
            where = f"[{section}] {key}" if section else f"[{key}]"
            raise PipelineError(
                f"{path}: unknown key {where} (expected one of {', '.join(sorted(known))})"
            )


def _typed(raw: dict[str, Any], key: str, expected: type, path: Path, section: str) -> Any:
    value = raw[key]
    if not _is_type(value, expected) or (expected is str and not value):
        raise PipelineError(
            f"{path}: [{section}] {key} must be a non-empty {expected.__name__}, got {value!r}"
        )
    return value


def _one_of(
    raw: dict[str, Any], key: str, options: tuple[str, ...], path: Path, section: str
) -> str:
    value = raw[key]
    if value not in options:
        raise PipelineError(
            f"{path}: [{section}] {key} must be one of {', '.join(options)}, got {value!r}"
        )
    return value


def _str_list(raw: dict[str, Any], key: str, path: Path, section: str) -> list[str]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PipelineError(
            f"{path}: [{section}] {key} must be a list of column names, got {value!r}"
        )
    return value


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
    if not _is_type(value, int) or not 2 <= value <= MAX_LEVELS:
        raise PipelineError(f"{path}: [competition] one_hot_max must be an integer in "
                            f"[2, {MAX_LEVELS}], got {value!r}")
    return value


def _int(
    raw: dict[str, Any], key: str, path: Path, section: str, default: int, minimum: int
) -> int:
    value = raw.get(key, default)
    if not _is_type(value, int) or value < minimum:
        raise PipelineError(
            f"{path}: [{section}] {key} must be an integer >= {minimum}, got {value!r}"
        )
    return value
