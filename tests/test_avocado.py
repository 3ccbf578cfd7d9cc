"""The built-in avocado competition: files, determinism, ground truth and baselines."""

from __future__ import annotations

import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.neural_network import MLPClassifier

from pipeline import competitions
from pipeline.competitions import avocado
from pipeline.errors import PipelineError

FILES = ["train.csv", "test.csv", "sample_submission.csv", "solution.csv", "oracle_submission.csv"]
FEATURES = list(avocado.FEATURES)


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pd.DataFrame]:
    """The default-size competition (8,000 / 4,000 rows, seed 0), read back."""
    out = tmp_path_factory.mktemp("avocado")
    avocado.generate(out, seed=0)
    return {name: pd.read_csv(out / name) for name in FILES}


def read_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def fit_auc(model, frames: dict[str, pd.DataFrame]) -> float:
    """Private-split AUC of `model` behind impute + indicator, one-hot and scaling."""
    train, test, solution = frames["train.csv"], frames["test.csv"], frames["solution.csv"]
    fitted = avocado.baseline(model).fit(train[FEATURES], train[avocado.TARGET])
    p = fitted.predict_proba(test[FEATURES])[:, 1]
    private = (solution["Usage"] == "Private").to_numpy()
    return roc_auc_score(solution[avocado.TARGET][private], p[private])


def oracle_auc(frames: dict[str, pd.DataFrame]) -> float:
    solution, oracle = frames["solution.csv"], frames["oracle_submission.csv"]
    private = (solution["Usage"] == "Private").to_numpy()
    return roc_auc_score(solution[avocado.TARGET][private], oracle[avocado.TARGET][private])


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    for name, seed in [("a", 3), ("b", 3), ("c", 4)]:
        written = avocado.generate(tmp_path / name, seed=seed, rows=300)
        assert [p.name for p in written] == FILES
    a, b, c = (read_bytes(tmp_path / name) for name in "abc")
    assert a == b
    assert list(a) == sorted(FILES)  # nothing else left behind
    assert all(a[name] != c[name] for name in ["train.csv", "test.csv", "solution.csv"])


def test_headers_row_counts_and_format(tmp_path: Path) -> None:
    avocado.generate(tmp_path, seed=1, rows=200, test_rows=70)
    header = {name: (tmp_path / name).read_text().split("\n", 1)[0] for name in FILES}
    assert header["train.csv"] == ",".join(["id", *FEATURES, "ripe"])
    assert header["test.csv"] == ",".join(["id", *FEATURES])
    assert header["sample_submission.csv"] == "id,ripe"
    assert header["solution.csv"] == "id,ripe,Usage"
    assert header["oracle_submission.csv"] == "id,ripe"
    rows = {"train.csv": 200}
    for name in FILES:
        text = (tmp_path / name).read_bytes()
        assert b"\r" not in text and text.endswith(b"\n")
        assert len(pd.read_csv(tmp_path / name)) == rows.get(name, 70)
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644
    days = pd.read_csv(tmp_path / "train.csv", dtype=str)["days_since_harvest"].dropna()
    assert days.str.fullmatch(r"\d+").all()  # "12", never "12.0"
    assert (pd.read_csv(tmp_path / "sample_submission.csv")["ripe"] == 0.5).all()


def test_ids_unique_integer_aligned(full: dict[str, pd.DataFrame]) -> None:
    train_ids = full["train.csv"]["id"]
    test_ids = full["test.csv"]["id"]
    assert train_ids.dtype.kind == "i" and test_ids.dtype.kind == "i"
    assert train_ids.tolist() == list(range(8000))
    assert test_ids.tolist() == list(range(8000, 12000))
    for name in ["sample_submission.csv", "solution.csv", "oracle_submission.csv"]:
        assert full[name]["id"].tolist() == test_ids.tolist(), name


def test_values_are_plausible(full: dict[str, pd.DataFrame]) -> None:
    train, solution = full["train.csv"], full["solution.csv"]
    assert set(train["ripe"].unique()) == {0, 1}
    assert set(solution["ripe"].unique()) == {0, 1}
    assert train["squishiness"].between(0, 10).all()
    assert train["skin_colour"].dropna().between(0, 1).all()
    assert set(train["variety"]) == {v[0] for v in avocado.VARIETIES}
    assert set(train["origin"].dropna()) == {o[0] for o in avocado.ORIGINS}
    oracle = full["oracle_submission.csv"]["ripe"]
    assert oracle.between(0.03, 0.97).all()
    assert 0.25 <= train["ripe"].mean() <= 0.40


def test_public_share(full: dict[str, pd.DataFrame]) -> None:
    usage = full["solution.csv"]["Usage"]
    assert set(usage) == {"Public", "Private"}
    assert 0.26 <= (usage == "Public").mean() <= 0.34


def test_missing_fractions(full: dict[str, pd.DataFrame]) -> None:
    both = pd.concat([full["train.csv"], full["test.csv"]])
    for column in ["weight_g", "skin_colour", "days_since_harvest", "origin"]:
        assert 0.01 <= both[column].isna().mean() <= 0.06, column
    for column in ["id", "height_cm", "squishiness", "variety"]:
        assert both[column].notna().all(), column


def test_labels_follow_the_oracle(full: dict[str, pd.DataFrame]) -> None:
    # replay the generator: labels are Bernoulli(p_true) drawn right after the features
    rng = np.random.default_rng(0)
    _, p_true = avocado._table(rng, 12000)
    labels = (rng.random(12000) < p_true).astype(int)
    assert full["train.csv"]["ripe"].tolist() == labels[:8000].tolist()
    assert full["solution.csv"]["ripe"].tolist() == labels[8000:].tolist()
    np.testing.assert_allclose(full["oracle_submission.csv"]["ripe"], p_true[8000:], atol=1e-9)
    # and in the mean: the oracle is calibrated
    solution_mean = full["solution.csv"]["ripe"].mean()
    assert abs(solution_mean - full["oracle_submission.csv"]["ripe"].mean()) < 0.02


def test_oracle_beats_logistic_regression(full: dict[str, pd.DataFrame]) -> None:
    oracle = oracle_auc(full)
    linear = fit_auc(LogisticRegression(max_iter=1000), full)
    assert 0.88 <= oracle <= 0.97
    assert oracle > linear + 0.08


def test_small_mlp_gets_close_to_the_oracle(full: dict[str, pd.DataFrame]) -> None:
    mlp = MLPClassifier((32,), early_stopping=True, max_iter=500, random_state=0)
    assert fit_auc(mlp, full) >= oracle_auc(full) - 0.04


def test_failed_write_leaves_no_partial_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = pd.DataFrame.to_csv
    calls = []

    def flaky(self, path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 3:
            Path(path).write_text("id,ri")  # half a file, then the disk fills up
            raise OSError("disk full")
        return real(self, path, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_csv", flaky)
    with pytest.raises(OSError, match="disk full"):
        avocado.generate(tmp_path, seed=0, rows=100)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test.csv", "train.csv"]
    monkeypatch.undo()
    full_train = tmp_path / "again"
    avocado.generate(full_train, seed=0, rows=100)
    for name in ["train.csv", "test.csv"]:  # the files that made it are whole
        assert (tmp_path / name).read_bytes() == (full_train / name).read_bytes()


def test_registry_rejects_unknown_competition(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match=r"unknown competition 'mango'.*avocado"):
        competitions.generate("mango", tmp_path / "mango", seed=0)
    assert not (tmp_path / "mango").exists()
    written = competitions.generate("avocado", tmp_path / "avo", seed=0, rows=50)
    assert [p.name for p in written] == FILES
    assert len(pd.read_csv(tmp_path / "avo" / "test.csv")) == 25


@pytest.mark.parametrize(("rows", "test_rows"), [(9, None), (100, 9), (19, None), (0, 50)])
def test_too_few_rows_is_an_error_and_writes_nothing(
    tmp_path: Path, rows: int, test_rows: int | None
) -> None:
    out = tmp_path / "avocado"
    with pytest.raises(PipelineError, match="at least 10 train and 10 test rows"):
        avocado.generate(out, seed=0, rows=rows, test_rows=test_rows)
    assert not out.exists()
