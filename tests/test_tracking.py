"""MLflow tracking: experiment set-up, parent / child runs, batched curves, artifacts, the UI."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request

import pytest
from helpers_tune import fresh_mlflow_db, tiny_project

from pipeline import tracking
from pipeline.experiment import load


@pytest.fixture
def setup(project):
    exp = load(tiny_project(project))
    uri = fresh_mlflow_db(project)
    tracker = tracking.MlflowTracker(uri)
    tracker.setup(exp)
    return exp, tracker


def _curves(run, folds=2, epochs=5):
    for f in range(folds):
        for e in range(1, epochs + 1):
            run.epoch(f, {"train_loss": 1.0 / e, "val_loss": 1.1 / e + f, "val_error": 0.5 / e})
            if e == 1 and f > 0:
                run.flush()


def test_null_tracker_does_nothing():
    t = tracking.NullTracker()
    t.setup(None)
    run = t.start_run(None, "x", {}, {})
    _curves(run)
    run.end("complete", metrics={"a": 1.0})
    assert not t.enabled and run.curves[1]["val_loss"][0] == pytest.approx(2.1)


def test_setup_is_idempotent_and_sets_artifacts(setup, project):
    exp, tracker = setup
    again = tracking.MlflowTracker("sqlite:///mlflow.db")
    again.setup(exp)
    assert again.experiment_id(exp) == tracker.experiment_id(exp)
    e = tracker.client.get_experiment_by_name(exp.name)
    assert e.artifact_location == (project / "mlartifacts").as_uri()


def test_child_run_has_params_curves_by_fold_and_mean_in_few_batches(setup, monkeypatch):
    exp, tracker = setup
    parent = tracker.parent_run(exp, "study", None, {"optuna.study": "study"})
    assert tracker.parent_run(exp, "study", parent, {}) == parent  # resume: the same parent
    calls = []
    real = tracker.client.log_batch
    monkeypatch.setattr(tracker.client, "log_batch",
                        lambda *a, **k: calls.append(len(k.get("metrics", []))) or real(*a, **k))
    run = tracker.start_run(exp, "trial-0000", {"alpha": 0.1, "hidden_layer_sizes": (8, 8)},
                            {"data_fingerprint": "abc"}, parent_id=parent)
    _curves(run)
    run.end("complete", metrics={"cv_roc_auc": 0.9, "cv_roc_auc_std": 0.01}, config=exp.as_dict())
    points = sum(calls)
    assert points == 2 * 3 * 5 + 3 * 5 + 2 and len(calls) <= 4  # batched, never per point

    c = tracker.client
    r = c.get_run(run.run_id)
    assert r.info.status == "FINISHED" and r.data.tags["state"] == "complete"
    assert r.data.tags["mlflow.parentRunId"] == parent and r.data.tags["data_fingerprint"] == "abc"
    assert r.data.tags["git_commit"] and r.data.params["hidden_layer_sizes"] == "[8, 8]"
    history = c.get_metric_history(run.run_id, "fold1/val_loss")
    assert [m.step for m in history] == [1, 2, 3, 4, 5]
    mean = c.get_metric_history(run.run_id, "val_loss")
    assert mean[0].value == pytest.approx((1.1 + 2.1) / 2)
    assert r.data.metrics["cv_roc_auc"] == 0.9
    artifacts = {a.path for a in c.list_artifacts(run.run_id)}
    assert {"config.json", "convergence.png"} <= artifacts


def test_a_run_that_dies_ends_failed(setup):
    exp, tracker = setup
    run = tracker.start_run(exp, "t", {}, {})
    with pytest.raises(ZeroDivisionError):
        try:
            _curves(run, folds=1)
            raise ZeroDivisionError("a worker's bug")
        except BaseException:
            run.end("failed")
            raise
    r = tracker.client.get_run(run.run_id)
    assert r.info.status == "FAILED" and r.data.tags["state"] == "failed"
    # runs left RUNNING by a dead worker are closed by the recovery
    orphan = tracker.start_run(exp, "orphan", {}, {})
    tracker.close_if_running([orphan.run_id, run.run_id])
    assert tracker.client.get_run(orphan.run_id).info.status == "FAILED"


def _get(url: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


@pytest.mark.slow
def test_ui_server_shows_parent_children_and_histories(setup, project):
    exp, tracker = setup
    parent = tracker.parent_run(exp, "study", None, {})
    child = tracker.start_run(exp, "trial-0000", {"alpha": 0.1}, {}, parent_id=parent)
    _curves(child)
    child.end("complete", metrics={"cv_roc_auc": 0.9}, plot=False, config={"a": 1})

    port = tracking.free_port()
    cmd = tracking.ui_command("127.0.0.1", port, None)
    proc = subprocess.Popen(
        cmd, env=tracking.ui_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}/api/2.0/mlflow"
    try:
        eid = tracker.experiment_id(exp)
        deadline = time.monotonic() + 60
        while True:  # the server takes a few seconds to boot
            try:
                runs = _get(f"{base}/runs/search", {"experiment_ids": [eid]})["runs"]
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.5)
        by_id = {r["info"]["run_id"]: r for r in runs}
        assert set(by_id) == {parent, child.run_id}
        tags = {t["key"]: t["value"] for t in by_id[child.run_id]["data"]["tags"]}
        assert tags["mlflow.parentRunId"] == parent
        hist = _get(f"{base}/metrics/get-history?run_id={child.run_id}&metric_key=fold0/val_loss")
        assert [m["step"] for m in hist["metrics"]] == [1, 2, 3, 4, 5]
        files = _get(f"{base}/artifacts/list?run_id={child.run_id}").get("files", [])
        assert "config.json" in {f["path"] for f in files}  # artifacts are served too
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_workers_without_a_parent_id_settle_on_the_earliest(setup):
    exp, tracker = setup
    tags = {"optuna.study": "s", "optuna.study_id": 7}
    first = tracker.parent_run(exp, "s", None, tags)  # the creator: no look-up
    other = tracking.MlflowTracker("sqlite:///mlflow.db")
    assert other.parent_run(exp, "s", None, tags, settle=True) == first  # found, not created
    # a study of another id gets its own parent
    assert other.parent_run(exp, "s", None, {**tags, "optuna.study_id": 8}, settle=True) != first


def test_setup_retries_a_raced_schema_then_fails_in_one_line(setup, monkeypatch):
    exp, _ = setup
    from pipeline.errors import PipelineError

    monkeypatch.setattr(tracking.runs.time, "sleep", lambda s: None)
    tracker = tracking.MlflowTracker("sqlite:///mlflow.db")
    real, calls = tracker.experiment_id, []

    def flaky(e):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("UniqueViolation: alembic_version_pkc")
        return real(e)

    monkeypatch.setattr(tracker, "experiment_id", flaky)
    tracker.setup(exp)
    assert len(calls) == 2
    monkeypatch.setattr(tracker, "experiment_id", lambda e: 1 / 0)
    with pytest.raises(PipelineError, match="cannot set up MLflow .ZeroDivisionError"):
        tracker.setup(exp)


def _wait_for(path, seconds=60.0):
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_the_writer_opens_the_store_only_at_its_first_write(project):
    """The writer starts before the schema exists; opening the store then would migrate a
    fresh database at the same time as the owner's set-up (sqlite: the writer crashed)."""
    exp = load(tiny_project(project))
    tracker = tracking.MlflowTracker("sqlite:///mlflow.db", background=True)
    tracker.start_writer()
    marker = project / "writer-ready"
    tracker.preload(type(marker).touch, marker)  # runs in the writer, after its imports
    _wait_for(marker)
    assert not (project / "mlflow.db").exists()
    tracker.setup(exp)  # the owner creates the schema, then queues writes
    run = tracker.start_run(exp, "trial-0000", {"alpha": 0.1}, {})
    _curves(run)
    run.end("complete", metrics={"cv_roc_auc": 0.9})
    tracker.close()
    r = tracker.client.get_run(run.run_id)
    assert r.info.status == "FINISHED" and r.data.params["alpha"] == "0.1"


def test_a_dead_writer_is_reported_and_later_writes_go_inline(setup, capfd):
    exp, tracker = setup
    bg = tracking.MlflowTracker(tracker.uri, background=True)
    bg.start_writer()
    bg._writer.kill()
    bg._writer.join(timeout=30)
    run = bg.start_run(exp, "trial-0000", {"alpha": 0.1}, {})
    _curves(run)
    run.end("complete", metrics={"cv_roc_auc": 0.9})
    bg.close()  # returns at once: nothing is queued to a dead process
    err = capfd.readouterr().err
    assert err.count("MLflow writer process exited") == 1 and "writing from this process" in err
    r = tracker.client.get_run(run.run_id)
    assert r.info.status == "FINISHED" and r.data.metrics["cv_roc_auc"] == 0.9


def _two_figures():
    from matplotlib.figure import Figure

    figs = {}
    for name in ("a", "b"):
        fig = Figure()
        fig.subplots().plot([1, 2, 3])
        figs[name] = fig
    return figs


def _no_figures():
    raise RuntimeError("storage unreachable")


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_study_plots_are_drawn_by_forked_processes_or_reported(capfd):
    from pipeline.tracking.writer import _Drawing

    ok = _Drawing(_two_figures, ())
    assert [p.name for p in ok.result()] == ["a.png", "b.png"]  # one process per figure
    ok.cleanup()
    assert not ok.dir.exists()
    bad = _Drawing(_no_figures, ())
    assert bad.result() is None  # the writer then draws them itself (and logs what fails)
    assert "study plots: RuntimeError: storage unreachable" in capfd.readouterr().err
    bad.cleanup()


def test_ui_links_reach_the_registered_model(project, capsys):
    """MLflow's sidebar does not list registered models: `pipeline ui` prints the link."""
    from mlflow import MlflowClient

    from pipeline import console
    from pipeline.tracking.links import study_links

    fresh_mlflow_db(project)
    uri = f"sqlite:///{project / 'mlflow.db'}"  # absolute: MLflow caches engines by URI
    client = MlflowClient(uri)
    for name in ("with model", "without"):
        eid = client.create_experiment(name)
        run = client.create_run(eid, tags={"kind": "trial", "state": "complete"})
        client.log_metric(run.info.run_id, "cv_roc_auc", 0.9)
        client.set_terminated(run.info.run_id)
    client.create_registered_model("with model")
    links = {s.experiment: s for s in study_links("http://127.0.0.1:5000", uri)}
    assert links["with model"].model == "http://127.0.0.1:5000/#/models/with%20model"
    assert links["without"].model is None
    console.ui_started("http://127.0.0.1:5000", links.values())
    lines = capsys.readouterr().out.splitlines()
    assert "http://127.0.0.1:5000/#/models/with%20model" in lines
    assert sum("#/models/" in text for text in lines) == 1
