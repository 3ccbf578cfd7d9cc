"""docs/walkthrough.md cannot rot: its ```python blocks run, in order, in an empty folder."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

WALKTHROUGH = Path(__file__).resolve().parents[1] / "docs" / "walkthrough.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_walkthrough_code_runs_in_order(tmp_path, monkeypatch, capsys):
    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    blocks = python_blocks(WALKTHROUGH.read_text(encoding="utf-8"))
    assert len(blocks) >= 6
    namespace: dict = {"__name__": "walkthrough"}
    for i, code in enumerate(blocks, start=1):
        exec(compile(code, f"{WALKTHROUGH.name} block {i}", "exec"), namespace)  # noqa: S102
    assert (tmp_path / "avocado-3-2-1.png").stat().st_size > 0
    out = capsys.readouterr().out
    assert "stopped: converged" in out and "squishiness" in out


def test_the_readme_links_the_walkthrough():
    readme = (WALKTHROUGH.parents[1] / "README.md").read_text(encoding="utf-8")
    assert "docs/walkthrough.md" in readme
