"""Multi-fidelity tuning (pipeline/tune/fidelity.py): [tune] subsample / promote / pruner
validated, `init` turning it on from its row threshold, promoted trials on all rows, only
full-fidelity trials chosen for submit, pruning along the epochs with Hyperband."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import optuna
import pytest
from conftest import make_competition, toy_frames
from helpers_tune import one_line_error, tiny_project
from optuna.trial import TrialState, create_trial
from typer.testing import CliRunner

from pipeline import console, experiment, init, tune
from pipeline.cli import app
from pipeline.errors import PipelineError
from pipeline.experiment import load
from pipeline.prepare import prepare
from pipeline.trials import TrialKey
from pipeline.trials import load as load_trial
from pipeline.tune.fidelity import FOLD_ATTR, SUBSAMPLE_ATTR, promoted, subsample
from pipeline.tune.study import epoch_stride, make_pruner

SPACE = "learning_rate_init = { low = 0.0001, high = 0.05, log = true }\n"
STAGED = "subsample = 0.5\npromote = 0.4\n"


def _study(name: str = "tiny") -> optuna.Study:
    return optuna.load_study(study_name=name, storage="sqlite:///optuna.db")


# --- the experiment file -------------------------------------------------------------------


@pytest.mark.parametrize(("extra", "expected"), [
    ("subsample = 0\n", "[tune] subsample must be a share of the training rows in (0, 1]"),
    ("subsample = 1.5\n", "[tune] subsample must be a share"),
    ('subsample = "half"\n', "[tune] subsample must be a share"),
    ("subsample = 0.5\npromote = 0\n", "[tune] promote must be a share of the trials"),
    ("subsample = 0.5\npromote = true\n", "[tune] promote must be a share"),
    ("promote = 0.3\n", "[tune] promote only applies with subsample < 1"),
])
def test_bad_fidelity_keys_are_one_line_naming_the_key(project, extra, expected):
    tiny_project(project, tune_extra=extra)
    with pytest.raises(PipelineError, match=re.escape(expected)):
        load("tiny")
    one_line_error(CliRunner().invoke(app, ["tune", "tiny"]), "experiments/tiny.toml", expected)


def test_an_unknown_pruner_is_one_line_listing_the_known_ones(project):
    tiny_project(project, pruner="asha")
    one_line_error(CliRunner().invoke(app, ["tune", "tiny"]),
                   "[tune] pruner must be one of median, hyperband, halving, none, got 'asha'")


def test_fidelity_keys_load_with_their_defaults(project):
    assert (load(tiny_project(project)).tune.subsample, load(tiny_project(project)).tune.promote) \
        == (1.0, 0.3)
    tune_ = load(tiny_project(project, pruner="hyperband", tune_extra=STAGED)).tune
    assert (tune_.pruner, tune_.subsample, tune_.promote) == ("hyperband", 0.5, 0.4)


def test_pruners_are_optunas_with_rungs_on_fold_0s_epochs(project):
    exp = load(tiny_project(project, pruner="hyperband", max_iter=30))
    pruner = make_pruner(exp)
    assert isinstance(pruner, optuna.pruners.HyperbandPruner)
    assert (pruner._min_resource, pruner._max_resource) == (1, epoch_stride(exp)) == (1, 30)
    exp = load(tiny_project(project, pruner="halving"))
    assert isinstance(make_pruner(exp), optuna.pruners.SuccessiveHalvingPruner)


# --- init ----------------------------------------------------------------------------------


def _init(root: Path, name: str) -> tuple[str, experiment.Experiment]:
    train, test = toy_frames()
    folder = make_competition(root, train, test, name=name)
    path = init.init_experiment(folder.relative_to(root))
    return path.read_text(), experiment.load(path)


def test_init_turns_multi_fidelity_on_from_its_row_threshold(project, monkeypatch):
    text, exp = _init(project, "small")  # 60 rows, the real threshold: off
    assert (exp.tune.subsample, exp.tune.pruner, exp.cv.folds) == (1.0, "median", 5)
    assert f"From {init.BIG_DATA:,} training rows init writes" in text
    monkeypatch.setattr(init, "BIG_DATA", 60)  # the toy data is exactly at the threshold
    monkeypatch.setattr(init, "SMALL_DATA", 10)  # and no longer small data
    text, exp = _init(project, "big")
    assert exp.tune.pruner == "hyperband" and exp.tune.promote == 0.2
    assert exp.tune.subsample == 0.5  # SUBSAMPLE_ROWS of 60 rows: capped at half of them
    assert (exp.cv.folds, exp.submit.seeds, exp.model.batch_size) == (3, 1, 512)
    assert "on from 60 training rows" in text
    monkeypatch.setattr(init, "HUGE_DATA", 60)  # very big data: fewer trials promoted
    assert _init(project, "huge")[1].tune.promote == 0.1
    monkeypatch.setattr(init, "BIG_DATA", 61)  # one row short: off
    _, exp = _init(project, "short")
    assert exp.tune.subsample == 1.0 and exp.tune.pruner == "median"


def test_init_sizes_the_subsample_to_its_rows():
    assert [re.search(r"(?m)^subsample = (.*)$", init._tune_toml(n))[1]
            for n in (100_000, 300_000, 1_000_000, 5_000_000)] == ["0.5", "0.17", "0.05", "0.05"]


# --- the subsample and the promotion rule --------------------------------------------------


def test_subsample_is_stratified_seeded_and_keeps_row_order(project):
    exp = load(tiny_project(project, n=400, tune_extra="subsample = 0.25\n"))
    full = prepare(exp)
    sub = subsample(full, exp)
    assert len(sub.y) == 100 and sub.X_train.shape == (100, full.X_train.shape[1])
    assert abs(sub.y.mean() - full.y.mean()) < 0.02  # stratified
    ids = [int(i) for i in sub.train_ids]
    assert ids == sorted(ids)  # time folds need the order
    rows = {str(i): r for i, r in zip(full.train_ids, full.X_train, strict=True)}
    assert all(np.array_equal(rows[str(i)], r) for i, r in zip(sub.train_ids, sub.X_train,
                                                                  strict=True))
    assert np.array_equal(subsample(full, exp).train_ids, sub.train_ids)  # the same every trial
    assert np.array_equal(sub.X_test, full.X_test)


def test_a_subsample_too_small_for_the_folds_is_one_line_before_any_trial(project):
    exp = load(tiny_project(project, n=240, tune_extra="subsample = 0.01\n"))
    with pytest.raises(PipelineError, match=r"subsample = 0.01 keeps 2 of 240 training rows"):
        subsample(prepare(exp), exp)
    one_line_error(CliRunner().invoke(app, ["tune", "tiny"]), "too few for 2 folds")
    assert _study().trials == []  # refused before the first trial (and before any run)


@pytest.mark.parametrize(("value", "others", "share", "maximize", "expected"), [
    (0.5, [], 0.2, True, True),  # the first trial always goes on
    (0.7, [0.8], 0.5, True, False),  # best 1 of 2
    (0.9, [0.8], 0.5, True, True),
    (0.85, [0.9, 0.8, 0.7, 0.6], 0.4, True, True),  # best 2 of 5
    (0.75, [0.9, 0.8, 0.7, 0.6], 0.4, True, False),
    (0.65, [0.9, 0.8, 0.7, 0.6], 0.4, False, True),  # minimize: small is good
    (0.85, [0.9, 0.8, 0.7, 0.6], 0.4, False, False),
])
def test_promotion_keeps_the_best_share_so_far(value, others, share, maximize, expected):
    assert promoted(value, others, share, maximize) is expected


# --- a staged study ------------------------------------------------------------------------


def test_promoted_trials_run_on_all_rows_the_others_end_pruned(project, capsys):
    exp = load(tiny_project(project, n=400, trials=8, max_iter=8, space=SPACE,
                            tune_extra=STAGED))
    console.tune_summary(tune.tune(exp, track=False))
    study = _study()
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    pruned = study.get_trials(states=(TrialState.PRUNED,))
    assert len(complete) + len(pruned) == 8
    not_promoted = [t for t in pruned if t.user_attrs["stop_reasons"][0].startswith(
        "not promoted") and t.user_attrs["fidelity"] == "subsample"]
    assert complete and not_promoted
    for t in complete:  # the value is a CV score on all 400 rows, after one on 200
        assert t.user_attrs["fidelity"] == "full" and SUBSAMPLE_ATTR in t.user_attrs
        stored = load_trial(TrialKey("tiny", "tiny", t.number))
        assert stored.oof.shape == (400,) and not np.isnan(stored.oof).any()
        assert stored.info["score"] == pytest.approx(t.value)
    for t in not_promoted:  # scored on the subsample only, never stored
        assert t.user_attrs["fidelity"] == "subsample"
        assert t.value == pytest.approx(t.user_attrs[SUBSAMPLE_ATTR])
        assert load_trial(TrialKey("tiny", "tiny", t.number)) is None
    # each not promoted trial ranked outside the best 40% of the subsample scores before it
    scores = {t.number: t.user_attrs[SUBSAMPLE_ATTR] for t in study.trials
              if SUBSAMPLE_ATTR in t.user_attrs}
    for t in not_promoted:
        before = [s for n, s in scores.items() if n < t.number]
        assert not promoted(scores[t.number], before, 0.4, maximize=True)
    held = sum(t.user_attrs["fidelity"] == "subsample" for t in pruned)
    one_fold = sum(t.user_attrs.get("fidelity") == "first fold" for t in pruned)
    said = f"{held} on the subsample" + (f", {one_fold} after one fold" if one_fold else "")
    assert f"{len(pruned)} pruned ({said})" in capsys.readouterr().out


def test_a_promoted_trial_goes_past_its_first_fold_only_when_it_ranks(project, capsys):
    """The second rung: on all rows, the first fold's score decides whether the other folds
    (the costly part on big data) train; a trial stopped there is pruned and stores nothing."""
    exp = load(tiny_project(project, n=400, trials=12, max_iter=8, space=SPACE,
                            tune_extra="subsample = 0.5\npromote = 0.5\n"))
    console.tune_summary(tune.tune(exp, track=False))
    study = _study()
    reached = [t for t in study.trials if FOLD_ATTR in t.user_attrs]
    stopped = [t for t in reached if t.state == TrialState.PRUNED]
    assert stopped, [(t.number, t.state, t.user_attrs.get("stop_reasons")) for t in study.trials]
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert {t.number for t in complete} == {t.number for t in reached} - {
        t.number for t in stopped}
    for t in stopped:
        assert t.user_attrs["fidelity"] == "first fold"
        assert t.user_attrs["stop_reasons"][0].startswith("not promoted: first fold roc_auc")
        assert load_trial(TrialKey("tiny", "tiny", t.number)) is None
    for t in complete:  # its first fold is the first fold of its full CV
        assert t.user_attrs["fold_scores"][0] == pytest.approx(t.user_attrs[FOLD_ATTR])
    scores = {t.number: t.user_attrs[FOLD_ATTR] for t in reached}
    for t in reached:  # the rule: the best half of the first folds before it
        before = [s for n, s in scores.items() if n < t.number]
        went_on = t.number in {c.number for c in complete}
        assert promoted(scores[t.number], before, 0.5, maximize=True) is went_on
    assert f"{len(stopped)} after one fold)" in capsys.readouterr().out


def test_the_best_trial_for_submit_is_always_full_fidelity(project):
    exp = load(tiny_project(project, n=400, trials=5, max_iter=6, space=SPACE,
                            tune_extra=STAGED))
    tune.tune(exp, track=False)
    study = _study()
    best_full = max(t.value for t in study.get_trials(states=(TrialState.COMPLETE,)))
    best_sub = max(t.user_attrs[SUBSAMPLE_ATTR] for t in study.trials
                   if SUBSAMPLE_ATTR in t.user_attrs)
    # a complete trial scored on the subsample only (an older study, another tool): better
    # than everything, and still never chosen
    params = study.trials[0].user_attrs["params"]
    study.add_trial(create_trial(
        state=TrialState.COMPLETE, value=max(best_full, best_sub) + 0.1,
        params=study.trials[0].params, distributions=study.trials[0].distributions,
        user_attrs={"params": params, "fidelity": "subsample", "n_iter": 3}))
    (chosen,) = tune.best_trials(exp)
    assert chosen.score == best_full
    assert study.trials[chosen.number].user_attrs["fidelity"] == "full"
    assert json.loads((project / "experiments" / "tiny.best.json").read_text())["score"] \
        == best_full


@pytest.mark.slow
def test_hyperband_prunes_along_fold_0s_epochs_and_mlflow_keeps_scores_apart(project):
    from helpers_tune import fresh_mlflow_db
    from mlflow import MlflowClient

    fresh_mlflow_db(project)
    exp = load(tiny_project(project, n=400, trials=8, max_iter=9, pruner="hyperband",
                            space=SPACE, tune_extra=STAGED))
    tune.tune(exp)
    study = _study()
    reasons = [t.user_attrs["stop_reasons"][0] for t in study.get_trials(
        states=(TrialState.PRUNED,))]
    assert any(r.startswith("pruned at epoch") for r in reasons), reasons
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    by_id = {r.info.run_id: r for r in runs}
    for t in study.trials:
        run = by_id[t.user_attrs["mlflow_run_id"]]
        if t.state == TrialState.COMPLETE:
            assert run.data.tags["fidelity"] == "full"
            assert run.data.metrics["cv_roc_auc"] == pytest.approx(t.value)
            assert "subsample_cv_roc_auc" in run.data.metrics
        else:  # a subsample score is never under the full CV score's name
            assert run.data.tags["fidelity"].startswith("subsample (200 of 400 rows)")
            assert "cv_roc_auc" not in run.data.metrics
