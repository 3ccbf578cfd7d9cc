"""The command line as a whole: entry points, start-up cost, help text."""

import subprocess
import sys

from typer.testing import CliRunner

from pipeline.cli import app

COMMANDS = (
    "data", "init", "prepare", "train", "tune", "submit", "predict", "validate", "leaderboard",
    "withdraw", "run", "ui", "gradcheck",
)


def test_help_lists_every_command():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in COMMANDS:
        assert command in result.output


def test_startup_imports_no_heavy_library():
    # `pipeline --help` must answer at once: mlflow alone takes ~1.5 s to import.
    code = (
        "import sys, pipeline.cli; "
        "print(','.join(m for m in ('mlflow', 'optuna', 'matplotlib', 'pandas', 'sklearn') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_python_dash_m_entry_point():
    out = subprocess.run(
        [sys.executable, "-m", "pipeline", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0
    assert "Usage" in out.stdout


def test_unknown_experiment_is_one_line_exit_2(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["prepare", "nope"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: experiments/nope.toml")
    assert "Traceback" not in result.output
