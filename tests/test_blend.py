"""pipeline blend: members from the ledger and outside files, Caruana weights, an honest CV,
one line for every bad input, and the same validator / ledger / leaderboard as submit."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers_submit import install_fake_stages, write_competition
from typer.testing import CliRunner

from pipeline import blend as blend_module
from pipeline.blend import blend, experiment_of, select
from pipeline.cli import app
from pipeline.errors import PipelineError
from pipeline.experiment import load
from pipeline.metrics import METRICS
from pipeline.submission import ledger
from pipeline.submission.leaderboard import board
from pipeline.submit import submit, validate_file
from pipeline.trials import TrialSpec


@pytest.fixture
def fake(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return install_fake_stages(monkeypatch)


def trial(alpha: float = 0.0) -> TrialSpec:
    return TrialSpec(3, {"alpha": alpha, "random_state": 0, "max_iter": 30}, 0.9, 6)


def submitted(name: str = "bin", **kwargs) -> tuple:
    """A competition, an experiment on it, and one submission (fold models averaged)."""
    exp = write_competition(Path.cwd(), name, **kwargs)
    result = submit(exp, [trial()], refit=False)
    return exp, result


def outside_pair(result, out: str = "gbm", *, noise: float = 0.3, seed: int = 1,
                 edit=None) -> tuple[Path, Path]:
    """An outside model's files: our OOF / test files with their predictions moved by noise."""
    rng = np.random.default_rng(seed)
    oof = pd.read_csv(result.prediction_paths[0], dtype=str)
    test = pd.read_csv(result.prediction_paths[1], dtype=str)
    for frame in (oof, test):
        p = frame["p_1"].astype(float) + rng.normal(0, noise, len(frame))
        frame["p_1"] = np.clip(p, 0.0, 1.0).map(repr)
    if edit is not None:
        oof, test = edit(oof, test)
    paths = Path(f"{out}.oof.csv"), Path(f"{out}.test.csv")
    oof.to_csv(paths[0], index=False)
    test.to_csv(paths[1], index=False)
    return paths


def nothing_written(name: str) -> bool:
    rows = [r for r in ledger.read() if r["experiment"] == name]
    return not rows and not (ledger.SUBMISSIONS / name).exists()


# --- Caruana's selection -------------------------------------------------------------------


def test_selection_drops_a_useless_member_and_mixes_complementary_ones():
    rng = np.random.default_rng(0)
    signal = rng.normal(size=4000)
    y = (signal + rng.normal(0, 0.5, 4000) > 0).astype(np.int64)
    a = signal + rng.normal(0, 1.0, 4000)
    b = signal + rng.normal(0, 1.0, 4000)
    wrong = -signal + rng.normal(0, 1.0, 4000)  # ranks the rows backwards
    assert select("roc_auc", y, [a, wrong]).tolist() == [1.0, 0.0]
    w = select("roc_auc", y, [wrong, a, b])
    assert w[0] == 0 and 0.3 < w[1] < 0.7 and w.sum() == pytest.approx(1.0)
    a, b = b, a
    auc = METRICS["roc_auc"]
    mixed = w[1] * b + w[2] * a
    assert auc(y, mixed) > max(auc(y, a), auc(y, b)) + 0.01


def test_selection_minimises_a_loss():
    rng = np.random.default_rng(1)
    y = rng.normal(size=500)
    good, bad = y + rng.normal(0, 0.1, 500), y + 3.0
    assert select("rmse", y, [bad, good]).tolist() == [0.0, 1.0]


# --- the blend end to end ------------------------------------------------------------------


def test_a_blend_with_an_outside_model_reaches_the_ledger_and_leaderboard(fake):
    exp, ours = submitted()
    oof, test = outside_pair(ours)
    result = blend("duo", ["bin"], [oof], [test])
    validate_file(exp, result.path)  # Kaggle's checks, as submit's
    assert result.path.parent == ledger.SUBMISSIONS / "duo"
    assert [m.label for m in result.members] == ["bin (t3)", "gbm.oof.csv"]
    assert sum(m.weight for m in result.members) == pytest.approx(1.0)
    (row,) = [r for r in ledger.read() if r["experiment"] == "duo"]
    assert "bin (t3)" in row["trials"] and row["cv_score"] == f"{result.cv_score:.5f}"
    blended = experiment_of("duo")
    assert blended.name == "duo" and blended.competition == exp.competition
    (entry,) = board(blended).entries
    assert entry.status == "ok" and entry.private is not None and entry.file == row["file"]
    kept = pd.read_csv(result.prediction_paths[0], dtype={"id": str})
    assert list(kept.columns) == ["id", "fold", "target", "p_1"]  # a blend can be blended
    assert result.registered is None and "gbm.oof.csv" in result.not_registered
    again = blend("duo", ["bin"], [oof], [test])
    assert again.existing and len([r for r in ledger.read() if r["experiment"] == "duo"]) == 1


def test_each_fold_is_scored_with_weights_chosen_on_the_other_folds(fake, monkeypatch):
    exp, ours = submitted()
    oof, test = outside_pair(ours)
    fitted_on = []

    def spy(metric, y, preds, steps=50):
        fitted_on.append(len(y))
        return select(metric, y, preds, steps)

    monkeypatch.setattr(blend_module, "select", spy)
    result = blend("duo", ["bin"], [oof], [test])
    folds = pd.read_csv(ours.prediction_paths[0])["fold"]
    n = len(folds)
    # one fit per fold on the other folds' rows, then the weights of the test blend on all
    assert fitted_on == [n - (folds == f).sum() for f in sorted(folds.unique())] + [n]
    rows = pd.read_csv(ours.prediction_paths[0], dtype={"id": str})
    other = pd.read_csv(oof, dtype={"id": str})
    y = rows["target"].to_numpy(int)
    scores = []
    for f in sorted(folds.unique()):
        rest, va = (folds != f).to_numpy(), (folds == f).to_numpy()
        preds = [rows["p_1"].to_numpy(float), other["p_1"].to_numpy(float)]
        w = select("roc_auc", y[rest], [p[rest] for p in preds])
        scores.append(METRICS["roc_auc"](y[va], w[0] * preds[0][va] + w[1] * preds[1][va]))
    assert result.cv_score == pytest.approx(np.mean(scores))


def test_two_experiments_blend_and_disagreeing_folds_are_noted(fake, monkeypatch):
    # the stand-in models cannot be served: registration has its own test (real stages)
    monkeypatch.setattr(blend_module, "register", lambda base, members, result, w, uri: result)
    exp, ours = submitted()
    text = exp.path.read_text().replace("seed = 0", "seed = 5")  # other folds
    Path("experiments/bin2.toml").write_text(text)
    submit(load("bin2"), [trial(alpha=0.05)], refit=False)
    result = blend("pair", ["bin", "bin2"], [], [])
    assert [m.label for m in result.members] == ["bin (t3)", "bin2 (t3)"]
    assert result.notes == ["folds of bin2 (t3) differ from bin (t3)'s: the blend uses "
                            "bin (t3)'s"]


# --- bad inputs: one line, nothing written -------------------------------------------------


def _drop_row(oof, test):
    return oof.iloc[1:], test


def _extra_row(oof, test):
    return pd.concat([oof, oof.iloc[[0]].assign(id="9999")]), test


def _other_target(oof, test):
    return oof.assign(target=oof["target"].map({"0": "1", "1": "0"})), test


def _renamed(oof, test):
    return oof.rename(columns={"p_1": "pred"}), test


def _short_test(oof, test):
    return oof, test.iloc[:-1]


@pytest.mark.parametrize(("edit", "said"), [
    (_drop_row, "gbm.oof.csv: misses 1 id(s) of bin's validated training rows"),
    (_extra_row,
     "gbm.oof.csv: holds 1 id(s) that are not bin's validated training rows (e.g. 9999)"),
    (_other_target, "gbm.oof.csv: target of id"),
    (_renamed, "gbm.oof.csv: header"),
    (_short_test, "gbm.test.csv: misses 1 id(s) of test.csv's ids"),
])
def test_outside_files_that_do_not_fit_the_competition_are_one_line(fake, edit, said):
    _, ours = submitted()
    oof, test = outside_pair(ours, edit=edit)
    with pytest.raises(PipelineError, match="^" + said.replace("(", r"\(").replace(")", r"\)")):
        blend("duo", ["bin"], [oof], [test])
    assert nothing_written("duo")


def test_bad_blend_commands_exit_2_with_one_line(fake):
    exp, ours = submitted()
    oof, test = outside_pair(ours, edit=_drop_row)
    runner = CliRunner()
    for args, said in [
        (["blend", "duo", "--from", "bin", "--oof", str(oof), "--test", str(test)], "misses 1"),
        (["blend", "duo", "--from", "bin", "--oof", str(oof)], "1 --oof file(s) but 0"),
        (["blend", "duo", "--from", "bin"], "two members at least"),
        (["blend", "bin", "--from", "bin", "--oof", str(oof), "--test", str(test)],
         "experiments/bin.toml exists"),
        (["blend", "duo", "--oof", str(oof), "--test", str(test)], "at least one --from"),
    ]:
        out = runner.invoke(app, args)
        assert out.exit_code == 2, out.output
        assert said in out.output and len(out.output.strip().splitlines()) == 1
    assert nothing_written("duo")


def test_members_of_another_competition_are_one_line(fake):
    submitted()
    submitted("other", seed=1)  # the same shape, another data folder
    with pytest.raises(PipelineError, match=r"^other \(t\d+\): predicts y of data/other, not y "
                       r"of data/bin: a blend combines one competition's submissions$"):
        blend("duo", ["bin", "other"], [], [])
    assert nothing_written("duo")


def test_an_oof_file_without_folds_is_refused_for_the_first_member(fake):
    _, ours = submitted()
    oof, test = outside_pair(ours)
    old = pd.read_csv(ours.prediction_paths[0], dtype=str).drop(columns="fold")
    old.to_csv(ours.prediction_paths[0], index=False)
    with pytest.raises(PipelineError, match="no `fold` column"):
        blend("duo", ["bin"], [oof], [test])


def test_an_outside_file_may_leave_out_the_fold_column(fake):
    _, ours = submitted()
    oof, test = outside_pair(ours, edit=lambda o, t: (o.drop(columns="fold"), t))
    result = blend("duo", ["bin"], [oof], [test])
    assert result.notes == [] and result.path.is_file()


def test_a_blend_name_blends_one_competition(fake):
    _, ours = submitted()
    oof, test = outside_pair(ours)
    blend("duo", ["bin"], [oof], [test])
    other = write_competition(Path.cwd(), "bin3", seed=3)
    submit(other, [trial()], refit=False)
    with pytest.raises(PipelineError, match="blend 'duo' blends data/bin, not data/bin3"):
        blend("duo", ["bin3", "bin"], [], [])


def test_a_label_metric_blend_applies_a_decision_chosen_on_the_blend(fake, monkeypatch):
    from pipeline.decision import choose

    exp, ours = submitted("acc", metric="accuracy", labels=("no", "yes"))
    oof_frame = pd.read_csv(ours.prediction_paths[0], dtype=str)
    oof_frame.to_csv("copy.oof.csv", index=False)
    shutil.copy(ours.prediction_paths[1], "copy.test.csv")
    monkeypatch.setattr(blend_module, "honest", lambda metric, task, a: (0.5, True))
    result = blend("accs", ["acc"], [Path("copy.oof.csv")], [Path("copy.test.csv")])
    y = (oof_frame["target"] == "yes").to_numpy(np.int64)
    assert result.decision == choose("accuracy", "binary", y,
                                     oof_frame["p_yes"].to_numpy(float))
    validate_file(exp, result.path)


# --- the MLflow model (real stages) --------------------------------------------------------


def test_a_blend_of_our_submissions_is_registered_and_scores_like_its_csv(project,
                                                                          monkeypatch):
    import mlflow
    from helpers_tune import fresh_mlflow_db, tiny_project

    from pipeline import tune

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{project}/mlflow.db")
    fresh_mlflow_db(project)
    exp = load(tiny_project(project, trials=2, max_iter=4))
    text = exp.path.read_text().replace("hidden_layer_sizes = [8]", "hidden_layer_sizes = [3]")
    # the second member has feature code: the blend's model must run it for that member only
    Path("experiments/tiny2_features.py").write_text(
        "def features(df):\n    df = df.copy()\n    df['x12'] = df['x1'] * df['x2']\n"
        "    return df\n")
    text = text.replace("[competition]\n",
                        '[competition]\nfeatures = "experiments/tiny2_features.py"\n', 1)
    Path("experiments/tiny2.toml").write_text(text)
    runner = CliRunner()
    for name in ("tiny", "tiny2"):
        tune.tune(load(name), trials=2)
        assert runner.invoke(app, ["submit", name, "--no-refit"]).exit_code == 0
    out = runner.invoke(app, ["blend", "both", "--from", "tiny", "--from", "tiny2"])
    assert out.exit_code == 0, out.output
    assert "registered models:/both/1 in MLflow" in out.output
    (row,) = [r for r in ledger.read() if r["experiment"] == "both"]
    sub = pd.read_csv(row["file"], dtype={"id": str})
    mlflow.set_tracking_uri(f"sqlite:///{project}/mlflow.db")
    model = mlflow.pyfunc.load_model("models:/both@champion")
    pred = model.predict(pd.read_csv(exp.competition.data_dir / "test.csv"))
    pred = pred.set_index(pred["id"].astype(str)).loc[sub["id"]]
    np.testing.assert_allclose(pred["y"].to_numpy(float), sub["y"].to_numpy(float), atol=1e-9)
    board_out = runner.invoke(app, ["leaderboard", "both", "--csv"])
    assert board_out.exit_code == 0 and row["file"] in board_out.output
    test_csv = str(exp.competition.data_dir / "test.csv")
    predicted = runner.invoke(app, ["predict", "both", test_csv, "-o", "p.csv"])
    assert predicted.exit_code == 0, predicted.output
    assert pd.read_csv("p.csv", dtype={"id": str}).set_index("id").loc[sub["id"], "y"].round(
        9).tolist() == sub["y"].round(9).tolist()


@pytest.mark.parametrize(("task", "metric", "labels"), [
    ("multiclass", "log_loss", ("a", "b", "c")),
    ("regression", "rmse", (0, 1)),
    ("binary", "accuracy", ("no", "yes")),
])
def test_every_task_blends_into_a_valid_submission(fake, monkeypatch, task, metric, labels):
    monkeypatch.setattr(blend_module, "register", lambda base, members, result, w, uri: result)
    exp, ours = submitted("t", task=task, metric=metric, labels=labels)
    rng = np.random.default_rng(0)

    def moved(frame: pd.DataFrame) -> pd.DataFrame:
        cols = [c for c in frame.columns if c.startswith("p_") or c == "prediction"]
        values = frame[cols].astype(float).to_numpy()
        if task == "multiclass":  # still probabilities: rows sum to 1
            values = values * rng.uniform(0.5, 1.5, values.shape)
            values /= values.sum(axis=1, keepdims=True)
        else:
            values = values + rng.normal(0, 0.2, values.shape)
            values = np.clip(values, 0, 1) if task == "binary" else values
        return frame.assign(**{c: values[:, j] for j, c in enumerate(cols)})

    for kind in ("oof", "test"):
        moved(pd.read_csv(ours.prediction_paths[kind == "test"], dtype=str)).to_csv(
            f"other.{kind}.csv", index=False)
    result = blend("mix", ["t"], [Path("other.oof.csv")], [Path("other.test.csv")])
    validate_file(exp, result.path)
    assert np.isfinite(result.cv_score)
    # the kept test predictions are the members' weighted mean, column by column
    w = [m.weight for m in result.members]
    frames = [pd.read_csv(f, dtype={"id": str}).set_index("id")
              for f in (ours.prediction_paths[1], "other.test.csv", result.prediction_paths[1])]
    mine, other, blended = (f.loc[frames[0].index] for f in frames)
    np.testing.assert_allclose(blended.to_numpy(), w[0] * mine.to_numpy() + w[1] * other.to_numpy())


def test_a_blend_can_join_another_blend(fake):
    _, ours = submitted()
    oof, test = outside_pair(ours)
    first = blend("duo", ["bin"], [oof], [test])
    oof2, test2 = outside_pair(ours, "gbm2", seed=2)
    result = blend("trio", ["duo"], [oof2], [test2])
    assert [m.label for m in result.members] == ["duo (blend)", "gbm2.oof.csv"]
    assert result.not_registered == ("outside member(s) gbm2.oof.csv bring predictions only, "
                                     "no model to score new rows")
    assert first.path.is_file() and result.path.parent.name == "trio"
