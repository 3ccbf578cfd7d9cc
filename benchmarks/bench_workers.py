"""Throughput of one study with 1, 2 and 4 workers: trials per minute and speed-up (issue 6).

Each worker is one `pipeline tune EXP --trials N --storage URL --tracking-uri URI` process, the
command a user starts once per machine, all on this machine at the same moment, with
OMP_NUM_THREADS=1 (and OpenBLAS / MKL) so that each worker keeps to one core. Trials are
CPU-bound and all cost the same: a fixed (32,) network, 3 folds, a fixed number of epochs, no
pruning and no early stop; only the learning rate and L2 are searched.

Storages, each with 1, 2 and 4 workers on a study of its own:
  journal     Optuna journal file + MLflow's default SQLite file (the one-machine setup)
  postgres    PostgreSQL for Optuna + an `mlflow server` whose backend store is the same
              PostgreSQL (the multi-machine setup), when `.ci/postgres.sh start` works

Two rates are printed: "wall" counts from starting the processes to the last exit (imports and
start-up included), "steady" counts from the first trial's start to the last trial's end in the
study. The speed-up is against 1 worker of the same storage; the goal is >= 1.7x for 2 workers
on a 2-core machine (4 workers cannot beat the number of cores).

    python benchmarks/bench_workers.py            # ~4-5 minutes
    python benchmarks/bench_workers.py --quick    # ~1.5 minutes: fewer trials and epochs
    python benchmarks/bench_workers.py --check    # exit 1 if a 2-worker speed-up is < 1.7x

Many workers (`--many`, issue 21): 8, 16 and 32 worker processes on one study in PostgreSQL,
straight to the database and through `pipeline storage-proxy` (Optuna's gRPC proxy). Trials
are tiny (2 epochs on 1,200 rows): with more workers than cores, the figures measure the
storage layer's overhead, not the throughput of real trials. Per case: trials per minute, the
peak number of connections the study database holds (`pg_stat_activity`, sampled every 0.2 s),
the budget reached exactly, no duplicate or lost trial number, nothing left RUNNING, and no
lock error in any worker's output. The workers run `pipeline.tune.tune` (what `pipeline tune`
runs) without MLflow tracking, so that an MLflow server is not what is measured; `--track`
sends every worker's runs to one `mlflow server` on the same PostgreSQL instead.

    python benchmarks/bench_workers.py --many                 # ~10 minutes
    python benchmarks/bench_workers.py --many --workers 8     # one size

Everything is written to a fresh temporary folder, removed at the end (--keep keeps it).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PG_SCRIPT = ROOT / ".ci" / "postgres.sh"
EXP = "bench"
GOAL = 1.7

sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(1, str(ROOT))  # this checkout's pipeline, in the workers too
from helpers_workers import (  # noqa: E402  (shared with the tests)
    start_proxy,
    stop,
    uniform_study,
    worker_env,
)


@dataclass
class Result:
    storage: str
    workers: int
    finished: int
    wall: float
    steady: float

    @property
    def per_min_wall(self) -> float:
        return 60 * self.finished / self.wall

    @property
    def per_min_steady(self) -> float:
        return 60 * self.finished / self.steady


def run_workers(cmd: list[str], project: Path, logs: list[Path], timeout: float
                ) -> tuple[float, list[subprocess.Popen]]:
    """One worker process per log file, all started at once; (wall seconds, ended processes)."""
    t0 = time.perf_counter()
    procs = []
    for log in logs:
        with log.open("w") as fh:
            procs.append(subprocess.Popen(cmd, cwd=project, env=worker_env(), stdout=fh,
                                          stderr=subprocess.STDOUT, start_new_session=True))
    try:
        for p in procs:
            p.wait(timeout=timeout)
    finally:
        for p in procs:
            if p.poll() is None:  # only on error or interrupt
                stop(p)
    return time.perf_counter() - t0, procs


def run_case(project: Path, label: str, storage: str, tracking: str, workers: int,
             trials: int) -> Result:
    study = f"{EXP}-{label}-w{workers}"
    cmd = [sys.executable, "-m", "pipeline", "tune", EXP, "--trials", str(trials),
           "--storage", storage, "--study", study, "--tracking-uri", tracking, "--quiet"]
    logs = [project / f"{study}-{i}.log" for i in range(workers)]
    wall, procs = run_workers(cmd, project, logs, timeout=900)
    bad = [(log, p.returncode) for log, p in zip(logs, procs, strict=True) if p.returncode != 0]
    if bad:
        log, code = bad[0]
        sys.exit(f"{label} x{workers}: a worker exited {code}:\n{log.read_text()[-3000:]}")

    import optuna
    from optuna.trial import TrialState

    from pipeline.tune import make_storage  # the same storage settings the workers use

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    old = Path.cwd()
    os.chdir(project)  # journal / sqlite paths are relative to the project
    try:
        done = optuna.load_study(study_name=study, storage=make_storage(storage)).get_trials(
            deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    finally:
        os.chdir(old)
    steady = (max(t.datetime_complete for t in done)
              - min(t.datetime_start for t in done)).total_seconds()
    return Result(label, workers, len(done), wall, steady)


# --- PostgreSQL and an MLflow server on it -------------------------------------------------------


def pg_scheme() -> str:
    """SQLAlchemy 2.1 reads plain postgresql:// as psycopg 3; else name psycopg2 explicitly."""
    if importlib.util.find_spec("psycopg"):
        return "postgresql"
    if importlib.util.find_spec("psycopg2"):
        return "postgresql+psycopg2"
    raise RuntimeError("no PostgreSQL driver (pip install -e '.[postgres]')")


def start_postgres() -> dict[str, str]:
    out = subprocess.run(["bash", str(PG_SCRIPT), "start"], capture_output=True, text=True,
                         timeout=600)
    env = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    if out.returncode != 0 or "PGURL" not in env:
        if env.get("PG_CI_DIR"):
            stop_postgres(env["PG_CI_DIR"])
        raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed")
    return env


def stop_postgres(pg_dir: str) -> None:
    p = Path(pg_dir)
    # only the cluster directory postgres.sh just made (the script checks its marker as well)
    if p.parent == Path(os.environ.get("PG_CI_TMPDIR", "/tmp")) and p.name.startswith("pgci."):
        subprocess.run(["bash", str(PG_SCRIPT), "stop", pg_dir], timeout=120)


def createdb(pg_dir: str, name: str, scheme: str) -> str:
    url = subprocess.run(["bash", str(PG_SCRIPT), "createdb", pg_dir, name], check=True,
                         capture_output=True, text=True).stdout.strip()
    return url.replace("postgresql://", f"{scheme}://", 1)


def start_mlflow_server(backend: str, work: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = (work / "mlflow-server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend,
         "--artifacts-destination", str(work / "server-artifacts"), "--serve-artifacts",
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        cwd=work, env=worker_env(), stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return proc, url
        except OSError:
            time.sleep(0.5)
    stop(proc)
    raise RuntimeError(f"mlflow server did not start (see {work / 'mlflow-server.log'})")


# --- many workers: PostgreSQL directly and through the gRPC proxy ------------------------------

LOCK_WORDS = ("database is locked", "deadlock", "lock timeout", "locknotavailable",
              "could not obtain lock", "could not serialize")


@dataclass
class Many:
    route: str  # postgres | proxy
    workers: int
    budget: int
    finished: int
    skipped: int  # failed at once: lost the race for the last slots (never counted)
    wall: float
    steady: float
    connections: int  # peak connections to the study database
    problems: list[str]  # duplicates, lost or stuck trials, lock errors, worker exits


def as_worker(argv: list[str]) -> None:
    """One worker of `--many`: `pipeline tune`'s own stage, tracking on or off."""
    from pipeline.experiment import load
    from pipeline.tune import tune

    exp, storage, study, trials, tracking = argv
    tune(load(exp), trials=int(trials), storage=storage, study_name=study,
         tracking_uri=tracking or None, track=bool(tracking))


class ConnectionSampler:
    """Peak count of `pg_stat_activity` rows on one database, sampled in a thread."""

    def __init__(self, server_url: str, database: str) -> None:
        import threading

        import psycopg

        self.con = psycopg.connect(server_url + "/postgres", autocommit=True)
        self.database, self.peak = database, 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        query = ("SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                 "AND pid <> pg_backend_pid()")
        while not self.done.wait(0.2):
            (n,) = self.con.execute(query, (self.database,)).fetchone()
            self.peak = max(self.peak, n)

    def stop(self) -> int:
        self.done.set()
        self.thread.join()
        self.con.close()
        return self.peak


def check_many(trials: list, budget: int, logs: list[Path], codes: list[int]) -> list[str]:
    """What went wrong: duplicate or missing trial numbers, a budget missed, trials left
    RUNNING or WAITING, a baseline run twice, lock errors or tracebacks, bad exits."""
    from collections import Counter

    from optuna.trial import TrialState

    problems = []
    numbers = Counter(t.number for t in trials)
    if sorted(numbers) != list(range(len(trials))) or max(numbers.values(), default=1) > 1:
        problems.append("trial numbers not 0..n-1 once each")
    done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    if len(done) != budget:
        problems.append(f"{len(done)} finished trials for a budget of {budget}")
    if stuck := [t.number for t in trials if t.state in (TrialState.RUNNING,
                                                         TrialState.WAITING)]:
        problems.append(f"left RUNNING/WAITING: {stuck}")
    fixed = Counter(str(t.system_attrs.get("fixed_params")) for t in done
                    if t.user_attrs.get("baseline"))
    if any(n > 1 for n in fixed.values()):
        problems.append(f"a queued baseline ran twice: {dict(fixed)}")
    for log in logs:
        text = log.read_text(errors="replace").lower()
        if any(w in text for w in LOCK_WORDS) or "traceback" in text:
            problems.append(f"lock error or traceback in {log.name}")
    if bad := [c for c in codes if c != 0]:
        problems.append(f"worker exits {bad}")
    return problems


def run_many(project: Path, route: str, storage: str, db_url: str, workers: int, budget: int,
             tracking: str, sampler: ConnectionSampler) -> Many:
    study = f"{EXP}-{route}-w{workers}"
    logs = [project / f"{study}-{i}.log" for i in range(workers)]
    cmd = [sys.executable, str(Path(__file__).resolve()), "--as-worker", EXP, storage, study,
           str(budget), tracking]
    wall, procs = run_workers(cmd, project, logs, timeout=1800)
    peak = sampler.stop()

    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trials = optuna.load_study(study_name=study, storage=db_url).get_trials(deepcopy=False)
    done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    steady = (max(t.datetime_complete for t in done)
              - min(t.datetime_start for t in done)).total_seconds() if done else float("nan")
    skipped = sum(bool(t.user_attrs.get("skipped")) for t in trials)
    problems = check_many(trials, budget, logs, [p.returncode for p in procs])
    return Many(route, workers, budget, len(done), skipped, wall, steady, peak, problems)


def many_cases(project: Path, pg: dict[str, str], counts: list[int], routes: list[str],
               track: bool, proxy_threads: int) -> list[Many]:
    """Each worker count on a fresh study database, per route; the proxy (one per case,
    started before the workers) is stopped after them."""
    scheme = pg_scheme()
    tracking = ""
    server = None
    if track:
        server, tracking = start_mlflow_server(createdb(pg["PG_CI_DIR"], "mlflow_many", scheme),
                                               project)
    results = []
    try:
        for w in counts:
            for route in routes:
                name = f"many_{route}_w{w}"
                db_url = createdb(pg["PG_CI_DIR"], name, scheme)
                proxy, storage = None, db_url
                sampler = ConnectionSampler(pg["PGURL"], name)
                if route == "proxy":
                    with socket.socket() as s:
                        s.bind(("127.0.0.1", 0))
                        port = s.getsockname()[1]
                    proxy, storage = start_proxy(db_url, project / f"proxy-{name}.log",
                                                 worker_env(), port, threads=proxy_threads)
                try:
                    results.append(run_many(project, route, storage, db_url, w, 4 * w,
                                            tracking, sampler))
                finally:
                    if proxy is not None:
                        stop(proxy)
                r = results[-1]
                print(f"  {route} x{w}: {r.wall:.1f} s, {r.connections} connections", flush=True)
    finally:
        if server is not None:
            stop(server)
    return results


def report_many(results: list[Many], proxy_threads: int) -> bool:
    print(f"{'route':<8} {'workers':>7} {'budget':>6} {'finished':>8} {'skipped':>7} "
          f"{'wall s':>7} {'trials/min':>10} {'steady/min':>10} {'conns':>5}  checks")
    for r in results:
        print(f"{r.route:<8} {r.workers:>7} {r.budget:>6} {r.finished:>8} {r.skipped:>7} "
              f"{r.wall:>7.1f} {60 * r.finished / r.wall:>10.1f} "
              f"{60 * r.finished / r.steady:>10.1f} {r.connections:>5}  "
              f"{'; '.join(r.problems) or 'ok'}")
    ok = not any(r.problems for r in results)
    for r in results:
        if r.route != "proxy":
            continue
        direct = next((d for d in results if d.route == "postgres" and d.workers == r.workers),
                      None)
        ratio = (f"rate vs direct: {direct.wall / r.wall:.2f}x wall, "
                 f"{direct.steady / r.steady:.2f}x steady" if direct else "")
        bounded = r.connections <= proxy_threads + 1
        ok &= bounded
        print(f"proxy x{r.workers}: {r.connections} connections (bound {proxy_threads + 1}: "
              f"{'ok' if bounded else 'EXCEEDED'}), {ratio}")
    return ok


def main_many(args: argparse.Namespace) -> int:
    counts = sorted({int(w) for w in args.workers.split(",")}) if args.workers else [8, 16, 32]
    routes = [r for r in (args.storage or "").split(",") if r in ("postgres", "proxy")] or [
        "postgres", "proxy"]
    print(f"{os.cpu_count()} cores; {', '.join(map(str, counts))} workers, a budget of 4 "
          "trials per worker, 3 folds x 2 epochs on 1,200 rows; MLflow "
          f"{'to one mlflow server' if args.track else 'off'}; proxy threads "
          f"{args.proxy_threads}; load average before: {os.getloadavg()[0]:.2f}")
    project = Path(tempfile.mkdtemp(prefix="bench-workers-many."))
    uniform_study(project, EXP, data=EXP, epochs=2)
    # prepared once, as `tune --jobs N` does: the workers only read the cache (32 processes
    # writing one fresh cache at once race in prepare's cache writer)
    subprocess.run([sys.executable, "-m", "pipeline", "prepare", EXP], cwd=project,
                   env=worker_env(PYTHONPATH=str(ROOT)), check=True, capture_output=True)
    pg = start_postgres()
    try:
        results = many_cases(project, pg, counts, routes, args.track, args.proxy_threads)
    finally:
        stop_postgres(pg["PG_CI_DIR"])
        if args.keep:
            print(f"kept {project}")
        else:
            shutil.rmtree(project, ignore_errors=True)  # the mkdtemp folder made above
    print()
    return 0 if report_many(results, args.proxy_threads) else 1


# --- main ----------------------------------------------------------------------------------------


def report(results: list[Result]) -> list[float]:
    print(f"{'storage':<9} {'workers':>7} {'trials':>6} {'wall s':>7} {'trials/min':>10} "
          f"{'steady/min':>10} {'speed-up':>8} {'(wall)':>7}")
    two: list[float] = []
    for r in results:
        base = next(b for b in results if b.storage == r.storage and b.workers == 1)
        up, up_wall = r.per_min_steady / base.per_min_steady, r.per_min_wall / base.per_min_wall
        if r.workers == 2:
            two.append(up)
        print(f"{r.storage:<9} {r.workers:>7} {r.finished:>6} {r.wall:>7.1f} "
              f"{r.per_min_wall:>10.1f} {r.per_min_steady:>10.1f} {up:>7.2f}x {up_wall:>6.2f}x")
    return two


def main() -> int:
    if sys.argv[1:2] == ["--as-worker"]:
        as_worker(sys.argv[2:])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer trials and epochs (~1.5 min)")
    ap.add_argument("--workers", help="worker counts [1,2,4; --many: 8,16,32]")
    ap.add_argument("--storage", help="journal,postgres [--many: postgres,proxy]")
    ap.add_argument("--check", action="store_true", help=f"exit 1 if 2 workers < {GOAL}x")
    ap.add_argument("--keep", action="store_true", help="keep the temporary project")
    ap.add_argument("--many", action="store_true", help="8-32 workers, direct vs gRPC proxy")
    ap.add_argument("--track", action="store_true", help="--many: MLflow to one server")
    ap.add_argument("--proxy-threads", type=int, default=16, help="--many: proxy threads")
    args = ap.parse_args()
    if args.many:
        return main_many(args)
    args.workers, args.storage = args.workers or "1,2,4", args.storage or "journal,postgres"
    counts = sorted({int(w) for w in args.workers.split(",")} | {1})
    storages = args.storage.split(",")
    trials, epochs = (6, 80) if args.quick else (12, 150)

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{cores} cores; {trials} trials per study, 3 folds x {epochs} epochs per trial; "
          "one `pipeline tune` process per worker, OMP/OpenBLAS threads = 1")
    load = os.getloadavg()[0]
    print(f"load average before: {load:.2f}")
    if load > 0.5 * (cores or 1):
        print("  warning: the machine is busy; speed-ups measured now are not meaningful")
    project = Path(tempfile.mkdtemp(prefix="bench-workers."))
    uniform_study(project, EXP, data=EXP, epochs=epochs)
    results: list[Result] = []
    pg: dict[str, str] = {}
    server: subprocess.Popen | None = None
    try:
        if "journal" in storages:
            for w in counts:  # the 1-worker run creates mlflow.db's schema before the others
                results.append(run_case(project, "journal", f"{EXP}-w{w}.journal",
                                        "sqlite:///mlflow.db", w, trials))
                print(f"  journal x{w}: {results[-1].wall:.1f} s", flush=True)
        if "postgres" in storages:
            try:
                scheme = pg_scheme()
                pg = start_postgres()
                backend = createdb(pg["PG_CI_DIR"], "mlflow_bench", scheme)
                server, tracking = start_mlflow_server(backend, project)
            except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                print(f"  postgres: skipped ({e})")
            else:
                for w in counts:
                    url = createdb(pg["PG_CI_DIR"], f"optuna_w{w}", scheme)
                    results.append(run_case(project, "postgres", url, tracking, w, trials))
                    print(f"  postgres x{w}: {results[-1].wall:.1f} s", flush=True)
    finally:
        if server is not None:
            stop(server)
        if pg.get("PG_CI_DIR"):
            stop_postgres(pg["PG_CI_DIR"])
        if args.keep:
            print(f"kept {project}")
        else:
            shutil.rmtree(project, ignore_errors=True)  # the mkdtemp folder made above
    print(f"load average after: {os.getloadavg()[0]:.2f}\n")
    two = report(results)
    if two:
        worst = min(two)
        verdict = "ok" if worst >= GOAL else "BELOW GOAL"
        print(f"\n2 workers vs 1 (steady): {', '.join(f'{x:.2f}x' for x in two)} "
              f"(goal >= {GOAL}x): {verdict}")
        if args.check and worst < GOAL:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
