"""`pipeline init`: inference of id, target, task, metric and drop; the written file loads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import make_competition, toy_frames

from pipeline import experiment
from pipeline.errors import PipelineError
from pipeline.init import init_experiment
from pipeline.prepare import load_preprocessor, prepare
from pipeline.submission.format import load_format

ADULT = Path(__file__).resolve().parents[2] / "shared" / "competitions" / "adult"


def _init(root: Path, train, test, *, sample=None, target="y", **kw):
    folder = make_competition(root, train, test, sample=sample, target=target)
    path = init_experiment(folder.relative_to(root), **{"check": load_format, **kw})
    return path, experiment.load(path)


def test_binary_with_probability_sample_is_roc_auc(project):
    path, exp = _init(project, *toy_frames())
    assert path == Path("experiments/comp.toml")
    c = exp.competition
    assert (c.id, c.target, c.task, c.metric) == ("id", "y", "binary", "roc_auc")
    assert c.data_dir == Path("data/comp") and c.drop == ()
    assert exp.tune.space and exp.cv.folds == 5
    assert prepare(exp).X_train.shape[0] == 60  # the inferred file drives prepare
    # feature code is one uncommented line away, with a pointer to the README's example
    line = '\n# features = "experiments/comp_features.py"  # see README: Feature code\n'
    assert line in path.read_text() and c.features is None


@pytest.mark.parametrize(("labels", "sample_value"), [((0, 1), 0), (("no", "yes"), "no")])
def test_binary_with_label_sample_is_accuracy(project, labels, sample_value):
    train, test = toy_frames()
    train["y"] = [labels[i % 2] for i in range(len(train))]
    sample = pd.DataFrame({"id": test["id"], "y": sample_value})
    path, exp = _init(project, train, test, sample=sample)
    assert (exp.competition.task, exp.competition.metric) == ("binary", "accuracy")
    # one value only: an AUC contest's placeholder looks the same; the file says what to change
    assert 'if the competition scores probabilities, set metric = "roc_auc"' in path.read_text()


def test_multiclass_labels_and_per_class_columns(project):
    train, test = toy_frames()
    train["y"] = np.array(["a", "b", "c"])[np.arange(60) % 3]
    sample = pd.DataFrame({"id": test["id"], "y": "a"})
    _, exp = _init(project, train, test, sample=sample)
    assert (exp.competition.task, exp.competition.metric) == ("multiclass", "accuracy")
    # Per-class probability columns: the target is the train column test lacks.
    train = train.rename(columns={"y": "species"})
    sample = pd.DataFrame({"id": test["id"], "a": 1 / 3, "b": 1 / 3, "c": 1 / 3})
    _, exp = _init(project, train, test, sample=sample, target="species", force=True)
    c = exp.competition
    assert (c.target, c.task, c.metric) == ("species", "multiclass", "log_loss")


def test_integer_labels_multiclass_many_numbers_regression(project):
    train, test = toy_frames()
    train["y"] = np.arange(60) % 5
    _, exp = _init(project, train, test, sample=pd.DataFrame({"id": test["id"], "y": 0}))
    assert exp.competition.task == "multiclass"
    train["y"] = np.linspace(100, 200, 60)
    _, exp = _init(project, train, test, force=True)
    assert (exp.competition.task, exp.competition.metric) == ("regression", "rmse")


def test_free_text_and_train_only_columns_are_dropped_with_a_reason(project):
    train, test = toy_frames()
    for df in (train, test):
        df["name"] = [f"Person {i}" for i in df["id"]]  # all unique text
        df["small_int"] = df["id"] % 3  # few numeric levels: fine as a number
    train["leak"] = 1.0  # not in test.csv
    path, exp = _init(project, train, test)
    assert set(exp.competition.drop) == {"name", "leak"}
    text = path.read_text()
    assert '"name",  # free text / an id: 60 distinct values in 60 rows' in text
    assert '"leak",  # not in test.csv' in text
    assert "colour" not in exp.competition.drop and "small_int" not in exp.competition.drop
    prepare(exp)


def test_high_cardinality_text_is_kept_embedded_and_searched_up_to_the_cap(project):
    """Up to 10,000 levels a text column is kept (more than one_hot_max: embedded, with
    categorical_dim in [model] and [tune.space]); beyond the cap it is dropped."""
    n = 22_000
    train = pd.DataFrame({"id": np.arange(n), "x": np.arange(n) % 7,
                          "city": [f"c{i % 500}" for i in range(n)],
                          "user": [f"u{i % 10_001}" for i in range(n)], "y": np.arange(n) % 2})
    test = train.drop(columns="y").head(50).assign(id=np.arange(n, n + 50))
    path, exp = _init(project, train, test)
    text = path.read_text()
    assert exp.competition.drop == ("user",) and exp.competition.one_hot_max == 20
    assert '"user",  # 10001 levels, more than 10,000 (the most init keeps)' in text
    assert "city: 500 levels (> one_hot_max = 20): the network learns a vector per level" in text
    assert exp.model.categorical_dim == 8 and "categorical_dim" in exp.tune.space
    _, small = _init(project, *toy_frames(), name="small")  # colour: 4 levels, one-hot
    assert "categorical_dim" not in small.tune.space


def test_refuses_to_overwrite_without_force(project):
    path, _ = _init(project, *toy_frames())
    path.write_text("# edited by hand\n" + path.read_text())
    with pytest.raises(PipelineError, match=r"experiments/comp\.toml: already exists.*--force"):
        init_experiment(Path("data/comp"))
    assert path.read_text().startswith("# edited by hand")
    init_experiment(Path("data/comp"), force=True)
    assert not path.read_text().startswith("# edited by hand")
    assert [p.name for p in path.parent.iterdir()] == ["comp.toml"]  # no temp files left


def test_name_option_and_absolute_data_dir(project):
    folder = make_competition(project, *toy_frames())
    path = init_experiment(folder, name="mine")
    assert path == Path("experiments/mine.toml")
    assert experiment.load("mine").competition.data_dir == folder
    with pytest.raises(PipelineError, match="--name"):
        init_experiment(folder, name="../evil")


def test_the_kaggle_slug_is_guessed_from_the_folder_and_used_for_the_upload(project):
    """`--name` names the experiment; the upload line still needs the competition's slug."""
    from pipeline.submit import kaggle_command

    folder = make_competition(project, *toy_frames())
    exp = experiment.load(init_experiment(folder, name="mine"))
    assert exp.competition.kaggle == "comp"
    assert "# The competition's slug (kaggle.com/c/<slug>)" in exp.path.read_text()
    assert kaggle_command(exp, Path("s.csv"), "m").startswith(
        "kaggle competitions submit -c comp -f s.csv")


@pytest.mark.parametrize(("name", "says"), [
    ("v2.toml", r"--name 'v2.toml': give the name without .toml \(--name v2\)"),
    ("x" * 250, "an experiment name is 1-100 letters"),
    ("..x", "starting with a letter or digit"),
    ("-x", "starting with a letter or digit"),
    ("a b", "an experiment name is 1-100 letters"),
])
def test_one_rule_for_experiment_names(project, name, says):
    folder = make_competition(project, *toy_frames())
    with pytest.raises(PipelineError, match=says) as info:
        init_experiment(folder, name=name)
    assert len(str(info.value)) < 200 and "\n" not in str(info.value)
    assert not Path("experiments").exists() or not any(Path("experiments").iterdir())
    assert init_experiment(folder, name="v2.1_a-b") == Path("experiments/v2.1_a-b.toml")


def test_init_refuses_a_target_with_gaps_as_prepare_does(project):
    train, test = toy_frames()
    train["y"] = train["y"].astype(float)
    train.loc[[3, 7], "y"] = np.nan
    with pytest.raises(PipelineError, match=r"train.csv: target 'y' has 2 missing value\(s\) "
                       r"\(lines 5, 9\)"):
        _init(project, train, test)
    assert not Path("experiments").exists() or not any(Path("experiments").iterdir())


def test_init_notes_a_number_column_turned_text_by_one_cell(project):
    train, test = toy_frames()
    train["num"] = train["num"].astype(object)
    train.loc[4, "num"] = "12,5"
    path, _ = _init(project, train, test)
    assert "#   num: read as text only because of '12,5' (line 6)" in path.read_text()
    assert "count: read as text" not in path.read_text()


def test_init_names_a_semicolon_delimited_file(project):
    folder = make_competition(project, *toy_frames())
    frame = pd.read_csv(folder / "train.csv")
    frame.to_csv(folder / "train.csv", sep=";", index=False)
    with pytest.raises(PipelineError, match="train.csv: semicolon-delimited"):
        init_experiment(folder)


def test_bad_folders(project):
    with pytest.raises(PipelineError, match=r"nowhere: not a folder"):
        init_experiment(Path("nowhere"))
    train, test = toy_frames()
    folder = make_competition(project, train, test, sample=pd.DataFrame({"key": [1], "y": [0.5]}))
    with pytest.raises(PipelineError, match=r"test\.csv: no id column 'key'"):
        init_experiment(folder)
    folder = make_competition(project, train.assign(y=1), test)
    with pytest.raises(PipelineError, match=r"train\.csv: target 'y' has 1 distinct value"):
        init_experiment(folder)
    assert not any((project / "experiments").iterdir())


@pytest.mark.skipif(not ADULT.is_dir(), reason=f"shared adult competition not found at {ADULT}")
def test_adult_init_then_prepare(project):
    path = init_experiment(ADULT)
    exp = experiment.load(path)
    c = exp.competition
    assert (c.id, c.target, c.task, c.metric) == ("id", "over_50k", "binary", "roc_auc")
    assert c.drop == ()
    p = prepare(exp)
    assert p.X_train.shape[0] == 32561 and p.X_test.shape[0] == len(
        pd.read_csv(ADULT / "test.csv", usecols=["id"]))
    assert p.classes == (0, 1) and set(np.unique(p.y)) == {0, 1}
    assert not np.isnan(p.X_train).any() and not np.isnan(p.X_test).any()
    spec = load_preprocessor(p)
    # seven text columns one-hot; native_country's 42 levels (> one_hot_max) are embedded
    assert len(spec["categorical"]) == 7
    assert [c["name"] for c in spec["embedded"]] == ["native_country"]
    assert "workclass=<missing>" in p.feature_names  # '?' read as missing
    assert not any("?" in n for n in p.feature_names)
    assert prepare(exp).fingerprint == p.fingerprint  # warm cache


def test_one_sample_column_per_class_means_labels_however_many(project):
    # 25 integer classes (more than MAX_CLASSES) scored by per-class probabilities: not a number
    train, test = toy_frames()
    train["y"] = np.arange(60) % 25
    sample = pd.DataFrame({"id": test["id"], **{str(k): 0.04 for k in range(25)}})
    _, exp = _init(project, train, test, sample=sample)
    assert (exp.competition.task, exp.competition.metric) == ("multiclass", "log_loss")


def test_integer_target_with_a_sample_value_that_is_no_label_is_regression(project):
    train, test = toy_frames()
    train["y"] = np.arange(60) % 5 + 1  # a 1..5 score; the sample guesses its mean
    path, exp = _init(project, train, test, sample=pd.DataFrame({"id": test["id"], "y": 2.5}))
    assert (exp.competition.task, exp.competition.metric) == ("regression", "rmse")
    assert "not labels" in path.read_text()


def test_labels_spelled_as_floats_in_train_match_integer_sample_labels(project):
    train, test = toy_frames()
    train["y"] = (np.arange(60) % 2).astype(float)  # train.csv spells 0.0 / 1.0
    _, exp = _init(project, train, test, sample=pd.DataFrame({"id": test["id"], "y": 0}))
    assert (exp.competition.task, exp.competition.metric) == ("binary", "accuracy")


def test_date_columns_are_kept_as_numbers_not_dropped_as_free_text(project):
    train, test = toy_frames()
    for df in (train, test):  # every value distinct: looked like free text
        df["when"] = (pd.Timestamp("2020-01-01") + pd.to_timedelta(df["id"] * 7, unit="h")
                      ).dt.strftime("%Y-%m-%d %H:%M:%S")
    path, exp = _init(project, train, test)
    assert exp.competition.drop == ()
    assert "#   date when: used as numbers" in path.read_text()
    assert "when.hour" in prepare(exp).feature_names
    # [cv]: the task's kind, and the time hint names the date column
    text = path.read_text()
    assert exp.fold_kind == "stratified" and '[cv]\nkind = "stratified"\n' in text
    assert '# kind = "time"; time = "when"  validates on later rows only\n' in text


def test_cv_alternatives_are_written_commented_and_uncommented_they_load(project):
    train, test = toy_frames()
    train["y"] = np.arange(60) * 0.5  # regression
    path, exp = _init(project, train, test)
    text = path.read_text()
    assert exp.competition.task == "regression" and 'kind = "kfold"\n' in text
    assert '# kind = "group"; group = "<column>"  keeps a group\'s rows in one fold\n' in text
    assert '# kind = "time"; time = "<column>"  validates on later rows only\n' in text
    group = text.replace('kind = "kfold"\n', 'kind = "group"\ngroup = "count"\n')
    path.write_text(group)
    assert experiment.load(path).fold_scheme() == "group(count)/5/seed42"


def test_a_sample_that_does_not_fit_test_csv_fails_init_not_submit(project):
    train, test = toy_frames()
    from typer.testing import CliRunner

    from pipeline.cli import app

    sample = pd.DataFrame({"id": [*test["id"][1:], 999], "y": 0.5})
    folder = make_competition(project, train, test, sample=sample, target="y")
    result = CliRunner().invoke(app, ["init", str(folder.relative_to(project))])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and result.output.count("\n") == 1
    assert "sample_submission.csv: ids do not match" in result.output and "'999'" in result.output
    assert not any((project / "experiments").iterdir())  # nothing written


def test_rare_classes_lower_the_folds(project):
    train, test = toy_frames()
    train["y"] = np.where(np.arange(60) < 3, 2, np.arange(60) % 2)  # class 2: 3 rows
    path, exp = _init(project, train, test, sample=pd.DataFrame({"id": test["id"], "y": 0}))
    assert exp.cv.folds == 3 and "rarest class" in path.read_text()


def test_cli_init_prints_its_guesses_and_reasons(project):
    from typer.testing import CliRunner

    from pipeline.cli import app

    train, test = toy_frames()
    folder = make_competition(project, train, test, sample=None, target="y")
    result = CliRunner().invoke(app, ["init", str(folder.relative_to(project))])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "wrote experiments/comp.toml"
    assert any(line.startswith("  task binary: target 'y' has 2 distinct values") for line in lines)
    assert any(line.startswith("  metric roc_auc: ") for line in lines)


@pytest.mark.parametrize("labels", [("a", "b", "c", "d"), (10, 20, 30, 40)])
def test_a_sample_listing_labels_means_map_at_k(project, labels):
    train, test = toy_frames()
    train["y"] = np.array(labels, dtype=object)[np.arange(60) % 4]
    sample = pd.DataFrame({"id": test["id"], "y": " ".join(map(str, labels[:3]))})
    path, exp = _init(project, train, test, sample=sample)
    assert (exp.competition.task, exp.competition.metric) == ("multiclass", "map@3")
    assert "3 space-separated labels per row" in path.read_text()
    fmt = load_format(exp)
    assert fmt.kind == "top_k" and fmt.k == 3 and fmt.labels == tuple(sorted(map(str, labels)))


@pytest.mark.parametrize(("values", "task", "metric", "why"), [
    (lambda i: i % 2, "binary", "mean_roc_auc", "hold only 0 / 1"),
    (lambda i: i * 0.5, "regression", "rmse", "hold numbers")])
def test_sample_columns_that_are_train_columns_mean_several_targets(project, values, task,
                                                                   metric, why):
    train, test = toy_frames()
    train["b"] = [values(i) for i in range(60)]
    train["a"] = [values(i + 1) for i in range(60)]
    sample = pd.DataFrame({"id": test["id"], "b": 0.5, "a": 0.5})
    path, exp = _init(project, train.drop(columns="y"), test, sample=sample, target=["b", "a"])
    c = exp.competition
    assert (c.target, c.task, c.metric, exp.cv.folds) == (("b", "a"), task, metric, 5)
    text = path.read_text()
    assert 'target = ["b", "a"]' in text and f"task {task}: targets 'b', 'a' {why}" in text
    assert prepare(exp).y.shape == (60, 2)
    assert load_format(exp).kind == "multi_target"


def test_several_targets_holding_text_are_one_line(project):
    train, test = toy_frames()
    train = train.assign(a="x", b=1)
    sample = pd.DataFrame({"id": test["id"], "a": 0.5, "b": 0.5})
    with pytest.raises(PipelineError, match=r"train\.csv: target 'a' holds text"):
        _init(project, train, test, sample=sample, target=["a", "b"])


def test_the_metric_line_lists_the_alternatives(project):
    path, _ = _init(project, *toy_frames())
    line = next(x for x in path.read_text().splitlines() if x.startswith("metric ="))
    assert line == 'metric = "roc_auc"  # or: log_loss, accuracy, f1, mcc'


@pytest.mark.parametrize(("metric", "entry"), [("rmsle", 'target_transform = "log1p"'),
                                               ("mae", 'loss = "huber"'),
                                               ("rmse", None)])
def test_a_regression_metric_sets_the_loss_that_suits_it(metric, entry):
    from pipeline.init import network_setup

    model, _ = network_setup(5_000, metric)
    lines = experiment.model_lines(model)
    if entry is None:
        assert "target_transform" not in model and "loss" not in model
    else:
        assert entry in lines.splitlines()


def _dated(train, test, fmt: str):
    for df in (train, test):
        df["sold"] = (pd.Timestamp("2015-01-01") + pd.to_timedelta(df["id"] * 3, unit="D")
                      ).dt.strftime(fmt)
    return train, test


def test_a_decided_date_format_is_written_commented_out(project):
    path, exp = _init(project, *_dated(*toy_frames(), "%d/%m/%Y"))  # days up to 31: day-first
    text = path.read_text()
    assert '# dates = { sold = "%d/%m/%Y" }  # guessed from the data' in text
    assert exp.competition.dates == {} and exp.competition.drop == ()
    assert "#   date sold: used as numbers" in text and "read as %d/%m/%Y" in text
    assert "sold.weekday" in prepare(exp).feature_names


def test_a_test_set_after_the_training_dates_is_noted_and_named_by_the_time_hint(project):
    train, test = _dated(*toy_frames(), "%Y-%m-%d")  # test.csv's ids, so its days, come later
    rng = np.random.default_rng(5)
    opened = pd.date_range("2010-01-01", periods=90).strftime("%d.%m.%Y").to_numpy()
    rng.shuffle(opened)
    train.insert(1, "opened", opened[:60])  # before `sold`, and drawn alike in both files
    test.insert(1, "opened", opened[60:])
    path, exp = _init(project, train, test)
    text = path.read_text()
    assert ('#   date sold: test.csv starts after train.csv ends (2015-06-27 < 2015-06-30): '
            'consider [cv] kind = "time" below\n') in text
    assert "date opened: test.csv starts" not in text
    assert '# kind = "time"; time = "sold"  validates on later rows only\n' in text
    assert exp.fold_kind == "stratified"  # a hint: the split stays the user's choice


def test_an_ambiguous_date_column_is_never_guessed_silently(project):
    """01/02/2015 reads two ways: init writes its guess commented out and says so; prepare
    stops with one line until the user uncomments the right format."""
    from typer.testing import CliRunner

    from pipeline.cli import app

    train, test = toy_frames()
    for df in (train, test):  # every value fits both %m/%d/%Y and %d/%m/%Y
        df["sold"] = [f"0{1 + i % 9}/1{i % 3}/2015" for i in df["id"]]
    folder = make_competition(project, train, test)
    result = CliRunner().invoke(app, ["init", str(folder.relative_to(project))])
    assert result.exit_code == 0, result.output
    assert "  date sold: every value reads as %m/%d/%Y and as %d/%m/%Y; uncomment `dates`" \
           in result.output  # init's reasons say so
    path = project / "experiments" / "comp.toml"
    text = path.read_text()
    assert '\n# dates = { sold = "%m/%d/%Y" }  # CHECK: sold reads as %m/%d/%Y and as ' \
           "%d/%m/%Y" in text
    with pytest.raises(PipelineError, match=r"column 'sold' holds dates that read as"):
        prepare(experiment.load(path))
    path.write_text(text.replace('# dates = { sold = "%m/%d/%Y" }',
                                 'dates = { sold = "%d/%m/%Y" }'))
    exp = experiment.load(path)
    assert exp.competition.dates == {"sold": "%d/%m/%Y"}
    assert load_preprocessor(prepare(exp))["dates"][0]["format"] == "%d/%m/%Y"


def test_a_train_csv_without_the_id_column_is_numbered(project):
    train, test = toy_frames()
    path, exp = _init(project, train.drop(columns="id"), test)
    assert "#   train.csv has no id column: rows are numbered" in path.read_text()
    assert exp.competition.id == "id" and exp.competition.drop == ()
    assert list(prepare(exp).train_ids[:3]) == ["0", "1", "2"]


def test_id_less_train_init_tune_submit_leaderboard(project):
    """End to end on a competition whose train.csv has no id: OOF predictions are by row."""
    from pipeline import tune
    from pipeline.submission.leaderboard import board
    from pipeline.submit import submit, validate_file

    train, test = toy_frames(80, 40)
    train["y"] = (train["num"].fillna(10) > 10).astype(int)
    folder = make_competition(project, train.drop(columns="id"), test)
    solution = pd.DataFrame({"id": test["id"], "y": (test["num"].fillna(10) > 10).astype(int),
                             "Usage": np.where(test["id"] % 2, "Public", "Private")})
    solution.to_csv(folder / "solution.csv", index=False)
    path = init_experiment(folder.relative_to(project), check=load_format)
    text = path.read_text().replace("max_iter = 300", "max_iter = 5").replace("seeds = 5",
                                                                              "seeds = 1")
    path.write_text(text.replace("folds = 5", "folds = 2"))
    exp = experiment.load(path)
    tune.tune(exp, trials=2, track=False)
    result = submit(exp, tune.best_trials(exp))
    validate_file(exp, result.path)
    oof = pd.read_csv(next((project / "submissions").rglob("*oof*.csv")), dtype={"id": str})
    assert list(oof["id"]) == [str(i) for i in range(80)]
    (entry,) = board(exp).entries
    assert np.isfinite(entry.public) and np.isfinite(entry.private)


def test_dates_spelled_another_way_in_test_are_no_date_column(project):
    train, _ = _dated(*toy_frames(), "%d/%m/%Y")
    _, test = _dated(*toy_frames(), "%Y-%m-%d")  # prepare could not read both with one format
    path, exp = _init(project, train, test)
    assert exp.competition.drop == ("sold",) and "dates =" not in path.read_text()
