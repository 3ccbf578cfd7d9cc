"""benchmarks/tabular_datasets.py: Kaggle-layout competitions that `pipeline init` reads right."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pandas as pd
import pytest

from pipeline import experiment
from pipeline.init import init_experiment
from pipeline.submission.format import load_format

_spec = importlib.util.spec_from_file_location(
    "tabular_datasets", Path(__file__).resolve().parents[1] / "benchmarks" / "tabular_datasets.py"
)
td = importlib.util.module_from_spec(_spec)
sys.modules["tabular_datasets"] = td  # dataclasses look their module up by name
_spec.loader.exec_module(td)


@pytest.mark.parametrize("name", ["breast_cancer", "diabetes", "penguins", "wine"])
def test_build_writes_a_kaggle_layout_init_reads_as_intended(name, project):
    if name == "penguins":
        pytest.importorskip("palmerpenguins")
    ds = td.DATASETS[name]
    out = td.build(name, project / "data" / name)
    train, test, sample, solution = (
        pd.read_csv(out / f, dtype={"id": str})
        for f in ("train.csv", "test.csv", "sample_submission.csv", "solution.csv")
    )
    target = solution.columns[1]
    assert train.columns[0] == test.columns[0] == sample.columns[0] == "id"
    assert target in train.columns and target not in test.columns
    ids = pd.concat([train["id"], test["id"]])
    assert ids.is_unique
    assert list(sample["id"]) == list(test["id"]) == list(solution["id"])
    assert set(solution["Usage"]) == {"Public", "Private"}
    public = (solution["Usage"] == "Public").mean()
    assert 0.25 < public < 0.35
    assert 0.3 < len(test) / len(ids) < 0.36
    if ds.task != "regression":  # stratified: every class on both sides
        assert set(train[target]) == set(solution[target])
    if ds.metric in ("f1_macro", "qwk"):  # a label column, as label metrics' samples hold
        assert list(sample.columns) == ["id", target]
    elif ds.task == "multiclass":
        assert sorted(sample.columns[1:]) == sorted(str(c) for c in train[target].unique())

    # same seed, same bytes (the prepare cache is keyed on them)
    again = td.build(name, project / "again")
    assert (again / "train.csv").read_bytes() == (out / "train.csv").read_bytes()

    # as `pipeline init` does: the sample is checked against test.csv and the classes
    exp_path = init_experiment(out, name=name, check=load_format)
    text = exp_path.read_text(encoding="utf-8")
    assert f'task = "{ds.task}"' in text
    # init's guess, or (a label sample: f1_macro looks like accuracy) the one the bench sets
    assert f'metric = "{ds.metric}"' in text or td.set_metric(exp_path, ds.metric)
    assert experiment.load(exp_path).competition.metric == ds.metric


def test_default_folder_is_a_user_cache_outside_the_repository(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert td.cache_dir() == tmp_path / "avocado-pipeline" / "competitions"
