"""Studies you can trust (issue #13): tied to their data, one-line store faults, idempotent
re-runs, processes that end with their parent, output that fits 80 columns."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
from helpers_tune import fresh_mlflow_db, one_line_error, tiny_project
from helpers_workers import stop, worker_env
from optuna.trial import TrialState
from typer.testing import CliRunner

from pipeline import tune
from pipeline.cli import app
from pipeline.experiment import load

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
COLUMNS_80 = {"COLUMNS": "80"}


def _study(name: str = "tiny") -> optuna.Study:
    return optuna.load_study(study_name=name, storage="sqlite:///optuna.db")


# --- 1. a study is tied to what it measured -----------------------------------------------


@pytest.mark.slow
def test_study_records_what_it_measured_and_refuses_other_data(project):
    fresh_mlflow_db(project)
    exp = load(tiny_project(project, trials=2))
    tune.tune(exp, track=False)
    attrs = _study().user_attrs
    old = attrs["data_fingerprint"]
    assert attrs["folds"] == "stratified/2/seed7"
    assert (attrs["metric"], attrs["task"]) == ("roc_auc", "binary")
    # new data (as `pipeline data avocado --seed 1` makes): the study refuses to mix it in
    train = project / "data" / "tiny" / "train.csv"
    frame = pd.read_csv(train)
    frame["x2"] = frame["x2"] * 2
    frame.to_csv(train, index=False)
    result = CliRunner().invoke(app, ["tune", "tiny", "--quiet", "--trials", "3"])
    line = one_line_error(result, "data_fingerprint", old, "--fresh", "--study")
    assert len(_study().trials) == 2  # nothing added
    # the refused run's MLflow writer process ended with it (in-process callers keep running)
    assert not [p for p in mp.active_children() if p.name == "mlflow-writer"]
    # --fresh starts again on the new data; the printed best belongs to it
    result = CliRunner().invoke(app, ["tune", "tiny", "--quiet", "--fresh"])
    assert result.exit_code == 0, result.output
    study = _study()
    assert study.user_attrs["data_fingerprint"] not in (old, None)
    assert len(study.get_trials(states=FINISHED)) == 2
    assert line  # the refusal named the old fingerprint


def test_editing_the_feature_code_refuses_to_resume_like_new_data(project):
    """[competition] features: the code's text is part of the data fingerprint."""
    path = tiny_project(project, trials=1)
    code = project / "experiments" / "tiny_features.py"
    code.write_text("def features(df):\n    df['x3'] = df['x1'] * df['x2']\n    return df\n")
    path.write_text(path.read_text().replace(
        'metric = "roc_auc"\n', 'metric = "roc_auc"\nfeatures = "experiments/tiny_features.py"\n'))
    tune.tune(load(path), track=False)
    old = _study().user_attrs["data_fingerprint"]
    tune.tune(load(path), trials=2, track=False)  # unchanged code: the study goes on
    assert len(_study().trials) == 2
    code.write_text(code.read_text().replace("df['x2']", "df['x2'] ** 2"))
    result = CliRunner().invoke(app, ["tune", "tiny", "--quiet", "--trials", "3"])
    one_line_error(result, f"data_fingerprint {old} -> ", "--fresh")
    assert len(_study().trials) == 2  # nothing added


def test_study_resumes_across_model_space_and_budget_edits_but_not_folds(project):
    path = tiny_project(project, trials=2)
    tune.tune(load(path), track=False)
    text = path.read_text()
    edited = text.replace("learning_rate_init = 0.02", "learning_rate_init = 0.03").replace(
        'units = { low = 4, high = 16', 'units = { low = 4, high = 12')
    path.write_text(edited)
    tune.tune(load(path), trials=3, track=False)
    assert len(_study().get_trials(states=FINISHED)) == 3
    path.write_text(edited.replace("seed = 7", "seed = 8"))
    result = CliRunner().invoke(app, ["tune", "tiny", "--quiet", "--study", "tiny"])
    one_line_error(result, "folds stratified/2/seed7 -> stratified/2/seed8")
    # a new study name is the other way on
    tune.tune(load(path), study_name="tiny-2", track=False)
    assert _study("tiny-2").user_attrs["folds"] == "stratified/2/seed8"


def test_a_new_fold_scheme_refuses_to_resume(project):
    from pipeline.errors import PipelineError

    path = tiny_project(project, trials=1)
    tune.tune(load(path), track=False)
    text = path.read_text()
    for cv, scheme in [('kind = "group"\ngroup = "colour"', "group(colour)/2/seed7"),
                       ('kind = "time"\ntime = "x1"', "time(x1)/2")]:
        path.write_text(text.replace("[cv]\n", f"[cv]\n{cv}\n"))
        with pytest.raises(PipelineError, match="--fresh") as info:
            tune.tune(load(path), track=False)
        assert f"folds stratified/2/seed7 -> {scheme}" in str(info.value)
    assert len(_study().trials) == 1  # nothing added


def test_a_removed_choice_refuses_to_resume_in_one_line(project):
    """Optuna keeps a categorical's choices for the whole study: without the check every
    resumed trial failed with `CategoricalDistribution does not support dynamic value space`."""
    path = tiny_project(project, trials=2)
    tune.tune(load(path), track=False)
    path.write_text(path.read_text().replace('activation = ["tanh", "relu"]',
                                             'activation = ["tanh"]'))
    result = CliRunner().invoke(app, ["tune", "tiny", "--quiet", "--trials", "3"])
    one_line_error(result, "[tune.space] activation changed from ['tanh', 'relu'] to ['tanh']",
                    "--fresh", "--study tiny-2")
    assert len(_study().trials) == 2  # nothing added


def test_tune_and_submit_with_group_folds(project):
    """What `pipeline run` chains (tune, best trials, submit), with kind = "group": the study
    and the submission carry the scheme; no fold ever validated a store it trained on."""
    from pipeline import evaluate
    from pipeline.prepare import prepare
    from pipeline.submission import ledger
    from pipeline.submit import submit, validate_file

    path = tiny_project(project, trials=2, max_iter=3)
    for name in ("train.csv", "test.csv"):  # 8 stores, a feature too
        file = project / "data" / "tiny" / name
        frame = pd.read_csv(file)
        frame["store"] = "s" + (frame["id"] % 8).astype(str)
        frame.to_csv(file, index=False)
    cv = '[cv]\nkind = "group"\ngroup = "store"\n'
    path.write_text(path.read_text().replace("[cv]\n", cv) + "\n[submit]\nrefit = false\n")
    exp = load(path)
    tune.tune(exp, track=False)
    study = _study()
    assert study.user_attrs["folds"] == "group(store)/2/seed7"
    assert len(study.get_trials(states=FINISHED)) == 2
    best = tune.best_trials(exp)
    result = submit(exp, best)
    validate_file(exp, result.path)
    assert len(result.model_paths) == 2  # the two group folds' models, averaged
    assert result.cv_score == pytest.approx(best[0].score)  # the same folds rebuilt
    (row,) = ledger.read(project / "submissions" / "ledger.csv")
    assert row["file"] == result.path.as_posix()
    prepared = prepare(exp)
    for tr, va in evaluate.folds(prepared, exp):
        assert not set(prepared.groups[tr]) & set(prepared.groups[va])


# --- 2. every store fault is one line -----------------------------------------------------


def _tuned_db(project) -> bytes:
    tune.tune(load(tiny_project(project, trials=1)), track=False)
    import sqlite3

    with sqlite3.connect(project / "optuna.db") as con:  # fold the WAL into the file
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return (project / "optuna.db").read_bytes()


@pytest.mark.parametrize("damage", ["truncated", "garbage", "foreign"])
def test_a_damaged_optuna_db_is_one_line_and_left_as_it_was(project, damage):
    import sqlite3

    whole = _tuned_db(project)
    db = project / "optuna.db"
    for extra in ("optuna.db-wal", "optuna.db-shm"):
        (project / extra).unlink(missing_ok=True)
    if damage == "truncated":
        db.write_bytes(whole[: len(whole) // 2])
    elif damage == "garbage":
        db.write_bytes(b"not a database at all\n" * 100)
    else:
        db.unlink()
        with sqlite3.connect(db) as con:
            con.execute("CREATE TABLE songs (title TEXT)")
    before = db.read_bytes()
    for args in (["tune", "tiny", "--quiet"], ["submit", "tiny"]):
        result = CliRunner().invoke(app, args)
        one_line_error(result, "optuna.db", "move it away")
        assert db.read_bytes() == before
    assert not (project / "submissions").exists()


def test_an_unreadable_store_on_a_full_disk_is_never_blamed(project):
    """Reading a WAL database writes its -shm file: with no room to write (here a file-size
    limit of 0 bytes, SIGXFSZ ignored) SQLite says 'disk I/O error'. The line names the
    fault; the intact store is not called corrupt and stays as it was."""
    whole = _tuned_db(project)
    for extra in ("optuna.db-wal", "optuna.db-shm"):
        (project / extra).unlink(missing_ok=True)
    limit = ("import resource, runpy, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN);"
             " resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0)); sys.argv = ['pipeline'] +"
             " sys.argv[1:]; runpy.run_module('pipeline', run_name='__main__')")
    result = subprocess.run([sys.executable, "-c", limit, "submit", "tiny"], env=worker_env(),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    # joblib warns that it cannot make its semaphores under the limit: not our line
    (line,) = [x for x in result.stderr.strip().splitlines() if "joblib" not in x]
    assert "optuna.db" in line and "free space" in line and "move it away" not in line, line
    assert (project / "optuna.db").read_bytes() == whole


def test_sqlite_faults_name_the_missing_folder_or_the_full_disk(project, monkeypatch):
    import shutil
    import sqlite3
    from types import SimpleNamespace

    from pipeline.tune.study import sqlite_fault

    tiny_project(project, trials=1)
    result = CliRunner().invoke(app, ["tune", "tiny", "--quiet", "--storage",
                                      "sqlite:////nonexistent/dir/x.db"])
    one_line_error(result, "--storage sqlite:////nonexistent/dir/x.db",
                    "folder /nonexistent/dir does not exist")
    error = sqlite3.OperationalError("disk I/O error")
    assert "full" not in sqlite_fault(project / "optuna.db", error)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: SimpleNamespace(free=4096))
    line = sqlite_fault(project / "optuna.db", error)
    assert "is full (4096 bytes free" in line and "move" not in line


def test_a_tracking_server_that_does_not_answer_is_one_line(project):
    tiny_project(project, trials=1)
    result = CliRunner().invoke(app, ["tune", "tiny", "--quiet", "--tracking-uri",
                                      "http://127.0.0.1:1"])
    one_line_error(result, "--tracking-uri http://127.0.0.1:1: no MLflow server answers",
                    "make mlflow-server")
    assert not (project / "optuna.db").exists() or not _study().trials


def test_a_negative_timeout_is_refused(project):
    tiny_project(project, trials=1)
    result = CliRunner().invoke(app, ["tune", "tiny", "--quiet", "--timeout", "-5"])
    assert result.exit_code == 2 and "--timeout" in result.output
    assert not (project / "optuna.db").exists()


def test_a_journal_that_is_not_a_journal_is_one_line(project):
    tiny_project(project, trials=1)
    journal = project / "study.journal"
    journal.write_text("hello\n")
    result = CliRunner().invoke(app, ["tune", "tiny", "--quiet", "--storage", str(journal)])
    one_line_error(result, "study.journal", "not an Optuna journal")
    assert journal.read_text() == "hello\n"


def test_a_corrupt_mlflow_db_is_one_line(project, monkeypatch):
    import pipeline.tracking as tracking

    monkeypatch.setattr(tracking.runs.time, "sleep", lambda s: None)  # no retry pauses (~12 s)
    tiny_project(project, trials=1)
    db = project / "mlflow.db"
    db.write_bytes(b"garbage" * 500)
    result = CliRunner().invoke(app, ["tune", "tiny", "--quiet"])
    one_line_error(result, "mlflow.db")
    assert db.read_bytes() == b"garbage" * 500


def test_a_postgres_url_that_refuses_is_one_line_with_the_password_hidden(project, monkeypatch):
    import pipeline.tune.study as study_module

    monkeypatch.setattr(study_module.time, "sleep", lambda s: None)  # no retry pauses
    tiny_project(project, trials=1)
    url = "postgresql://u:secret@127.0.0.1:1/x"
    result = CliRunner().invoke(app, ["tune", "tiny", "--quiet", "--storage", url])
    line = one_line_error(result, "127.0.0.1:1", "check that the database server answers")
    assert "secret" not in line


def test_a_full_disk_while_submitting_is_one_line_and_keeps_what_was_there(project, monkeypatch):
    import errno

    import pipeline.files
    import pipeline.submit

    tune.tune(load(tiny_project(project, trials=2)), track=False)
    assert CliRunner().invoke(app, ["submit", "tiny"]).exit_code == 0
    folder = project / "submissions"
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}

    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(pipeline.submit, "write_bytes_atomic", full)
    result = CliRunner().invoke(app, ["submit", "tiny", "--no-refit"])
    one_line_error(result, "No space left on device", "free some space")
    after = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert after == before


def test_a_full_disk_while_preparing_is_one_line_and_leaves_no_cache(project, monkeypatch):
    import errno

    import numpy as np

    tiny_project(project)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "save", full)  # the cache's arrays: one .npy file each
    result = CliRunner().invoke(app, ["prepare", "tiny"])
    one_line_error(result, "No space left on device")
    cache = project / "data" / "tiny" / "prepared"
    assert not cache.exists()  # not even the empty folder made for it


# --- 3. re-running is idempotent -----------------------------------------------------------


@pytest.mark.slow
def test_make_tune_three_times_is_one_study_one_file_one_ledger_row(project):
    from pipeline.submission import ledger

    fresh_mlflow_db(project)
    tiny_project(project, trials=2)
    outputs = []
    for _ in range(3):  # what `make tune` runs
        result = CliRunner().invoke(app, ["run", "tiny", "--quiet"], env=COLUMNS_80)
        assert result.exit_code == 0, result.output
        outputs.append(result.output)
    assert len(_study().trials) == 2
    assert "is complete with 2 finished trials" in outputs[1]
    assert "--trials 3" in outputs[1] and "make tune TRIALS=3" in outputs[1]
    rows = ledger.read(project / "submissions" / "ledger.csv")
    assert len(rows) == 1
    assert f"identical to {rows[0]['file']}" in outputs[2] and "nothing written" in outputs[2]
    assert len(list((project / "submissions" / "tiny").glob("*.csv"))) == 1
    board = CliRunner().invoke(app, ["leaderboard", "tiny", "--csv"])
    assert len(board.output.strip().splitlines()) == 2  # header + the one submission


def test_withdraw_appends_a_row_and_the_board_hides_it(project):
    from pipeline.submission import ledger

    tune.tune(load(tiny_project(project, trials=2)), track=False)
    runner = CliRunner()
    assert runner.invoke(app, ["submit", "tiny"]).exit_code == 0
    assert runner.invoke(app, ["submit", "tiny", "--no-refit"]).exit_code == 0
    path = project / "submissions" / "ledger.csv"
    first, second = ledger.read(path)
    name = Path(first["file"]).name
    result = runner.invoke(app, ["withdraw", "tiny", name, "--message", "leaked a feature"])
    assert result.exit_code == 0 and "withdrew" in result.output, result.output
    rows = ledger.read(path)
    assert len(rows) == 3 and rows[:2] == [first, second]  # append-only: history kept
    assert rows[2]["status"] == "withdrawn" and rows[2]["message"] == "leaked a feature"
    assert Path(first["file"]).is_file()
    board = runner.invoke(app, ["leaderboard", "tiny", "--csv"])
    assert name not in board.output and Path(second["file"]).name in board.output
    one_line_error(runner.invoke(app, ["withdraw", "tiny", name]), "no standing submission")


def test_old_ledgers_without_a_status_column_still_withdraw(tmp_path):
    from pipeline.submission import ledger

    path = tmp_path / "ledger.csv"
    header = ",".join(c for c in ledger.COLUMNS if c not in ("status", "experiment_file"))
    path.write_text(header + "\na.csv,s1,e,1,0.5,auc,,,m,t\na.csv,s1,e,1,0.5,auc,,,m,t\n"
                    "b.csv,s2,e,2,0.6,auc,,,m,t\n")
    assert [r["file"] for r in ledger.current(ledger.read(path))] == ["a.csv", "b.csv"]
    ledger.withdraw("e", "a.csv", "gone", "t2", path)
    assert [r["file"] for r in ledger.current(ledger.read(path))] == ["b.csv"]


# --- 4. processes end with their parent ----------------------------------------------------


def _children(pid: int) -> set[int]:
    """Every live descendant of `pid` (from /proc: no psutil)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z"


def _wait_for(check, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"still waiting after {seconds} s: {what}"
        time.sleep(0.2)


def _port_answers(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _start(args: list[str]) -> subprocess.Popen:
    env = worker_env(COLUMNS="80")
    return subprocess.Popen([sys.executable, "-m", "pipeline", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _kill_all(pids: set[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL, signal.SIGHUP])
def test_stopping_pipeline_ui_stops_its_server_and_frees_the_port(project, sig):
    """SIGKILL and SIGHUP end `pipeline ui` without unwinding: its server's supervisor learns
    of it from Linux (PR_SET_PDEATHSIG) and stops the server's group."""
    from pipeline.tracking.ui import free_port

    fresh_mlflow_db(project)
    port = free_port()
    _signal_stops_the_server(_start(["ui", "--port", str(port)]), port, sig, "the MLflow UI")


def _signal_stops_the_server(proc: subprocess.Popen, port: int, sig: int, what: str) -> None:
    """Once `proc`'s server answers on `port`, `sig` to `proc` alone (as `kill <pid>` does)
    ends it, frees the port and leaves none of its descendants behind."""
    seen: set[int] = set()
    try:
        def up() -> bool:
            assert proc.poll() is None, proc.stderr.read()
            seen.update(_children(proc.pid))
            return _port_answers(port)

        _wait_for(up, 180, f"{what} to answer")
        seen.update(_children(proc.pid))
        assert seen  # the server it started
        os.kill(proc.pid, sig)
        proc.wait(timeout=60)
        _wait_for(lambda: not _port_answers(port), 30, f"port {port} to be free")
        _wait_for(lambda: not any(_alive(p) for p in seen), 30, f"children {seen} to end")
    finally:
        _kill_all({p for p in seen if _alive(p)})
        stop(proc, signal.SIGKILL)


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a script's `pipeline tune ... &` starts


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "sigint"), [
    (signal.SIGTERM, signal.SIG_DFL),
    (signal.SIGTERM, signal.SIG_IGN),  # a background job: workers inherit SIGINT ignored
    (signal.SIGKILL, signal.SIG_IGN),  # no unwinding: the workers learn it from Linux
])
def test_sigterm_to_tune_with_jobs_stops_every_worker(project, sig, sigint):
    """Whatever ends `tune --jobs 2` and whatever it inherited, its workers end with it and
    leave no RUNNING trial behind."""
    fresh_mlflow_db(project)  # the schema is not what this is about: skip building it
    tiny_project(project, trials=200, max_iter=400, n=600)
    env = worker_env(COLUMNS="80")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "tune", "tiny", "--jobs", "2", "--quiet",
         "--tracking-uri", f"sqlite:///{project / 'mlflow.db'}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True, preexec_fn=_ignore_sigint if sigint == signal.SIG_IGN else None)
    seen: set[int] = set()
    try:
        def working() -> bool:
            assert proc.poll() is None, proc.stderr.read()
            seen.update(_children(proc.pid))
            running = [t for t in optuna_trials() if t.state == TrialState.RUNNING]
            return len(running) >= 2  # both workers are in a trial

        def optuna_trials():
            if not (project / "optuna.db").exists():
                return []
            try:
                return _study().trials
            except Exception:  # the schema is being created
                return []

        _wait_for(working, 240, "the workers to start trials")
        seen.update(_children(proc.pid))
        assert len(seen) >= 2
        os.kill(proc.pid, sig)
        proc.wait(timeout=60)
        _wait_for(lambda: not any(_alive(p) for p in seen), 30, f"workers {seen} to end")
        states = [t.state for t in _study().trials]
        assert TrialState.RUNNING not in states, states
    finally:
        _kill_all({p for p in seen if _alive(p)})
        stop(proc, signal.SIGKILL)


# --- 5. output fits the terminal -----------------------------------------------------------


def test_help_summaries_are_whole_at_80_columns():
    result = CliRunner().invoke(app, ["--help"], env=COLUMNS_80, terminal_width=80)
    assert result.exit_code == 0
    commands = result.output.split("Commands:")[1]
    assert "..." not in commands and max(map(len, result.output.splitlines())) <= 80
    assert "activation x task." in " ".join(commands.split())


def test_top_k_past_the_complete_trials_is_an_error_and_writes_nothing(project):
    tune.tune(load(tiny_project(project, trials=2)), track=False)
    result = CliRunner().invoke(app, ["submit", "tiny", "--top-k", "50"], env=COLUMNS_80)
    one_line_error(result, "--top-k 50", "2 complete trials", "--top-k 2")
    assert not (project / "submissions").exists()


def test_ensembles_have_short_names_and_the_leaderboard_shows_scores_whole_at_80(project):
    from pipeline.submission import ledger

    tune.tune(load(tiny_project(project, trials=3)), track=False)
    result = CliRunner().invoke(app, ["submit", "tiny", "--top-k", "3"], env=COLUMNS_80)
    assert result.exit_code == 0, result.output
    (row,) = ledger.read(project / "submissions" / "ledger.csv")
    name = Path(row["file"]).name
    assert "-top3-cv" in name and len(name) < 40 and len(row["trials"].split()) == 3
    # a solution.csv makes Public / Private columns: every score shows all its digits
    sample = pd.read_csv(project / "data" / "tiny" / "sample_submission.csv")
    sample["y"] = (sample["id"] // 2 % 2).astype(int)
    sample["Usage"] = ["Public", "Private"] * (len(sample) // 2)
    sample.to_csv(project / "data" / "tiny" / "solution.csv", index=False)
    board = CliRunner().invoke(app, ["leaderboard", "tiny"], env=COLUMNS_80)
    assert board.exit_code == 0, board.output
    assert max(map(len, board.output.splitlines())) <= 80
    scores = CliRunner().invoke(app, ["leaderboard", "tiny", "--csv"]).output.splitlines()[1]
    public, private, cv = scores.split(",")[2:5]
    for score in (public, private, cv):
        assert score and score in board.output
    assert "…" not in board.output


def test_validate_names_data_rows_and_ids(project):
    tiny_project(project)
    folder = project / "data" / "tiny"
    sub = pd.read_csv(folder / "sample_submission.csv")
    sub.loc[3, "y"] = 1.2
    sub.to_csv(project / "mine.csv", index=False)
    result = CliRunner().invoke(app, ["validate", "tiny", "mine.csv"], env=COLUMNS_80)
    one_line_error(result, f"data row 4 (id {sub.loc[3, 'id']}), column 'y': 1.2 is outside "
                            "[0, 1]")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_sigterm_to_make_mlflow_server_stops_the_server(project, sig):
    """make does not pass SIGTERM on to a server's own workers: the recipe runs the server in a
    process group of its own (`python -m pipeline.processes`), which stops the group."""
    from pipeline.tracking.ui import free_port

    repo = Path(__file__).resolve().parents[1]
    if not (repo / ".venv" / "bin" / "mlflow").exists():
        pytest.skip("needs the project's .venv (make setup)")
    port = free_port()
    proc = subprocess.Popen(
        ["make", "-s", "-C", str(repo), "mlflow-server", f"PORT={port}",
         f"BACKEND=sqlite:///{project}/server.db", f"ARTIFACTS={project}/artifacts"],
        env=worker_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    _signal_stops_the_server(proc, port, sig, "make mlflow-server")


@pytest.mark.slow
@pytest.mark.parametrize("jobs", [1, 2])
def test_a_store_that_fills_up_mid_study_ends_the_run_in_one_line(project, jobs, monkeypatch):
    """Issue #22: a disk filling during tune printed a traceback per trial. Here a file-size
    limit (SIGXFSZ ignored, as a full disk's ENOSPC) stops SQLite's writes after a few trials:
    one error line names the store, no live process holds a trial, and the study resumes."""
    import pipeline.tune.worker
    fresh_mlflow_db(project)
    tiny_project(project, trials=40, max_iter=4)
    uri = f"sqlite:///{project / 'mlflow.db'}"
    assert CliRunner().invoke(app, ["tune", "tiny", "--quiet", "--trials", "1",
                                    "--tracking-uri", uri]).exit_code == 0
    size = max(p.stat().st_size for p in project.glob("*.db*"))
    limit = ("import resource, runpy, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN);"
             f" resource.setrlimit(resource.RLIMIT_FSIZE, ({size + 300_000}, {size + 300_000}));"
             " sys.argv = ['pipeline'] + sys.argv[1:]; runpy.run_module('pipeline',"
             " run_name='__main__')")
    result = subprocess.run([sys.executable, "-c", limit, "tune", "tiny", "--quiet",
                             "--jobs", str(jobs), "--tracking-uri", uri], env=worker_env(),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 2, result.stderr[-3000:]
    output = result.stdout + result.stderr  # spawned workers print to the same terminal
    assert "Traceback" not in output, output[-3000:]
    errors = [x for x in output.splitlines() if x.startswith("error:")]
    assert len(errors) == 1 and "the Optuna store sqlite:///optuna.db failed mid-study" in \
        errors[0], output[-3000:]
    # a trial whose end the full store refused stays RUNNING, its process gone: the resume
    # fails it at once (same host, dead pid), never counts it, and ends the study
    trials = _study().trials
    assert 1 < len(trials) < 40
    running = [t for t in trials if t.state == TrialState.RUNNING]
    assert not [t for t in running if t.user_attrs.get("pid") and _alive(t.user_attrs["pid"])]
    # one handed out just as the store failed may not even name its worker: failed once it is
    # older than the grace period (here: at once)
    monkeypatch.setattr(pipeline.tune.worker, "GRACE_PERIOD", 0)
    result = CliRunner().invoke(app, ["tune", "tiny", "--quiet", "--trials", "8",
                                      "--tracking-uri", uri])
    assert result.exit_code == 0, result.output
    assert len(_study().get_trials(states=FINISHED)) == 8
    assert not _study().get_trials(states=(TrialState.RUNNING, TrialState.WAITING))


@pytest.mark.slow
def test_kill_9_of_whatever_started_the_supervisor_stops_the_server(project):
    """`make mlflow-server` runs the server under `python -m pipeline.processes`; make (here a
    shell standing in for it) killed with -9 cannot pass anything on: Linux tells the
    supervisor (PR_SET_PDEATHSIG), which stops the server's group and frees the port."""
    from pipeline.tracking.ui import free_port, ui_command

    port = free_port()
    server = " ".join(ui_command("127.0.0.1", port, f"sqlite:///{project / 'server.db'}"))
    proc = subprocess.Popen(
        ["sh", "-c", f"{sys.executable} -m pipeline.processes {server}; true"],
        env=worker_env(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false"), stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True, start_new_session=True)
    _signal_stops_the_server(proc, port, signal.SIGKILL, "the supervised MLflow server")
