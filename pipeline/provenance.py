"""Where a result came from: the git commit, recorded with every MLflow run and ledger row."""

from __future__ import annotations

import subprocess
from functools import cache
from pathlib import Path


def git_commit() -> str:
    """HEAD of the repository the command runs in ("unknown" outside one or without git)."""
    return _commit_in(str(Path.cwd()))


@cache  # one `git` call per folder and process: every trial's run records it
def _commit_in(folder: str) -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
            check=False, cwd=folder,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and commit else "unknown"
