"""The Makefile's targets work from a plain shell: no `source .venv/bin/activate`, so the
venv's bin is not on the caller's PATH."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from pipeline.tracking import free_port

ROOT = Path(__file__).resolve().parents[1]
MAKEFILE = ROOT / "Makefile"
PLAIN_PATH = "/usr/local/bin:/usr/bin:/bin"  # a fresh login shell's, without any venv

MODEL_CODE = '''
import mlflow.pyfunc
from mlflow.models import set_model


class Double(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input):
        return model_input * 2


set_model(Double())
'''


def _tiny_model(folder: Path) -> Path:
    """The smallest MLflow model (models-from-code): serving it tests the command, not ours."""
    import mlflow.pyfunc

    code = folder / "double.py"
    code.write_text(MODEL_CODE, encoding="utf-8")
    mlflow.pyfunc.save_model(folder / "model", python_model=str(code))
    return folder / "model"


def _make(target: str, *variables: str, cwd: Path) -> subprocess.Popen:
    """`make TARGET` with the test's venv as the Makefile's .venv (STAMP= skips installing)."""
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env.update(PATH=PLAIN_PATH, MLFLOW_DISABLE_TELEMETRY="true")
    assert Path(sys.prefix, "bin") not in map(Path, PLAIN_PATH.split(os.pathsep))
    return subprocess.Popen(
        ["make", "-s", "-f", str(MAKEFILE), target, f"VENV={sys.prefix}", "STAMP=", *variables],
        cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=(cwd / "make.log").open("w"),
        start_new_session=True,
    )


@pytest.mark.slow
def test_make_serve_answers_from_a_shell_without_the_venv_on_path(tmp_path):
    """`mlflow models serve` execs `uvicorn` by name: without the Makefile putting the venv's
    bin first on PATH it dies with `exec: uvicorn: not found`."""
    model = _tiny_model(tmp_path)
    port = free_port()
    server = _make("serve", f"MODEL={model}", f"PORT={port}", cwd=tmp_path)
    try:
        body = json.dumps({"dataframe_split": {"columns": ["x"], "data": [[1.5], [2.0]]}})
        answer = _post(f"http://127.0.0.1:{port}/invocations", body.encode(), server)
    except OSError:
        raise AssertionError((tmp_path / "make.log").read_text()[-2000:]) from None
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
    assert json.loads(answer)["predictions"] == [{"x": 3.0}, {"x": 4.0}]


def test_make_help_lists_every_documented_target():
    """`make help` is generated from the `## ` comments: every target the README runs has one."""
    help_text = subprocess.run(["make", "-s", "-f", str(MAKEFILE), "help"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout
    listed = set(re.findall(r"^  (\S+) ", help_text, flags=re.M))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    used = set(re.findall(r"\bmake ([a-z][a-z-]+)", readme))
    assert {"serve", "dashboard", "ui", "tune"} <= listed
    assert used <= listed, used - listed


def _post(url: str, data: bytes, server: subprocess.Popen, wait: float = 120.0) -> str:
    deadline = time.monotonic() + wait
    while True:
        request = urllib.request.Request(url, data, {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.read().decode()
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.3)
