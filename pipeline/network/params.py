"""The network's hyperparameters, declared once: name, default, constraint, one-line meaning.

Everything else is derived from ``PARAMS``: the estimators' defaults and validation, the fit
loop's ``TrainConfig``, the experiment file's ``[model]`` / ``[tune.space]`` checks, the comments
``pipeline init`` writes and ``pipeline train --set`` parsing. Where scikit-learn's MLP has the
same parameter, the constraint is scikit-learn's (``_parameter_constraints``), so a value one of
them accepts the other accepts too.

    validate("momentum", 1)            -> 1.0
    validate("learning_rate_init", 0)  -> ValueError: learning_rate_init must be a float > 0 ...
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from dataclasses import dataclass, field, make_dataclass
from typing import Any

import numpy as np

from .activations import HIDDEN_ACTIVATIONS


# --- constraints ---------------------------------------------------------------------------
class Constraint:
    """What values a parameter accepts; ``canonical`` is the value the code then uses."""

    def accepts(self, value: Any) -> bool:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def canonical(self, value: Any) -> Any:
        return value

    def examples(self) -> tuple[list[Any], list[Any]]:
        """(accepted, rejected) sample values: the tests walk them through every checker."""
        raise NotImplementedError


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool | np.bool_)


def _is_real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool | np.bool_)


@dataclass(frozen=True)
class Interval(Constraint):
    """A number between ``low`` and ``high`` (None: unbounded); ``closed`` says which ends count.

    ``integer`` intervals take whole numbers only; real intervals take ints too (as float).
    """

    integer: bool
    low: float | None
    high: float | None
    closed: str = "left"  # "left" | "right" | "both" | "neither"
    allow_inf: bool = False  # scikit-learn's n_iter_no_change also takes inf ("never stop")

    def accepts(self, v: Any) -> bool:
        if self.allow_inf and _is_real(v) and v == math.inf:
            return True
        if not (_is_int(v) if self.integer else _is_real(v)) or not math.isfinite(v):
            return False
        lo_ok = self.low is None or (v >= self.low if self.closed in ("left", "both")
                                      else v > self.low)
        hi_ok = self.high is None or (v <= self.high if self.closed in ("right", "both")
                                       else v < self.high)
        return lo_ok and hi_ok

    def describe(self) -> str:
        kind = "an int" if self.integer else "a float"
        if self.low is not None and self.high is not None:
            left = "[" if self.closed in ("left", "both") else "("
            right = "]" if self.closed in ("right", "both") else ")"
            text = f"{kind} in {left}{self.low:g}, {self.high:g}{right}"
        elif self.low is not None:
            text = f"{kind} {'>=' if self.closed in ('left', 'both') else '>'} {self.low:g}"
        else:
            text = kind
        return text + (" or inf" if self.allow_inf else "")

    def canonical(self, v: Any) -> Any:
        if v == math.inf:
            return math.inf
        return int(v) if self.integer else float(v)

    def examples(self) -> tuple[list[Any], list[Any]]:
        lo = 0 if self.low is None else self.low
        inside = lo + 1 if self.high is None else (lo + self.high) / 2
        inside = int(inside) if self.integer else inside
        ok = [inside] + ([math.inf] if self.allow_inf else [])
        bad: list[Any] = ["1", True, math.nan]
        if self.low is not None:
            (ok if self.closed in ("left", "both") else bad).append(self.low)
            bad.append(self.low - 1)
        if self.high is not None:
            (ok if self.closed in ("right", "both") else bad).append(self.high)
            bad.append(self.high + 1)
        if self.integer:
            bad.append(inside + 0.5)
        return ok, bad


@dataclass(frozen=True)
class Options(Constraint):
    """One of a few strings; ``aliases`` map other spellings to one of them."""

    values: tuple[str, ...]
    aliases: dict[str, str] = field(default_factory=dict)

    def accepts(self, v: Any) -> bool:
        return isinstance(v, str) and (v in self.values or v in self.aliases)

    def describe(self) -> str:
        names = [repr(n) for n in (*self.values, *self.aliases)]
        return names[0] if len(names) == 1 else "one of " + ", ".join(names)

    def canonical(self, v: Any) -> Any:
        return self.aliases.get(v, v)

    def examples(self) -> tuple[list[Any], list[Any]]:
        return [*self.values, *self.aliases], ["nope", 1, None]


@dataclass(frozen=True)
class Boolean(Constraint):
    def accepts(self, v: Any) -> bool:
        return isinstance(v, bool | np.bool_)

    def describe(self) -> str:
        return "true or false"

    def canonical(self, v: Any) -> Any:
        return bool(v)

    def examples(self) -> tuple[list[Any], list[Any]]:
        return [True, False], [1, "yes", None]


@dataclass(frozen=True)
class Layers(Constraint):
    """Hidden layer widths: an int or a sequence of ints >= 1; empty means no hidden layer."""

    def accepts(self, v: Any) -> bool:
        if _is_int(v):
            return v >= 1
        if isinstance(v, str | bytes | dict) or not isinstance(v, Iterable):
            return False
        return all(_is_int(u) and u >= 1 for u in v)

    def describe(self) -> str:
        return "a list of ints >= 1 (empty: no hidden layer)"

    def canonical(self, v: Any) -> Any:
        return (int(v),) if _is_int(v) else tuple(int(u) for u in v)

    def examples(self) -> tuple[list[Any], list[Any]]:
        return [[32], [64, 32], [], 8], [[0], [32, -1], "32", [1.5], None]


@dataclass(frozen=True)
class Columns(Constraint):
    """Distinct column indices (ints >= 0), in any order; empty means none."""

    def accepts(self, v: Any) -> bool:
        if isinstance(v, str | bytes | dict) or not isinstance(v, Iterable):
            return False
        v = list(v)
        return all(_is_int(u) and u >= 0 for u in v) and len(set(v)) == len(v)

    def describe(self) -> str:
        return "a list of distinct column indices >= 0"

    def canonical(self, v: Any) -> Any:
        return tuple(int(u) for u in v)

    def examples(self) -> tuple[list[Any], list[Any]]:
        return [[], ()], [[-1], [0, 0], "0", [1.5], 3, None]


@dataclass(frozen=True)
class Either(Constraint):
    """Any of several constraints (batch_size: 'auto' or an int >= 1)."""

    options: tuple[Constraint, ...]

    def accepts(self, v: Any) -> bool:
        return any(c.accepts(v) for c in self.options)

    def describe(self) -> str:
        return " or ".join(c.describe() for c in self.options)

    def canonical(self, v: Any) -> Any:
        return next(c.canonical(v) for c in self.options if c.accepts(v))

    def examples(self) -> tuple[list[Any], list[Any]]:
        ok = [v for c in self.options for v in c.examples()[0]]
        bad = [v for c in self.options for v in c.examples()[1] if not self.accepts(v)]
        return ok, bad


@dataclass(frozen=True)
class Seed(Constraint):
    """scikit-learn's random_state: None, an int >= 0, or a RandomState / Generator."""

    def accepts(self, v: Any) -> bool:
        return (v is None or (_is_int(v) and 0 <= v < 2**32)
                or isinstance(v, np.random.RandomState | np.random.Generator))

    def describe(self) -> str:
        return "None, an int in [0, 2**32) or a numpy RandomState / Generator"

    def examples(self) -> tuple[list[Any], list[Any]]:
        return [None, 0, 42], [-1, "0", 1.5]


# --- the table -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Param:
    name: str
    default: Any
    constraint: Constraint
    help: str
    experiment: bool = True  # may appear in an experiment file's [model] and [tune.space]
    regressor_only: bool = False

    def validate(self, value: Any) -> Any:
        """The canonical value, or ValueError naming the parameter and what it expects."""
        if not self.constraint.accepts(value):
            raise ValueError(f"{self.name} must be {self.constraint.describe()}; got {value!r}")
        return self.constraint.canonical(value)


def _real(low: float | None, high: float | None = None, closed: str = "left") -> Interval:
    return Interval(False, low, high, closed)


def _int(low: int) -> Interval:
    return Interval(True, low, None, "left")


PARAMS: tuple[Param, ...] = (
    Param("hidden_layer_sizes", (32,), Layers(),
          "units per hidden layer; [] is logistic / softmax / linear regression"),
    Param("activation", "sigmoid",
          Options(HIDDEN_ACTIVATIONS, {"logistic": "sigmoid"}),
          "hidden units' activation"),
    Param("numeric_encoding", "none", Options(("none", "ple", "periodic")),
          "continuous columns: as given, piecewise-linear bins (ple) or periodic embeddings"),
    Param("n_bins", 16, _int(2), "ple: bins per continuous column at most"),
    Param("binning", "tree", Options(("tree", "quantile")),
          "ple: bin edges from a small decision tree on the labels, or quantiles"),
    Param("periodic_frequencies", 16, _int(1), "periodic: learned frequencies per column"),
    Param("periodic_scale", 0.1, _real(0, closed="neither"),
          "periodic: spread of the initial frequencies"),
    Param("embedding_dim", 16, _int(1), "periodic: units each column's embedding outputs"),
    Param("categorical_columns", (), Columns(),
          "columns of X holding level codes (ints >= 0; others are unseen levels), each "
          "embedded; prepare sets them for columns with more than one_hot_max levels",
          experiment=False),
    Param("categorical_dim", 8, _int(1), "categorical: units of each level's embedding"),
    Param("categorical_min_count", 2, _int(1),
          "categorical: levels on fewer training rows share the learned 'other' vector"),
    Param("dropout", 0.0, _real(0, 1, "left"), "share of hidden units dropped per step"),
    Param("solver", "adam", Options(("sgd", "adam")), "optimiser: adam, or sgd with momentum"),
    Param("alpha", 1e-4, _real(0), "L2 penalty on the weights"),
    Param("weight_decay", 0.0, _real(0), "decoupled weight decay (adam: AdamW)"),
    Param("batch_size", 64, Either((Options(("auto",)), _int(1))),
          "rows per step; auto = min(200, rows)"),
    Param("learning_rate_init", 1e-3, _real(0, closed="neither"), "step size"),
    Param("lr_schedule", "constant", Options(("constant", "cosine")),
          "learning rate over the epochs: constant, or cosine decay to 0 at max_iter"),
    Param("warmup_epochs", 0, _int(0), "epochs of linear learning-rate warm-up"),
    Param("max_iter", 200, _int(1), "epochs at most"),
    Param("shuffle", True, Boolean(), "shuffle the rows every epoch"),
    Param("random_state", None, Seed(), "seed of initial weights, shuffling and splits",
          experiment=False),
    Param("tol", 1e-4, _real(0), "smallest improvement that counts (stopping rule)"),
    Param("momentum", 0.9, _real(0, 1, "both"), "sgd momentum"),
    Param("nesterovs_momentum", True, Boolean(), "sgd: Nesterov's momentum"),
    Param("early_stopping", False, Boolean(),
          "stop on a validation split of the training rows, keep its best epoch"),
    Param("early_stopping_metric", "score", Options(("score", "loss")),
          "early_stopping watches the validation score (scikit-learn) or loss"),
    Param("validation_fraction", 0.1, _real(0, 1, "left"),
          "share of training rows held out by early_stopping"),
    Param("n_iter_no_change", 10, Interval(True, 1, None, "left", allow_inf=True),
          "epochs without improvement before stopping"),
    Param("beta_1", 0.9, _real(0, 1, "left"), "adam: decay of the first moment"),
    Param("beta_2", 0.999, _real(0, 1, "left"), "adam: decay of the second moment"),
    Param("epsilon", 1e-8, _real(0, closed="neither"), "adam: numerical stability term"),
    Param("dtype", "float32", Options(("float32", "float64")), "training precision"),
    Param("scale_target", True, Boolean(),
          "regression: train on the standardised target, predict in its units",
          regressor_only=True),
    Param("target_transform", "none", Options(("none", "log1p")),
          "regression: train on log1p(y) and predict expm1 (for rmsle; needs y >= 0)",
          regressor_only=True),
    Param("loss", "squared", Options(("squared", "huber")),
          "regression: squared error, or Huber (robust; for mae / mape)",
          regressor_only=True),
    Param("verbose", False, Boolean(), "print the loss every epoch", experiment=False),
)

BY_NAME: dict[str, Param] = {p.name: p for p in PARAMS}
DEFAULTS: dict[str, Any] = {p.name: p.default for p in PARAMS}
# What an experiment file's [model] may hold: everything but seeds and console noise.
EXPERIMENT_PARAMS: tuple[str, ...] = tuple(p.name for p in PARAMS if p.experiment)
# The fit loop's settings (TrainConfig): the rest shape the network or the data.
TRAINING_PARAMS: tuple[str, ...] = (
    "solver", "alpha", "weight_decay", "batch_size", "learning_rate_init", "lr_schedule",
    "warmup_epochs", "max_iter", "shuffle", "tol", "momentum", "nesterovs_momentum",
    "early_stopping", "early_stopping_metric", "n_iter_no_change", "beta_1", "beta_2",
    "epsilon", "verbose",
)


def validate(name: str, value: Any) -> Any:
    """The canonical value of one parameter; ValueError for an unknown name or a bad value."""
    try:
        param = BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown parameter {name!r}") from None
    return param.validate(value)


def validate_all(values: dict[str, Any]) -> dict[str, Any]:
    """Every value canonical; the first bad one raises ValueError naming it."""
    return {name: validate(name, value) for name, value in values.items()}


def config_class(name: str, names: Iterable[str], doc: str) -> type:
    """A frozen dataclass of the named parameters with the table's defaults."""
    cls = make_dataclass(
        name, [(n, Any, field(default=BY_NAME[n].default)) for n in names], frozen=True
    )
    cls.__doc__ = doc
    return cls
