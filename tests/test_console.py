"""console.py: what the stages' results look like in an 80-column terminal."""

from __future__ import annotations

import re

from pipeline import console
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
