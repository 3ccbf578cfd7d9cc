"""The trials store: a complete trial's files written once, bounded by [tune] keep, and read by
submit instead of training again (identical predictions to the old retraining)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers_tune import fresh_mlflow_db, tiny_project

from pipeline import evaluate, trials
from pipeline.experiment import load
from pipeline.prepare import prepare
from pipeline.submit import SEED_STRIDE, submit
from pipeline.tune import best_trials, tune


def _fits(monkeypatch) -> list[int]:
    """Count every network fit from now on."""
    from pipeline.network import SigmoidNetworkClassifier

    calls: list[int] = []
    original = SigmoidNetworkClassifier.fit

    def counted(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SigmoidNetworkClassifier, "fit", counted)
    return calls


@pytest.fixture
def tuned(project):
    path = tiny_project(project, trials=3)
    path.write_text(path.read_text().replace("[tune]\n", "[tune]\nkeep = 2\n"))
    exp = load(path)
    assert exp.tune.keep == 2
    tune(exp, track=False)
    return exp


def test_complete_trials_are_stored_and_only_the_best_keep_their_models(tuned):
    folder = trials.ROOT / "tiny" / "tiny"
    stored = {int(p.name): trials.load(trials.TrialKey("tiny", "tiny", int(p.name)))
              for p in folder.iterdir()}
    assert len(stored) == 3 and all(s is not None for s in stored.values())
    prepared = prepare(tuned)
    for s in stored.values():
        assert s.oof.shape == prepared.y.shape and s.test.shape == (len(prepared.test_ids),)
        assert s.info["fingerprint"] == prepared.fingerprint
        assert s.info["identity"]["folds"] == tuned.fold_scheme()
        assert len(s.info["stop_reasons"]) == tuned.cv.folds
    ranked = sorted(stored, key=lambda n: -stored[n].info["score"])
    assert [bool(stored[n].model_paths) for n in ranked] == [True, True, False]  # keep = 2


def test_submit_one_seed_no_refit_trains_nothing_and_equals_the_retrained_folds(
        tuned, monkeypatch):
    best = best_trials(tuned)[0]
    fits = _fits(monkeypatch)
    result = submit(tuned, [best], refit=False, seeds=1)
    assert fits == [] and result.notes == []
    # the old way: the trial's folds trained again with its own seed
    prepared = prepare(tuned)
    cv = evaluate.cross_validate(prepared, tuned, best.params, keep_models=True)
    expected = np.mean([evaluate.predict(m, prepared.X_test) for m in cv.models], axis=0)
    test = pd.read_csv(result.prediction_paths[1], dtype={"id": str})
    np.testing.assert_allclose(test["p_1"], expected, rtol=0, atol=1e-9)
    assert result.cv_score == pytest.approx(cv.mean, abs=1e-12) == best.score


def test_extra_seeds_train_only_the_new_seeds_and_the_refit_only_itself(tuned, monkeypatch):
    best = best_trials(tuned)[0]
    fits = _fits(monkeypatch)
    bagged = submit(tuned, [best], refit=False, seeds=2)
    assert len(fits) == tuned.cv.folds and bagged.notes == []  # seed 1's folds only
    prepared = prepare(tuned)
    other = evaluate.cross_validate(
        prepared, tuned, best.params | {"random_state": best.params["random_state"] + SEED_STRIDE})
    stored = trials.load(trials.TrialKey("tiny", "tiny", best.number))
    oof = pd.read_csv(bagged.prediction_paths[0], dtype={"id": str})
    np.testing.assert_allclose(oof["p_1"], (stored.oof + other.oof) / 2, atol=1e-12)
    fits.clear()
    submit(tuned, [best], refit=True, seeds=1, message="refit")
    assert len(fits) == 1  # the refit; its OOF is the stored one


def test_top_k_of_kept_trials_trains_nothing(tuned, monkeypatch):
    fits = _fits(monkeypatch)
    result = submit(tuned, best_trials(tuned, top_k=2), refit=False, seeds=1)
    assert fits == [] and result.ensemble is not None and len(result.model_paths) == 4


def test_deleted_fold_models_are_retrained_with_one_line(tuned, monkeypatch):
    best = best_trials(tuned)[0]
    (trials.TrialKey("tiny", "tiny", best.number).folder / "fold1.npz").unlink()
    fits = _fits(monkeypatch)
    result = submit(tuned, [best], refit=False, seeds=1)
    assert len(fits) == tuned.cv.folds
    assert len(result.notes) == 1 and result.notes[0].startswith(f"trial {best.number}: ")
    assert "training its folds again" in result.notes[0]


def test_a_damaged_fold_model_is_retrained_with_one_line(tuned, monkeypatch):
    best = best_trials(tuned)[0]
    (trials.TrialKey("tiny", "tiny", best.number).folder / "fold0.npz").write_bytes(b"junk")
    fits = _fits(monkeypatch)
    result = submit(tuned, [best], refit=False, seeds=1)
    assert len(fits) == tuned.cv.folds and len(result.notes) == 1
    assert "deleted or damaged" in result.notes[0]


def test_other_data_or_parameters_are_never_reused(tuned, monkeypatch):
    best = best_trials(tuned)[0]
    fits = _fits(monkeypatch)
    moved = replace(best, params=best.params | {"alpha": 0.5})
    result = submit(tuned, [moved], refit=False, seeds=1)
    assert len(fits) == tuned.cv.folds and "other parameters" in result.notes[0]


def test_a_machine_without_the_folder_reads_the_trials_run(project, monkeypatch):
    """Tracking on: the files are on the trial's MLflow run; with trials/ gone (another
    machine), submit downloads them and still trains nothing."""
    import shutil

    from pipeline.tracking.artifacts import trial_fetcher

    fresh_mlflow_db(project)
    exp = load(tiny_project(project, trials=2))
    tune(exp)
    best = best_trials(exp)[0]
    assert best.run_id
    shutil.rmtree(trials.ROOT)
    fits = _fits(monkeypatch)
    result = submit(exp, [best], refit=False, seeds=1, fetch=trial_fetcher(None))
    assert fits == [] and result.notes == []
    assert (trials.TrialKey("tiny", "tiny", best.number).folder / "fold0.npz").is_file()


def test_a_run_without_files_is_a_retrain_not_a_crash(project, monkeypatch):
    from pipeline.tracking.artifacts import trial_fetcher

    fresh_mlflow_db(project)
    key = trials.TrialKey("x", "x", 0)
    assert trials.load(key, run_id="0123456789abcdef", fetch=trial_fetcher(None)) is None
    assert not Path(key.folder).exists()


def test_keep_is_validated_and_init_writes_it(project):
    from pipeline.errors import PipelineError

    path = tiny_project(project)
    path.write_text(path.read_text().replace("[tune]\n", "[tune]\nkeep = -1\n"))
    with pytest.raises(PipelineError, match=r"tiny.toml.*keep"):
        load(path)
    from pipeline import init

    assert "\nkeep = 10\n" in Path(init.__file__).read_text()


def test_a_fresh_study_drops_the_old_studys_stored_trials(tuned):
    """`--fresh` deletes the study: trial numbers start again, so its stored files go too."""
    folder = trials.ROOT / "tiny" / "tiny"
    assert len(list(folder.iterdir())) == 3
    tune(tuned, trials=1, fresh=True, track=False)
    assert [p.name for p in folder.iterdir()] == ["0000"]
