"""Many workers, one study, against a real PostgreSQL server (issue 6).

A throwaway cluster is started with `.ci/postgres.sh start` (its own mktemp dir under /tmp,
127.0.0.1 only, a free port) and stopped in a finaliser; only that directory is ever removed.
Without PostgreSQL the tests skip with the reason, except under `REQUIRE_POSTGRES=1` (set by
`.ci/run`), where they fail: CI must run them.

What is checked, with `pipeline tune` processes exactly as a user on several machines runs them:

1. Two workers started at the same moment on one fresh study (fresh Optuna and MLflow schemas
   too) with a fixed budget N: the study ends with exactly N finished trials, numbered without
   gaps or duplicates, and MLflow (an `mlflow server` on the same PostgreSQL, or the database
   itself) holds one parent run and exactly one child run per trial, none left RUNNING.
2. One worker is killed with SIGKILL in the middle of a trial: the other worker's heartbeat
   check fails the stale trial, re-queues it (RetryHeartbeatStaleTrialCallback) and finishes the
   retry; the dead trial's MLflow child run ends FAILED instead of staying RUNNING.
3. The same two cases through `pipeline storage-proxy` (Optuna's gRPC proxy, `--storage
   grpc://...`): exact budget, one run per trial, the killed worker's trial failed by the
   heartbeat the proxy checks; and a worker whose data differs is refused through it.

Each worker runs in its own UTS namespace with its own host name where that is possible (root,
`unshare`), so the dead worker looks like another machine and recovery has to go through
Optuna's heartbeat, not the same-host "pid is gone" shortcut.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers_workers import start_proxy, stop, uniform_study, worker_env

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
PG_SCRIPT = ROOT / ".ci" / "postgres.sh"
REQUIRED = os.environ.get("REQUIRE_POSTGRES") == "1"
# Short heartbeat for the test; pipeline/tune/study.py reads these at import (defaults 5 s / 30 s).
HEARTBEAT, GRACE = 1, 3
WORKER_TIMEOUT = 180  # seconds a worker may take before the test gives up on it


def _unavailable(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"REQUIRE_POSTGRES=1 but {reason}", pytrace=False)
    pytest.skip(reason)


# --- the PostgreSQL cluster -----------------------------------------------------------------


@dataclass(frozen=True)
class Cluster:
    dir: str
    port: int
    url: str  # postgresql://postgres@127.0.0.1:PORT (no database)

    def createdb(self, name: str) -> str:
        """A fresh database on the cluster; returns its plain postgresql:// URL."""
        out = subprocess.run(
            ["bash", str(PG_SCRIPT), "createdb", self.dir, name],
            capture_output=True, text=True, timeout=60,
        )
        assert out.returncode == 0, f"createdb {name} failed: {out.stderr}"
        return out.stdout.strip()


def _is_our_cluster_dir(path: str) -> bool:
    """Only a directory `postgres.sh start` just made for us: /tmp/pgci.* with its marker."""
    p = Path(path)
    return (
        p.is_absolute()
        and p.parent == Path(os.environ.get("PG_CI_TMPDIR", "/tmp"))
        and p.name.startswith("pgci.")
        and (p / ".postgres-sh-cluster").is_file()
    )


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    if shutil.which("bash") is None:
        _unavailable("bash is needed to run .ci/postgres.sh")
    if not any(importlib.util.find_spec(m) for m in ("psycopg", "psycopg2")):
        _unavailable("no PostgreSQL driver: pip install -e '.[postgres]'")
    try:
        out = subprocess.run(
            ["bash", str(PG_SCRIPT), "start"], capture_output=True, text=True, timeout=600
        )
    except subprocess.TimeoutExpired:
        _unavailable(".ci/postgres.sh start timed out")
    env = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    pg_dir = env.get("PG_CI_DIR", "")
    if out.returncode != 0 or not env.get("PGURL"):
        if pg_dir and _is_our_cluster_dir(pg_dir):
            subprocess.run(["bash", str(PG_SCRIPT), "stop", pg_dir], timeout=120)
        tail = " | ".join(out.stderr.strip().splitlines()[-3:])
        _unavailable(f"PostgreSQL could not be installed or started: {tail}")
    assert _is_our_cluster_dir(pg_dir), f"unexpected cluster dir {pg_dir!r}"
    try:
        yield Cluster(pg_dir, int(env["PGPORT"]), env["PGURL"])
    finally:
        # our own cluster only: postgres.sh refuses anything without its marker file as well
        if _is_our_cluster_dir(pg_dir):
            subprocess.run(["bash", str(PG_SCRIPT), "stop", pg_dir], timeout=120)


# --- an MLflow tracking server on that cluster ------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _base_env() -> dict[str, str]:
    return worker_env(PIPELINE_HEARTBEAT_INTERVAL=str(HEARTBEAT), PIPELINE_GRACE_PERIOD=str(GRACE))


@dataclass(frozen=True)
class Server:
    url: str  # http://127.0.0.1:PORT
    artifacts: Path  # --artifacts-destination: where proxied uploads end up


@pytest.fixture(scope="module")
def mlflow_server(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`mlflow server` with the backend store on PostgreSQL and proxied artifacts in tmp."""
    backend = cluster.createdb("mlflow_server")
    work = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    log = (work / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server",
         "--backend-store-uri", backend,
         "--artifacts-destination", str(work / "artifacts"), "--serve-artifacts",
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        # no job runner: a second process importing MLflow, which the workers never use
        cwd=work, env={**_base_env(), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                tail = (work / "server.log").read_text()[-3000:]
                pytest.fail(f"mlflow server did not come up on {url}:\n{tail}", pytrace=False)
            time.sleep(0.5)
        yield Server(url, work / "artifacts")
    finally:
        # SIGKILL: a graceful stop waits on the workers' open connections, and is not tested here
        stop(proc, signal.SIGKILL)
        log.close()


# --- the gRPC storage proxy -------------------------------------------------------------------


@pytest.fixture
def proxy_for(tmp_path: Path) -> Iterator:
    """proxy_for(db_url) -> grpc:// address of a `pipeline storage-proxy` on loopback."""
    pytest.importorskip("grpc", reason="the grpc extra: pip install -e '.[grpc]'")
    procs: list[subprocess.Popen] = []

    def start(storage: str) -> str:
        proc, url = start_proxy(storage, tmp_path / f"proxy-{len(procs)}.log", _base_env(),
                                _free_port(), threads=4)
        procs.append(proc)
        return url

    yield start
    for proc in procs:
        stop(proc)


# --- the workers (the study: tests/helpers_workers.py) ----------------------------------------


def _can_unshare_uts() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "--uts", "--", "sh", "-c", "hostname pg-probe && hostname"],
        capture_output=True, text=True,
    )
    return probe.returncode == 0 and probe.stdout.strip() == "pg-probe"


SEPARATE_HOSTS = _can_unshare_uts()


@dataclass
class Worker:
    name: str
    proc: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def start_worker(
    root: Path, name: str, exp: str, trials: int, storage: str, tracking: str
) -> Worker:
    """One `pipeline tune` per "machine": the exact command docs/distributed.md shows."""
    cmd = [sys.executable, "-m", "pipeline", "tune", exp, "--trials", str(trials),
           "--storage", storage, "--tracking-uri", tracking, "--quiet"]
    if SEPARATE_HOSTS:  # a host name of its own: recovery must come from the heartbeat
        cmd = ["unshare", "--uts", "--", "sh", "-c", 'hostname "$0" && exec "$@"', name, *cmd]
    log = root / f"{name}.log"
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, cwd=root, env=_base_env(), stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True)
    return Worker(name, proc, log)


def wait_all(workers: list[Worker], timeout: float = WORKER_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    for w in workers:
        try:
            w.proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for other in workers:
                if other.proc.poll() is None:
                    stop(other.proc, signal.SIGKILL)
            pytest.fail(f"{w.name} still running after {timeout} s:\n{w.output()}", pytrace=False)


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for w in started:
        if w.proc.poll() is None:
            stop(w.proc, signal.SIGKILL)


# --- reading the stores back -------------------------------------------------------------------


def load_trials(storage: str, study: str) -> tuple[list, dict]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    s = optuna.load_study(study_name=study, storage=storage)
    return s.get_trials(deepcopy=False), dict(s.user_attrs)


def finished(trials: list) -> list:
    from optuna.trial import TrialState

    return [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]


def check_study(trials: list, n: int, logs: str) -> None:
    """Exactly n finished trials; numbers 0..len-1 once each; nothing left in flight."""
    from optuna.trial import TrialState

    numbers = sorted(t.number for t in trials)
    assert numbers == list(range(len(trials))), f"trial numbers not unique/contiguous: {numbers}"
    states = {t.number: t.state.name for t in trials}
    assert len(finished(trials)) == n, f"expected {n} finished trials, got {states}\n{logs}"
    stuck = [t.number for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    assert not stuck, f"trials left RUNNING/WAITING: {stuck} ({states})"


def mlflow_runs(tracking: str, experiment: str) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no MLflow experiment {experiment!r} in {tracking}"
    return client.search_runs([exp.experiment_id], max_results=5000)


def check_runs(runs: list, trials: list, parent_attr: str | None) -> dict[int, object]:
    """One parent (the study's); one child per trial that started work; none RUNNING."""
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1, f"expected one parent run, got {[r.info.run_name for r in parents]}"
    parent = parents[0]
    assert parent_attr == parent.info.run_id, "study's mlflow_parent_run_id is not the parent run"
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parent.info.run_id}
    by_trial: dict[int, list] = {}
    for r in children:
        by_trial.setdefault(int(r.data.tags["optuna.trial"]), []).append(r)
    # a trial that lost the race for the last budget slot is failed before any run is made
    worked = {t.number for t in trials if not t.user_attrs.get("skipped")}
    assert set(by_trial) == worked, (
        f"child runs for trials {sorted(by_trial)}, study has {sorted(worked)}")
    doubles = {k: len(v) for k, v in by_trial.items() if len(v) != 1}
    assert not doubles, f"trials with more than one child run: {doubles}"
    running = [r.info.run_name for r in runs if r.info.status == "RUNNING"]
    assert not running, f"runs left RUNNING: {running}"
    return {k: v[0] for k, v in by_trial.items()}


def overlapping(trials: list) -> bool:
    """Some two trials ran at the same time: the workers really worked in parallel."""
    spans = sorted((t.datetime_start, t.datetime_complete) for t in finished(trials))
    return any(b[0] < a[1] for a, b in zip(spans, spans[1:], strict=False))


# --- the tests ---------------------------------------------------------------------------------


@pytest.mark.parametrize("tracking", ["server", "database"])
def test_two_workers_share_one_study(
    tracking: str, cluster: Cluster, request: pytest.FixtureRequest, tmp_path: Path,
    workers: list[Worker],
) -> None:
    n = 8
    exp = f"share_{tracking}"
    uniform_study(tmp_path, exp, data="dist")
    storage = cluster.createdb(f"optuna_{tracking}")  # fresh: the schema is created by a worker
    server = request.getfixturevalue("mlflow_server") if tracking == "server" else None
    # a fresh MLflow schema in the database case, raced by both workers
    uri = server.url if server else cluster.createdb("mlflow_direct")
    for name in ("worker-a", "worker-b"):  # the same second, the same command
        workers.append(start_worker(tmp_path, name, exp, n, storage, uri))
    wait_all(workers)
    logs = "\n".join(f"--- {w.name}\n{w.output()}" for w in workers)
    assert [w.proc.returncode for w in workers] == [0, 0], logs

    trials, attrs = load_trials(storage, exp)
    check_study(trials, n, logs)
    assert all(t.user_attrs.get("skipped") for t in trials if t not in finished(trials))
    assert overlapping(trials), "the two workers never ran a trial at the same time"
    if SEPARATE_HOSTS:
        hosts = {t.user_attrs.get("host") for t in finished(trials)}
        assert hosts == {"worker-a", "worker-b"}, f"trials came from {hosts}"

    runs = mlflow_runs(uri, exp)
    by_trial = check_runs(runs, trials, attrs.get("mlflow_parent_run_id"))
    for t in finished(trials):
        run = by_trial[t.number]
        assert run.info.status == "FINISHED" and run.data.tags.get("state") == "complete"
        assert run.data.metrics["cv_roc_auc"] == pytest.approx(t.value)
    if server:  # uploads went through the server into its --artifacts-destination
        plots = list(server.artifacts.rglob("convergence.png"))
        assert len(plots) >= n, f"{len(plots)} convergence plots under {server.artifacts}"


@pytest.mark.parametrize("route", ["direct", "proxy"])
def test_killed_worker_trial_is_retried_by_the_other(
    route: str, cluster: Cluster, mlflow_server: Server, tmp_path: Path, workers: list[Worker],
    proxy_for,
) -> None:
    """Through the proxy, the heartbeat goes through it and the proxy fails the stale trial;
    its MLflow run is closed when worker B's `tune` ends."""
    import optuna
    from optuna.trial import TrialState

    n = 10
    exp = f"kill_{route}"
    uniform_study(tmp_path, exp, data="dist")
    storage = cluster.createdb(f"optuna_kill_{route}")
    via = proxy_for(storage) if route == "proxy" else storage
    a = start_worker(tmp_path, "worker-a", exp, n, via, mlflow_server.url)
    b = start_worker(tmp_path, "worker-b", exp, n, via, mlflow_server.url)
    workers.extend([a, b])

    # Wait until worker A is inside a trial whose MLflow child run exists, then kill -9 it (and
    # anything it spawned): the trial stays RUNNING in the study, its heartbeat stops.
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    victim = None
    deadline = time.monotonic() + 120
    while victim is None:
        assert a.proc.poll() is None and b.proc.poll() is None, (
            f"a worker ended before the kill:\n{a.output()}\n{b.output()}")
        assert time.monotonic() < deadline, f"worker A never started a trial:\n{a.output()}"
        try:
            study = optuna.load_study(study_name=exp, storage=storage)
            running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        except KeyError:  # not created yet
            running = []
        for t in running:
            if t.user_attrs.get("pid") == a.proc.pid and t.user_attrs.get("mlflow_run_id"):
                victim = t
                break
        else:
            time.sleep(0.1)
    os.killpg(a.proc.pid, signal.SIGKILL)
    a.proc.wait(timeout=20)
    assert a.proc.returncode == -signal.SIGKILL

    wait_all([b])
    logs = f"--- worker-b\n{b.output()}"
    assert b.proc.returncode == 0, logs

    trials, attrs = load_trials(storage, exp)
    check_study(trials, n, logs)
    dead = next(t for t in trials if t.number == victim.number)
    assert dead.state == TrialState.FAIL, f"killed trial {dead.number} is {dead.state.name}"
    if SEPARATE_HOSTS:
        # the same-host shortcut (pid gone) would have written this; the heartbeat does not
        assert "died" not in str(dead.user_attrs.get("error")), dead.user_attrs
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retries) == 1, f"trial {victim.number} was re-queued {len(retries)} times"
    retry = retries[0]
    assert retry.state == TrialState.COMPLETE, f"retry {retry.number} is {retry.state.name}"
    assert retry.params == victim.params, "the retry must run the same parameters"
    assert retry.user_attrs.get("pid") == b.proc.pid, "the retry was not run by worker B"
    others = [t for t in trials if t.state == TrialState.FAIL and t.number != victim.number]
    assert all(t.user_attrs.get("skipped") for t in others), [t.user_attrs for t in others]

    runs = mlflow_runs(mlflow_server.url, exp)
    by_trial = check_runs(runs, trials, attrs.get("mlflow_parent_run_id"))
    dead_run = by_trial[victim.number]
    assert dead_run.info.run_id == victim.user_attrs["mlflow_run_id"]
    assert dead_run.info.status == "FAILED", f"killed trial's run is {dead_run.info.status}"
    assert dead_run.data.tags.get("state") == "failed"
    assert by_trial[retry.number].info.status == "FINISHED"


def test_two_workers_through_the_proxy_and_other_data_refused(
    cluster: Cluster, tmp_path: Path, workers: list[Worker], proxy_for
) -> None:
    """Two workers through one proxy: exactly the budget, no duplicate or lost trial, one MLflow
    child run per trial. A machine whose data differs is refused through the proxy too."""
    n = 8
    exp = "proxied"
    uniform_study(tmp_path, exp, data="dist")
    storage = cluster.createdb("optuna_proxied")
    via = proxy_for(storage)
    uri = cluster.createdb("mlflow_proxied")
    for name in ("worker-a", "worker-b"):
        workers.append(start_worker(tmp_path, name, exp, n, via, uri))
    wait_all(workers)
    logs = "\n".join(f"--- {w.name}\n{w.output()}" for w in workers)
    assert [w.proc.returncode for w in workers] == [0, 0], logs
    trials, attrs = load_trials(storage, exp)
    check_study(trials, n, logs)
    assert overlapping(trials), "the two workers never ran a trial at the same time"
    check_runs(mlflow_runs(uri, exp), trials, attrs.get("mlflow_parent_run_id"))

    other = tmp_path / "other-machine"  # the same experiment, one row of its data changed
    uniform_study(other, exp, data="dist")
    train = other / "data" / "dist" / "train.csv"
    lines = train.read_text().splitlines()
    cells = lines[-1].split(",")
    cells[1] = "9.9999"  # the last row's first feature
    train.write_text("\n".join([*lines[:-1], ",".join(cells)]) + "\n")
    w = start_worker(other, "worker-c", exp, n + 2, via, f"sqlite:///{other / 'mlflow.db'}")
    workers.append(w)
    wait_all([w])
    out = w.output()
    assert w.proc.returncode == 2 and "Traceback" not in out, out
    assert "data_fingerprint" in out and via in out, out
    assert len(finished(load_trials(storage, exp)[0])) == n  # nothing was added


# --- the store goes away mid-study (issue #22: a PostgreSQL outage printed tracebacks) --------


class Outage:
    """A TCP relay 127.0.0.1:port -> the cluster: `cut()` closes every connection and stops
    listening (the database is gone, as in an outage); `restore()` listens again."""

    def __init__(self, target: int) -> None:
        import threading

        self.target, self.port = target, _free_port()
        self.lock, self.socks = threading.Lock(), []
        self.server: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        import threading

        self.server = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, args=(self.server,), daemon=True).start()

    def _accept(self, server: socket.socket) -> None:
        import threading

        while True:
            try:
                client, _ = server.accept()
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                return
            with self.lock:
                self.socks += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        with self.lock:
            for s in self.socks:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            self.socks.clear()


def test_a_database_outage_mid_study_ends_the_run_in_one_line(
    cluster: Cluster, tmp_path: Path, workers: list[Worker]
) -> None:
    """PostgreSQL goes away while `tune` runs: one error line naming the store (no traceback,
    password hidden), exit 2; once it is back, the same command resumes and ends the study
    with nothing left RUNNING."""
    import optuna

    exp = "outage"
    uniform_study(tmp_path, exp, data="dist")
    direct = cluster.createdb("optuna_outage")
    relay = Outage(int(direct.rsplit(":", 1)[1].split("/", 1)[0]))
    storage = direct.replace(f":{relay.target}/", f":{relay.port}/")
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    w = start_worker(tmp_path, "worker", exp, 40, storage, tracking)
    workers.append(w)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    deadline = time.monotonic() + WORKER_TIMEOUT
    while True:
        assert w.proc.poll() is None, w.output()
        assert time.monotonic() < deadline, f"no two finished trials:\n{w.output()}"
        try:
            if len(finished(load_trials(direct, exp)[0])) >= 2:
                break
        except KeyError:
            pass
        time.sleep(0.3)
    relay.cut()
    wait_all([w])
    out = w.output()
    assert w.proc.returncode == 2, out
    assert "Traceback" not in out, out
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"the Optuna store {storage} failed mid-study" in errors[0], out
    relay.restore()
    n = len(finished(load_trials(direct, exp)[0])) + 2  # more than it holds: it runs again
    again = start_worker(tmp_path, "again", exp, n, storage, tracking)
    workers.append(again)
    wait_all([again])
    assert again.proc.returncode == 0, again.output()
    trials, _ = load_trials(direct, exp)
    assert len(finished(trials)) == n
    from optuna.trial import TrialState

    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
