"""Issue #15, "see the network learn": why training stopped, per-layer health curves, the
network drawn (`pipeline show`, network.png on MLflow runs)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from pipeline import console, drawing
from pipeline.cli import app
from pipeline.evaluate import summarise_stops
from pipeline.network import DivergenceError, SigmoidNetworkClassifier, load_model
from pipeline.network.diagnostics import LayerHealth, saturation
from pipeline.tune.objective import health_attrs, stop_tags
from tests.helpers_tune import fresh_mlflow_db, tiny_project


def xor_data(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    return X, (X[:, 0] * X[:, 1] > 0).astype(int)


def fit(X: np.ndarray, y: np.ndarray, **params) -> SigmoidNetworkClassifier:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return SigmoidNetworkClassifier(random_state=0, **params).fit(X, y)


# --- why training stopped ------------------------------------------------------------------


def test_stop_reason_converged_max_iter_diverged_and_stopped():
    X, y = xor_data()
    assert fit(X, y, hidden_layer_sizes=(4,), max_iter=3).stop_reason_ == "max_iter"
    done = fit(X, y, hidden_layer_sizes=(4,), max_iter=500, early_stopping=True,
               n_iter_no_change=3)
    assert done.stop_reason_ == "converged" and done.n_iter_ < 500
    clf = SigmoidNetworkClassifier(hidden_layer_sizes=(4,), solver="sgd", momentum=0.0,
                                   learning_rate_init=1e30, max_iter=5, random_state=0)
    with pytest.raises(DivergenceError):
        clf.fit(X * 1e6, y)
    assert clf.stop_reason_ == "diverged"

    def stop(epoch: int, metrics: dict) -> None:
        if epoch == 2:
            raise KeyboardInterrupt

    clf = SigmoidNetworkClassifier(hidden_layer_sizes=(4,), max_iter=9, random_state=0)
    with pytest.raises(KeyboardInterrupt):
        clf.fit(X, y, on_epoch=stop)
    assert clf.stop_reason_ == "stopped at epoch 2"


def test_stop_reason_is_saved_with_the_model(tmp_path):
    X, y = xor_data()
    clf = fit(X, y, hidden_layer_sizes=(4,), max_iter=3)
    clf.save(tmp_path / "m.npz")
    assert load_model(tmp_path / "m.npz").stop_reason_ == "max_iter"


def test_stop_summaries_for_the_run_tag_and_the_table():
    assert summarise_stops(["converged"] * 5) == "converged (5/5 folds)"
    assert summarise_stops(["max_iter", "converged", "max_iter"]) == (
        "max_iter 2, converged 1 (3 folds)")
    assert console.stop_cell(["converged"] * 5) == "conv 5/5"
    assert console.stop_cell(["pruned at epoch 4"]) == "prune 1/1"
    assert console.stop_cell(None) == "-"

    class Trial:
        user_attrs: dict = {}

        def set_user_attr(self, k, v):
            self.user_attrs[k] = v

    t = Trial()
    assert stop_tags(t, {"fold": 0, "epoch": 7}, "pruned") == {"stop_reason": "pruned at epoch 7"}
    assert t.user_attrs["stop_reasons"] == ["pruned at epoch 7"]


def test_top_trials_table_shows_why_trials_stopped_within_80_columns(monkeypatch, capsys):
    from pipeline.tune import TuneResult
    from pipeline.tune.progress import TrialRow

    monkeypatch.setenv("COLUMNS", "80")
    rows = [TrialRow(i, "complete", 0.9 - i / 100, {"n_layers": 1, "units": 16,
                                                     "learning_rate_init": 0.0123},
                     {"cv_std": 0.01, "n_iter": 40, "stop_reasons": ["converged"] * 5,
                      **({"saturated": "layer_1 73% saturated"} if i == 1 else {})})
            for i in range(3)]
    console.tune_summary(TuneResult(rows, 3, "roc_auc", "maximize", None, []))
    out = capsys.readouterr().out
    assert "conv 5/5" in out and "stop" in out
    assert "trial 1: layer_1 73% saturated" in out
    assert max(len(line) for line in out.splitlines()) <= 80


# --- per-layer health ----------------------------------------------------------------------


def test_saturation_per_activation():
    A = np.array([[0.01, 0.5, 0.99], [0.011, 0.6, 0.97]])
    assert saturation("sigmoid", A) == pytest.approx(3 / 6)
    assert saturation("tanh", np.array([[-0.97, 0.0], [0.99, 0.5]])) == pytest.approx(0.5)
    # ReLU: a unit is dead when it is 0 on every row
    assert saturation("relu", np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 2.0]])) == pytest.approx(1 / 3)
    assert saturation("identity", A) == 0.0


def test_layer_health_reaches_on_epoch_and_leaves_training_unchanged():
    X, y = xor_data(600)
    seen: list[dict] = []
    params = dict(hidden_layer_sizes=(6, 3), max_iter=4, dropout=0.1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with_health = SigmoidNetworkClassifier(**params).fit(
            X[:400], y[:400], eval_set=(X[400:], y[400:]),
            on_epoch=lambda e, m: seen.append(m), diagnostics=LayerHealth())
        plain = SigmoidNetworkClassifier(**params).fit(X[:400], y[:400])
    for a, b in zip(with_health.coefs_, plain.coefs_, strict=True):
        np.testing.assert_array_equal(a, b)
    assert len(seen) == 4
    for k in (1, 2):
        for name in ("saturation", "grad_norm", "weight_norm", "update_ratio"):
            assert np.isfinite(seen[-1][f"{name}/layer_{k}"])
        assert 0 <= seen[-1][f"saturation/layer_{k}"] <= 1
        assert seen[-1][f"grad_norm/layer_{k}"] > 0 and seen[0][f"update_ratio/layer_{k}"] > 0
    assert "saturation/layer_3" not in seen[-1]  # the output layer is not a hidden layer


def test_a_sigmoid_layer_driven_into_saturation_is_flagged():
    X, y = xor_data(300)
    seen: list[dict] = []
    clf = SigmoidNetworkClassifier(hidden_layer_sizes=(8,), max_iter=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X * 200, y, on_epoch=lambda e, m: seen.append(m), diagnostics=LayerHealth())
    assert seen[-1]["saturation/layer_1"] > 0.5
    curves = [{"saturation/layer_1": [0.2, m["saturation/layer_1"]]} for m in seen]
    assert health_attrs(curves)["saturated"].startswith("layer_1")
    assert "saturated" not in health_attrs([{"saturation/layer_1": [0.1]}])
    assert health_attrs([{}]) == {}


# --- the network drawn ---------------------------------------------------------------------


def test_inputs_are_grouped_by_column_for_ple_periodic_and_one_hot():
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(size=300), rng.normal(size=300),
                         rng.integers(0, 2, 300), rng.integers(0, 2, 300)]).astype(float)
    y = (X[:, 0] > 0).astype(int)
    names = ["height", "squishiness", "colour=red", "colour=green"]
    ple = fit(X, y, hidden_layer_sizes=(3,), numeric_encoding="ple", n_bins=4, max_iter=3)
    units = drawing.column_of_unit(ple, names)
    assert len(units) == ple.coefs_[0].shape[0] and set(units) == {"height", "squishiness",
                                                                   "colour"}
    per = fit(X, y, hidden_layer_sizes=(3,), numeric_encoding="periodic", embedding_dim=5,
              max_iter=3)
    units = drawing.column_of_unit(per, names)
    assert units[:10] == ["height"] * 5 + ["squishiness"] * 5 and units[10:] == ["colour"] * 2
    layers, matrices, biases = drawing.layers_to_draw(per, names)
    assert layers[0][0] in ("height", "squishiness") and len(layers[0]) == 3
    assert [m.shape for m in matrices] == [(3, 3), (3, 1)] and biases[0] is None


def test_embedded_categorical_columns_are_drawn_under_their_name():
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(size=300), rng.integers(0, 30, 300),
                         rng.normal(size=300)]).astype(float)
    y = (X[:, 0] > 0).astype(int)
    names = ["height", "city", "squishiness"]
    for encoding in ("none", "periodic"):
        model = fit(X, y, hidden_layer_sizes=(3,), numeric_encoding=encoding, embedding_dim=2,
                    categorical_columns=[1], categorical_dim=4, max_iter=2)
        units = drawing.column_of_unit(model, names)
        assert len(units) == model.coefs_[0].shape[0] and units[-4:] == ["city"] * 4
        assert units[:-4] == (["height", "squishiness"] if encoding == "none"
                              else ["height"] * 2 + ["squishiness"] * 2)


def test_many_inputs_are_summarised_and_no_hidden_layer_is_inputs_to_output(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 40))
    y = (X[:, 3] - X[:, 7] > 0).astype(int)
    names = [f"f{j}" for j in range(40)]
    clf = fit(X, y, hidden_layer_sizes=(), max_iter=30, learning_rate_init=0.05)
    layers, matrices, _ = drawing.layers_to_draw(clf, names)
    assert len(layers) == 2 and layers[0][-1] == f"+ {40 - drawing.MAX_INPUTS} more"
    assert {"f3", "f7"} <= set(layers[0][:2]) and layers[1] == ["P(1)"]
    paths = drawing.save_network(clf, tmp_path / "net", names, "linear")
    assert [p.suffix for p in paths] == [".png", ".svg"] and all(p.stat().st_size for p in paths)


def test_output_nodes_are_named_by_the_competitions_labels_not_the_codes():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(120, 3))
    clf = fit(X, (X[:, 0] > 0).astype(int), hidden_layer_sizes=(), max_iter=5)
    assert drawing.layers_to_draw(clf, ["a", "b", "c"], ("no", "yes"))[0][-1] == ["P(yes)"]
    clf.metadata_ = {"classes": ["stay", "churn"]}  # a submitted model records its labels
    assert drawing.layers_to_draw(clf, ["a", "b", "c"])[0][-1] == ["P(churn)"]
    y3 = np.array(["ant", "bee", "cat"])[rng.integers(0, 3, 120)]
    multi = fit(X, np.unique(y3, return_inverse=True)[1], hidden_layer_sizes=(), max_iter=5)
    labels = drawing.layers_to_draw(multi, ["a", "b", "c"], ("ant", "bee", "cat"))[0][-1]
    assert labels == ["P(ant)", "P(bee)", "P(cat)"]


def test_on_avocado_squishiness_carries_heavy_edges(project):
    """The talk's point: the avocado experiment's [model], trained on the prepared avocado
    data, leans on squishiness: among its 3 heaviest of 10 input columns."""
    import shutil

    from pipeline.competitions import avocado
    from pipeline.evaluate import build_estimator
    from pipeline.experiment import load
    from pipeline.prepare import prepare

    (project / "experiments").mkdir(exist_ok=True)
    shutil.copy(Path(__file__).parents[1] / "experiments" / "avocado.toml",
                project / "experiments")
    avocado.generate(project / "data" / "avocado", rows=3000, test_rows=10, seed=0)
    exp = load("avocado")
    prepared = prepare(exp)
    clf = build_estimator("binary", {**exp.model.params(), "random_state": 0, "max_iter": 40})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(prepared.X_train, prepared.y)
    ranking = [name for name, _ in drawing.input_ranking(clf, list(prepared.feature_names))]
    assert len(ranking) == 10 and "squishiness" in ranking[:3], ranking


# --- pipeline show and MLflow -------------------------------------------------------------


def test_tune_records_stop_reasons_health_curves_and_the_best_trials_network(project):
    from mlflow import MlflowClient

    from pipeline.experiment import load
    from pipeline.tune import tune
    fresh_mlflow_db(project)
    exp = load(tiny_project(project, trials=2))
    tune(exp)
    import optuna

    study = optuna.load_study(study_name="tiny", storage="sqlite:///optuna.db")
    best = study.best_trial
    c = MlflowClient(f"sqlite:///{Path.cwd() / 'mlflow.db'}")  # absolute: engines are cached
    for t in study.trials:
        assert len(t.user_attrs["stop_reasons"]) == 2
        run = c.get_run(t.user_attrs["mlflow_run_id"])
        assert run.data.tags["stop_reason"].endswith("folds)")
        history = c.get_metric_history(run.info.run_id, "fold0/saturation/layer_1")
        assert [m.step for m in history] == list(range(1, t.user_attrs["n_iters"][0] + 1))
        assert c.get_metric_history(run.info.run_id, "fold1/grad_norm/layer_1")
    files = {a.path for a in c.list_artifacts(best.user_attrs["mlflow_run_id"])}
    assert {"network.png", "network.svg"} <= files

    runner = CliRunner()
    out = project / "net.png"
    result = runner.invoke(app, ["show", "tiny", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 0
    result = runner.invoke(app, ["show", "tiny", "--trial", "99"])
    assert result.exit_code == 2 and "--trial 99" in result.output


def test_show_without_weights_is_one_line_exit_2(project):
    tiny_project(project)
    result = CliRunner().invoke(app, ["show", "tiny"])
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1 and "tune" in result.output


def test_show_draws_the_submitted_model(project, tmp_path):
    from pipeline.experiment import load
    from pipeline.submission import ledger

    exp = load(tiny_project(project))
    X, y = xor_data()
    folder = Path("submissions") / "tiny"
    folder.mkdir(parents=True)
    fit(X, y, hidden_layer_sizes=(3,), max_iter=2).save(folder / "20260101T000000Z-t0.npz")
    ledger.append({"file": (folder / "20260101T000000Z-t0.csv").as_posix(), "sha256": "a",
                   "experiment": "tiny"})
    from pipeline.show import draw

    drawn = draw(exp, project / "sub.svg")
    assert drawn.paths == [project / "sub.svg"] and "submitted model" in drawn.title


def test_show_draws_the_ledgers_last_standing_submission_not_the_newest_file(project):
    """Two submissions, the second withdrawn: `show` draws the first one's model (a glob for
    the newest .npz would draw the withdrawn one); an ensemble's first member."""
    from pipeline.experiment import load
    from pipeline.show import submitted_files
    from pipeline.submission import ledger

    exp = load(tiny_project(project))
    X, y = xor_data()
    folder = Path("submissions") / "tiny"
    folder.mkdir(parents=True)
    for i in (1, 2):
        fit(X, y, hidden_layer_sizes=(3,), max_iter=2).save(folder / f"a.m{i}.npz")
    fit(X, y, hidden_layer_sizes=(2,), max_iter=2).save(folder / "b.npz")
    for name in ("a", "b"):
        ledger.append({"file": f"{folder.as_posix()}/{name}.csv", "sha256": name,
                       "experiment": "tiny"})
    assert submitted_files(exp) == [folder / "b.npz"]
    result = CliRunner().invoke(app, ["withdraw", "tiny", "b.csv"])
    assert result.exit_code == 0, result.output
    assert submitted_files(exp) == [folder / "a.m1.npz", folder / "a.m2.npz"]
    (folder / "a.m1.npz").unlink()
    (folder / "a.m2.npz").unlink()
    result = CliRunner().invoke(app, ["show", "tiny"])
    assert result.exit_code == 2 and "a.npz: the model of the last submission" in result.output


def test_show_trial_draws_its_kept_fold_model_and_retrains_with_one_line_when_gone(
        project, monkeypatch):
    from pipeline import trials
    from pipeline.experiment import load
    from pipeline.network import SigmoidNetworkClassifier
    from pipeline.tune import tune

    exp = load(tiny_project(project, trials=2))
    tune(exp, track=False)
    fits: list[int] = []
    original = SigmoidNetworkClassifier.fit
    monkeypatch.setattr(SigmoidNetworkClassifier, "fit",
                        lambda self, *a, **k: fits.append(1) or original(self, *a, **k))
    runner = CliRunner()
    result = runner.invoke(app, ["show", "tiny", "--trial", "1", "-o", "t.png"])
    assert result.exit_code == 0, result.output
    assert fits == [] and Path("t.png").stat().st_size > 0
    (trials.TrialKey("tiny", "tiny", 1).folder / "fold0.npz").unlink()
    result = runner.invoke(app, ["show", "tiny", "--trial", "1", "-o", "t.png"])
    assert result.exit_code == 0, result.output
    assert fits == [1]
    assert "trial 1: its fold models are not kept" in result.output
    assert "fold 0 trains again" in result.output
