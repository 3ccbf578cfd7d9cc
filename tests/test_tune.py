"""Tuning: exact budgets, resume, crash recovery, pruning, divergence, workers, MLflow runs."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
from pathlib import Path

import optuna
import pytest
from helpers_tune import fresh_mlflow_db, tiny_project
from mlflow import MlflowClient
from optuna.trial import TrialState
from typer.testing import CliRunner

from pipeline import console, evaluate, tune
from pipeline.cli import app
from pipeline.errors import PipelineError
from pipeline.experiment import load
from pipeline.network import DivergenceError
from pipeline.train import cross_validate_and_log

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def _study(name="tiny"):
    return optuna.load_study(study_name=name, storage="sqlite:///optuna.db")


def _client():
    # absolute: MLflow caches engines by URI, and every test has its own cwd
    return MlflowClient(f"sqlite:///{Path.cwd() / 'mlflow.db'}")


def _runs(exp_name="tiny"):
    c = _client()
    e = c.get_experiment_by_name(exp_name)
    runs = c.search_runs([e.experiment_id], max_results=1000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return c, parents, children


def _check_runs_match_study(study):
    """One parent, one child per trial, states as in Optuna, curves as metric steps."""
    c, parents, children = _runs()
    assert len(parents) == 1
    parent = parents[0].info.run_id
    assert study.user_attrs[tune.PARENT_ATTR] == parent
    by_run = {r.info.run_id: r for r in children}
    assert all(r.data.tags["mlflow.parentRunId"] == parent for r in children)
    # every run is tagged with the fold scheme the study is tied to
    assert {r.data.tags["folds"] for r in [*parents, *children]} == {study.user_attrs["folds"]}
    for t in study.trials:
        if t.user_attrs.get("skipped"):
            continue
        run = by_run[t.user_attrs["mlflow_run_id"]]
        want = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed"}[t.state.name]
        assert run.data.tags["state"] == want and run.info.status != "RUNNING"
        if t.state == TrialState.PRUNED:  # a normal end, scored with what fold 1 reached
            assert run.info.status == "FINISHED" and run.data.tags["pruned"] == "true"
            score = [k for k in run.data.metrics if k.startswith("cv_") and "_std" not in k]
            assert score and run.data.tags["score_from"].startswith("fold 1 of")
        if t.state == TrialState.COMPLETE:
            steps = [m.step for m in c.get_metric_history(run.info.run_id, "fold0/val_loss")]
            assert steps == list(range(1, t.user_attrs["n_iters"][0] + 1))
            assert len(c.get_metric_history(run.info.run_id, "cv_mean/val_loss")) == max(
                t.user_attrs["n_iters"])
    return parents[0]


@pytest.mark.slow
def test_tune_in_a_fresh_project_creates_both_stores(project):
    """No mlflow.db yet (as on a fresh clone): the schema is created once, by the tune
    process, while its writer is already starting; a new process, so nothing is cached."""
    import subprocess
    import sys

    tiny_project(project, trials=2)
    assert not (project / "mlflow.db").exists()
    done = subprocess.run([sys.executable, "-m", "pipeline", "tune", "tiny", "--quiet"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "warning" not in done.stderr and "Traceback" not in done.stderr, done.stderr
    _check_runs_match_study(_study())
    c, parents, _ = _runs()
    plots = {a.path for a in c.list_artifacts(parents[0].info.run_id, "study")}
    assert "study/optimization_history.png" in plots


@pytest.mark.slow
def test_tune_budget_resume_and_mlflow(project):
    fresh_mlflow_db(project)
    exp = load(tiny_project(project, trials=2))
    result = CliRunner().invoke(app, ["tune", "tiny", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "best trial" in result.output
    study = _study()
    assert len(study.get_trials(states=FINISHED)) == 2
    # resume with a bigger budget: same study, same parent run, exactly 4 finished
    tune.tune(exp, trials=4)
    study = _study()
    assert len(study.get_trials(states=FINISHED)) == 4 and len(study.trials) == 4
    parent = _check_runs_match_study(study)
    assert parent.info.status == "FINISHED"
    assert "best_cv_roc_auc" in parent.data.metrics
    names = sorted(r.info.run_name for r in _runs()[2])
    assert names == [f"trial-{n:04d}" for n in range(4)]
    c = _client()
    plots = {a.path for a in c.list_artifacts(parent.info.run_id, "study")}
    assert "study/optimization_history.png" in plots
    best = json.loads((project / "experiments" / "tiny.best.json").read_text())
    t = study.best_trial
    assert best["trial"] == t.number and best["score"] == pytest.approx(t.value)
    # each trial records what it takes to re-run it exactly
    params = t.user_attrs["params"]
    assert params["random_state"] == t.user_attrs["random_state"]
    assert tuple(params["hidden_layer_sizes"]) == (t.params["units"],) * t.params["n_layers"]
    assert isinstance(t.user_attrs["n_iter"], int)
    # the same command once more: the budget is spent, nothing new runs
    tune.tune(exp, trials=4)
    assert len(_study().trials) == 4
    # a second study of the experiment: its runs say whose trials they are
    tune.tune(exp, trials=1, study_name="wide")
    wide = [r for r in _runs()[2] if r.data.tags["optuna.study"] == "wide"]
    assert [r.info.run_name for r in wide] == ["wide/trial-0000"]
    # ... and its best trial goes beside the first study's, not over it
    assert json.loads((project / "experiments" / "tiny.best.json").read_text()) == best
    other = json.loads((project / "experiments" / "tiny.wide.best.json").read_text())
    assert other["study"] == "wide" and other["trial"] == 0


def test_a_metric_name_mlflow_refuses_is_logged_under_its_safe_key(project):
    """MLflow keys take letters, digits and `_-./ `: map@2 is logged as map_at_2 everywhere."""
    fresh_mlflow_db(project)
    exp = load(tiny_project(project, task="multiclass", metric="map@2", trials=2))
    tune.tune(exp, trials=2)
    _, parents, children = _runs()
    assert {"best_cv_map_at_2", "best_fold0/map_at_2"} <= set(parents[0].data.metrics)
    for run in children:
        assert {"cv_map_at_2", "fold0/map_at_2", "fold1/map_at_2"} <= set(run.data.metrics)


def test_two_workers_never_claim_the_same_enqueued_trial(project):
    """SQLite ignores Optuna's SELECT ... FOR UPDATE: two workers starting together took one
    enqueued trial (a study's baseline trials) and the second crashed ("Cannot tell a
    COMPLETE trial"). The pipeline's storage claims a WAITING trial in one UPDATE."""
    from helpers_workers import ask_many

    from pipeline.tune.study import make_storage

    url = f"sqlite:///{project}/optuna.db"
    study = optuna.create_study(study_name="race", storage=make_storage(url))
    for i in range(120):
        study.enqueue_trial({"x": i})
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=ask_many, args=(url, 60, out)) for _ in range(2)]
    for p in procs:
        p.start()
    a, b = out.get(timeout=120), out.get(timeout=120)
    for p in procs:
        p.join(timeout=30)
    assert not set(a) & set(b) and len(set(a) | set(b)) == 120  # plain Optuna: 4-13 twice


def _dead_pid() -> int:
    p = mp.get_context("spawn").Process(target=int)
    p.start()
    p.join()
    return p.pid


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_crashed_running_trial_is_failed_and_retried(project):
    fresh_mlflow_db(project)
    exp = load(tiny_project(project, trials=2))
    study, _ = tune.open_study("sqlite:///optuna.db", "tiny", "maximize")
    from pipeline.tracking import MlflowTracker

    tracker = MlflowTracker()
    tracker.setup(exp)
    parent = tracker.parent_run(exp, "tiny", None, {})
    study.set_user_attr(tune.PARENT_ATTR, parent)
    run = tracker.start_run(exp, "trial-0000", {}, {}, parent_id=parent)
    crashed = study.ask({"n_layers": optuna.distributions.IntDistribution(1, 2)})
    dead = {"host": tune.HOST, "host_id": tune.HOST_ID, "pid": _dead_pid(),
            "mlflow_run_id": run.run_id}
    for key, value in dead.items():
        crashed.set_user_attr(key, value)  # as a worker killed with -9 leaves it

    tune.tune(exp)
    study = _study()
    states = [t.state for t in study.trials]
    assert states[0] == TrialState.FAIL and "died" in study.trials[0].user_attrs["error"]
    assert len(study.get_trials(states=FINISHED)) == 2
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    retried = [t for t in study.trials if t.system_attrs.get("failed_trial") == 0]
    assert len(retried) == 1 and retried[0].params["n_layers"] == crashed.params["n_layers"]
    c = _client()
    assert c.get_run(run.run_id).info.status == "FAILED"


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_a_complete_study_still_fails_a_dead_workers_running_trial(project):
    """A re-run of a study that holds its budget adds no trial, but a trial a killed worker
    left RUNNING (and its MLflow run) is ended, not left until the study is extended."""
    fresh_mlflow_db(project)
    exp = load(tiny_project(project, trials=2))
    tune.tune(exp)
    study = _study()
    from pipeline.tracking import MlflowTracker

    tracker = MlflowTracker()
    run = tracker.start_run(exp, "trial-0099", {}, {},
                            parent_id=study.user_attrs[tune.PARENT_ATTR])
    crashed = study.ask({"n_layers": optuna.distributions.IntDistribution(1, 2)})
    for key, value in {"host": tune.HOST, "host_id": tune.HOST_ID, "pid": _dead_pid(),
                       "mlflow_run_id": run.run_id}.items():
        crashed.set_user_attr(key, value)
    tune.tune(exp)  # complete: returns at once
    study = _study()
    assert study.trials[crashed.number].state == TrialState.FAIL
    assert len(study.get_trials(states=FINISHED)) == 2  # nothing trained
    assert _client().get_run(run.run_id).info.status == "FAILED"


def test_divergence_fails_the_trial_and_the_study_goes_on(project, monkeypatch):
    fresh_mlflow_db(project)
    exp = load(tiny_project(project, trials=2))
    real = evaluate.cross_validate
    calls = []

    def first_diverges(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise DivergenceError("loss = nan")
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluate, "cross_validate", first_diverges)
    tune.tune(exp)
    study = _study()
    assert [t.state for t in study.trials] == [TrialState.FAIL, *[TrialState.COMPLETE] * 2]
    assert study.trials[0].user_attrs["error"].startswith("diverged")
    _check_runs_match_study(study)


def test_pruned_trials_are_pruned_everywhere(project):
    fresh_mlflow_db(project)
    space = "learning_rate_init = { low = 0.0001, high = 0.05, log = true }\n"
    exp = load(tiny_project(project, trials=6, pruner="median", max_iter=8, space=space))
    tune.tune(exp)
    study = _study()
    assert len(study.get_trials(states=FINISHED)) == 6
    pruned = study.get_trials(states=(TrialState.PRUNED,))
    assert pruned, "the slow learning rates should be pruned"
    # the only worker: every core it may run on (threadpoolctl's count, in the worker)
    cores = len(os.sched_getaffinity(0))
    assert {t.user_attrs["blas_threads"] for t in study.trials} == {cores}
    _check_runs_match_study(study)


@pytest.mark.slow
def test_two_worker_processes_share_the_budget(project):
    fresh_mlflow_db(project)
    exp = load(tiny_project(project, trials=4))
    tune.tune(exp, jobs=2)
    study = _study()
    finished = study.get_trials(states=FINISHED)
    assert len(finished) == 4 and len({t.number for t in finished}) == 4
    assert {t.user_attrs["worker"] for t in finished} == {0, 1}
    assert len({t.user_attrs["sampler_seed"] for t in finished}) == 2
    assert not study.get_trials(states=(TrialState.RUNNING,))
    # each worker's BLAS pools held to its share of the cores (threadpoolctl, in the worker)
    share = max(1, len(os.sched_getaffinity(0)) // 2)
    assert {t.user_attrs["blas_threads"] for t in finished} == {share}
    _check_runs_match_study(study)


def test_cross_validate_and_log_with_overrides(project, capsys):
    fresh_mlflow_db(project)
    exp = load(tiny_project(project))
    with pytest.raises(PipelineError, match="--set nope: unknown \\[model\\] key"):
        cross_validate_and_log(exp, overrides=["nope=1"])
    with pytest.raises(PipelineError, match="--set alpha"):
        cross_validate_and_log(exp, overrides=["alpha=minus"])
    done = cross_validate_and_log(exp, overrides=["learning_rate_init=0.03", "activation=relu"])
    console.cv_run(done)
    res = done.result
    assert "cross-validation" in capsys.readouterr().out and len(res.scores) == 2
    c, parents, children = _runs()
    assert len(parents) == 1 and not children
    run = parents[0]
    assert run.data.params["activation"] == "relu" and "cv_roc_auc" in run.data.metrics
    assert run.data.tags["folds"] == "stratified/2/seed7"
    assert {a.path for a in c.list_artifacts(run.info.run_id)} >= {"oof.csv", "config.json"}


def test_a_label_metrics_run_logs_the_decided_cv_and_the_plain_one_beside_it(project):
    fresh_mlflow_db(project)
    exp = load(tiny_project(project, metric="f1", max_iter=3))
    res = cross_validate_and_log(exp, overrides=[]).result
    metrics = _runs()[1][0].data.metrics
    assert metrics["cv_f1"] == pytest.approx(res.mean)  # the decided score (evaluate)
    assert metrics["cv_f1_plain"] == pytest.approx(sum(res.raw_scores) / len(res.raw_scores))


def test_submit_gets_the_best_trials_of_the_study(project, monkeypatch):
    exp = load(tiny_project(project, trials=3))
    tune.tune(exp, track=False)
    seen = {}

    def fake_submit(exp, trials, *, refit=True, message="", **_):  # seeds=... (bagging)
        seen["trials"] = trials
        raise PipelineError("stop here")

    import pipeline.submit

    monkeypatch.setattr(pipeline.submit, "submit", fake_submit)
    result = CliRunner().invoke(app, ["submit", "tiny", "--top-k", "2"])
    assert result.exit_code == 2 and "error: stop here" in result.output
    specs, study = seen["trials"], _study()
    ranked = sorted(study.get_trials(states=(TrialState.COMPLETE,)), key=lambda t: -t.value)
    assert [s.number for s in specs] == [t.number for t in ranked[:2]]
    assert specs[0].params == ranked[0].user_attrs["params"] and specs[0].n_iter >= 1
    assert tune.best_trials(exp, top_k=2) == specs
    with pytest.raises(PipelineError, match="no study"):
        tune.best_trials(exp, study_name="other")


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_heartbeat_failed_trial_closes_its_run_and_is_retried(project):
    fresh_mlflow_db(project)
    exp = load(tiny_project(project, trials=2))
    from pipeline.tracking import MlflowTracker

    tracker = MlflowTracker()
    tracker.setup(exp)
    run = tracker.start_run(exp, "trial-0000", {}, {})
    study, _ = tune.open_study("sqlite:///optuna.db", "tiny", "maximize", tracker=tracker)
    trial = study.ask({"n_layers": optuna.distributions.IntDistribution(1, 2)})
    trial.set_user_attr("mlflow_run_id", run.run_id)
    study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    # what Optuna's fail_stale_trials does once the heartbeat is stale
    study._storage.get_heartbeat_stale_trial_callback()(study, study.trials[0])
    r = _client().get_run(run.run_id)
    assert r.info.status == "FAILED" and r.data.tags["state"] == "failed"
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert len(waiting) == 1 and waiting[0].system_attrs["failed_trial"] == 0


def test_host_id_is_more_than_the_host_name():
    assert tune.HOST_ID.startswith(tune.HOST + "/")


def test_submit_errors_are_one_line_and_leave_the_ledger_untouched(project):
    tiny_project(project, trials=2)
    runner = CliRunner()

    def one_line_error(args: list[str], expected: str) -> None:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and expected in lines[0]
        assert not (project / "submissions").exists()  # no file, no ledger row

    one_line_error(["submit", "tiny", "--study", "never-tuned"], "never-tuned")
    tune.tune(load("tiny"), track=False)
    one_line_error(["submit", "tiny", "--trial", "999"], "--trial 999")


@pytest.mark.parametrize(("n_trials", "legend"), [(3, True), (15, False)])
def test_study_plots_drop_a_legend_of_one_entry_per_trial_past_a_dozen(n_trials, legend):
    from pipeline.tune.plots import study_figures

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))

    def objective(trial):
        x = trial.suggest_float("x", -1, 1)
        for step in range(3):
            trial.report(x * x + step, step)
        return x * x

    study.optimize(objective, n_trials=n_trials)
    figures = study_figures(study)
    assert set(figures) == {"optimization_history", "intermediate_values", "param_importances"}
    ax = figures["intermediate_values"].axes[0]
    assert (ax.get_legend() is not None) == legend
    assert figures["optimization_history"].axes[0].get_legend() is not None  # two entries: kept
    assert all(f.get_layout_engine() is not None for f in figures.values())  # no cut-off labels


def test_every_new_study_measures_the_linear_model_and_the_defaults_first(project):
    space = ("n_layers = { low = 0, high = 2 }\nunits = { low = 4, high = 16, log = true }\n"
             'activation = ["tanh", "relu"]\n')
    exp = load(tiny_project(project, trials=3, space=space))
    # the linear model has no units to search
    assert tune.baseline_trials(exp) == [{"n_layers": 0}, {"n_layers": 1, "units": 8}]
    tune.tune(exp, track=False)
    first, second = sorted(_study().trials, key=lambda t: t.number)[:2]
    assert first.user_attrs["baseline"] and second.user_attrs["baseline"]
    assert first.user_attrs["params"]["hidden_layer_sizes"] == []
    assert "units" not in first.params and "activation" not in first.params  # none used
    assert {"units", "activation"} <= set(second.params)
    assert second.user_attrs["params"]["hidden_layer_sizes"] == [8]
    # a space without a zero-layer option has no linear baseline, only the defaults
    narrow = load(tiny_project(project, trials=3))
    assert tune.baseline_trials(narrow) == [{"n_layers": 1, "units": 8,
                                             "learning_rate_init": 0.02}]


def test_an_interrupted_first_run_still_measures_the_baselines_on_resume(project, monkeypatch):
    """Ctrl-C during a new study's first trial fails the linear baseline: the next run queues
    it again, so the study measures it; a baseline that diverged is not retried forever."""
    import pipeline.tune.objective as objective

    space = ("n_layers = { low = 0, high = 2 }\nunits = { low = 4, high = 16, log = true }\n")
    exp = load(tiny_project(project, trials=3, space=space))
    real = objective.Objective.__call__

    def interrupted(self, trial):
        raise KeyboardInterrupt

    monkeypatch.setattr(objective.Objective, "__call__", interrupted)
    with pytest.raises(KeyboardInterrupt):
        tune.tune(exp, track=False)
    (lost,) = _study().trials[:1]
    assert lost.state == TrialState.FAIL and lost.user_attrs["baseline"]
    monkeypatch.setattr(objective.Objective, "__call__", real)
    tune.tune(exp, track=False)
    done = [t for t in _study().get_trials(states=(TrialState.COMPLETE,))
            if t.user_attrs.get("baseline")]
    assert sorted(t.user_attrs["params"]["hidden_layer_sizes"] for t in done) == [[], [8]]
    # a baseline the model itself failed (diverged) is the model's answer: not queued again
    from pipeline.tune.study import enqueue_baselines

    study = _study()
    study.enqueue_trial({"n_layers": 2}, user_attrs={"baseline": True})
    failed = study.ask({"n_layers": optuna.distributions.IntDistribution(0, 2)})
    failed.set_user_attr("error", "diverged: loss is nan")
    study.tell(failed, state=TrialState.FAIL)
    assert enqueue_baselines(study, [{"n_layers": 2}], created=False) == 0
    assert enqueue_baselines(study, tune.baseline_trials(exp), created=False) == 0


def test_the_linear_baseline_takes_its_inputs_unencoded(project):
    space = ("n_layers = { low = 0, high = 2 }\nunits = [8]\n"
             'numeric_encoding = ["periodic", "none"]\n')
    exp = load(tiny_project(project, space=space, model_extra='numeric_encoding = "periodic"'))
    linear, defaults = tune.baseline_trials(exp)
    assert linear == {"n_layers": 0, "numeric_encoding": "none"}
    assert defaults == {"n_layers": 1, "units": 8, "numeric_encoding": "periodic"}


def test_a_trial_that_never_named_its_worker_is_failed_after_the_grace_period(
    project, monkeypatch
):
    """The store failed right after handing out a trial: no pid, no heartbeat, so Optuna
    would keep it RUNNING for ever. `recover` fails (and re-queues) it once it is older than
    the grace period; a younger one may belong to a worker that is about to record itself."""
    import pipeline.tune.worker as worker
    from pipeline.tracking import NullTracker

    study = tune.open_study("sqlite:///optuna.db", "orphan", "maximize")[0]
    lost = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    assert worker.recover(study, NullTracker()) == 0  # within the grace period: left alone
    assert study.trials[lost.number].state == TrialState.RUNNING
    monkeypatch.setattr(worker, "GRACE_PERIOD", 0)
    assert worker.recover(study, NullTracker()) == 1
    trials = study.get_trials()
    assert trials[lost.number].state == TrialState.FAIL
    assert "never recorded" in trials[lost.number].user_attrs["error"]
    assert [t.state for t in trials[1:]] == [TrialState.WAITING]  # re-queued, same parameters


def test_a_parameter_is_searched_only_when_it_applies(project):
    """Define-by-run: no units / activation / dropout without a hidden layer, no periodic_scale
    without periodic inputs; the rest searched as usual, and the network built from them."""
    from pipeline.tune.space import network_params, suggest

    space = ("n_layers = { low = 0, high = 2 }\nunits = { low = 4, high = 16 }\n"
             'activation = ["tanh", "relu"]\ndropout = { low = 0.0, high = 0.5 }\n'
             'numeric_encoding = ["none", "periodic"]\n'
             "periodic_scale = { low = 0.1, high = 10.0, log = true }\n"
             "learning_rate_init = { low = 0.005, high = 0.05, log = true }\n")
    exp = load(tiny_project(project, space=space))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    built = []

    def objective(trial):
        values = suggest(trial, exp.tune.space, exp.model.params())
        built.append(network_params(exp, values, 0))
        return 0.0

    study.optimize(objective, n_trials=40)
    for t, params in zip(study.trials, built, strict=True):
        hidden = t.params["n_layers"] > 0
        assert list(t.params)[:2] == (["n_layers", "units"] if hidden else ["n_layers",
                                                                             "numeric_encoding"])
        assert all((k in t.params) == hidden for k in ("units", "activation", "dropout"))
        assert ("periodic_scale" in t.params) == (t.params["numeric_encoding"] == "periodic")
        assert "learning_rate_init" in t.params
        assert params["hidden_layer_sizes"] == ((t.params["units"],) * t.params["n_layers"]
                                                if hidden else ())
    kinds = {(t.params["n_layers"] > 0, t.params["numeric_encoding"]) for t in study.trials}
    assert len(kinds) == 4  # every branch was taken


def test_hidden_layer_sizes_choices_condition_the_layer_parameters(project):
    """The same conditions hold for a space of layer tuples: `()` (the linear model) searches
    no activation."""
    from pipeline.tune.space import suggest

    space = 'activation = ["tanh", "relu"]\nhidden_layer_sizes = [[], [8]]\n'  # before it
    exp = load(tiny_project(project, space=space))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    study.optimize(lambda t: len(suggest(t, exp.tune.space, exp.model.params())), n_trials=12)
    for t in study.trials:
        assert ("activation" in t.params) == (t.params["hidden_layer_sizes"] == "8")
    assert {tuple(t.params) for t in study.trials} == {("hidden_layer_sizes",),
                                                       ("hidden_layer_sizes", "activation")}


def test_a_changed_choice_of_a_conditional_parameter_is_refused(project):
    """check_space reads a conditional parameter's choices from the trials that used it, even
    when the first trial (the linear baseline) did not."""
    from optuna.distributions import CategoricalDistribution, IntDistribution
    from optuna.trial import create_trial

    from pipeline.tune.space import check_space

    space = "n_layers = { low = 0, high = 2 }\nunits = [8]\nactivation = [\"tanh\", \"relu\"]\n"
    exp = load(tiny_project(project, space=space))
    study = optuna.create_study(study_name="tiny")
    layers, act = IntDistribution(0, 2), CategoricalDistribution(["tanh", "relu", "logistic"])
    study.add_trial(create_trial(params={"n_layers": 0}, distributions={"n_layers": layers},
                                 value=0.5))
    study.add_trial(create_trial(
        params={"n_layers": 1, "units": 8, "activation": "relu"}, value=0.6,
        distributions={"n_layers": layers, "units": CategoricalDistribution([8]),
                       "activation": act}))
    with pytest.raises(PipelineError, match=r"activation changed from \['tanh', 'relu', "
                                            r"'logistic'\] to \['tanh', 'relu'\]"):
        check_space(study, exp.tune.space, "sqlite:///optuna.db")
    study.add_trial(create_trial(params={"n_layers": 0}, distributions={"n_layers": layers},
                                 value=0.5))
    check_space(study, {k: v for k, v in exp.tune.space.items() if k != "activation"},
                "sqlite:///optuna.db")  # a space without it: nothing to compare


def test_a_trial_run_lists_only_the_parameters_it_used():
    """The run's params (the UI's columns) leave out what does not apply; config.json keeps
    every parameter to rebuild the network."""
    from pipeline.tune.space import used

    params = {"hidden_layer_sizes": (), "activation": "relu", "dropout": 0.1, "alpha": 1e-4,
              "numeric_encoding": "none", "periodic_scale": 1.0}
    assert used({"n_layers": 0}, params) == {"n_layers": 0, "hidden_layer_sizes": (),
                                             "alpha": 1e-4, "numeric_encoding": "none"}
    wide = used({}, {**params, "hidden_layer_sizes": (8,), "numeric_encoding": "periodic"})
    assert {"activation", "dropout", "periodic_scale"} <= set(wide)


def test_workers_share_the_cores_they_are_given(monkeypatch):
    """`--jobs N` workers get max(1, cores // N) BLAS threads each: never oversubscribed."""
    from pipeline.tune import worker

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert [worker.blas_threads(n) for n in (1, 2, 3, 4, 8)] == [4, 2, 1, 1, 1]


def test_big_inputs_are_prepared_before_the_mlflow_writer_starts(project, monkeypatch):
    """A cache built apart (big inputs) and the MLflow writer process would add up in memory
    (~0.8 + 0.23 GB at 1M rows): tune builds first, then starts the writer."""
    import pipeline.prepare.stage as stage

    fresh_mlflow_db(project)
    exp = load(tiny_project(project, trials=1, max_iter=2))
    build, seen = stage._build_in_child, []

    def recording(*args):
        seen.append(sorted(p.name for p in mp.active_children()))
        build(*args)

    monkeypatch.setattr(stage, "APART_BYTES", 0)
    monkeypatch.setattr(stage, "_build_in_child", recording)
    tune.tune(exp)
    assert seen == [[]]  # built apart once, with no writer running
    assert len(_study().trials) == 1 and _runs()  # then the writer logged the trial
