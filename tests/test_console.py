"""console.py: what the stages' results look like in an 80-column terminal."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from pipeline import console
from pipeline.submission.leaderboard import Board, Entry
from pipeline.tune.progress import TrialRow, TuneResult

PARAMS = {"n_layers": 1, "units": 30, "activation": "sigmoid", "numeric_encoding": "periodic",
          "periodic_scale": 39.2, "learning_rate_init": 0.004331, "alpha": 3.32e-05,
          "dropout": 0.0722, "batch_size": 32}


def test_the_top_trials_table_keeps_every_parameter_whole_at_80_columns(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    rows = [TrialRow(n, "complete", 0.8 - n / 100, dict(PARAMS),
                     {"cv_std": 0.03, "n_iter": 29, "stop_reasons": ["converged"] * 5})
            for n in range(3)]
    console.tune_summary(TuneResult(rows, 3, "map@3", "maximize"))
    out = capsys.readouterr().out
    table = out[out.index("top 3 trials"):]
    assert max(map(len, out.splitlines())) <= 80
    cells = " ".join(re.findall(r"\S+=\S+", table))  # every key=value the table shows
    for key, value in [("learning_rate_init", "0.00433"), ("numeric_encoding", "periodic"),
                       ("periodic_scale", "39.2"), ("alpha", "3.32e-05")]:
        assert cells.count(f"{key}={value}") == 3, (key, table)


def test_epochs_say_kept_over_run(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    row = TrialRow(4, "complete", 0.9, {"units": 8},
                   {"cv_std": 0.01, "n_iter": 17, "n_iters": [27, 28, 29, 28, 28]})
    console.tune_summary(TuneResult([row], 1, "roc_auc", "maximize"))
    out = capsys.readouterr().out
    assert re.search(r"\b17/28\b", out) and "epochs: kept / run" in out


LONG = "submissions/avocado/20261206T011631Z-t27-cv0.92111.csv"


def _board(n: int) -> Board:
    entries = [Entry(LONG.replace("t27", f"t{27 + i}"), f"{27 + i}", 0.92111, public=0.9,
                     private=0.91, public_rank=i + 1, private_rank=i + 1) for i in range(n)]
    oracle = Entry("data/avocado/oracle_submission.csv", "oracle", math.nan, status="oracle",
                   public=0.93, private=0.928)
    return Board("avocado", "roc_auc", "maximize", entries, oracle, Path("solution.csv"))


@pytest.mark.parametrize("columns", ["80", "160"])
def test_leaderboard_lists_each_file_whole_under_the_table(capsys, monkeypatch, columns):
    monkeypatch.setenv("COLUMNS", columns)
    console.leaderboard(_board(3))
    out = capsys.readouterr().out
    assert max(map(len, out.splitlines())) <= int(columns)
    lines = out.splitlines()
    for i in range(3):  # a reference in the table, the whole path alone on its line under it
        path = LONG.replace("t27", f"t{27 + i}")
        assert f"[{i + 1}] {path}" in lines
        assert sum(f"[{i + 1}]" in text for text in lines) == 2
    assert "[o] data/avocado/oracle_submission.csv" in lines
    assert "Trial(s)" in out and "Trials " not in out


def test_a_first_registered_model_says_so(capsys):
    from pipeline.tracking.registry import Registered

    console.registered(Registered("avocado", "1", "models:/avocado/1", True, "no champion yet"))
    first = capsys.readouterr().out
    assert "champion: version 1 (first registered)" in first
    assert "->" not in first and "no champion yet" not in first
    console.registered(Registered("avocado", "3", "models:/avocado/3", True, "--promote", "1"))
    assert "champion: version 3 (was version 1): --promote" in capsys.readouterr().out
