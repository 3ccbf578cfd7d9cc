"""The experiment loader: defaults, name vs path, and one clear error per bad key."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from pipeline import experiment
from pipeline.errors import PipelineError
from pipeline.experiment import CV, Choice, Model, Range, Tune

MINIMAL = """\
[competition]
data_dir = "data/comp"
id = "id"
target = "y"
task = "binary"
metric = "roc_auc"
"""


def _write(root: Path, text: str, name: str = "exp") -> Path:
    path = root / "experiments" / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults(project):
    _write(project, MINIMAL)
    exp = experiment.load("exp")
    assert exp.name == "exp" and exp.path == Path("experiments/exp.toml")
    c = exp.competition
    assert (c.data_dir, c.id, c.target, c.task, c.metric) == (
        Path("data/comp"), "id", "y", "binary", "roc_auc")
    assert c.drop == () and c.categorical == () and c.kaggle is None and c.dates == {}
    assert c.features is None
    assert exp.model == Model() and exp.cv == CV() and exp.tune == Tune()
    assert exp.model.params()["hidden_layer_sizes"] == (32,)
    json.dumps(exp.as_dict())  # the resolved config is loggable


def test_dates_map_columns_to_formats(project):
    _write(project, MINIMAL + 'dates = { sold = "%d/%m/%Y", "listed on" = "ISO8601" }\n')
    exp = experiment.load("exp")
    assert exp.competition.dates == {"sold": "%d/%m/%Y", "listed on": "ISO8601"}
    assert exp.as_dict()["competition"]["dates"] == {"sold": "%d/%m/%Y", "listed on": "ISO8601"}


def test_features_names_a_python_file_relative_to_the_project(project):
    _write(project, MINIMAL + 'features = "experiments/exp_features.py"\n')
    exp = experiment.load("exp")  # the file itself is prepare's to read (and fingerprint)
    assert exp.competition.features == Path("experiments/exp_features.py")
    assert exp.as_dict()["competition"]["features"] == "experiments/exp_features.py"


def test_name_and_path_resolve_to_the_same_file(project):
    _write(project, MINIMAL)
    (project / "elsewhere").mkdir()
    other = project / "elsewhere" / "mine.toml"
    other.write_text(MINIMAL, encoding="utf-8")
    assert experiment.load("experiments/exp.toml").name == "exp"
    assert experiment.load(Path("experiments/exp.toml")).competition.target == "y"
    assert experiment.load(str(other)).name == "mine"
    assert experiment.load("elsewhere/mine.toml").path == Path("elsewhere/mine.toml")


def test_unknown_name_lists_known_experiments(project):
    _write(project, MINIMAL)
    with pytest.raises(PipelineError, match=r"experiments/nope\.toml: .*not found.*known.*exp"):
        experiment.load("nope")


def test_full_file_parses(project):
    _write(project, MINIMAL + """
drop = ["a"]
categorical = ["b"]
kaggle = "titanic"

[model]
hidden_layer_sizes = [16, 8]
activation = "tanh"
alpha = 0.001
batch_size = 32
early_stopping = true

[cv]
folds = 3
seed = 7

[tune]
trials = 5
timeout = 60
pruner = "none"

[tune.space]
n_layers = { low = 1, high = 3 }
units = { low = 8, high = 64, log = true }
learning_rate_init = { low = 0.001, high = 0.1, log = true }
activation = ["sigmoid", "relu"]
batch_size = [32, 64]
""")
    exp = experiment.load("exp")
    assert exp.competition.drop == ("a",) and exp.competition.categorical == ("b",)
    assert exp.model.hidden_layer_sizes == (16, 8) and exp.model.alpha == 0.001
    assert exp.cv == CV(folds=3, seed=7)
    assert exp.tune.timeout == 60.0 and exp.tune.pruner == "none"
    assert exp.tune.space["n_layers"] == Range(1.0, 3.0, integer=True)
    assert exp.tune.space["units"].log and exp.tune.space["units"].integer
    assert exp.tune.space["activation"] == Choice(("sigmoid", "relu"))


def test_cv_kinds_and_the_scheme_they_record(project):
    exp = experiment.parse(tomllib.loads(MINIMAL), Path("e.toml"))
    assert exp.cv.kind is None and exp.fold_kind == "stratified"
    assert exp.fold_scheme() == "stratified/5/seed42"  # what studies before [cv] kind recorded
    assert exp.as_dict()["cv"]["kind"] == "stratified"  # the resolved kind is logged
    regression = MINIMAL.replace('"binary"', '"regression"').replace('"roc_auc"', '"rmse"')
    assert experiment.parse(tomllib.loads(regression), Path("e.toml")).fold_scheme() \
        == "kfold/5/seed42"
    for cv, kind, scheme in [
        ('kind = "kfold"\nfolds = 3', "kfold", "kfold/3/seed42"),
        ('kind = "group"\ngroup = "store"\nseed = 1', "group", "group(store)/5/seed1"),
        ('kind = "time"\ntime = "date"\nfolds = 4', "time", "time(date)/4"),
    ]:
        exp = experiment.parse(tomllib.loads(f"{MINIMAL}[cv]\n{cv}\n"), Path("e"))
        assert exp.fold_kind == kind and exp.fold_scheme() == scheme
    assert (exp.cv.time, exp.cv.group) == ("date", None)


def test_shipped_avocado_experiment_loads():
    root = Path(__file__).resolve().parents[1]
    exp = experiment.load(root / "experiments" / "avocado.toml")
    assert exp.competition.target == "ripe" and exp.competition.metric == "roc_auc"


MULTI = MINIMAL.replace('"y"', '["a", "b"]').replace('"roc_auc"', '"mean_roc_auc"')


def test_several_targets_are_a_tuple_and_one_listed_target_is_a_name(project):
    _write(project, MULTI)
    c = experiment.load("exp").competition
    assert c.target == ("a", "b") and c.targets == ("a", "b") and c.multi_target
    _write(project, MULTI.replace('"rmse"', '"x"').replace('"binary"', '"regression"')
           .replace('"mean_roc_auc"', '"rmse"'), "reg")
    assert experiment.load("reg").competition.targets == ("a", "b")
    _write(project, MINIMAL.replace('"y"', '["y"]'), "one")
    one = experiment.load("one").competition
    assert one.target == "y" and one.targets == ("y",) and not one.multi_target


BAD = [
    ("[competition]\nid = 'id'\n", "missing key [competition] data_dir"),
    ("[model]\nalpha = 1\n", "missing section [competition]"),
    (MINIMAL + "colour = 'red'\n", "unknown key [competition] colour"),
    (MINIMAL + "[extra]\n", "unknown key [extra]"),
    (MINIMAL.replace('"binary"', '"ranking"'), "[competition] task must be one of"),
    (MINIMAL.replace('"roc_auc"', '"rmse"'),
     "[competition] metric = 'rmse' scores regression, not task 'binary'"),
    (MINIMAL.replace('"roc_auc"', '"map@0"'), "[competition] metric = 'map@0' is not a metric"),
    (MINIMAL.replace('"roc_auc"', '"qwk"'),
     "[competition] metric = 'qwk' scores multiclass or regression, not task 'binary'"),
    (MINIMAL.replace('target = "y"', 'target = "id"'), "id and target are both 'id'"),
    (MINIMAL.replace('id = "id"', "id = 3"), "[competition] id must be a non-empty str"),
    (MINIMAL + "one_hot_max = 1\n", "[competition] one_hot_max must be an integer in [2, 10000]"),
    (MINIMAL + "one_hot_max = 10001\n", "one_hot_max must be an integer in [2, 10000], got 10001"),
    (MINIMAL + "one_hot_max = 2.5\n", "[competition] one_hot_max must be an integer"),
    (MINIMAL + "drop = 'a'\n", "[competition] drop must be a list of column names"),
    (MINIMAL + "dates = '%d/%m/%Y'\n", "[competition] dates must be a table { column = "),
    (MINIMAL + "dates = { sold = 3 }\n", "[competition] dates.sold must be a strptime format"),
    (MINIMAL + "dates = { sold = 'dd/mm' }\n", "[competition] dates.sold must be a strptime"),
    (MINIMAL + "features = 'feats.txt'\n", "[competition] features must be the path of a .py"),
    (MINIMAL + "features = 3\n", 'e.g. features = "experiments/exp_features.py", got 3'),
    (MINIMAL + "[model]\nbatch_size = 'big'\n", "[model] batch_size must be 'auto' or an int >= 1"),
    (MINIMAL + "[model]\nlearning_rate = 0.1\n", "unknown key [model] learning_rate"),
    (MINIMAL + "[model]\nactivation = 'gelu'\n", "[model] activation must be one of"),
    (MINIMAL + "[model]\nhidden_layer_sizes = [0]\n", "[model] hidden_layer_sizes must be"),
    (MINIMAL + "[model]\nmomentum = 1.5\n", "[model] momentum must be a float in [0, 1]"),
    (MINIMAL + "[cv]\nfolds = 1\n", "[cv] folds must be an integer >= 2"),
    (MINIMAL + "[cv]\nfolds = 'five'\n", "[cv] folds must be an integer"),
    (MINIMAL + "[cv]\nkind = 'random'\n", "[cv] kind must be one of stratified, kfold"),
    (MINIMAL.replace('"binary"', '"regression"').replace('"roc_auc"', '"rmse"')
     + "[cv]\nkind = 'stratified'\n", '[cv] kind = "stratified" needs one column of classes'),
    (MINIMAL + "[cv]\nkind = 'group'\n", '[cv] kind = "group" needs group = '),
    (MINIMAL + "[cv]\nkind = 'time'\n", '[cv] kind = "time" needs time = '),
    (MINIMAL + "[cv]\ngroup = 'store'\n", '[cv] group is only used with kind = "group"'),
    (MINIMAL + "[cv]\nkind = 'group'\ngroup = 'a'\ntime = 'b'\n",
     '[cv] time is only used with kind = "time" (kind is "group")'),
    (MINIMAL + "[cv]\nkind = 'group'\ngroup = ''\n", "[cv] group must be a non-empty str"),
    (MINIMAL + "[cv]\nkind = 'time'\ntime = 3\n", "[cv] time must be a non-empty str"),
    (MINIMAL + "[cv]\nfold = 3\n", "unknown key [cv] fold"),
    (MINIMAL + "[tune]\ntimeout = -1\n", "[tune] timeout must be a positive number"),
    (MINIMAL + "[tune]\npruner = 'asha'\n", "[tune] pruner must be one of"),
    (MINIMAL + "[tune.space]\ncolour = [1]\n", "unknown key [tune.space] colour"),
    (MINIMAL + "[tune.space]\nunits = { low = 8, high = 64 }\n", "n_layers and units go together"),
    (MINIMAL + "[tune.space]\nalpha = { low = 1, high = 0.1 }\n", "[tune.space] alpha needs"),
    (MINIMAL + "[tune.space]\nalpha = { low = 0, high = 1, log = true }\n", "log scale needs"),
    (MINIMAL + "[tune.space]\nalpha = { low = 0.1, hi = 1 }\n", "[tune.space.alpha] hi"),
    (MINIMAL + "[tune.space]\nactivation = { low = 1, high = 2 }\n", "takes a list of choices"),
    (MINIMAL + "[tune.space]\nbatch_size = []\n", "empty list of choices"),
    (MINIMAL + "[tune.space]\nbatch_size = { low = 1.5, high = 9 }\n", "low and high must be int"),
    (MINIMAL + "[submit]\nseeds = 0\n", "[submit] seeds must be an integer >= 1"),
    (MINIMAL + "[submit]\nrefit = 'yes'\n", "[submit] refit must be true or false"),
    (MINIMAL + "[submit]\nbags = 2\n", "unknown key [submit] bags"),
    ("[competition\n", "not valid TOML"),
    (MULTI.replace('"a", "b"', '"a", "a"'), "[competition] target names 'a' twice"),
    (MULTI.replace('"a", "b"', '"a", "id"'), "id and target are both 'id'"),
    (MULTI.replace('"a", "b"', '"a", 3'), "[competition] target must be a column name or a list"),
    (MULTI.replace('"mean_roc_auc"', '"roc_auc"'),
     "metric = 'roc_auc' scores binary, not task 'binary with several targets' "
     "(metrics for binary with several targets: mean_roc_auc)"),
    (MINIMAL.replace('"y"', '["a", "b"]'), "metric = 'roc_auc' scores binary"),
    (MULTI.replace('"binary"', '"multiclass"').replace('"mean_roc_auc"', '"log_loss"'),
     "metric = 'log_loss' scores binary or multiclass, not task 'multiclass with several"),
]


@pytest.mark.parametrize(("text", "message"), BAD, ids=[m for _, m in BAD])
def test_every_error_names_the_file_and_key(project, text, message):
    _write(project, text)
    with pytest.raises(PipelineError) as info:
        experiment.load("exp")
    msg = str(info.value)
    assert msg.startswith("experiments/exp.toml: ")
    assert message in msg
    assert "\n" not in msg


def test_unreadable_bytes(project):
    (project / "experiments" / "exp.toml").write_bytes(b"\xff\xfe[competition]")
    with pytest.raises(PipelineError, match=r"experiments/exp\.toml: "):
        experiment.load("exp")


@pytest.mark.parametrize(("metric", "key", "fitted"), [
    ("rmsle", "target_transform", "log1p"), ("mae", "loss", "huber"), ("mape", "loss", "huber"),
    ("rmse", "loss", "squared"),
])
def test_the_metric_sets_the_losses_defaults_and_model_keys_win(project, metric, key, fitted):
    """A user who edits init's `metric = "rmse"` to "rmsle" gets the fitted loss too."""
    text = MINIMAL.replace('"binary"', '"regression"').replace('"roc_auc"', f'"{metric}"')
    _write(project, text)
    assert getattr(experiment.load("exp").model, key) == fitted
    other = {"target_transform": "none", "loss": "squared"}[key]
    _write(project, text + f'\n[model]\n{key} = "{other}"\n')
    assert getattr(experiment.load("exp").model, key) == other


def test_tune_storage_names_the_study_database_without_a_password(project, monkeypatch):
    from pipeline.tune import storage_url

    monkeypatch.delenv("OPTUNA_STORAGE", raising=False)
    _write(project, MINIMAL + '\n[tune]\nstorage = "grpc://proxy-host:13000"\n')
    exp = experiment.load("exp")
    assert exp.tune.storage == "grpc://proxy-host:13000"
    # --storage, then OPTUNA_STORAGE, win over the file
    assert storage_url(None, exp.tune.storage) == "grpc://proxy-host:13000"
    assert storage_url("sqlite:///x.db", exp.tune.storage) == "sqlite:///x.db"
    _write(project, MINIMAL + '\n[tune]\nstorage = "postgresql://u:secret@db/optuna"\n')
    with pytest.raises(PipelineError, match=r"\[tune\] storage must not hold a password"):
        experiment.load("exp")
    _write(project, MINIMAL + "\n[tune]\nstorage = 5\n")
    with pytest.raises(PipelineError, match=r"\[tune\] storage must be a non-empty str"):
        experiment.load("exp")
