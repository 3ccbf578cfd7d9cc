"""docs/walkthrough.md cannot rot: its ```python blocks run, in order, in an empty folder."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import matplotlib

WALKTHROUGH = Path(__file__).resolve().parents[1] / "docs" / "walkthrough.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_walkthrough_code_runs_in_order(tmp_path, monkeypatch, capsys):
    """Run from a project folder, it leaves the project's competition alone: everything it
    writes goes to a new temporary folder."""
    matplotlib.use("Agg")
    project = tmp_path / "project"
    mine = project / "data" / "avocado" / "train.csv"
    mine.parent.mkdir(parents=True)
    mine.write_text("id,ripe\n1,0\n", encoding="utf-8")
    monkeypatch.chdir(project)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    blocks = python_blocks(WALKTHROUGH.read_text(encoding="utf-8"))
    assert len(blocks) >= 6
    namespace: dict = {"__name__": "walkthrough"}
    for i, code in enumerate(blocks, start=1):
        exec(compile(code, f"{WALKTHROUGH.name} block {i}", "exec"), namespace)  # noqa: S102
    assert mine.read_text(encoding="utf-8") == "id,ripe\n1,0\n"
    assert sorted(p.name for p in project.rglob("*") if p.is_file()) == ["train.csv"]
    (written,) = tmp_path.glob("walkthrough-*")
    assert (written / "avocado-3-2-1.png").stat().st_size > 0
    out = capsys.readouterr().out
    assert "stopped: converged" in out and "squishiness" in out


def test_the_readme_links_the_walkthrough():
    readme = (WALKTHROUGH.parents[1] / "README.md").read_text(encoding="utf-8")
    assert "docs/walkthrough.md" in readme


def test_the_readmes_links_to_docs_exist():
    """The benchmark write-ups live in docs/benchmarks.md: every claim's link must land."""
    root = WALKTHROUGH.parents[1]
    readme = (root / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\((docs/[^)#]+)(?:#[^)]*)?\)", readme)
    assert "docs/benchmarks.md" in links
    assert all((root / link).is_file() for link in links), links


def test_every_pipeline_command_the_readme_shows_exists():
    """The README's commands run as written once `.venv` is activated: no renamed command."""
    import typer

    from pipeline.cli import app

    readme = (WALKTHROUGH.parents[1] / "README.md").read_text(encoding="utf-8")
    shown = set(re.findall(r"(?:^|[`|] ?)pipeline ([a-z][a-z-]*[a-z])\b", readme, flags=re.M))
    commands = set(typer.main.get_command(app).commands)
    assert {"init", "tune", "importance", "predict"} <= shown
    assert shown <= commands, shown - commands
    assert "source .venv/bin/activate" in readme
