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
from helpers_workers import stop, uniform_study, worker_env  # noqa: E402  (shared with the tests)


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


def run_case(project: Path, label: str, storage: str, tracking: str, workers: int,
             trials: int) -> Result:
    study = f"{EXP}-{label}-w{workers}"
    cmd = [sys.executable, "-m", "pipeline", "tune", EXP, "--trials", str(trials),
           "--storage", storage, "--study", study, "--tracking-uri", tracking, "--quiet"]
    logs = [project / f"{study}-{i}.log" for i in range(workers)]
    t0 = time.perf_counter()
    procs = []
    for log in logs:
        with log.open("w") as fh:
            procs.append(subprocess.Popen(cmd, cwd=project, env=worker_env(), stdout=fh,
                                          stderr=subprocess.STDOUT, start_new_session=True))
    try:
        for p in procs:
            p.wait(timeout=900)
    finally:
        for p in procs:
            if p.poll() is None:  # only on error or interrupt
                stop(p)
    wall = time.perf_counter() - t0
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
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer trials and epochs (~1.5 min)")
    ap.add_argument("--workers", default="1,2,4", help="worker counts [1,2,4]")
    ap.add_argument("--storage", default="journal,postgres", help="journal,postgres")
    ap.add_argument("--check", action="store_true", help=f"exit 1 if 2 workers < {GOAL}x")
    ap.add_argument("--keep", action="store_true", help="keep the temporary project")
    args = ap.parse_args()
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
