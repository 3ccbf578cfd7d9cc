"""A study's identity checked wherever its trials' scores are used (issue #23): submit, show
--trial, the leaderboard's CV column and the registry's champion rule refuse (or set aside)
scores measured on other data, features, folds, metric or task."""

from __future__ import annotations

import math
import shutil

import pandas as pd
import pytest
from helpers_tune import one_line_error, tiny_project
from typer.testing import CliRunner

from pipeline import tune
from pipeline.cli import app
from pipeline.experiment import load


def _tuned(project):
    path = tiny_project(project, trials=2)
    tune.tune(load(path), track=False)
    return path


def _untouched(project):
    """Every file under submissions/ (none yet) and the study's bytes: a refusal writes none."""
    files = sorted(p for p in project.rglob("*") if p.is_file() and "submissions" in p.parts)
    return files, (project / "optuna.db").stat().st_size


def test_submit_refuses_a_study_measured_before_the_target_was_flipped(project):
    _tuned(project)
    before = _untouched(project)
    train = project / "data" / "tiny" / "train.csv"
    frame = pd.read_csv(train)
    frame["y"] = 1 - frame["y"]
    frame.to_csv(train, index=False)
    result = CliRunner().invoke(app, ["submit", "tiny"])
    one_line_error(result, "study 'tiny'", "data_fingerprint", "pipeline tune tiny --fresh")
    assert _untouched(project) == before
    assert not (project / "submissions").exists()


def test_submit_and_show_refuse_a_study_measured_with_a_column_now_dropped(project):
    path = _tuned(project)
    path.write_text(path.read_text().replace('target = "y"\n', 'target = "y"\ndrop = ["x2"]\n'))
    result = CliRunner().invoke(app, ["submit", "tiny"])
    one_line_error(result, "features: no longer reads x2")
    result = CliRunner().invoke(app, ["show", "tiny", "--trial", "0", "-o", "net.png"])
    one_line_error(result, "features: no longer reads x2")
    assert not (project / "net.png").exists()
    assert not (project / "submissions").exists()


def test_submit_refuses_a_study_scored_with_another_metric(project):
    path = _tuned(project)
    path.write_text(path.read_text().replace('metric = "roc_auc"', 'metric = "log_loss"'))
    result = CliRunner().invoke(app, ["submit", "tiny"])
    one_line_error(result, "metric roc_auc -> log_loss", "--fresh")
    assert not (project / "submissions").exists()
    # the way on that the line names: a fresh study, then submit
    assert CliRunner().invoke(app, ["tune", "tiny", "--fresh", "--quiet"]).exit_code == 0
    result = CliRunner().invoke(app, ["submit", "tiny"])
    assert result.exit_code == 0, result.output


def _same_name_other_data(project):
    """other/tiny.toml: the experiment file `tiny` again, on a copy of its data with x1 flipped."""
    other = project / "other"
    shutil.copytree(project / "data" / "tiny", other / "data" / "tiny")
    train = other / "data" / "tiny" / "train.csv"
    frame = pd.read_csv(train)
    frame["x1"] = -frame["x1"]
    frame.to_csv(train, index=False)
    text = (project / "experiments" / "tiny.toml").read_text()
    (other / "tiny.toml").write_text(text.replace('"data/tiny"', f'"{other}/data/tiny"'))
    return other


def test_another_experiment_file_with_the_same_name_and_other_data_is_refused(project):
    _tuned(project)
    _same_name_other_data(project)
    for command in (["submit", "other/tiny.toml"], ["tune", "other/tiny.toml", "--quiet"]):
        line = one_line_error(CliRunner().invoke(app, command), "name 'tiny' is taken by",
                               str(project / "experiments" / "tiny.toml"), "rename")
        assert "tiny-2.toml" in line
    assert not (project / "submissions").exists()


def test_another_file_with_the_same_name_is_refused_by_the_ledger_too(project):
    """Another study (`--study`), so the study's record cannot tell: the ledger's rows of the
    name record the experiment file that wrote them."""
    from pipeline.submission import ledger

    _tuned(project)
    ledger.LEDGER.parent.mkdir()  # a ledger begun before the experiment_file column
    old = [c for c in ledger.COLUMNS if c != "experiment_file"]
    ledger.LEDGER.write_text(",".join(old) + "\n", encoding="utf-8")
    assert CliRunner().invoke(app, ["submit", "tiny"]).exit_code == 0
    other = _same_name_other_data(project)
    tune.tune(load(other / "tiny.toml"), study_name="elsewhere", track=False)
    before = ledger.LEDGER.read_bytes()
    result = CliRunner().invoke(app, ["submit", "other/tiny.toml", "--study", "elsewhere"])
    one_line_error(result, "name 'tiny' is taken by", "submissions/ledger.csv", "rename")
    assert ledger.LEDGER.read_bytes() == before
    (row,) = ledger.read()
    assert row["experiment_file"] == str(project / "experiments" / "tiny.toml")
    assert row["status"] == ""


def test_the_same_file_moved_with_its_data_unchanged_still_submits(project):
    """The recorded path alone refuses nothing: a project copied elsewhere keeps its study."""
    from pipeline.tune.study import check_identity

    path = _tuned(project)
    study = tune.open_study("sqlite:///optuna.db", "tiny", "maximize")[0]
    study.set_user_attr("experiment_file", "/somewhere/else/tiny.toml")
    from pipeline.prepare import prepare

    exp = load(path)
    check_identity(exp, study, prepare(exp).fingerprint, "sqlite:///optuna.db", record=False)


def test_the_leaderboard_sets_aside_cv_scores_of_another_metric(project):
    from helpers_submit import write_competition

    from pipeline.submission import ledger
    from pipeline.submission.leaderboard import board

    exp = write_competition(project, "lb", metric="log_loss")
    sample = project / "data" / "lb" / "sample_submission.csv"
    for name, metric, cv in (("a.csv", "roc_auc", "0.91"), ("b.csv", "log_loss", "0.35")):
        shutil.copy(sample, project / name)
        ledger.append({"file": name, "experiment": "lb", "cv_score": cv, "metric": metric})
    entries = {e.file: e for e in board(exp).entries}
    assert math.isnan(entries["a.csv"].cv)  # an AUC beside log losses would read as terrible
    assert entries["b.csv"].cv == pytest.approx(0.35)


def test_the_champion_rule_never_compares_scores_of_two_metrics():
    from pipeline.tracking.registry import decide

    class Champion:
        version = "1"
        tags = {"fingerprint": "f", "metric": "roc_auc", "cv_score": "0.9"}

    class Client:
        def get_model_version_by_alias(self, name, alias):
            return Champion()

    tags = {"fingerprint": "f", "metric": "log_loss", "cv_score": "0.5"}
    promoted, why, previous = decide(Client(), "tiny", tags, promote=False)
    assert promoted and "metric" in why and previous == "1"
    # the same metric still compares: log loss 0.5 does not beat 0.4
    Champion.tags = {"fingerprint": "f", "metric": "log_loss", "cv_score": "0.4"}
    assert decide(Client(), "tiny", tags, promote=False)[0] is False
