"""The search space of `[tune.space]`, define-by-run: what a trial suggests (a parameter only
when it applies, CONDITIONS), the network parameters that makes, the baseline trials every new
study starts with, and the check that a resumed study's space still fits its trials."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipeline.errors import PipelineError

if TYPE_CHECKING:
    from pipeline.experiment import Experiment

# Define-by-run: a parameter is searched only when it changes the network, given the values
# picked before it (or [model]'s, for a parameter not searched). A trial then holds only the
# parameters it used, and TPE spends no samples on dead dimensions.
# parameter -> (the parameter it depends on, the test, the value)
CONDITIONS: dict[str, tuple[str, str, Any]] = {
    "units": ("n_layers", ">", 0),
    "activation": ("n_layers", ">", 0),  # the linear model has no hidden unit to activate
    "dropout": ("n_layers", ">", 0),  # dropout drops hidden units only
    "periodic_scale": ("numeric_encoding", "==", "periodic"),
    "periodic_frequencies": ("numeric_encoding", "==", "periodic"),
    "embedding_dim": ("numeric_encoding", "==", "periodic"),
}
TESTS = {">": lambda a, b: a > b, "==": lambda a, b: a == b}


def applies(key: str, picked: dict[str, Any]) -> bool:
    """`key` matters given `picked` (the searched values over [model]'s; `n_layers` read from
    `hidden_layer_sizes` when it is not searched)."""
    if key not in CONDITIONS:
        return True
    on, test, value = CONDITIONS[key]
    if on == "n_layers" and "n_layers" not in picked:
        current: Any = len(tuple(picked.get("hidden_layer_sizes", ())))
    else:
        current = picked.get(on)
    return TESTS[test](current, value)


def used(values: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """The searched values and the network's parameters, without those that do not apply (the
    run's params in the UI; config.json keeps them all, to rebuild the network exactly)."""
    both = {**values, **params}
    return {k: v for k, v in both.items() if applies(k, both)}


def suggest(trial: Any, space: dict, model: dict[str, Any] | None = None) -> dict[str, Any]:
    """Searched values; `n_layers` + `units` become `hidden_layer_sizes`. A parameter of
    CONDITIONS is suggested after the one it depends on, and only when it applies (`model`:
    [model]'s values, for conditions on parameters not searched)."""
    from pipeline.experiment import Choice

    values: dict[str, Any] = {}
    for key in _dependency_order(space):
        dim = space[key]
        if not applies(key, {**(model or {}), **values}):
            continue
        if isinstance(dim, Choice):
            # categorical choices must be plain scalars: layer tuples travel as strings
            options = [_choice_key(c) for c in dim.choices]
            picked = trial.suggest_categorical(key, options)
            values[key] = dim.choices[options.index(picked)]
        elif dim.integer:
            step = int(dim.step) if dim.step else 1
            low, high = int(dim.low), int(dim.high)
            values[key] = trial.suggest_int(key, low, high, log=dim.log, step=step)
        else:
            values[key] = trial.suggest_float(key, dim.low, dim.high, log=dim.log, step=dim.step)
    return values


def _dependency_order(space: dict) -> list[str]:
    """[tune.space]'s order (a trial's parameters read in it), with a conditional parameter
    moved after the parameter it depends on when that one comes later."""
    order = list(space)
    for key in list(order):
        on = CONDITIONS.get(key, (None,))[0]
        if on == "n_layers" and "n_layers" not in space:
            on = "hidden_layer_sizes"
        if on in space and order.index(on) > order.index(key):
            order.remove(key)
            order.insert(order.index(on) + 1, key)
    return order


def check_space(study: Any, space: dict, url: str) -> None:
    """Optuna fixes a parameter's kind (and a categorical's choices) at its first trial in a
    study; a [tune.space] that changed them would fail every trial. One line says what changed."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
        check_distribution_compatibility,
    )

    from pipeline.experiment import Choice
    from pipeline.tracking.store import redact_url

    stored: dict[str, Any] = {}
    for t in study.get_trials(deepcopy=False):
        for name, dist in t.distributions.items():
            stored.setdefault(name, dist)
    for key, dim in space.items():
        if key not in stored:
            continue
        if isinstance(dim, Choice):
            new: Any = CategoricalDistribution([_choice_key(c) for c in dim.choices])
        elif dim.integer:
            new = IntDistribution(int(dim.low), int(dim.high), log=dim.log,
                                  step=int(dim.step) if dim.step else 1)
        else:
            new = FloatDistribution(dim.low, dim.high, log=dim.log, step=dim.step)
        try:
            check_distribution_compatibility(stored[key], new)
        except ValueError:
            old = stored[key]
            was = list(old.choices) if isinstance(old, CategoricalDistribution) else old
            now = list(new.choices) if isinstance(new, CategoricalDistribution) else new
            name = study.study_name
            raise PipelineError(
                f"[tune.space] {key} changed from {was} to {now}, and study {name!r} in "
                f"{redact_url(url)} keeps a parameter's choices for good: put them back, start "
                f"it again with --fresh, or tune a new study with --study {name}-2") from None


def network_params(exp: Experiment, values: dict[str, Any], random_state: int) -> dict[str, Any]:
    params = {**exp.model.params(), **values, "random_state": random_state}
    if "n_layers" in params:
        n_layers = int(params.pop("n_layers"))
        units = params.pop("units", None)  # not searched without a hidden layer
        params["hidden_layer_sizes"] = (int(units),) * n_layers if n_layers else ()
    params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
    return params


def _choice_key(c: Any) -> Any:
    if isinstance(c, tuple):
        return "-".join(map(str, c)) or "none"  # () is the linear model
    return c


def baseline_trials(exp: Experiment) -> list[dict[str, Any]]:
    """The first trials of every new study, as Optuna parameters: [model]'s defaults with no
    hidden layer and no numeric encoding (the linear model: logistic / softmax / linear
    regression), then [model]'s defaults. Keys the defaults do not fit (a value outside the
    searched range) are left to the sampler; without a zero-layer option in the space there is
    no linear baseline."""
    from pipeline.experiment import Choice

    space, model = exp.tune.space, exp.model.params()
    defaults: dict[str, Any] = {}
    for key, dim in space.items():
        if key in ("n_layers", "units"):
            sizes = tuple(model["hidden_layer_sizes"])
            value = len(sizes) if key == "n_layers" else (sizes[0] if sizes else None)
            if key == "units" and len(set(sizes)) > 1:
                value = None  # unequal widths are not n_layers x units
        else:
            value = model.get(key)
        if isinstance(dim, Choice):
            if value in dim.choices:
                defaults[key] = _choice_key(value)
        elif value is not None and dim.low <= value <= dim.high:
            defaults[key] = int(value) if dim.integer else float(value)
    linear = None
    if "n_layers" in space and not isinstance(space["n_layers"], Choice):
        linear = {"n_layers": 0} if space["n_layers"].low <= 0 else None
    elif "n_layers" in space and 0 in space["n_layers"].choices:
        linear = {"n_layers": 0}
    elif "hidden_layer_sizes" in space and () in space["hidden_layer_sizes"].choices:
        linear = {"hidden_layer_sizes": _choice_key(())}
    encoding = space.get("numeric_encoding")
    if linear is not None and isinstance(encoding, Choice) and "none" in encoding.choices:
        linear["numeric_encoding"] = "none"  # periodic inputs would make it an additive model
    trials = [{**defaults, **linear}] if linear is not None else []
    if defaults:
        trials.append(defaults)
    # what a trial does not use is not enqueued (Optuna would keep it as a fixed value)
    return [{k: v for k, v in t.items() if applies(k, {**model, **_decoded(space, t)})}
            for t in trials]


def _decoded(space: dict, optuna_params: dict[str, Any]) -> dict[str, Any]:
    """Optuna's values back to the network's (a layer tuple's string back to the tuple)."""
    from pipeline.experiment import Choice

    out = {}
    for key, value in optuna_params.items():
        dim = space.get(key)
        if isinstance(dim, Choice):
            value = next((c for c in dim.choices if _choice_key(c) == value), value)
        out[key] = value
    return out
