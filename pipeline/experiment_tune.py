"""The experiment file's [tune] section: the study's budget, pruner, row fidelity, storage
and search space (`[tune.space]`), checked key by key like the rest of the file."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError
from pipeline.network.params import BY_NAME, EXPERIMENT_PARAMS, Constraint, Either, Interval
from pipeline.toml_checks import check_keys, int_value, is_type, one_of, typed

# median: Optuna's MedianPruner; hyperband / halving: its HyperbandPruner /
# SuccessiveHalvingPruner on the epoch curve (multi-fidelity, README "Multi-fidelity tuning").
PRUNERS = ("median", "hyperband", "halving", "none")
# Search-space keys that are not network parameters: they build `hidden_layer_sizes`
# (n_layers = 0 is the linear model).
SPACE_EXTRAS: dict[str, Interval] = {
    "n_layers": Interval(True, 0, None, "left"),
    "units": Interval(True, 1, None, "left"),
}


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
    # those whose score ranks in the best `promote` share so far go on to all rows, one fold
    # first and the others if that fold ranks there too (1.0: off).
    subsample: float = 1.0
    promote: float = 0.3
    # Optuna storage URL when neither --storage nor OPTUNA_STORAGE is given (e.g. grpc://h:p)
    storage: str | None = None
    space: dict[str, Range | Choice] = field(default_factory=dict)



def parse_tune(raw: dict[str, Any], path: Path) -> Tune:
    known = {f.name for f in fields(Tune)}
    check_keys(raw, known, path, "tune")
    timeout = raw.get("timeout")
    if timeout is not None and (not is_type(timeout, float) or timeout <= 0):
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
        trials=int_value(raw, "trials", path, "tune", Tune.trials, minimum=1),
        timeout=float(timeout) if timeout is not None else None,
        seed=int_value(raw, "seed", path, "tune", Tune.seed, minimum=0),
        pruner=one_of(raw, "pruner", PRUNERS, path, "tune") if "pruner" in raw else Tune.pruner,
        pruner_startup_trials=int_value(
            raw, "pruner_startup_trials", path, "tune", Tune.pruner_startup_trials, minimum=0
        ),
        pruner_warmup_epochs=int_value(
            raw, "pruner_warmup_epochs", path, "tune", Tune.pruner_warmup_epochs, minimum=0
        ),
        keep=int_value(raw, "keep", path, "tune", Tune.keep, minimum=0),
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
        if not is_type(value, float) or not 0 < value <= 1:
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
    url = typed(raw, "storage", str, path, "tune")
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
    check_keys(spec, {"low", "high", "log", "step"}, path, f"tune.space.{key}")
    if "low" not in spec or "high" not in spec:
        raise PipelineError(f"{path}: {where} range needs both low and high")
    interval = _interval(constraint)
    if interval is None:
        raise PipelineError(f"{path}: {where} takes a list of choices, not a range")
    low, high = spec["low"], spec["high"]
    if not (is_type(low, float) and is_type(high, float)) or not low < high:
        raise PipelineError(
            f"{path}: {where} needs numbers low < high, got low={low!r} high={high!r}"
        )
    if interval.integer and not (is_type(low, int) and is_type(high, int)):
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
    if step is not None and (not is_type(step, float) or step <= 0 or log):
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
