"""Issue #14's check: competitions of each Kaggle shape, built here, run as a user runs them:
`pipeline init` (then the metric or folds the competition's page names), tune, submit, validate;
the leaderboard's Public / Private scores equal our own metric computed on the written file
against solution.csv."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline import tune
from pipeline.cli import app
from pipeline.experiment import load
from pipeline.metrics import METRICS
from pipeline.submission import leaderboard
from pipeline.submit import submit

N_TRAIN, N_TEST = 240, 120


@dataclass(frozen=True)
class Shape:
    name: str
    task: str  # the task the experiment ends with
    metric: str
    sample: str  # "label" | "value" | "listed"
    edit: dict[str, str]  # experiment-file lines a user changes after init (old -> new)


def _latent(rng: np.random.Generator, n: int) -> tuple[pd.DataFrame, np.ndarray]:
    x = rng.normal(size=(n, 3)).round(3)
    colour = rng.choice(["red", "green", "blue"], n)
    z = x[:, 0] - 0.7 * x[:, 1] + 0.3 * x[:, 2] + np.where(colour == "red", 0.5, 0.0)
    frame = pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2], "colour": colour})
    return frame, z


def _targets(shape: Shape, z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if shape.metric == "rmsle":  # a skewed count-like amount, as house prices or bike rentals
        return np.round(np.expm1(1.5 + 0.8 * z + rng.normal(0, 0.2, len(z))), 2).clip(0)
    if shape.metric == "qwk":  # ratings 1..5 cut from the latent score, ordered
        return np.digitize(z + rng.normal(0, 0.3, len(z)), [-1.2, -0.4, 0.4, 1.2]) + 1
    if shape.task == "multiclass":
        return np.array(["ash", "birch", "cedar"], dtype=object)[
            np.digitize(z + rng.normal(0, 0.3, len(z)), [-0.5, 0.5])]
    return (z + rng.normal(0, 0.5, len(z)) > 0).astype(int)


def build(root: Path, shape: Shape, seed: int = 0) -> Path:
    """data/<name>/ train, test, sample_submission, solution (Usage Public / Private)."""
    rng = np.random.default_rng(seed)
    frame, z = _latent(rng, N_TRAIN + N_TEST)
    y = _targets(shape, z, rng)
    frame.insert(0, "id", np.arange(1, len(frame) + 1) * 7)
    frame["store"] = rng.integers(0, 16, len(frame))  # a grouping column: 16 stores
    folder = root / "data" / shape.name
    folder.mkdir(parents=True)
    train, test = frame.iloc[:N_TRAIN], frame.iloc[N_TRAIN:]
    train.assign(y=y[:N_TRAIN]).to_csv(folder / "train.csv", index=False)
    test.to_csv(folder / "test.csv", index=False)
    value: object = (pd.Series(y[:N_TRAIN]).mode().iloc[0] if shape.sample == "label" else
                     float(np.median(y[:N_TRAIN])) if shape.sample == "value" else
                     " ".join(map(str, sorted(set(y))[:3])))
    pd.DataFrame({"id": test["id"], "y": value}).to_csv(folder / "sample_submission.csv",
                                                        index=False)
    usage = np.where(np.arange(N_TEST) % 3 == 0, "Public", "Private")
    pd.DataFrame({"id": test["id"], "y": y[N_TRAIN:], "Usage": usage}).to_csv(
        folder / "solution.csv", index=False)
    return folder


SHAPES = [
    Shape("prices", "regression", "rmsle", "value", {'metric = "rmse"': 'metric = "rmsle"'}),
    Shape("ratings", "multiclass", "qwk", "label", {'metric = "accuracy"': 'metric = "qwk"'}),
    Shape("ratings_reg", "regression", "qwk", "label",
          {'metric = "accuracy"': 'metric = "qwk"', 'task = "multiclass"': 'task = "regression"',
           'kind = "stratified"': 'kind = "kfold"'}),
    Shape("trees", "multiclass", "f1_macro", "label",
          {'metric = "accuracy"': 'metric = "f1_macro"'}),
    Shape("stores", "binary", "mcc", "label",
          {'metric = "accuracy"': 'metric = "mcc"',
           'kind = "stratified"': 'kind = "group"\ngroup = "store"'}),
    Shape("guesses", "multiclass", "map@3", "listed", {}),
]
FAST = {"max_iter = 300": "max_iter = 30", "seeds = 5": "seeds = 1", "folds = 5": "folds = 3"}


def _init(shape: Shape) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["init", f"data/{shape.name}"])
    assert result.exit_code == 0, result.output
    path = Path("experiments") / f"{shape.name}.toml"
    text = path.read_text(encoding="utf-8")
    for old, new in {**shape.edit, **FAST}.items():
        assert old in text, (old, text)
        text = text.replace(old, new, 1)
    path.write_text(text, encoding="utf-8")


def _our_score(shape: Shape, sub: pd.DataFrame, solution: pd.DataFrame, rows: pd.Series) -> float:
    """The metric on the file as written, against solution.csv, with no pipeline code but the
    metric itself: labels and ratings to their sorted position, lists to ranked positions."""
    truth, cells = solution.loc[rows, "y"], sub.set_index("id").loc[solution.loc[rows, "id"], "y"]
    if shape.sample == "value" and shape.metric != "qwk":
        return METRICS[shape.metric](truth.to_numpy(float), cells.to_numpy(float))
    classes = sorted(set(solution["y"].astype(str)) | set(cells.astype(str).str.split().sum()))
    code = {c: i for i, c in enumerate(sorted(classes, key=_natural))}
    t = np.array([code[str(v)] for v in truth])
    if shape.sample == "listed":
        ranked = np.array([[code[v] for v in c.split()] for c in cells])
        return METRICS[shape.metric](t, ranked)
    return METRICS[shape.metric](t, np.array([code[str(v)] for v in cells]))


def _natural(label: str) -> tuple:
    return (0, float(label), "") if re.fullmatch(r"-?\d+(\.\d+)?", label) else (1, 0.0, label)


@pytest.mark.parametrize("shape", SHAPES, ids=[s.name for s in SHAPES])
def test_init_tune_submit_validate_and_score_each_shape(project, shape):
    folder = build(project, shape)
    _init(shape)
    exp = load(shape.name)
    assert (exp.competition.task, exp.competition.metric) == (shape.task, shape.metric)
    tune.tune(exp, trials=2, track=False)
    file = submit(exp, tune.best_trials(exp)).path
    runner = CliRunner()
    assert runner.invoke(app, ["validate", shape.name, str(file)]).exit_code == 0
    sub = pd.read_csv(file, dtype=str)
    test_ids = pd.read_csv(folder / "test.csv", dtype=str)["id"]
    assert list(sub.columns) == ["id", "y"] and sorted(sub["id"]) == sorted(test_ids)
    if shape.sample == "label":  # labels spelled as train.csv spells them: 3, not 3.0
        train_labels = set(pd.read_csv(folder / "train.csv", dtype=str)["y"])
        assert set(sub["y"]) <= train_labels, set(sub["y"]) - train_labels
    (entry,) = leaderboard.board(exp).entries
    assert entry.status == "ok", entry
    solution = pd.read_csv(folder / "solution.csv", dtype=str)
    for part in ("Public", "Private"):
        ours = _our_score(shape, sub, solution, solution["Usage"] == part)
        assert getattr(entry, part.lower()) == pytest.approx(ours, rel=1e-12), part
