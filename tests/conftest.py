"""Shared test helpers.

- `project` fixture: chdir into an empty project (tmp_path with experiments/ and data/), so
  commands that write relative to the cwd never touch the repo. Returns the project root.
- `make_competition(root, train, test, ...)`: write a Kaggle-layout folder
  root/data/<name>/{train,test,sample_submission}.csv from DataFrames; returns the folder.
- `write_experiment(root, name, data_dir, ...)`: a minimal experiments/<name>.toml.
- `toy_frames()`: a small binary competition with numbers, text categories and gaps.

Import the functions with `from conftest import make_competition, ...`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

# pytest-xdist (`make test` runs the suite with `-n`) starts its workers with COLUMNS=80 and
# LINES=24 in the environment, which the caller's shell need not have: rich would then draw tables
# 80 wide where a piped run draws them 160 wide. Each worker gets the caller's values back.
TERMINAL_VARS = ("COLUMNS", "LINES")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:  # xdist controller, once per worker
    node.workerinput["terminal_env"] = {k: os.environ.get(k) for k in TERMINAL_VARS}


def pytest_configure(config: pytest.Config) -> None:
    saved = getattr(config, "workerinput", {}).get("terminal_env")
    for name, value in (saved or {}).items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "experiments").mkdir()
    (tmp_path / "data").mkdir()
    return tmp_path


def make_competition(
    root: Path,
    train: pd.DataFrame,
    test: pd.DataFrame,
    *,
    name: str = "comp",
    id: str = "id",
    target: str | list[str] = "y",
    sample: pd.DataFrame | None = None,
) -> Path:
    """Write train/test CSVs and a sample (default: test ids + 0.5 per target) into
    root/data/<name>."""
    folder = root / "data" / name
    folder.mkdir(parents=True, exist_ok=True)
    train.to_csv(folder / "train.csv", index=False)
    test.to_csv(folder / "test.csv", index=False)
    if sample is None:
        ids = test[id] if id in test.columns else range(len(test))  # broken-test cases
        targets = [target] if isinstance(target, str) else target
        sample = pd.DataFrame({id: ids, **{t: 0.5 for t in targets}})
    sample.to_csv(folder / "sample_submission.csv", index=False)
    return folder


def write_experiment(
    root: Path,
    name: str,
    data_dir: Path | str,
    *,
    id: str = "id",
    target: str | list[str] = "y",
    task: str = "binary",
    metric: str = "roc_auc",
    extra: str = "",
) -> Path:
    """experiments/<name>.toml with just a [competition]; `extra` is appended to that table;
    a list of targets is several target columns."""
    path = root / "experiments" / f"{name}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f'[competition]\ndata_dir = "{data_dir}"\nid = "{id}"\ntarget = {json.dumps(target)}\n'
        f'task = "{task}"\nmetric = "{metric}"\n{extra}\n',
        encoding="utf-8",
    )
    return path


def toy_frames(n_train: int = 60, n_test: int = 30, seed: int = 0) -> tuple[pd.DataFrame, ...]:
    """(train, test): id, num (with gaps), count (0-4), colour (text, gaps), y in {0, 1}."""
    rng = np.random.default_rng(seed)

    def frame(n: int, start: int) -> pd.DataFrame:
        num = rng.normal(10, 2, n)
        num[rng.random(n) < 0.1] = np.nan
        colour = rng.choice(np.array(["red", "green", "blue", None], dtype=object), n)
        return pd.DataFrame({
            "id": np.arange(start, start + n),
            "num": num,
            "count": rng.integers(0, 5, n),
            "colour": colour,
        })

    train = frame(n_train, 0)
    train["y"] = (np.arange(n_train) % 2).astype(int)
    return train, frame(n_test, n_train)
