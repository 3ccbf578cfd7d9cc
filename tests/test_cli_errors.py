"""A corpus of broken competition folders and experiment files, driven through the CLI.

Each case must exit 2 with exactly one `error:` line naming the file / column / key, show no
traceback, and write nothing (the project tree is the same before and after).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import make_competition, toy_frames, write_experiment
from typer.testing import CliRunner

from pipeline.cli import app

Setup = Callable[[Path], list[str]]


def _comp(root: Path, *, train=None, test=None, **exp_kw) -> None:
    """A good toy competition with optional replacements, plus experiments/comp.toml."""
    t, s = toy_frames()
    make_competition(root, t if train is None else train(t), s if test is None else test(s))
    write_experiment(root, "comp", "data/comp", **exp_kw)


def _raw(file: str, content: bytes) -> Setup:
    def setup(root: Path) -> list[str]:
        _comp(root)
        (root / "data" / "comp" / file).write_bytes(content)
        return ["prepare", "comp"]

    return setup


def _frames(**kw) -> Setup:
    def setup(root: Path) -> list[str]:
        _comp(root, **kw)
        return ["prepare", "comp"]

    return setup


def _toml(text: str) -> Setup:
    def setup(root: Path) -> list[str]:
        _comp(root)
        (root / "experiments" / "comp.toml").write_text(text, encoding="utf-8")
        return ["prepare", "comp"]

    return setup


def _missing(file: str) -> Setup:
    def setup(root: Path) -> list[str]:
        _comp(root)
        (root / "data" / "comp" / file).unlink()
        return ["prepare", "comp"]

    return setup


def _dup(df):
    df.loc[[3, 4], "id"] = [0, 1]
    return df


def _nan_target(df):
    df = df.astype({"y": float})
    df.loc[2, "y"] = np.nan
    return df


GOOD = (
    '[competition]\ndata_dir = "data/comp"\nid = "id"\ntarget = "y"\n'
    'task = "binary"\nmetric = "roc_auc"\n'
)

CASES: dict[str, tuple[Setup, tuple[str, ...]]] = {
    "no train.csv": (_missing("train.csv"), ("data/comp/train.csv", "file not found")),
    "no sample": (_missing("sample_submission.csv"), ("sample_submission.csv", "not found")),
    "empty train": (_raw("train.csv", b""), ("data/comp/train.csv", "empty file")),
    "header only test": (_raw("test.csv", b"id,num,count,colour\n"), ("test.csv", "no data rows")),
    "bad quoting": (_raw("train.csv", b'id,num,y\n1,"2,0\n'), ("train.csv", "not a readable")),
    "not utf-8": (_raw("train.csv", b"id,num,y\n1,\xff,0\n"), ("train.csv", "UTF-8")),
    "no target": (_frames(train=lambda d: d.drop(columns="y")), ("train.csv", "'y'")),
    "no id in train and test": (_frames(train=lambda d: d.drop(columns="id"),
                                        test=lambda d: d.drop(columns="id")), ("test.csv", "'id'")),
    "ambiguous dates": (_frames(train=lambda d: d.assign(sold="01/02/2015"),
                                test=lambda d: d.assign(sold="03/04/2015")),
                        ("train.csv", "'sold'", 'dates = { sold = "%d/%m/%Y" }')),
    "date format misfits": (_frames(train=lambda d: d.assign(sold="2015-07-31"),
                                    test=lambda d: d.assign(sold="2015-08-31"),
                                    extra='dates = { sold = "%d/%m/%Y" }'),
                            ("comp.toml", "dates.sold", "'2015-07-31'")),
    "no test id": (_frames(test=lambda d: d.drop(columns="id")), ("test.csv", "'id'")),
    "test lacks feature": (_frames(test=lambda d: d.drop(columns="colour")),
                           ("test.csv", "'colour'", "feature")),
    "duplicate ids": (_frames(train=_dup), ("train.csv", "duplicated", "'0', '1'")),
    "one class": (_frames(train=lambda d: d.assign(y=0)), ("train.csv", "'y'", "one class")),
    "nan target": (_frames(train=_nan_target), ("train.csv", "'y'", "missing value")),
    "text regression target": (
        _frames(train=lambda d: d.assign(y="x"), task="regression", metric="rmse"),
        ("train.csv", "'y'", "numeric")),
    "three classes binary": (_frames(train=lambda d: d.assign(y=d["id"] % 3)),
                             ("train.csv", "3 classes", "binary")),
    "drop unknown column": (_frames(extra='drop = ["zzz"]'), ("comp.toml", "drop", "'zzz'")),
    "categorical unknown": (_frames(extra='categorical = ["q"]'), ("comp.toml", "categorical")),
    "unknown key": (_toml(GOOD + "colour = 1\n"), ("comp.toml", "[competition] colour")),
    "wrong type": (_toml(GOOD + "[cv]\nfolds = 'five'\n"), ("comp.toml", "[cv] folds")),
    "bad toml": (_toml("[competition\n"), ("comp.toml", "not valid TOML")),
    "missing key": (_toml(GOOD.replace('target = "y"\n', "")), ("comp.toml", "target")),
    "metric for task": (_toml(GOOD.replace("roc_auc", "rmse")), ("comp.toml", "metric")),
    "no data dir": (_toml(GOOD.replace("data/comp", "data/gone")), ("data/gone/", "not found")),
    "unknown experiment": (lambda root: ["prepare", "nope"], ("experiments/nope.toml",)),
    "init not a folder": (lambda root: ["init", "data/nowhere"], ("data/nowhere", "not a folder")),
    "init exists": (lambda root: (_comp(root), ["init", "data/comp", "--name", "comp"])[1],
                    ("experiments/comp.toml", "--force")),
    "init no sample": (lambda root: (_missing("sample_submission.csv")(root),
                                     ["init", "data/comp", "--name", "new"])[1],
                       ("sample_submission.csv", "not found")),
    "init one-valued target": (
        lambda root: (_comp(root, train=lambda d: d.assign(y=1)),
                      ["init", "data/comp", "--name", "new"])[1],
        ("train.csv", "'y'")),
}


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(project, case):
    setup, expected = CASES[case]
    args = setup(project)
    before = _tree(project)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ")
    for part in expected:
        assert part in lines[0], (part, lines[0])
    assert "Traceback" not in result.output
    assert _tree(project) == before
    assert not (project / "data" / "comp" / "prepared").exists()


def test_good_input_prepares_then_reuses_the_cache(project):
    _comp(project)
    runner = CliRunner()
    first = runner.invoke(app, ["prepare", "comp"])
    assert first.exit_code == 0, first.output
    assert "60 train x" in first.output and "data/comp/prepared/" in first.output
    again = runner.invoke(app, ["prepare", "comp"])
    assert again.output == first.output
    assert len(list((project / "data" / "comp" / "prepared").iterdir())) == 1
