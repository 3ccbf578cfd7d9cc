"""`make ui`: the MLflow UI (`mlflow server`) on the project's stores, bound to 127.0.0.1."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from pipeline.processes import sigterm_as_interrupt, stop_group, supervised, supervised_env
from pipeline.tracking.store import ARTIFACT_DIR, resolve_uri


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def ui_command(host: str, port: int, tracking_uri: str | None) -> list[str]:
    """`mlflow server` on the project's backend store, serving the local artifacts."""
    uri = resolve_uri(tracking_uri)
    if uri.startswith(("http://", "https://")):
        from pipeline.errors import PipelineError

        raise PipelineError(f"--tracking-uri {uri} is already a server: open it in a browser")
    return [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", uri,
        "--default-artifact-root", (Path.cwd() / ARTIFACT_DIR).resolve().as_uri(),
        "--host", host, "--port", str(port), "--workers", "1",
    ]


def ui_env() -> dict[str, str]:
    """No telemetry, and no background job runner (GenAI scorers): it only slows the boot."""
    return {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true",
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def serve_ui(
    host: str = "127.0.0.1", port: int | None = None, tracking_uri: str | None = None,
    on_start: Callable[[str], object] | None = None,
) -> None:
    """Start the MLflow UI, tell `on_start` its URL, run until Ctrl-C."""
    port = port or free_port(host)
    cmd = ui_command(host, port, tracking_uri)
    env = ui_env()
    if on_start is not None:
        on_start(f"http://{host}:{port}")
    # its own process group: `mlflow server` starts workers of its own, which must end too;
    # under a supervisor that stops that group when we die without unwinding (kill -9, -HUP)
    proc = subprocess.Popen(supervised(cmd), env=supervised_env(env), start_new_session=True)
    try:
        with sigterm_as_interrupt():  # `kill <pid>` of `pipeline ui` stops the server as Ctrl-C
            proc.wait()
    except KeyboardInterrupt:  # the supervisor stops the server's group (10 s grace), then ends
        stop_group(proc.pid, lambda: proc.poll() is None, grace=30.0)
        proc.wait()
        raise
