"""The local leaderboard: Public / Private scores computed like Kaggle, on hand-made files."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers_submit import install_fake_stages, write_competition
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score
from typer.testing import CliRunner

from pipeline import console
from pipeline.cli import app
from pipeline.errors import PipelineError
from pipeline.submission import ledger
from pipeline.submission.leaderboard import board as scored_board


@pytest.fixture
def fake(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return install_fake_stages(monkeypatch)


def solution(exp) -> pd.DataFrame:
    return pd.read_csv(exp.competition.data_dir / "solution.csv", dtype={"id": str})


def hand_made(exp, name: str, values: dict[str, np.ndarray], cv: float) -> Path:
    """A submission file in the sample's order and its ledger row."""
    sample = pd.read_csv(exp.competition.data_dir / "sample_submission.csv", dtype={"id": str})
    frame = pd.DataFrame({"id": sample["id"], **values})[list(sample.columns)]
    path = Path("submissions") / exp.name / f"{name}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    ledger.append({"file": path.as_posix(), "experiment": exp.name, "trials": name,
                   "cv_score": f"{cv:.5f}", "metric": exp.competition.metric})
    return path


def leaderboard(exp, *, as_csv: bool = False) -> None:
    """What `pipeline leaderboard` shows: the stage's board, rendered."""
    console.leaderboard(scored_board(exp), as_csv=as_csv)


def board(exp, capsys) -> list[dict[str, str]]:
    capsys.readouterr()
    leaderboard(exp, as_csv=True)
    return list(csv.DictReader(io.StringIO(capsys.readouterr().out)))


def by_hand(exp, path: Path, score) -> tuple[float, float]:
    sol = solution(exp)
    sub = pd.read_csv(path, dtype={"id": str}).set_index("id").loc[sol["id"]]
    public, private = (sol["Usage"] == "Public").to_numpy(), (sol["Usage"] == "Private").to_numpy()
    return score(sol, sub, public), score(sol, sub, private)


def test_public_and_private_match_sklearn_on_the_usage_split(fake, capsys):
    exp = write_competition(Path.cwd(), "bin")
    rng = np.random.default_rng(1)
    truth = solution(exp).set_index("id")["y"]
    sample_ids = pd.read_csv(exp.competition.data_dir / "sample_submission.csv", dtype=str)["id"]
    good = np.clip(truth.loc[sample_ids].to_numpy() * 0.6 + rng.random(len(truth)) * 0.4, 0, 1)
    paths = {
        "noise": hand_made(exp, "noise", {"y": (1 - good).round(4)}, 0.51),
        "good": hand_made(exp, "good", {"y": good.round(4)}, 0.93),
    }
    oracle = pd.DataFrame({"id": truth.index, "y": truth.to_numpy() * 0.9 + 0.05})
    oracle.to_csv(exp.competition.data_dir / "oracle_submission.csv", index=False)
    rows = board(exp, capsys)

    assert rows[0]["trials"] == "oracle" and rows[0]["status"] == "oracle"
    ranked = rows[1:]
    assert [r["trials"] for r in ranked] == ["good", "noise"]  # best Public first
    assert [r["public_rank"] for r in ranked] == ["1", "2"]

    def auc(sol, sub, rows):
        return roc_auc_score(sol["y"][rows], sub["y"][rows])

    for row in ranked:
        public, private = by_hand(exp, paths[row["trials"]], auc)
        assert float(row["public"]) == pytest.approx(public, abs=1e-5)
        assert float(row["private"]) == pytest.approx(private, abs=1e-5)
        assert row["status"] == "ok" and row["metric"] == "roc_auc"
    assert float(rows[0]["public"]) == 1.0  # the oracle here is the truth itself


def test_shake_up_shows_in_the_private_rank(fake, capsys):
    exp = write_competition(Path.cwd(), "bin")
    sol = solution(exp)
    public = (sol["Usage"] == "Public").to_numpy()
    y = sol["y"].to_numpy()
    # right on the Public rows only vs right on the Private rows only
    sub_public = pd.Series(np.where(public, y, 1 - y), index=sol["id"])
    sub_private = pd.Series(np.where(public, 1 - y, y), index=sol["id"])
    sample_ids = pd.read_csv(exp.competition.data_dir / "sample_submission.csv", dtype=str)["id"]
    hand_made(exp, "overfit", {"y": sub_public.loc[sample_ids].to_numpy()}, 0.9)
    hand_made(exp, "robust", {"y": sub_private.loc[sample_ids].to_numpy()}, 0.8)
    rows = board(exp, capsys)
    assert [(r["trials"], r["public_rank"], r["private_rank"]) for r in rows] == [
        ("overfit", "1", "2"), ("robust", "2", "1")]
    capsys.readouterr()
    leaderboard(exp)
    table = capsys.readouterr().out
    assert "+1" in table and "-1" in table and "overfit.csv" in table


def test_label_submissions_are_scored_as_codes(fake, capsys):
    exp = write_competition(Path.cwd(), "acc", metric="accuracy", labels=("no", "yes"))
    sample_ids = pd.read_csv(exp.competition.data_dir / "sample_submission.csv", dtype=str)["id"]
    labels = np.where(np.arange(len(sample_ids)) % 4 == 0, "yes", "no")
    path = hand_made(exp, "lab", {"y": labels}, 0.7)
    (row,) = board(exp, capsys)

    def acc(sol, sub, rows):
        return accuracy_score(sol["y"][rows], sub["y"].to_numpy()[rows])

    public, private = by_hand(exp, path, acc)
    assert float(row["public"]) == pytest.approx(public, abs=1e-5)
    assert float(row["private"]) == pytest.approx(private, abs=1e-5)


def test_log_loss_ranks_lowest_first_with_class_columns(fake, capsys):
    labels = ("cat", "dog", "eel")
    exp = write_competition(Path.cwd(), "multi", task="multiclass", metric="log_loss",
                            labels=labels, sample_columns=["eel", "cat", "dog"])
    rng = np.random.default_rng(0)
    sol = solution(exp).set_index("id")
    sample_ids = pd.read_csv(exp.competition.data_dir / "sample_submission.csv", dtype=str)["id"]
    onehot = pd.get_dummies(sol["y"]).loc[sample_ids].to_numpy(float)
    uniform = np.full_like(onehot, 1 / 3)
    sharp = 0.7 * onehot + 0.3 * rng.dirichlet(np.ones(3), len(onehot))
    as_cols = lambda p: {c: p[:, labels.index(c)] for c in labels}  # noqa: E731
    paths = {"uniform": hand_made(exp, "uniform", as_cols(uniform), 1.1),
             "sharp": hand_made(exp, "sharp", as_cols(sharp), 0.4)}
    rows = board(exp, capsys)
    assert [r["trials"] for r in rows] == ["sharp", "uniform"]

    def ll(sol, sub, rows):
        return log_loss(sol["y"][rows], sub[list(labels)].to_numpy()[rows], labels=list(labels))

    for row in rows:
        public, _ = by_hand(exp, paths[row["trials"]], ll)
        assert float(row["public"]) == pytest.approx(public, abs=1e-5)


def test_top_k_label_lists_are_scored_with_map_at_k(fake, capsys):
    exp = write_competition(Path.cwd(), "topk", task="multiclass", metric="map@2",
                            labels=("cat", "dog", "eel"))
    sample_ids = pd.read_csv(exp.competition.data_dir / "sample_submission.csv", dtype=str)["id"]
    lists = np.array(["dog cat", "eel", "cat eel", "eel dog"])[np.arange(len(sample_ids)) % 4]
    path = hand_made(exp, "lists", {"y": lists}, 0.5)
    (row,) = board(exp, capsys)
    assert row["status"] == "ok"

    def map2(sol, sub, rows):
        ranked = sub["y"].str.split().to_numpy()[rows]
        truth = sol["y"].to_numpy()[rows]
        return np.mean([1 / (r.index(t) + 1) if t in r else 0.0
                        for r, t in zip(ranked, truth, strict=True)])

    public, private = by_hand(exp, path, map2)
    assert float(row["public"]) == pytest.approx(public, abs=1e-5)
    assert float(row["private"]) == pytest.approx(private, abs=1e-5)


def test_several_targets_are_scored_column_by_column(fake, capsys):
    exp = write_competition(Path.cwd(), "two", metric="mean_roc_auc", targets=("p", "q"))
    rng = np.random.default_rng(1)
    sol = solution(exp).set_index("id")
    sample_ids = pd.read_csv(exp.competition.data_dir / "sample_submission.csv", dtype=str)["id"]
    truth = sol.loc[sample_ids, ["p", "q"]].to_numpy(float)
    guess = np.clip(0.6 * truth + 0.5 * rng.random(truth.shape), 0, 1)
    path = hand_made(exp, "guess", {"p": guess[:, 0], "q": guess[:, 1]}, 0.8)
    (row,) = board(exp, capsys)

    def mean_auc(sol, sub, rows):
        return np.mean([roc_auc_score(sol[t][rows], sub[t].to_numpy()[rows]) for t in "pq"])

    public, private = by_hand(exp, path, mean_auc)
    assert float(row["public"]) == pytest.approx(public, abs=1e-5)
    assert float(row["private"]) == pytest.approx(private, abs=1e-5)


def test_missing_and_broken_files_are_rows_not_crashes(fake, capsys):
    exp = write_competition(Path.cwd(), "bin")
    gone = hand_made(exp, "gone", {"y": np.full(14, 0.5)}, 0.5)
    gone.unlink()
    broken = hand_made(exp, "broken", {"y": np.full(14, 0.5)}, 0.6)
    broken.write_text("id,y\n1,2\n")
    rows = {r["trials"]: r for r in board(exp, capsys)}
    assert rows["gone"]["status"] == "missing" and rows["gone"]["public"] == ""
    assert rows["broken"]["status"].startswith("invalid: submissions/bin/broken.csv:")
    leaderboard(exp)  # the table too
    assert "missing" in capsys.readouterr().out


def test_solution_ids_must_match_the_test_ids(fake):
    exp = write_competition(Path.cwd(), "bin")
    hand_made(exp, "a", {"y": np.full(14, 0.5)}, 0.5)
    path = exp.competition.data_dir / "solution.csv"
    sol = solution(exp)
    sol.loc[0, "id"] = "9999"
    sol.to_csv(path, index=False)
    with pytest.raises(PipelineError, match=r"solution\.csv: ids do not match .*test\.csv: "
                       r"1 unexpected id\(s\): '9999'; 1 missing id\(s\): '0036'"):
        leaderboard(exp)


def test_without_solution_only_cv_ranks(fake, capsys):
    exp = write_competition(Path.cwd(), "bin")
    (exp.competition.data_dir / "solution.csv").unlink()
    hand_made(exp, "low", {"y": np.full(14, 0.5)}, 0.6)
    hand_made(exp, "high", {"y": np.full(14, 0.5)}, 0.8)
    other = write_competition(Path.cwd(), "other")
    hand_made(other, "elsewhere", {"y": np.full(14, 0.5)}, 0.99)
    rows = board(exp, capsys)
    assert [(r["trials"], r["public_rank"], r["public"]) for r in rows] == [
        ("high", "1", ""), ("low", "2", "")]


def test_empty_ledger_says_so(fake, capsys):
    exp = write_competition(Path.cwd(), "bin")
    leaderboard(exp)
    assert "no submissions yet for bin" in capsys.readouterr().out
    assert board(exp, capsys) == []


def test_cli_leaderboard_csv(fake):
    exp = write_competition(Path.cwd(), "bin")
    hand_made(exp, "a", {"y": np.linspace(0, 1, 14)}, 0.5)
    result = CliRunner().invoke(app, ["leaderboard", "bin", "--csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert rows[0]["file"] == "submissions/bin/a.csv" and rows[0]["public_rank"] == "1"
    sol = solution(exp)
    sol.loc[0, "id"] = "x"
    sol.to_csv(exp.competition.data_dir / "solution.csv", index=False)
    result = CliRunner().invoke(app, ["leaderboard", "bin", "--csv"])
    assert result.exit_code == 2 and result.output.startswith("error: data/bin/solution.csv")


def test_all_ranks_every_experiment_and_blend_on_the_competition(fake):
    exp = write_competition(Path.cwd(), "bin")
    other = write_competition(Path.cwd(), "other", seed=1)  # another competition's folder
    text = exp.path.read_text(encoding="utf-8")
    Path("experiments/bin2.toml").write_text(text, encoding="utf-8")
    Path("experiments/bin_ll.toml").write_text(  # same data, scored with another metric
        text.replace('metric = "roc_auc"', 'metric = "log_loss"'), encoding="utf-8")
    Path("submissions/mix").mkdir(parents=True)
    Path("submissions/mix/blend.json").write_text('{"experiment": "experiments/bin.toml"}')
    values = np.linspace(0, 1, 14)
    hand_made(exp, "a", {"y": values}, 0.5)
    Path("submissions/broken").mkdir(parents=True)
    Path("submissions/broken/blend.json").write_text("{")
    for name, cv in (("bin2", 0.7), ("mix", 0.9), ("other", 0.8), ("gone", 0.6),
                     ("broken", 0.5)):
        hand_made(replace(exp, name=name), name, {"y": values}, cv)
    hand_made(replace(exp, name="bin_ll"), "ll", {"y": values}, 0.1)

    result = CliRunner().invoke(app, ["leaderboard", "bin", "--all", "--csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert [(r["experiment"], r["cv_score"]) for r in rows] == [  # same Public: earlier first
        ("bin", "0.50000"), ("bin2", "0.70000"), ("mix", "0.90000")]
    assert len({r["public"] for r in rows}) == 1 and other.name not in result.output

    shown = CliRunner().invoke(app, ["leaderboard", "mix", "--all"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "mix and 2 more on its competition" in shown.output and "Name" in shown.output
    assert "left out: gone: no experiments/gone.toml to say its competition" in shown.output
    assert "left out: broken: submissions/broken/blend.json: not a blend manifest" in shown.output
    narrow = CliRunner().invoke(app, ["leaderboard", "bin", "--all"], env={"COLUMNS": "80"})
    table = [line for line in narrow.output.splitlines()  # file paths and reasons: whole
             if not line.startswith(("[", "left out: "))]
    assert max(map(len, table)) <= 80 and "mix" in narrow.output
    assert "Trial(s)" not in narrow.output  # the name stands in for them when narrow
    alone = CliRunner().invoke(app, ["leaderboard", "bin", "--csv"])
    assert [r["experiment"] for r in csv.DictReader(io.StringIO(alone.output))] == ["bin"]
