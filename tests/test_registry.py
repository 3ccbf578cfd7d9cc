"""Issue #12: the submitted model in MLflow: pickle-free pyfunc, registry alias, `pipeline predict`,
scored the same by `load_model`, `mlflow models predict` and `mlflow models serve`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers_submit import write_competition
from helpers_tune import fresh_mlflow_db, tiny_project
from typer.testing import CliRunner

from pipeline import tune
from pipeline.cli import app
from pipeline.experiment import load
from pipeline.prepare import prepare
from pipeline.tracking import free_port


def _submitted(exp, *args):
    """Tune (tracked) two trials, submit; -> (submission frame, CLI output)."""
    tune.tune(exp, trials=2)
    result = CliRunner().invoke(app, ["submit", exp.name, *args])
    assert result.exit_code == 0, result.output
    latest = sorted(Path("submissions", exp.name).glob("*.csv"))[-1]
    return pd.read_csv(latest, dtype={exp.competition.id: str}), result.output


def _raw_test(exp, **kwargs):
    """test.csv as pandas reads it (ids may come in as ints)."""
    return pd.read_csv(exp.competition.data_dir / "test.csv", **kwargs)


def _same(pred: pd.DataFrame, sub: pd.DataFrame, id_col: str) -> None:
    pred = pred.set_index(pred[id_col].astype(str)).loc[sub[id_col]]
    for column in sub.columns.drop(id_col):
        if pd.api.types.is_numeric_dtype(sub[column]):
            np.testing.assert_allclose(pred[column].to_numpy(float), sub[column], atol=1e-6)
        else:
            assert list(pred[column]) == list(sub[column])


@pytest.fixture(autouse=True)
def _own_store(project, monkeypatch):
    """mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI: keep each test on its own store."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{project}/mlflow.db")


def _tiny(project, task="binary", metric="roc_auc"):
    fresh_mlflow_db(project)
    return load(tiny_project(project, task=task, metric=metric, trials=2, max_iter=4))


def test_a_numbered_train_csv_still_lets_raw_rows_bring_their_id(project):
    from pipeline.tracking.registry import as_signature_types, signature_of

    exp = load(tiny_project(project))
    train = exp.competition.data_dir / "train.csv"
    pd.read_csv(train).drop(columns="id").to_csv(train, index=False)
    signature = signature_of(exp)
    spec = {c.name: c for c in signature.inputs.inputs}
    assert "id" in spec and not spec["id"].required  # echoed back, as with an id in train.csv
    rows = as_signature_types(_raw_test(exp), signature, Path("test.csv"), "id")
    assert list(rows["id"]) == list(_raw_test(exp)["id"])


@pytest.mark.parametrize("task,metric,args", [
    ("binary", "roc_auc", []),
    ("regression", "rmse", ["--no-refit"]),
])
def test_champion_scores_raw_rows_like_the_submission(project, task, metric, args):
    import mlflow

    exp = _tiny(project, task, metric)
    sub, output = _submitted(exp, *args)
    assert "champion: version 1 (first registered)" in output
    mlflow.set_tracking_uri(f"sqlite:///{project}/mlflow.db")
    model = mlflow.pyfunc.load_model(f"models:/{exp.name}@champion")
    _same(model.predict(_raw_test(exp)), sub, "id")
    # the model is code + .npz / JSON artifacts: nothing to unpickle
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{exp.name}@champion"))
    assert not [p for p in local.rglob("*") if p.suffix in (".pkl", ".pickle")]
    assert "loader_module: mlflow.pyfunc.loaders.code_model" in (local / "MLmodel").read_text()
    assert (local / "pyfunc_model.py").is_file() and not (local / "python_model.pkl").exists()


def test_champion_applies_the_threshold_the_submission_chose_on_oof(project, monkeypatch):
    """f1: the submission's labels come from a threshold chosen on OOF (here one far from
    0.5, so it matters); the registered model writes exactly those labels."""
    import mlflow

    from pipeline import evaluate
    from pipeline.decision import Decision, choose, fold_scores
    from pipeline.submission import members

    def far_from_half(metric, task, y, oof, folds):
        assert choose(metric, task, y, oof).kind == "threshold"
        return (fold_scores(metric, task, y, oof, folds),
                Decision("threshold", (float(np.nanquantile(oof, 0.8)),)))

    # the trial's decision (stored by tune) and a bag's (chosen by submit) alike
    monkeypatch.setattr(evaluate, "decide", far_from_half)
    monkeypatch.setattr(members, "decide", far_from_half)
    exp = _tiny(project, "binary", "f1")
    sub, output = _submitted(exp)
    assert "decision chosen on out-of-fold predictions: threshold" in output
    latest = sorted(Path("submissions", exp.name, "predictions").glob("*.test.csv"))[-1]
    p = pd.read_csv(latest, dtype={"id": str}).set_index("id").loc[sub["id"], "p_1"]
    labels = sub["y"].to_numpy()
    assert ((p >= 0.5).to_numpy() != labels.astype(bool)).any()  # not the plain 0.5 rule
    mlflow.set_tracking_uri(f"sqlite:///{project}/mlflow.db")
    model = mlflow.pyfunc.load_model(f"models:/{exp.name}@champion")
    _same(model.predict(_raw_test(exp)), sub, "id")


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_the_scorer_applies_the_decision_in_scoring_json(project):
    """Without MLflow: scoring.json's decision turns the model's probabilities into the labels
    `submit` wrote (threshold), and a file written before decisions existed still scores."""
    from pipeline.decision import Decision
    from pipeline.evaluate import build_estimator, predict
    from pipeline.prepare import prepare
    from pipeline.submission.format import load_format
    from pipeline.tracking.scoring import Scorer, output_spec

    exp = write_competition(project, "lab", metric="accuracy", labels=("no", "yes"))
    prepared = prepare(exp)
    model = build_estimator("binary", {"max_iter": 5, "random_state": 0})
    model.fit(prepared.X_train, prepared.y)
    p = predict(model, prepared.X_test)
    t = float(np.median(p))
    spec = json.loads((prepared.path / "preprocessor.json").read_text(encoding="utf-8"))
    fmt = load_format(exp)
    out = output_spec(fmt, prepared.classes, [["model0"]], Decision("threshold", (t,)))
    raw = _raw_test(exp, dtype={"id": str})
    got = Scorer(spec, json.loads(json.dumps(out)), [[model]]).predict(raw)
    want = np.where(p >= t, "yes", "no")
    order = {i: n for n, i in enumerate(prepared.test_ids)}
    assert list(got["y"]) == [want[order[i]] for i in got["id"]]
    out.pop("decision")  # scoring.json from before decisions: 0.5
    plain = Scorer(spec, out, [[model]]).predict(raw)
    assert list(plain["y"]) == [("yes" if p[order[i]] >= 0.5 else "no") for i in plain["id"]]


def test_multiclass_top_k_gives_class_probability_columns(project):
    import mlflow

    exp = write_competition(project, "multi", task="multiclass", metric="log_loss",
                            labels=("eel", "cat", "dog"), sample_columns=["eel", "cat", "dog"])
    fresh_mlflow_db(project)
    sub, _ = _submitted(exp, "--top-k", "2")
    mlflow.set_tracking_uri(f"sqlite:///{project}/mlflow.db")
    pred = mlflow.pyfunc.load_model("models:/multi@champion").predict(
        _raw_test(exp, dtype={"id": str}))  # zero-padded ids stay as given
    assert list(pred.columns) == list(sub.columns)
    _same(pred, sub, "id")


def test_champion_moves_only_when_it_should_and_promote_forces_it(project):
    from mlflow import MlflowClient

    exp = _tiny(project)
    _submitted(exp)
    _, other = tune.best_trials(exp, top_k=2)  # same data, a worse trial: it does not beat it
    _, output = _submitted(exp, "--trial", str(other.number))
    assert "champion stays version 1" in output
    # (an identical CSV would write nothing: this one averages the fold models instead)
    _, output = _submitted(exp, "--trial", str(other.number), "--no-refit", "--promote")
    assert "champion: version 3 (was version 1): --promote" in output
    client = MlflowClient("sqlite:///mlflow.db")
    version = client.get_model_version_by_alias("tiny", "champion")
    assert str(version.version) == "3"
    assert {"trials", "cv_score", "metric", "fingerprint", "git_commit"} <= set(version.tags)


def test_pipeline_predict_writes_the_submission_format(project):
    exp = _tiny(project)
    runner = CliRunner()
    result = runner.invoke(app, ["predict", "tiny", "data/tiny/test.csv", "-o", "p.csv"])
    assert result.exit_code == 2 and "run `pipeline submit tiny` first" in result.output
    assert not Path("p.csv").exists()
    sub, _ = _submitted(exp)
    result = runner.invoke(app, ["predict", "tiny", "data/tiny/test.csv", "-o", "p.csv"])
    assert result.exit_code == 0, result.output
    _same(pd.read_csv("p.csv", dtype={"id": str}), sub, "id")
    bad = _raw_test(exp).drop(columns="x2")
    bad.to_csv("bad.csv", index=False)
    result = runner.invoke(app, ["predict", "tiny", "bad.csv", "-o", "q.csv"])
    assert result.exit_code == 2 and "'x2'" in result.output and not Path("q.csv").exists()
    bad = _raw_test(exp).assign(x1="text")
    bad.to_csv("bad.csv", index=False)
    result = runner.invoke(app, ["predict", "tiny", "bad.csv", "-o", "q.csv"])
    assert result.exit_code == 2 and "'x1'" in result.output and not Path("q.csv").exists()
    assert len(result.output.strip().splitlines()) == 1
    # rows without their id, or with an overflowing number: one line each, nothing written
    _raw_test(exp).drop(columns="id").to_csv("bad.csv", index=False)
    result = runner.invoke(app, ["predict", "tiny", "bad.csv", "-o", "q.csv"])
    assert result.exit_code == 2 and "bad.csv: no id column 'id'" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not Path("q.csv").exists()
    bad = _raw_test(exp).astype({"x1": object})
    bad.loc[2, "x1"] = "1e400"
    bad.to_csv("bad.csv", index=False)
    result = runner.invoke(app, ["predict", "tiny", "bad.csv", "-o", "q.csv"])
    assert result.exit_code == 2 and "row 3 (line 4), column 'x1'" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not Path("q.csv").exists()


def test_embedded_levels_survive_submit_and_predict_with_unseen_levels(project):
    """A 30-level text column is embedded: submit's models read its codes, the registered
    model maps raw rows through the preprocessor's vocabulary, and a level no training row
    had (the 'other' row) scores the same as another one."""
    exp = _tiny(project)
    folder = exp.competition.data_dir
    train, test = pd.read_csv(folder / "train.csv"), pd.read_csv(folder / "test.csv")
    train["city"] = [f"c{i % 30}" for i in range(len(train))]  # 8 rows each
    test["city"] = [f"c{i % 30}" if i % 3 else f"new{i}" for i in range(len(test))]
    train.to_csv(folder / "train.csv", index=False)
    test.to_csv(folder / "test.csv", index=False)
    sub, _ = _submitted(exp)
    runner = CliRunner()
    result = runner.invoke(app, ["predict", "tiny", str(folder / "test.csv"), "-o", "p.csv"])
    assert result.exit_code == 0, result.output
    _same(pd.read_csv("p.csv", dtype={"id": str}), sub, "id")
    other = test.assign(city=[f"unknown{i}" for i in range(len(test))])
    other.to_csv("other.csv", index=False)
    result = runner.invoke(app, ["predict", "tiny", "other.csv", "-o", "q.csv"])
    assert result.exit_code == 0, result.output
    unseen = pd.read_csv("q.csv", dtype={"id": str}).set_index("id").loc[sub["id"], "y"]
    new = np.array([i % 3 == 0 for i in range(len(test))])  # rows whose level was new anyway
    np.testing.assert_allclose(unseen.to_numpy()[new], sub["y"].to_numpy()[new], atol=1e-9)
    assert not np.allclose(unseen.to_numpy()[~new], sub["y"].to_numpy()[~new])
    models = list(Path("submissions", "tiny").rglob("*.npz"))
    from pipeline.network import load_model

    assert models and all(load_model(m).categories_ is not None for m in models)


def _mlflow_cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "mlflow", *args]


def _env() -> dict[str, str]:
    """`mlflow models serve` execs `uvicorn` by name: the venv's bin must be on PATH."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, "MLFLOW_TRACKING_URI": "sqlite:///mlflow.db",
            "MLFLOW_DISABLE_TELEMETRY": "true", "PATH": path}


@pytest.mark.slow
def test_mlflow_models_predict_and_serve_offline(project):
    exp = _tiny(project)
    sub, _ = _submitted(exp)
    done = subprocess.run(
        _mlflow_cli("models", "predict", "-m", "models:/tiny@champion", "-i",
                    "data/tiny/test.csv", "-t", "csv", "-o", "out.json", "--env-manager", "local"),
        env=_env(), capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    _same(_predictions(Path("out.json").read_text()), sub, "id")

    _same(_served("models:/tiny@champion", _raw_test(exp)), sub, "id")


def _served(model_uri: str, rows: pd.DataFrame) -> pd.DataFrame:
    """`mlflow models serve --env-manager local`'s answer for `rows`, posted as JSON."""
    port = free_port()
    server = subprocess.Popen(
        _mlflow_cli("models", "serve", "-m", model_uri, "--env-manager", "local",
                    "-h", "127.0.0.1", "-p", str(port)),
        env=_env(), stdout=subprocess.DEVNULL, stderr=(Path.cwd() / "serve.log").open("w"),
        start_new_session=True,
    )
    try:
        body = {"dataframe_split": json.loads(rows.to_json(orient="split", index=False))}
        try:
            return _predictions(_post(f"http://127.0.0.1:{port}/invocations", body, server))
        except OSError:
            pytest.fail(f"mlflow models serve: {Path('serve.log').read_text()[-2000:]}")
    finally:  # the server's own session: stop it and whatever it started
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


BAND = """\
import numpy as np

def features(df):
    # the band the tiny target hides, from x1 (dropped below: only the code reads it)
    df["band"] = np.abs(df["x1"] + 0.5 * (df["colour"] == "black"))
    if (df["x2"].abs() > 100).any():
        raise ValueError("x2 out of range")
    return df
"""


def _with_feature_code(project) -> object:
    """The tiny competition with feature code, and x1 in `drop`: only the code reads it."""
    fresh_mlflow_db(project)
    path = tiny_project(project, trials=2, max_iter=4)
    (project / "experiments" / "tiny_features.py").write_text(BAND, encoding="utf-8")
    path.write_text(path.read_text().replace(
        'metric = "roc_auc"\n',
        'metric = "roc_auc"\nfeatures = "experiments/tiny_features.py"\ndrop = ["x1"]\n'))
    return load(path)


def test_the_model_carries_the_feature_code_and_runs_it_on_raw_rows(project):
    import mlflow

    exp = _with_feature_code(project)
    sub, _ = _submitted(exp)
    assert "band" in prepare(exp).feature_names
    # the experiment's file changes after the submission: the model runs its own copy
    Path("experiments/tiny_features.py").write_text("def features(df):\n    1 / 0\n")
    mlflow.set_tracking_uri(f"sqlite:///{project}/mlflow.db")
    model = mlflow.pyfunc.load_model("models:/tiny@champion")
    _same(model.predict(_raw_test(exp)), sub, "id")  # ints as pandas reads them
    local = Path(mlflow.artifacts.download_artifacts("models:/tiny@champion"))
    assert [p.read_text() for p in local.rglob("features.py")] == [BAND]
    spec = {c.name: c for c in model.metadata.signature.inputs.inputs}
    assert spec["x1"].required  # dropped, but the feature code reads it
    runner = CliRunner()
    result = runner.invoke(app, ["predict", "tiny", "data/tiny/test.csv", "-o", "p.csv"])
    assert result.exit_code == 0, result.output
    _same(pd.read_csv("p.csv", dtype={"id": str}), sub, "id")
    # an error inside the feature code at predict time: one line naming the file and line
    _raw_test(exp).assign(x2=1000.0).to_csv("far.csv", index=False)
    result = runner.invoke(app, ["predict", "tiny", "far.csv", "-o", "q.csv"])
    assert result.exit_code == 2 and not Path("q.csv").exists(), result.output
    assert result.output.strip().splitlines() == [
        "error: experiments/tiny_features.py: line 7 (in features): ValueError: x2 out of "
        "range (running features() on the rows)"]


def test_served_feature_code_must_make_the_columns_it_made_in_training():
    """Code whose output depends on the rows (a column only some inputs get) is one line at
    scoring time, not a KeyError deep in the preprocessor."""
    from pipeline.errors import PipelineError
    from pipeline.prepare.user_features import FeatureCode
    from pipeline.tracking.scoring import Scorer

    spec = {"id": "id", "features": {"file": "experiments/f.py", "input": {"x": "int"},
                                     "columns": ["x", "big"]}}
    code = FeatureCode(lambda df: df.assign(big=1) if (df["x"] > 5).all() else df, "f", "f.py")
    scorer = Scorer(spec, {}, [], code)
    rows = scorer.with_features(pd.DataFrame({"id": [1, 2], "x": [7.0, 8.0]}))
    assert rows["x"].dtype == np.int64 and list(rows["big"]) == [1, 1]
    with pytest.raises(PipelineError, match=r"^experiments/f.py: features\(\) left out "
                                            r"column\(s\) \['big'\] that it made in training"):
        scorer.with_features(pd.DataFrame({"id": [1, 2], "x": [1.0, 8.0]}))


@pytest.mark.slow
def test_mlflow_models_serve_applies_the_feature_code(project):
    exp = _with_feature_code(project)
    sub, _ = _submitted(exp)
    _same(_served("models:/tiny@champion", _raw_test(exp)), sub, "id")


def _predictions(text: str) -> pd.DataFrame:
    payload = json.loads(text)
    return pd.DataFrame(payload["predictions"] if isinstance(payload, dict) else payload)


def _post(url: str, body: dict, server: subprocess.Popen, wait: float = 120.0) -> str:
    """POST once the server answers (start-up is slow on a loaded machine)."""
    data = json.dumps(body).encode()
    deadline = time.monotonic() + wait
    while True:
        request = urllib.request.Request(url, data, {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.read().decode()
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.5)



def test_runs_show_their_data_kind_config_and_ui_links(project):
    from mlflow import MlflowClient

    from pipeline.prepare import prepare
    from pipeline.tracking.links import SHARE_KEY, SHARED_VIEW, study_links

    exp = _tiny(project)
    tune.tune(exp, trials=2)
    client = MlflowClient(f"sqlite:///{project}/mlflow.db")
    experiment = client.get_experiment_by_name("tiny")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    runs = client.search_runs([experiment.experiment_id])
    assert {r.data.tags["kind"] for r in runs} == {"study", "trial"}
    for run in runs:  # parent and children: train.csv, digest = our fingerprint
        (dataset,) = run.inputs.dataset_inputs
        assert dataset.dataset.digest == prepare(exp).fingerprint
        assert {t.key: t.value for t in dataset.tags}["mlflow.data.context"] == "train"
    trial = next(r for r in runs if r.data.tags["kind"] == "trial")
    local = client.download_artifacts(trial.info.run_id, "config.json", str(project))
    model = json.loads(Path(local).read_text())["model"]
    assert model["learning_rate_init"] == float(trial.data.params["learning_rate_init"])
    assert model["hidden_layer_sizes"] == json.loads(trial.data.params["hidden_layer_sizes"])

    (links,) = study_links("http://127.0.0.1:5000", None)
    assert links.metric == "cv_roc_auc"
    assert "orderByKey=metrics.%60cv_roc_auc%60&orderByAsc=false" in links.runs
    assert "compareRunsMode=CHART" in links.chart and SHARE_KEY in links.chart
    tags = client.get_experiment(experiment.experiment_id).tags
    state = json.loads(tags[SHARED_VIEW + SHARE_KEY])
    assert state["orderByKey"] == "metrics.`cv_roc_auc`"
    assert state["chartsSearchFilter"] == "val_loss" and state["runsHiddenMode"] == "SHOW_ALL"


def test_a_submit_whose_mlflow_logging_failed_is_finished_by_its_rerun(project, monkeypatch):
    """A full disk can fail MLflow's logging after the CSV and the ledger row are written: the
    re-run finds the identical submission and logs and registers it, once."""
    import errno

    from mlflow import MlflowClient

    import pipeline.tracking as tracking

    exp = _tiny(project)
    tune.tune(exp, trials=2)
    client = MlflowClient(f"sqlite:///{project}/mlflow.db")  # not a global URI set earlier
    real = tracking.MlflowTracker.log_files

    def full(self, run_id, files, artifact_path):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tracking.MlflowTracker, "log_files", full)
    result = CliRunner().invoke(app, ["submit", "tiny"])
    assert result.exit_code == 0 and "could not log the submission" in result.output
    assert not client.search_model_versions("name='tiny'")
    (csv,) = Path("submissions", "tiny").glob("*.csv")
    monkeypatch.setattr(tracking.MlflowTracker, "log_files", real)
    for _ in range(2):  # the second re-run has nothing left to do
        result = CliRunner().invoke(app, ["submit", "tiny"])
        assert result.exit_code == 0 and "identical to" in result.output, result.output
        versions = client.search_model_versions("name='tiny'")
        assert [v.tags["submission"] for v in versions] == [csv.name]
    run = client.get_run(versions[0].run_id)
    logged = {a.path for a in client.list_artifacts(run.info.run_id, "submission")}
    assert f"submission/{csv.name}" in logged
