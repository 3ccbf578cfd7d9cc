"""The hyperparameter table is the one schema: the estimators, the experiment file, `--set` and
the search space accept and reject exactly the same values."""

import inspect
import math

import numpy as np
import pytest

from pipeline import experiment
from pipeline.errors import PipelineError
from pipeline.experiment import toml_value
from pipeline.network import SigmoidNetworkClassifier, SigmoidNetworkRegressor
from pipeline.network.params import BY_NAME, DEFAULTS, EXPERIMENT_PARAMS, PARAMS, validate
from pipeline.network.training import TrainConfig

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

MINIMAL = """[competition]
data_dir = "data/comp"
id = "id"
target = "y"
task = "binary"
metric = "roc_auc"
"""
X = np.random.default_rng(0).standard_normal((40, 3))
Y_CLASS = (X[:, 0] > 0).astype(int)
Y_VALUE = np.abs(X.sum(axis=1))  # >= 0: target_transform="log1p" takes it


def cases():
    for p in PARAMS:
        ok, bad = p.constraint.examples()
        yield from ((p, v, True) for v in ok)
        yield from ((p, v, False) for v in bad)


CASES = list(cases())


def _estimator_accepts(param, value) -> bool:
    cls, y = ((SigmoidNetworkRegressor, Y_VALUE) if param.regressor_only
              else (SigmoidNetworkClassifier, Y_CLASS))
    est = cls(**{param.name: value, **({} if param.name == "max_iter" else {"max_iter": 1})})
    try:
        est.fit(X, y)
    except ValueError as e:
        assert param.name in str(e), f"the error must name the parameter: {e}"
        return False
    return True


def _experiment_accepts(project, param, value) -> bool:
    (project / "experiments" / "exp.toml").write_text(
        MINIMAL + f"[model]\n{param.name} = {toml_value(value)}\n", encoding="utf-8")
    try:
        exp = experiment.load("exp")
    except PipelineError as e:
        msg = str(e)
        assert msg.startswith("experiments/exp.toml: ") and f"[model] {param.name}" in msg
        assert "\n" not in msg
        return False
    assert getattr(exp.model, param.name) == validate(param.name, value)
    return True


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "experiments").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(("param", "value", "valid"), CASES,
                         ids=[f"{p.name}={v!r}" for p, v, _ in CASES])
def test_every_entry_is_accepted_or_rejected_alike_everywhere(project, param, value, valid):
    assert param.constraint.accepts(value) is valid
    assert _estimator_accepts(param, value) is valid
    if param.experiment and value is not None:  # TOML has no null
        assert _experiment_accepts(project, param, value) is valid
        exp = experiment.parse(experiment.tomllib.loads(MINIMAL), project / "e.toml")
        try:
            experiment.parse_overrides(exp, [f"{param.name}={toml_value(value)}"])
            accepted = True
        except PipelineError:
            accepted = False
        assert accepted is valid


def test_momentum_one_and_learning_rate_zero_as_the_issue_found_them(project):
    assert _experiment_accepts(project, BY_NAME["momentum"], 1)
    with pytest.raises(PipelineError, match=r"\[model\] learning_rate_init must be a float > 0"):
        (project / "experiments" / "exp.toml").write_text(
            MINIMAL + "[model]\nlearning_rate_init = 0\n", encoding="utf-8")
        experiment.load("exp")


def test_search_space_ranges_respect_the_constraints(project):
    def load(space: str):
        (project / "experiments" / "exp.toml").write_text(
            MINIMAL + "[tune.space]\n" + space, encoding="utf-8")
        return experiment.load("exp")

    assert load("momentum = { low = 0.5, high = 1 }\n").tune.space["momentum"].high == 1
    with pytest.raises(PipelineError, match="learning_rate_init low must be a float > 0"):
        load("learning_rate_init = { low = 0, high = 0.1 }\n")
    with pytest.raises(PipelineError, match=r"beta_1 high must be a float in \[0, 1\)"):
        load("beta_1 = { low = 0.5, high = 1 }\n")
    assert load("n_layers = { low = 0, high = 2 }\nunits = [8]\n").tune.space["n_layers"].low == 0
    with pytest.raises(PipelineError, match="activation choices must be one of"):
        load("activation = ['sigmoid', 'gelu']\n")


def test_the_estimators_signatures_and_configs_come_from_the_table():
    for cls in (SigmoidNetworkClassifier, SigmoidNetworkRegressor):
        sig = inspect.signature(cls.__init__)
        params = {n: p.default for n, p in sig.parameters.items() if n != "self"}
        expected = {p.name: p.default for p in PARAMS
                    if cls is SigmoidNetworkRegressor or not p.regressor_only}
        assert params == expected
        assert cls().get_params() == expected
    defaults = TrainConfig()
    for name, value in vars(defaults).items():
        assert value == DEFAULTS[name]
    assert experiment.Model().params() == {k: DEFAULTS[k] for k in EXPERIMENT_PARAMS}


def test_init_comments_every_model_key_from_the_table():
    text = experiment.model_lines({"alpha": 0.001, "activation": "tanh"})
    assert text.splitlines()[:2] == ["# L2 penalty on the weights", "alpha = 0.001"]
    assert math.isinf(experiment.tomllib.loads("v = " + toml_value(math.inf))["v"])


def test_readme_lists_every_parameter_as_the_table_declares_it():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    for p in PARAMS:
        if p.experiment:
            default = list(p.default) if isinstance(p.default, tuple) else p.default
            row = f"| `{p.name}` | `{toml_value(default)}` | {p.constraint.describe()} | {p.help} |"
            assert row in readme, f"README's parameter table is out of date: {row}"
