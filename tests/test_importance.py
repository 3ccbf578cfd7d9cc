"""`pipeline importance`: permutation importance of a trial's fold models on out-of-fold rows."""

from __future__ import annotations

import csv
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers_tune import fresh_mlflow_db, tiny_project
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.competitions import avocado
from pipeline.errors import PipelineError
from pipeline.experiment import load
from pipeline.importance import permutation_importance, save, source_columns
from pipeline.prepare import prepare
from pipeline.trials import TrialSpec

REPO = Path(__file__).resolve().parents[1]


def _trial(exp, **params) -> TrialSpec:
    return TrialSpec(number=7, params={**exp.model.params(), "random_state": 0, **params},
                     score=math.nan, n_iter=1)


def test_on_avocado_squishiness_comes_first(project):
    """The talk's point: ripeness is a band of squishiness; shuffling it hurts most."""
    avocado.generate(project / "data" / "avocado", seed=0, rows=1500, test_rows=10)
    shutil.copy(REPO / "experiments" / "avocado.toml", project / "experiments")
    exp = load("avocado")
    result = permutation_importance(exp, _trial(exp, max_iter=40), repeats=2)
    names = [c.column for c in result.columns]
    assert names[0] == "squishiness", [(c.column, round(c.mean, 4)) for c in result.columns]
    # one entry per train.csv column: one-hot levels and missing flags shuffle together
    assert sorted(names) == sorted(avocado.FEATURES)
    first, last = result.columns[0], result.columns[-1]
    assert first.mean > 0.05 and first.mean > 3 * result.columns[1].std
    assert abs(last.mean) < first.mean / 10 and len(first.drops) == 2
    assert first.std == pytest.approx(float(np.std(first.drops)))
    assert 0.5 < result.baseline <= 1.0


def test_a_minimised_metric_drops_positive_and_the_noise_column_stays_near_zero(project):
    exp = load(tiny_project(project, n=400, task="regression", metric="rmse", max_iter=30))
    result = permutation_importance(exp, _trial(exp, hidden_layer_sizes=(8,)), repeats=3)
    by = {c.column: c for c in result.columns}
    assert set(by) == {"x1", "x2", "colour"}  # colour's one-hot levels are one column
    assert result.columns[0].column == "x1" and by["x1"].mean > 0  # rmse rises: a drop
    assert by["x1"].mean > 5 * abs(by["colour"].mean)


def test_same_seed_same_numbers(project):
    exp = load(tiny_project(project, n=160, max_iter=4))
    a, b = (permutation_importance(exp, _trial(exp), repeats=2, seed=3) for _ in range(2))
    assert a == b


def test_date_parts_and_flags_group_under_their_column(project):
    exp = load(tiny_project(project, n=120))
    prepared = prepare(exp)
    groups = source_columns(prepared)
    assert list(groups) == ["x1", "x2", "colour"]
    assert [prepared.feature_names[j] for j in groups["colour"]] == ["colour=black",
                                                                       "colour=green"]


def test_saved_table_and_chart_or_nothing(project):
    exp = load(tiny_project(project, n=120, max_iter=3))
    result = permutation_importance(exp, _trial(exp), repeats=1)
    with pytest.raises(PipelineError, match="out.svg"):
        save(result, Path("out.svg"))
    assert not list(Path.cwd().glob("out.*"))
    saved = save(result, Path("figs/imp.png"))
    assert saved.paths == [Path("figs/imp.csv"), Path("figs/imp.png")]
    rows = list(csv.DictReader(Path("figs/imp.csv").open()))
    assert [r["column"] for r in rows] == [c.column for c in result.columns]
    assert rows[0]["rank"] == "1" and rows[0]["metric"] == "roc_auc"
    assert Path("figs/imp.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_importance_of_the_best_trial_fits_80_columns_and_is_logged(project, monkeypatch):
    import optuna
    from mlflow import MlflowClient

    from pipeline import tune

    monkeypatch.setenv("COLUMNS", "80")
    fresh_mlflow_db(project)
    uri = f"sqlite:///{project / 'mlflow.db'}"  # absolute: MLflow caches engines by URI
    exp = load(tiny_project(project, n=160, max_iter=4, trials=2))
    tune.tune(exp, track=False)  # the study's MLflow run made by hand: no writer process
    client = MlflowClient(uri)
    run = client.create_run(client.create_experiment("tiny")).info.run_id
    optuna.load_study(study_name="tiny", storage="sqlite:///optuna.db").set_user_attr(
        tune.PARENT_ATTR, run)
    args = ["importance", "tiny", "--repeats", "2", "--tracking-uri", uri]

    def no_training(*a, **k):
        raise AssertionError("importance trained the folds again instead of reading the store")

    monkeypatch.setattr("pipeline.evaluate.cross_validate", no_training)  # the kept models
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    out = result.output
    assert max(map(len, out.splitlines())) <= 80, out
    assert "(best)" in out and "wrote tiny-importance.csv" in out and "warning" not in out
    assert Path("tiny-importance.png").is_file()
    logged = {Path(a.path).name for a in client.list_artifacts(run, "importance")}
    assert logged == {"tiny-importance.csv", "tiny-importance.png"}
    result = CliRunner().invoke(app, ["importance", "tiny", "--trial", "99"])
    assert result.exit_code == 2 and "--trial 99" in result.output
