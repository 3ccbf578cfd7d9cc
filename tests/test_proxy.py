"""pipeline/tune/proxy.py: the gRPC storage proxy, in this process on loopback with an SQLite
study database (tests/test_distributed.py runs `tune` workers through it on PostgreSQL).

Checked: a study and its trials go through it; the atomic claim of a queued trial holds; the
workers' heartbeat reaches the database through it, and a trial whose heartbeat stopped is
failed and re-queued by the proxy; bad addresses and storages are one line, exit 2.
"""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers_tune import fresh_mlflow_db, one_line_error, tiny_project
from typer.testing import CliRunner

pytest.importorskip("grpc", reason="the grpc extra: pip install -e '.[grpc]'")

from pipeline.cli import app  # noqa: E402
from pipeline.errors import PipelineError  # noqa: E402
from pipeline.tune import proxy, study  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(db: Path, warned: list[str]) -> tuple[str, threading.Event, threading.Thread]:
    """A proxy for SQLite file `db` in a thread: (grpc:// address, stop event, thread)."""
    stop, ready, address = threading.Event(), threading.Event(), []

    def on_ready(url: str) -> None:
        address.append(url)
        ready.set()

    thread = threading.Thread(target=proxy.serve, args=(f"sqlite:///{db}",), kwargs=dict(
        port=_free_port(), threads=4, on_ready=on_ready, on_warning=warned.append, stop=stop),
        daemon=True)
    thread.start()
    assert ready.wait(60), "the proxy never listened"
    return address[0], stop, thread


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    """(grpc:// address, SQLite file) of a proxy running in a thread; heartbeat grace 1 s,
    stale-trial check every 0.2 s."""
    monkeypatch.setattr(study, "GRACE_PERIOD", 1)
    monkeypatch.setattr(proxy, "REAP_EVERY", 0.2)
    db, warned = tmp_path / "optuna.db", []
    url, stop, thread = _serve(db, warned)
    try:
        yield url, db
    finally:
        stop.set()
        thread.join(timeout=10)
        assert not thread.is_alive(), "the proxy did not stop"
    assert not warned, warned


def _quiet_study(url: str, name: str = "s") -> object:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = study.make_storage(url)
    return optuna.create_study(study_name=name, storage=storage, load_if_exists=True)


def test_a_study_goes_through_the_proxy_into_the_database(served: tuple[str, Path]) -> None:
    import optuna

    url, db = served
    s = _quiet_study(url)
    s.set_user_attr("data_fingerprint", "abc")
    s.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    direct = optuna.load_study(study_name="s", storage=f"sqlite:///{db}")
    assert [t.state.name for t in direct.trials] == ["COMPLETE"] * 3
    assert direct.user_attrs == {"data_fingerprint": "abc"}
    with sqlite3.connect(db) as con:  # Optuna's heartbeat thread ran beside each trial
        beats = con.execute("SELECT COUNT(*) FROM trial_heartbeats").fetchone()[0]
        stored = {k for (k,) in con.execute("SELECT key FROM trial_system_attributes")}
    assert beats == 3
    assert "pipeline:heartbeat" not in stored  # recorded as a heartbeat, never as an attribute


def test_a_queued_trial_is_claimed_once_through_the_proxy(served: tuple[str, Path]) -> None:
    from optuna.trial import TrialState

    url, _ = served
    s = _quiet_study(url)
    s.enqueue_trial({"x": 0.5})
    storage = study.make_storage(url)
    waiting = s.get_trials(deepcopy=False, states=(TrialState.WAITING,))[0]
    claims = [storage.set_trial_state_values(waiting._trial_id, TrialState.RUNNING)
              for _ in range(3)]
    assert claims == [True, False, False]


def test_the_proxy_fails_and_requeues_a_trial_whose_heartbeat_stopped(
    served: tuple[str, Path],
) -> None:
    from optuna.trial import TrialState

    url, _ = served
    s = _quiet_study(url)
    storage = s._storage
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dead, live = s.ask({"x": _dist()}), s.ask({"x": _dist()})
    for trial in (dead, live):
        storage.record_heartbeat(trial._trial_id)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # `live` keeps beating; `dead` stopped
        storage.record_heartbeat(live._trial_id)
        now = s.get_trials(deepcopy=False)
        # failed, then re-queued: two writes, so a loaded machine may show the first alone
        if now[dead.number].state == TrialState.FAIL and any(
                t.system_attrs.get("failed_trial") == dead.number for t in now):
            break
        time.sleep(0.2)
    trials = s.get_trials(deepcopy=False)
    assert trials[dead.number].state == TrialState.FAIL, trials
    assert trials[live.number].state == TrialState.RUNNING
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == dead.number]
    assert len(retries) == 1 and retries[0].state == TrialState.WAITING
    assert retries[0].params == {"x": dead.params["x"]}


def _dist() -> object:
    from optuna.distributions import FloatDistribution

    return FloatDistribution(0, 1)


def test_a_dead_proxy_address_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(study, "PROXY_WAIT", 0.5)
    port = _free_port()
    with pytest.raises(PipelineError, match=f"no Optuna storage proxy answers at "
                       f"127.0.0.1:{port}"):
        study.make_storage(f"grpc://127.0.0.1:{port}")
    for bad in ("grpc://127.0.0.1", "grpc://:80", "grpc://h:99999", "grpc://h:1/db"):
        with pytest.raises(PipelineError, match="expected grpc://HOST:PORT"):
            study.make_storage(bad)


def test_storage_proxy_refuses_what_it_cannot_serve(
    served: tuple[str, Path], tmp_path: Path
) -> None:
    runner = CliRunner()
    for storage in ("x.journal", "journal:///x.journal", served[0]):
        result = runner.invoke(app, ["storage-proxy", "--storage", storage])
        one_line_error(result, f"--storage {storage}: the proxy serves a database")
    taken = served[0].rsplit(":", 1)[1]  # the running proxy's port
    result = runner.invoke(app, ["storage-proxy", "--storage", f"sqlite:///{tmp_path}/o.db",
                                 "--port", taken])
    one_line_error(result, f"--port {taken}: cannot listen there")


def test_a_proxy_gone_mid_study_is_named_as_the_store_that_failed(tmp_path: Path) -> None:
    url, stop, thread = _serve(tmp_path / "optuna.db", [])
    s = _quiet_study(url)
    s.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    stop.set()
    thread.join(timeout=10)
    with pytest.raises(Exception) as caught:
        s.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    fault = study.store_fault(url, caught.value)
    assert fault is not None, caught.value
    assert str(fault).startswith(f"the Optuna store {url} failed mid-study: the storage proxy: "
                                 "UNAVAILABLE"), fault


@pytest.mark.slow  # a whole `tune` start (prepare, MLflow) before the store: ~5-11 s
def test_tune_given_a_dead_proxy_in_tune_storage_is_one_line(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`[tune] storage = "grpc://..."` is what `tune` uses without --storage; nothing
    answering there is one line naming the address, exit 2, no traceback."""
    monkeypatch.setattr(study, "PROXY_WAIT", 0.5)
    monkeypatch.delenv("OPTUNA_STORAGE", raising=False)
    path = tiny_project(project, trials=1)
    dead = f"grpc://127.0.0.1:{_free_port()}"
    text = path.read_text().replace("pruner_warmup_epochs = 1\n",
                                    f'pruner_warmup_epochs = 1\nstorage = "{dead}"\n')
    path.write_text(text)
    result = CliRunner().invoke(app, ["tune", "tiny", "--quiet",
                                      "--tracking-uri", fresh_mlflow_db(project)])
    one_line_error(result, f"--storage {dead}: no Optuna storage proxy answers")
    assert not (project / "optuna.db").exists()


def test_without_grpcio_the_proxy_and_its_clients_say_which_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "grpc" else real(name, *a))
    with pytest.raises(PipelineError, match=r"grpc://h:1: .*pip install -e '\.\[grpc\]'"):
        study.make_storage("grpc://h:1")
    result = CliRunner().invoke(app, ["storage-proxy", "--storage", f"sqlite:///{tmp_path}/o.db"])
    one_line_error(result, "storage-proxy: Optuna's gRPC storage proxy needs grpcio")
