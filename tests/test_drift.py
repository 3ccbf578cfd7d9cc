"""pipeline drift: adversarial validation finds a shifted column and stays near 0.5 without one."""

from __future__ import annotations

import numpy as np
import pandas as pd
from conftest import make_competition, write_experiment
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.drift import drift
from pipeline.experiment import load


def _competition(project, shift: float, name: str = "comp"):
    rng = np.random.default_rng(0)

    def frame(n: int, start: int, moved: float) -> pd.DataFrame:
        return pd.DataFrame({
            "id": np.arange(start, start + n),
            "age": rng.normal(40, 10, n).round(1),
            "income": rng.normal(0, 1, n) + moved,  # the shifted column
            "city": rng.choice(["a", "b", "c"], n),
        })

    train = frame(600, 0, 0.0).assign(y=rng.integers(0, 2, 600))
    test = frame(400, 600, shift)
    folder = make_competition(project, train, test, name=name)
    write_experiment(project, name, folder)
    return load(name)


def test_a_shifted_column_tops_the_list_and_the_auc_is_well_above_half(project):
    report = drift(_competition(project, shift=1.5))
    assert report.auc > 0.75
    assert report.columns[0].name == "income" and report.columns[0].importance > 0.1
    assert {c.name for c in report.columns} == {"age", "income", "city"}  # id and y left out
    assert "shift" in report.verdict


def test_train_and_test_drawn_alike_give_an_auc_near_half(project):
    report = drift(_competition(project, shift=0.0))
    assert abs(report.auc - 0.5) < 0.07
    assert report.verdict.startswith("train and test look alike")


def test_the_command_prints_a_table_that_fits_80_columns(project, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    _competition(project, shift=1.5)
    out = CliRunner().invoke(app, ["drift", "comp", "--top", "2"])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert lines[3].startswith("income")
    assert len(lines) == 2 + 1 + 2  # AUC, verdict, header, two columns


def test_a_column_with_many_levels_is_read_as_its_sorted_codes(project):
    rng = np.random.default_rng(1)
    days = pd.date_range("2020-01-01", periods=700).strftime("%Y-%m-%d").to_numpy()
    train = pd.DataFrame({"id": range(500), "day": days[:500], "x": rng.normal(size=500),
                          "y": rng.integers(0, 2, 500)})
    test = pd.DataFrame({"id": range(500, 700), "day": days[500:], "x": rng.normal(size=200)})
    write_experiment(project, "days", make_competition(project, train, test, name="days"))
    report = drift(load("days"))
    assert report.columns[0].name == "day" and report.columns[0].kind == "codes"
    assert report.auc > 0.95  # test rows come after every training day


def test_no_shared_feature_column_is_one_line(project):
    train = pd.DataFrame({"id": [1, 2, 3], "a": [1.0, 2.0, 3.0], "y": [0, 1, 0]})
    test = pd.DataFrame({"id": [4, 5], "b": [1.0, 2.0]})
    write_experiment(project, "apart", make_competition(project, train, test, name="apart"))
    out = CliRunner().invoke(app, ["drift", "apart"])
    assert out.exit_code == 2 and "no feature column shared with train.csv" in out.output
    assert len(out.output.strip().splitlines()) == 1


def test_test_rows_past_every_training_date_point_to_a_time_split(project):
    rng = np.random.default_rng(2)
    days = pd.date_range("2020-01-01", periods=700).strftime("%d/%m/%Y").to_numpy()
    step = np.arange(700)  # a counter that keeps counting into test.csv
    train = pd.DataFrame({"id": range(500), "day": days[:500], "step": step[:500],
                          "x": rng.normal(size=500), "y": rng.integers(0, 2, 500)})
    test = pd.DataFrame({"id": range(500, 700), "day": days[500:], "step": step[500:],
                         "x": rng.normal(size=200)})
    folder = make_competition(project, train, test, name="days")
    write_experiment(project, "days", folder, extra='dates = { day = "%d/%m/%Y" }')
    report = drift(load("days"))
    past = {c.name: c.later for c in report.columns}
    assert past["day"] == ("14/05/2021", "15/05/2021") and past["step"] == ("499", "500")
    assert past["x"] is None and not report.time_split
    out = CliRunner().invoke(app, ["drift", "days"])
    assert out.exit_code == 0, out.output
    assert ("day: every test.csv value is past train.csv's last (14/05/2021 < 15/05/2021)\n"
            '  so validate on later rows: [cv] kind = "time", time = "day"\n') in out.output
    assert max(len(line) for line in out.output.splitlines()) <= 80

    text = (project / "experiments" / "days.toml").read_text(encoding="utf-8")
    (project / "experiments" / "days.toml").write_text(
        text + '\n[cv]\nkind = "time"\ntime = "day"\n', encoding="utf-8")
    out = CliRunner().invoke(app, ["drift", "days"])
    assert out.exit_code == 0 and "validate on later rows" not in out.output  # split already


def test_dates_drawn_alike_in_both_files_point_nowhere(project):
    rng = np.random.default_rng(3)
    days = pd.date_range("2020-01-01", periods=700).strftime("%Y-%m-%d").to_numpy()
    rng.shuffle(days)
    train = pd.DataFrame({"id": range(500), "day": days[:500], "y": rng.integers(0, 2, 500)})
    test = pd.DataFrame({"id": range(500, 700), "day": days[500:]})
    write_experiment(project, "mixed", make_competition(project, train, test, name="mixed"))
    assert all(c.later is None for c in drift(load("mixed")).columns)
