"""Submissions: Kaggle's format and checks, refit / fold-average / top-k, the ledger.

Most tests run the submission logic against stand-ins for prepare / evaluate (tests/
helpers_submit.py) so they take milliseconds; `test_real_stages_*` run the real network.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers_submit import (
    _cross_validate,
    _folds,
    fake_prepare,
    install_fake_stages,
    write_competition,
)
from sklearn.metrics import mean_squared_error, roc_auc_score
from typer.testing import CliRunner

import pipeline
from pipeline import console
from pipeline.cli import app
from pipeline.errors import PipelineError
from pipeline.experiment import Submit, load
from pipeline.submission import ledger
from pipeline.submission.format import load_format, match_class_columns
from pipeline.submit import SEED_STRIDE, refit_params, submit, validate_file
from pipeline.trials import TrialSpec

NAME = re.compile(r"^\d{8}T\d{6}Z-(t\d+|top\d+(-t\d+)+)-cv-?\d+\.\d{5}(-\d+)?\.csv$")


@pytest.fixture
def fake(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return install_fake_stages(monkeypatch)


def trial(number: int = 7, alpha: float = 0.0, score: float = 0.9, n_iter: int = 6) -> TrialSpec:
    return TrialSpec(number, {"alpha": alpha, "random_state": 0, "max_iter": 30}, score, n_iter)


def read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def nothing_written(exp) -> bool:
    folder = Path("submissions") / exp.name
    return not ledger.LEDGER.exists() and not (folder.exists() and any(folder.iterdir()))


# --- the format, per kind of competition ---------------------------------------------------


def test_binary_probabilities_follow_the_sample_exactly(fake):
    exp = write_competition(Path.cwd(), "bin")
    result = submit(exp, [trial()], message="first")
    sample = read(exp.competition.data_dir / "sample_submission.csv")
    out = read(result.path)
    assert list(out.columns) == ["id", "y"]
    assert list(out["id"]) == list(sample["id"])  # the sample's order and spelling ("0041")
    values = out["y"].astype(float)
    assert values.between(0, 1).all() and values.nunique() > 1
    assert NAME.match(result.path.name) and result.path.parent == Path("submissions/bin")
    assert "-t7-cv0.90000" in result.path.name
    assert result.model_paths == [result.path.with_suffix(".npz")]
    assert result.model_paths[0].is_file()
    assert result.kaggle_command == (
        f'kaggle competitions submit -c bin -f {result.path.as_posix()} -m "first"'
    )
    validate_file(exp, result.path)
    assert not list(result.path.parent.glob(".*tmp*"))  # no temporary file left


@pytest.mark.parametrize(
    "labels", [("no", "yes"), ("<=50K", ">50K"), (False, True)], ids=["yes-no", "adult", "bool"]
)
def test_accuracy_labels_are_written_in_the_training_files_spelling(fake, labels):
    exp = write_competition(Path.cwd(), "acc", metric="accuracy", labels=labels)
    out = read(submit(exp, [trial()]).path)
    spelled = {str(v) for v in labels}
    assert set(out["y"]) <= spelled and len(set(out["y"])) == 2
    truth = read(exp.competition.data_dir / "solution.csv").set_index("id")["y"]
    accuracy = (out.set_index("id")["y"] == truth.loc[out["id"]]).mean()
    assert accuracy > 0.7  # labels not swapped


def test_multiclass_gets_one_probability_column_per_class(fake):
    labels = ("cat", "dog", "eel")
    exp = write_competition(
        Path.cwd(), "multi", task="multiclass", metric="log_loss", labels=labels,
        sample_columns=["eel", "cat", "dog"],
    )
    out = read(submit(exp, [trial()]).path)
    assert list(out.columns) == ["id", "eel", "cat", "dog"]
    proba = out[["eel", "cat", "dog"]].astype(float)
    assert np.allclose(proba.sum(axis=1), 1.0)
    truth = read(exp.competition.data_dir / "solution.csv").set_index("id")["y"]
    best = proba.idxmax(axis=1).to_numpy()
    assert (best == truth.loc[out["id"]].to_numpy()).mean() > 0.6  # columns matched by name


def test_regression_values(fake):
    exp = write_competition(Path.cwd(), "reg", task="regression", metric="rmse")
    out = read(submit(exp, [trial(score=0.5)]).path)
    truth = read(exp.competition.data_dir / "solution.csv").set_index("id")["y"].astype(float)
    rmse = mean_squared_error(truth.loc[out["id"]], out["y"].astype(float)) ** 0.5
    assert rmse < 0.5


def test_class_columns_are_matched_by_name():
    assert match_class_columns(["b", "a"], ("a", "b")) == {"a": "a", "b": "b"}
    assert match_class_columns(["Class_1", "Class_2"], ("1", "2")) == {
        "1": "Class_1", "2": "Class_2"}
    assert match_class_columns(["c1", "c10", "c11"], ("1", "10", "11")) is not None
    assert match_class_columns(["p", "q"], ("a", "b")) is None


# --- refit, fold averaging, top-k ----------------------------------------------------------


def test_refit_trains_the_mean_fold_epochs_without_early_stopping(fake):
    exp = write_competition(Path.cwd(), "bin")
    result = submit(exp, [trial(n_iter=6)])
    # one trial: its own CV score is used; one CV rebuild only for the OOF predictions kept
    assert fake.fit == 1 and fake.cross_validate == 1 and result.cv_score == trial().score
    params = fake.last_params
    assert params["max_iter"] == 6 and params["early_stopping"] is False
    assert params["n_iter_no_change"] > params["max_iter"]
    assert refit_params(trial(n_iter=0))["max_iter"] == 1


def test_no_refit_averages_the_fold_models(fake):
    exp = write_competition(Path.cwd(), "bin")
    result = submit(exp, [trial()], refit=False)
    assert fake.fit == 0 and fake.cross_validate == 1
    assert [p.name[-7:] for p in result.model_paths] == [".m1.npz", ".m2.npz", ".m3.npz"]
    assert all(p.is_file() for p in result.model_paths)
    prepared = fake_prepare(exp)
    cv = _cross_validate(prepared, exp, trial().params, keep_models=True)
    expected = np.mean([m.predict_metric(prepared.X_test) for m in cv.models], axis=0)
    expected = pd.Series(expected, index=prepared.test_ids)
    out = read(result.path)
    assert np.allclose(out["y"].astype(float), expected.loc[out["id"]].to_numpy())


def test_top_k_ensemble_scores_the_mean_of_the_members_oof(fake):
    exp = write_competition(Path.cwd(), "bin")
    members = [trial(3, alpha=0.0, score=0.95), trial(1, alpha=0.5, score=0.9)]
    result = submit(exp, members)
    prepared = fake_prepare(exp)
    oof = np.mean(
        [_cross_validate(prepared, exp, t.params).oof for t in members], axis=0
    )
    by_hand = np.mean([roc_auc_score(prepared.y[v], oof[v]) for _, v in _folds(prepared, exp)])
    assert result.cv_score == pytest.approx(by_hand)
    assert "-top2-cv" in result.path.name  # the members are in the ledger, below
    assert [p.name[-7:] for p in result.model_paths] == [".m1.npz", ".m2.npz"]
    (row,) = ledger.read()
    assert row["trials"] == "3 1" and row["cv_score"] == f"{by_hand:.5f}"


def test_bagging_trains_every_seed_and_scores_the_bag_by_its_own_oof(fake, monkeypatch):
    exp = write_competition(Path.cwd(), "bin")
    seen = []
    cross_validate = pipeline.evaluate.cross_validate
    monkeypatch.setattr(pipeline.evaluate, "cross_validate", lambda prepared, exp, params, **kw: (
        seen.append(params["random_state"]) or cross_validate(prepared, exp, params, **kw)))
    result = submit(exp, [trial()], refit=False, seeds=3)
    assert seen == [0, SEED_STRIDE, 2 * SEED_STRIDE] and len(result.model_paths) == 9
    prepared = fake_prepare(exp)
    oof = np.mean([_cross_validate(prepared, exp, trial().params | {"random_state": s}).oof
                   for s in seen], axis=0)
    by_hand = np.mean([roc_auc_score(prepared.y[v], oof[v]) for _, v in _folds(prepared, exp)])
    assert result.cv_score == pytest.approx(by_hand) and result.seeds == 3
    (row,) = ledger.read()
    assert row["cv_score"] == f"{by_hand:.5f}"


def test_the_experiments_submit_section_sets_the_defaults(fake):
    exp = write_competition(Path.cwd(), "bin")
    exp = replace(exp, submit=Submit(refit=False, seeds=2))
    result = submit(exp, [trial()])
    assert not result.refit and result.seeds == 2 and fake.fit == 0
    assert submit(exp, [trial()], refit=True, seeds=1).refit  # the command line wins


def test_oof_and_test_predictions_are_kept_for_stacking_apart_from_submissions(fake):
    exp = write_competition(Path.cwd(), "bin")
    result = submit(exp, [trial()], refit=False)
    oof_path, test_path = result.prediction_paths
    assert oof_path.parent == result.path.parent / "predictions"
    assert oof_path.name.endswith(".oof.csv") and test_path.name.endswith(".test.csv")
    prepared = fake_prepare(exp)
    oof = pd.read_csv(oof_path, dtype={"id": str})
    assert list(oof.columns) == ["id", "fold", "target", "p_1"]
    assert list(oof["id"]) == list(prepared.train_ids)
    for f, (_, val) in enumerate(_folds(prepared, exp)):  # the fold that validated each row
        assert set(oof["fold"].iloc[val]) == {f}
    np.testing.assert_allclose(oof["p_1"], _cross_validate(prepared, exp, trial().params).oof)
    test = pd.read_csv(test_path, dtype={"id": str}).set_index("id")
    sub = read(result.path).set_index("id")
    np.testing.assert_allclose(test.loc[sub.index, "p_1"], sub["y"].astype(float))


def test_a_label_metric_applies_the_decision_chosen_on_oof_and_saves_it(fake, monkeypatch):
    """mcc: the threshold chosen on the submitted OOF makes the labels and is saved in every
    model's metadata; a different threshold writes different labels."""
    import json

    from pipeline.decision import Decision, apply, choose, fold_scores
    from pipeline.submission import members as submit_module

    exp = write_competition(Path.cwd(), "dec", metric="accuracy", labels=("no", "yes"))
    exp = replace(exp, competition=replace(exp.competition, metric="mcc"))
    # the fake models' OOF is too easy for a threshold to beat 0.5 on other folds: the guard
    # (decide, tests/test_decision.py) would keep 0.5; here the threshold is applied
    monkeypatch.setattr(submit_module, "decide", lambda m, t, y, oof, folds:
                        (fold_scores(m, t, y, oof, folds), choose(m, t, y, oof)))
    result = submit(exp, [trial()], refit=False)
    prepared = fake_prepare(exp)
    oof = _cross_validate(prepared, exp, trial().params).oof
    assert result.decision == choose("mcc", "binary", prepared.y, oof)
    assert result.decision.kind == "threshold"
    test = pd.read_csv(result.prediction_paths[1], dtype={"id": str}).set_index("id")
    sub = read(result.path).set_index("id")
    codes = apply(result.decision, test.loc[sub.index, "p_yes"].to_numpy())
    assert list(sub["y"]) == list(np.array(["no", "yes"])[codes])
    for path in result.model_paths:
        meta = json.loads(str(np.load(path)["metadata"]))
        assert Decision.from_dict(meta["decision"]) == result.decision

    monkeypatch.setattr(submit_module, "decide",
                        lambda *a: (fold_scores(*a), Decision("threshold", (1.1,))))
    forced = submit(exp, [trial(8, alpha=0.3)], refit=False)
    assert set(read(forced.path)["y"]) == {"no"}  # nothing reaches 1.1: the threshold applied
    assert "decision chosen on out-of-fold predictions: threshold 1.1" in _printed(forced)


def test_qwk_on_a_regression_target_writes_integer_ratings(fake):
    exp = write_competition(Path.cwd(), "ord", task="regression", metric="rmse")
    exp = replace(exp, competition=replace(exp.competition, metric="qwk"))
    result = submit(exp, [trial()], refit=False)
    assert result.decision.kind == "ordinal_cuts"  # searched, or rounding when that is as good
    cells = read(result.path)["y"]
    assert all(re.fullmatch(r"-?\d+", c) for c in cells)  # `3`, not `3.0`
    validate_file(exp, result.path)


def _printed(result) -> str:
    buffer = io.StringIO()
    from contextlib import redirect_stdout

    with redirect_stdout(buffer):
        console.submission(result)
    return buffer.getvalue()


# --- the ledger ----------------------------------------------------------------------------


def test_ledger_row_records_the_submission(fake):
    exp = write_competition(Path.cwd(), "bin")
    first = submit(exp, [trial()], message='tuned "best"\nrun')
    second = submit(exp, [trial(8, alpha=0.3, score=0.8)])
    rows = ledger.read()
    assert [r["file"] for r in rows] == [first.path.as_posix(), second.path.as_posix()]
    row = rows[0]
    assert tuple(row) == ledger.COLUMNS
    assert row["sha256"] == hashlib.sha256(first.path.read_bytes()).hexdigest() == first.sha256
    assert row["experiment"] == "bin" and row["trials"] == "7"
    assert row["cv_score"] == "0.90000" and row["metric"] == "roc_auc"
    assert re.fullmatch(r"[0-9a-f]{40}|unknown", row["git_commit"])
    assert row["fingerprint"] == "f" * 16
    assert row["message"] == 'tuned "best" run'  # one line per row
    assert datetime.fromisoformat(row["time"]).tzinfo is not None
    assert rows[1]["message"] == "bin t8 cv 0.80000"  # the default message
    assert ledger.LEDGER.read_text().count("\n") == 3
    assert '-m "tuned \\"best\\" run"' in first.kaggle_command


def test_kaggle_slug_comes_from_the_experiment(fake):
    exp = write_competition(Path.cwd(), "bin")
    text = exp.path.read_text().replace('id = "id"', 'id = "id"\nkaggle = "avocado-ripeness"')
    exp.path.write_text(text)
    from pipeline.experiment import load

    result = submit(load("bin"), [trial()], message="m")
    assert result.kaggle_command.startswith("kaggle competitions submit -c avocado-ripeness -f ")


# --- bad input: one clear error, nothing written -------------------------------------------


def test_no_trial_yet(fake):
    exp = write_competition(Path.cwd(), "bin")
    expected = r"^no finished trial yet; run `pipeline tune bin` first$"
    with pytest.raises(PipelineError, match=expected):
        submit(exp, [])
    assert nothing_written(exp)


def test_test_columns_changed_since_prepare(fake):
    exp = write_competition(Path.cwd(), "bin")
    submit(exp, [trial()])
    before = ledger.LEDGER.read_bytes()
    files = sorted(Path("submissions/bin").iterdir())
    test = exp.competition.data_dir / "test.csv"
    test.write_text(test.read_text().replace("id,x1,x2", "id,x1,x2_renamed", 1))
    with pytest.raises(PipelineError, match=r"test\.csv: missing feature column\(s\) x2 "):
        submit(exp, [trial()])
    assert ledger.LEDGER.read_bytes() == before
    assert sorted(Path("submissions/bin").iterdir()) == files


def test_missing_sample_submission(fake):
    exp = write_competition(Path.cwd(), "bin")
    (exp.competition.data_dir / "sample_submission.csv").unlink()
    with pytest.raises(PipelineError, match=r"sample_submission\.csv: file not found"):
        submit(exp, [trial()])
    assert nothing_written(exp)


def test_sample_submission_without_the_id_column(fake):
    exp = write_competition(Path.cwd(), "bin")
    sample = exp.competition.data_dir / "sample_submission.csv"
    sample.write_text(sample.read_text().replace("id,y", "Id,y", 1))
    expected = r"sample_submission\.csv: header \['Id', 'y'\] has no id column 'id'"
    with pytest.raises(PipelineError, match=expected):
        submit(exp, [trial()])
    assert nothing_written(exp)


@pytest.mark.parametrize(
    "corrupt, problem",
    [
        (lambda f: f.assign(y=np.nan), "NaN"),
        (lambda f: f.assign(y=1.5), r"1.5 is outside \[0, 1\]"),
        (lambda f: f.iloc[1:], "1 missing id"),
        (lambda f: pd.concat([f, f.iloc[:1]]), "1 duplicate id"),
        (lambda f: f.rename(columns={"y": "target"}), "header is"),
    ],
    ids=["nan", "range", "missing", "duplicate", "header"],
)
def test_a_submission_failing_the_checks_writes_nothing(fake, monkeypatch, corrupt, problem):
    import pipeline.submit as submit_module

    exp = write_competition(Path.cwd(), "bin")
    real = submit_module.to_frame
    monkeypatch.setattr(submit_module, "to_frame", lambda *a: corrupt(real(*a)))
    with pytest.raises(PipelineError, match=problem):
        submit(exp, [trial()])
    assert nothing_written(exp)


# --- validate_file on hand-made files ------------------------------------------------------


def good_frame(exp) -> pd.DataFrame:
    sample = read(exp.competition.data_dir / "sample_submission.csv")
    return sample.assign(y=np.linspace(0, 1, len(sample)).round(3).astype(str))


def write(frame: pd.DataFrame, path: str = "mine.csv") -> Path:
    frame.to_csv(path, index=False)
    return Path(path)


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda f: f.rename(columns={"y": "Y"}), r"is \['id', 'Y'\], expected \['id', 'y'\]"),
        (lambda f: f[["y", "id"]], r"header is \['y', 'id'\]"),
        (lambda f: f.iloc[3:], r"3 missing id\(s\): '\d{4}', '\d{4}', '\d{4}'; 11 rows, expected"),
        (lambda f: pd.concat([f, f.iloc[:2]]), r"2 duplicate id\(s\): '\d{4}', '\d{4}'; 16 rows"),
        (lambda f: f.assign(id=f["id"].str.lstrip("0")), r"14 unexpected id\(s\): '\d+'"),
        (
            lambda f: f.assign(y=f["y"].where(f.index != 2, "nan")),
            r"data row 3 \(id \d{4}\), column 'y': nan is empty, NaN",
        ),
        (lambda f: f.assign(y=f["y"].where(f.index != 2, "inf")), r"infinite"),
        (lambda f: f.assign(y=f["y"].where(f.index != 2, "")), r"empty, NaN"),
        (
            lambda f: f.assign(y=f["y"].where(f.index > 6, "-0.1")),
            r"data row 1 \(id \d{4}\), column 'y': -0.1 is outside \[0, 1\]; also data row 2 "
            r"\(id \d{4}\): -0.1, .*, \.\.\. \(7 rows in all\)",
        ),
    ],
    ids=["renamed", "order", "missing", "duplicate", "extra", "nan", "inf", "empty", "range"],
)
def test_validate_names_the_problem(tmp_path, monkeypatch, edit, expected):
    monkeypatch.chdir(tmp_path)
    exp = write_competition(tmp_path, "bin")
    validate_file(exp, write(good_frame(exp)))
    with pytest.raises(PipelineError, match=expected):
        validate_file(exp, write(edit(good_frame(exp))))


@pytest.mark.parametrize(("sep", "name"), [(";", "semicolon"), ("\t", "tab"), ("|", "pipe")])
def test_validate_names_another_delimiter(tmp_path, monkeypatch, sep, name):
    monkeypatch.chdir(tmp_path)
    exp = write_competition(tmp_path, "bin")
    good_frame(exp).to_csv("semi.csv", sep=sep, index=False)
    with pytest.raises(PipelineError, match=f"^semi.csv: {name}-delimited"):
        validate_file(exp, Path("semi.csv"))


def test_validate_labels_must_be_in_the_label_set(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exp = write_competition(tmp_path, "acc", metric="accuracy", labels=("no", "yes"))
    frame = good_frame(exp).assign(y="yes")
    validate_file(exp, write(frame))
    frame.loc[4, "y"] = "Yes"
    expected = r"data row 5 \(id \d{4}\), column 'y': Yes is not in \{no, yes\}"
    with pytest.raises(PipelineError, match=expected):
        validate_file(exp, write(frame))


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"", "file is empty"),
        (b'id,y\n"0036,0.5\n', "not a valid CSV"),
        (b"id,y\n0036,0.5,7\n", "not a valid CSV"),
        (b"\xff\xfe\x00i\x00d", "not UTF-8"),
    ],
    ids=["empty", "quote", "fields", "binary"],
)
def test_validate_unreadable_files(tmp_path, monkeypatch, content, expected):
    monkeypatch.chdir(tmp_path)
    exp = write_competition(tmp_path, "bin")
    Path("bad.csv").write_bytes(content)
    with pytest.raises(PipelineError, match=f"^bad.csv: {expected}"):
        validate_file(exp, Path("bad.csv"))
    with pytest.raises(PipelineError, match="nope.csv: file not found"):
        validate_file(exp, Path("nope.csv"))


def test_format_kinds(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_format(write_competition(tmp_path, "a")).kind == "proba"
    assert load_format(write_competition(tmp_path, "b", metric="accuracy")).kind == "label"
    regression = write_competition(tmp_path, "c", task="regression", metric="rmse")
    assert load_format(regression).kind == "value"
    multi = write_competition(
        tmp_path, "d", task="multiclass", metric="log_loss", labels=("a", "b", "c"),
        sample_columns=["a", "b", "c"],
    )
    assert load_format(multi).kind == "class_proba"
    top = write_competition(tmp_path, "e", task="multiclass", metric="map@2",
                            labels=("a", "b", "c"))
    assert (load_format(top).kind, load_format(top).k) == ("top_k", 2)
    several = load_format(write_competition(tmp_path, "f", metric="mean_roc_auc",
                                            targets=("p", "q")))
    assert (several.kind, several.header, several.targets) == (
        "multi_target", ("id", "q", "p"), ("p", "q"))
    assert several.probabilities


@pytest.mark.parametrize(("cell", "expected"), [
    ("a d", r"data row 5 \(id \d{4}\), column 'y': a d lists a label not in \{a, b, c\}"),
    ("a b c", r"column 'y': a b c does not list 1 to 2 labels"),
    ("", r"column 'y': '' does not list 1 to 2 labels"),
    ("b b", r"column 'y': b b lists a label twice"),
], ids=["unknown", "too-many", "empty", "twice"])
def test_validate_top_k_cells(tmp_path, monkeypatch, cell, expected):
    monkeypatch.chdir(tmp_path)
    exp = write_competition(tmp_path, "top", task="multiclass", metric="map@2",
                            labels=("a", "b", "c"))
    frame = read(exp.competition.data_dir / "sample_submission.csv").assign(y="c a")
    frame.loc[0, "y"] = "b"  # fewer than k labels is allowed
    validate_file(exp, write(frame))
    frame.loc[4, "y"] = cell
    with pytest.raises(PipelineError, match=expected) as info:
        validate_file(exp, write(frame))
    assert "\n" not in str(info.value)


def test_validate_several_targets(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exp = write_competition(tmp_path, "two", metric="mean_roc_auc", targets=("p", "q"))
    frame = read(exp.competition.data_dir / "sample_submission.csv").assign(p="0.2", q="1")
    validate_file(exp, write(frame))
    frame.loc[2, "q"] = "1.5"
    with pytest.raises(PipelineError, match=r"data row 3 \(id \d{4}\), column 'q': 1.5 is "
                                            r"outside \[0, 1\]$"):
        validate_file(exp, write(frame))
    with pytest.raises(PipelineError, match=r"header is \['id', 'p', 'q'\], expected "
                                            r"\['id', 'q', 'p'\]"):
        validate_file(exp, write(frame[["id", "p", "q"]]))
    reg = write_competition(tmp_path, "tworeg", task="regression", metric="rmse",
                            targets=("p", "q"))
    validate_file(reg, write(frame.assign(q="-7.5")))  # values: no range


def test_cli_validate(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exp = write_competition(tmp_path, "bin")
    good = write(good_frame(exp))
    result = CliRunner().invoke(app, ["validate", "bin", str(good)])
    assert result.exit_code == 0 and "valid" in result.output
    bad = write(good_frame(exp).iloc[1:], "bad.csv")
    result = CliRunner().invoke(app, ["validate", "bin", str(bad)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: bad.csv: 1 missing id(s)")


# --- the real stages (skipped until prepare / evaluate / network exist) --------------------


def real_stages():
    pytest.importorskip("pipeline.prepare")
    evaluate = pytest.importorskip("pipeline.evaluate")
    return evaluate


def real_trial(exp, number: int, **overrides) -> TrialSpec:
    params = exp.model.params() | {"random_state": number} | overrides
    return TrialSpec(number, params, 0.5, 5)


@pytest.mark.parametrize("refit", [True, False], ids=["refit", "no-refit"])
def test_real_stages_binary(tmp_path, monkeypatch, refit):
    monkeypatch.chdir(tmp_path)
    real_stages()
    exp = write_competition(tmp_path, "real")
    result = submit(exp, [real_trial(exp, 1)], refit=refit)
    validate_file(exp, result.path)
    assert all(p.is_file() for p in result.model_paths)
    assert len(result.model_paths) == (1 if refit else exp.cv.folds)


def test_real_stages_top_k_multiclass_labels(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    real_stages()
    exp = write_competition(
        tmp_path, "realm", task="multiclass", metric="accuracy", labels=("x", "y", "z")
    )
    trials = [real_trial(exp, 1), real_trial(exp, 2, alpha=0.01)]
    result = submit(exp, trials)
    validate_file(exp, result.path)
    assert set(read(result.path)["y"]) <= {"x", "y", "z"}
    assert np.isfinite(result.cv_score) and "-top2-cv" in result.path.name


def test_real_stages_map_at_k_lists_the_likeliest_labels(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    real_stages()
    exp = write_competition(tmp_path, "realk", task="multiclass", metric="map@2",
                            labels=("x", "y", "z"))
    result = submit(exp, [real_trial(exp, 1)])
    validate_file(exp, result.path)
    cells = read(result.path)["y"].str.split()
    assert all(len(c) == 2 and len(set(c)) == 2 and set(c) <= {"x", "y", "z"} for c in cells)
    oof = read(result.prediction_paths[0])
    assert list(oof.columns) == ["id", "fold", "target", "p_x", "p_y", "p_z"]


@pytest.mark.parametrize(("task", "metric"), [("binary", "mean_roc_auc"),
                                              ("regression", "rmse")])
def test_real_stages_several_targets(tmp_path, monkeypatch, task, metric):
    monkeypatch.chdir(tmp_path)
    real_stages()
    exp = write_competition(tmp_path, "realt", task=task, metric=metric, targets=("p", "q"))
    result = submit(exp, [real_trial(exp, 1)], refit=False)
    validate_file(exp, result.path)
    out = read(result.path)
    assert list(out.columns) == ["id", "q", "p"] and np.isfinite(result.cv_score)
    oof, test = (read(p) for p in result.prediction_paths)
    assert list(oof.columns) == ["id", "fold", "target_p", "target_q", "p", "q"]
    assert list(test.columns) == ["id", "p", "q"]
    mine = test.set_index("id").loc[out["id"]]  # the same predictions, the sample's columns
    assert np.allclose(mine["q"].astype(float), out["q"].astype(float))


@pytest.mark.parametrize(
    "labels", [("<=50K", ">50K"), (False, True)], ids=["adult", "bool"]
)
def test_real_stages_labels_round_trip_to_the_leaderboard(tmp_path, monkeypatch, capsys, labels):
    monkeypatch.chdir(tmp_path)
    real_stages()
    exp = write_competition(tmp_path, "reall", metric="accuracy", labels=labels)
    result = submit(exp, [real_trial(exp, 1, max_iter=30, learning_rate_init=0.05)])
    out = read(result.path)
    assert set(out["y"]) <= {str(v) for v in labels}
    capsys.readouterr()
    from pipeline.submission.leaderboard import board

    console.leaderboard(board(exp), as_csv=True)
    (row,) = pd.read_csv(io.StringIO(capsys.readouterr().out)).to_dict("records")
    truth = read(exp.competition.data_dir / "solution.csv").set_index("id")
    pub = truth["Usage"] == "Public"
    mine = out.set_index("id").loc[truth.index, "y"]
    assert row["public"] == pytest.approx((mine[pub] == truth["y"][pub]).mean(), abs=1e-5)
    assert row["private"] == pytest.approx((mine[~pub] == truth["y"][~pub]).mean(), abs=1e-5)


def test_divergence_is_one_clear_error(fake, monkeypatch):
    import pipeline.evaluate as evaluate

    class Diverges:
        def fit(self, X, y):
            raise FloatingPointError("training diverged in epoch 3: loss = nan")

    monkeypatch.setattr(evaluate, "build_estimator", lambda task, params: Diverges())
    exp = write_competition(Path.cwd(), "bin")
    with pytest.raises(PipelineError, match=r"^trial 7 diverged while refitting .*--no-refit"):
        submit(exp, [trial()])
    assert nothing_written(exp)


def test_whole_number_labels_train_spells_as_floats_are_written_like_the_sample(fake):
    exp = write_competition(Path.cwd(), "flt", metric="accuracy", labels=(0.0, 1.0))
    sample_csv = exp.competition.data_dir / "sample_submission.csv"
    sample = read(sample_csv).assign(y="0")  # train.csv says 0.0 / 1.0, the sample says 0
    sample.to_csv(sample_csv, index=False)
    validate_file(exp, sample_csv)  # the competition's own sample is valid
    out = read(submit(exp, [trial()]).path)
    assert set(out["y"]) == {"0", "1"}


def test_spaces_after_commas_are_read_as_init_and_prepare_read_them(fake):
    exp = write_competition(Path.cwd(), "spaced", metric="accuracy", labels=("no", "yes"))
    for name in ("train.csv", "test.csv", "sample_submission.csv"):
        path = exp.competition.data_dir / name
        path.write_text(path.read_text().replace(",", ", "))
    fmt = load_format(exp)
    assert fmt.header == ("id", "y") and fmt.labels == ("no", "yes")
    assert not any(i.startswith(" ") for i in fmt.ids + fmt.test_ids)
    validate_file(exp, exp.competition.data_dir / "sample_submission.csv")


def test_real_stages_time_folds_score_and_keep_only_validated_rows(tmp_path, monkeypatch):
    """Time folds never validate their first block: the bag's and the ensemble's CV scores
    are fold means over validated rows, and the kept OOF file leaves the rest out."""
    from helpers_tune import tiny_project

    from pipeline.experiment import load
    from pipeline.prepare import prepare

    monkeypatch.chdir(tmp_path)
    evaluate = real_stages()
    path = tiny_project(tmp_path, folds=3, max_iter=3)
    path.write_text(path.read_text().replace("[cv]\n", '[cv]\nkind = "time"\ntime = "x1"\n'))
    exp = load(path)
    prepared = prepare(exp)
    trials = [real_trial(exp, 1), real_trial(exp, 2, alpha=0.01)]
    oofs = [evaluate.cross_validate(prepared, exp, t.params).oof for t in trials]
    folds = evaluate.folds(prepared, exp)

    def by_hand(oof):
        return np.mean([roc_auc_score(prepared.y[va], oof[va]) for _, va in folds])

    single = submit(exp, trials[:1], refit=False)
    assert single.cv_score == pytest.approx(by_hand(oofs[0]))
    kept = pd.read_csv(single.prediction_paths[0], dtype={"id": str})
    validated = np.concatenate([va for _, va in folds])
    assert len(kept) == len(validated) == 180 and kept["p_1"].notna().all()
    assert set(kept["id"]) == set(prepared.train_ids[validated])
    ensemble = submit(exp, trials)  # refit: trained on every row, scored on the folds
    assert ensemble.cv_score == pytest.approx(by_hand(np.mean(oofs, axis=0)))
    assert np.isfinite(ensemble.ensemble.best_member)


# --- end to end, one per new submission shape ----------------------------------------------


def _end_to_end(root: Path, exp, column: str) -> tuple[pd.DataFrame, dict[str, str]]:
    """init (over the hand-written file) -> tune 2 trials -> submit -> validate ->
    leaderboard; -> (the submission, its leaderboard row). The registered model's scorer
    (tracking.scoring, what the MLflow model runs) writes the same file from raw rows."""
    import json

    from pipeline import tune
    from pipeline.experiment import load
    from pipeline.prepare import prepare
    from pipeline.submission.format import load_format
    from pipeline.tracking.scoring import PREPROCESSOR, SCORING, Scorer, output_spec

    runner = CliRunner()
    result = runner.invoke(app, ["init", f"data/{exp.name}", "--force"])
    assert result.exit_code == 0, result.output
    path = Path("experiments") / f"{exp.name}.toml"
    fast = {"max_iter = 300": "max_iter = 4", "seeds = 5": "seeds = 1",
            "refit = false": "refit = true", "folds = 5": "folds = 3"}
    text = path.read_text()
    for old, new in fast.items():
        text = text.replace(old, new)
    path.write_text(text)
    exp = load(exp.name)
    tune.tune(exp, trials=2, track=False)
    file = submit(exp, tune.best_trials(exp)).path  # the CLI's submit, without MLflow (slow)
    assert runner.invoke(app, ["validate", exp.name, str(file)]).exit_code == 0
    result = runner.invoke(app, ["leaderboard", exp.name, "--csv"])
    (row,) = pd.read_csv(io.StringIO(result.output), dtype=str).to_dict("records")
    sub = read(file)
    prepared = prepare(exp)
    spec = output_spec(load_format(exp), prepared.classes, [["m1"]])
    Path("scoring.json").write_text(json.dumps(spec))
    scorer = Scorer.from_artifacts({PREPROCESSOR: str(prepared.path / "preprocessor.json"),
                                    SCORING: "scoring.json", "m1": str(file.with_suffix(".npz"))})
    raw = pd.read_csv(exp.competition.data_dir / "test.csv", dtype={"id": str})
    scored = scorer.predict(raw).set_index("id").loc[sub["id"]]
    assert list(scored.columns) == list(sub.columns[1:])
    if column == "listed":
        assert list(scored[sub.columns[1]]) == list(sub[sub.columns[1]])
    else:
        np.testing.assert_allclose(scored.to_numpy(float), sub.iloc[:, 1:].to_numpy(float))
    return sub, row


def test_end_to_end_top_k_labels(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    real_stages()
    exp = write_competition(tmp_path, "topk", task="multiclass", metric="map@2",
                            labels=("x", "y", "z"))
    sub, row = _end_to_end(tmp_path, exp, "listed")
    assert load(exp.name).competition.metric == "map@2"
    assert all(len(set(c.split())) == 2 for c in sub["y"])
    assert row["status"] == "ok" and 0 < float(row["public"]) <= 1


def test_end_to_end_several_targets(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    real_stages()
    exp = write_competition(tmp_path, "multi", metric="mean_roc_auc", targets=("p", "q"))
    sub, row = _end_to_end(tmp_path, exp, "values")
    c = load(exp.name).competition
    assert (c.target, c.task, c.metric) == (("q", "p"), "binary", "mean_roc_auc")
    assert list(sub.columns) == ["id", "q", "p"]
    assert row["status"] == "ok" and 0 < float(row["public"]) <= 1


def test_oof_files_of_several_targets_name_each_target(tmp_path):
    import types

    from pipeline.train import write_oof

    prepared = types.SimpleNamespace(train_ids=np.array(["a1", "a2"]), classes=None,
                                     y=np.array([[0.0, 1.0], [1.0, 0.0]]))
    write_oof(tmp_path / "oof.csv", prepared, np.array([[0.25, 0.5], [0.75, 0.125]]), ("s", "t"))
    assert (tmp_path / "oof.csv").read_text().splitlines() == [
        "id,target_s,target_t,s,t", "a1,0.0,1.0,0.25,0.5", "a2,1.0,0.0,0.75,0.125"]
