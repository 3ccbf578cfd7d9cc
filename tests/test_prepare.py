"""The data-prep stage: the transform, target encoding, the cache, and every bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import make_competition, toy_frames, write_experiment

from pipeline import experiment
from pipeline.errors import PipelineError
from pipeline.files import DATE_PARTS
from pipeline.prepare import cache_root, prepare, transform


def _prepare(root: Path, train: pd.DataFrame, test: pd.DataFrame, *, force: bool = False,
             sample: pd.DataFrame | None = None, **exp_kw):
    folder = make_competition(root, train, test, sample=sample,
                              target=exp_kw.get("target", "y"))
    write_experiment(root, "comp", folder.relative_to(root), **exp_kw)
    return prepare(experiment.load("comp"), force=force)


def test_shapes_names_and_ids(project):
    train, test = toy_frames()
    p = _prepare(project, train, test)
    assert p.X_train.shape == (60, len(p.feature_names)) and p.X_train.dtype == np.float32
    assert isinstance(p.X_train, np.memmap) and not p.X_train.flags.writeable  # shared pages
    assert p.X_test.shape == (30, len(p.feature_names))
    assert p.feature_names[:2] == ("num", "count")
    assert "num[missing]" in p.feature_names  # train has gaps in num
    assert "colour=<missing>" in p.feature_names and "colour=red" in p.feature_names
    assert p.train_ids.dtype.kind == "U" and p.train_ids[0] == "0"
    assert list(p.test_ids) == [str(i) for i in range(60, 90)]
    assert p.classes == (0, 1) and p.y.dtype == np.int64
    assert not np.isnan(p.X_train).any() and not np.isnan(p.X_test).any()
    assert p.path == Path("data/comp/prepared") / p.fingerprint


def test_fit_on_train_only_and_standardised(project):
    train, test = toy_frames()
    test["num"] = 1000.0  # a shifted test set must not move the train statistics
    p = _prepare(project, train, test)
    j = p.feature_names.index("num")
    col = p.X_train[:, j].astype(np.float64)  # float32 arrays: exact to ~1e-7
    assert abs(col.mean()) < 1e-6 and abs(col.std() - 1) < 1e-6
    assert p.X_test[:, j].min() > 100


def test_test_aligned_by_name_and_unseen_category_is_all_zero(project):
    train, test = toy_frames()
    test = test[["colour", "count", "id", "num"]].copy()  # other order
    test["extra"] = 1  # ignored
    test.loc[test.index[0], "colour"] = "purple"  # unseen in train
    p = _prepare(project, train, test)
    p_ref = prepare(experiment.load("comp"), force=True)
    assert np.array_equal(p.X_test, p_ref.X_test)
    onehot = [i for i, n in enumerate(p.feature_names) if n.startswith("colour=")]
    assert p.X_test[0, onehot].sum() == 0
    assert (p.X_test[1:, onehot].sum(axis=1) == 1).all()


def test_json_preprocessor_reproduces_the_transform(project):
    train, test = toy_frames()
    p = _prepare(project, train, test)
    spec = json.loads((p.path / "preprocessor.json").read_text())
    assert tuple(spec["feature_names"]) == p.feature_names
    np.testing.assert_allclose(transform(spec, test), p.X_test, atol=1e-12)
    assert spec["target"]["classes"] == [0, 1]


@pytest.mark.parametrize(
    ("labels", "classes"),
    [(["no", "yes"], ("no", "yes")), ([">50K", "<=50K"], ("<=50K", ">50K")),
     ([True, False], (False, True))],
)
def test_string_binary_targets_map_to_codes(project, labels, classes):
    train, test = toy_frames()
    train["y"] = [labels[i % 2] for i in range(len(train))]
    p = _prepare(project, train, test)
    assert p.classes == classes
    assert [p.classes[c] for c in p.y[:2]] == [str(x) if isinstance(x, str) else x
                                               for x in labels[:2]]
    spec = json.loads((p.path / "preprocessor.json").read_text())
    assert tuple(spec["target"]["classes"]) == classes


def test_multiclass_and_regression_targets(project):
    train, test = toy_frames()
    train["y"] = np.array(["a", "b", "c"])[np.arange(len(train)) % 3]
    p = _prepare(project, train, test, task="multiclass", metric="accuracy")
    assert p.classes == ("a", "b", "c") and set(p.y) == {0, 1, 2}
    train["y"] = np.linspace(0, 1, len(train))
    p = _prepare(project, train, test, task="regression", metric="rmse", force=True)
    assert p.classes is None and p.y.dtype == np.float64


def test_several_targets_are_an_n_by_m_float_matrix_left_out_of_the_features(project):
    train, test = toy_frames()
    train["b"] = 1 - train["y"]
    p = _prepare(project, train, test, target=["b", "y"], metric="mean_roc_auc")
    assert p.y.shape == (60, 2) and p.y.dtype == np.float64 and p.classes is None
    assert np.array_equal(p.y[:, 0], train["b"]) and np.array_equal(p.y[:, 1], train["y"])
    assert not {"b", "y"} & set(p.feature_names)
    train["b"] = np.linspace(0, 1, len(train))
    p = _prepare(project, train, test, target=["b", "y"], task="regression", metric="rmse",
                 force=True)
    assert p.y.shape == (60, 2) and p.y[-1, 0] == 1.0


def test_several_targets_errors_name_the_column(project):
    train, test = toy_frames()
    kw = {"target": ["y", "b"], "metric": "mean_roc_auc"}
    _bad(project, train, test, r"train\.csv: no column 'b'", **kw)
    _bad(project, train.assign(b=2), test, r"target 'b' must be 0 or 1 .* got \[2\.0\]", **kw)
    gap = train.assign(b=1.0)
    gap.loc[7, "b"] = np.nan
    _bad(project, gap, test, r"train\.csv: target 'b' has 1 missing value\(s\) \(ids '7'\)",
         **kw)
    _bad(project, train.assign(b="x"), test, r"target 'b' must be numeric", **kw)


def test_drop_and_forced_categorical(project):
    train, test = toy_frames()
    p = _prepare(project, train, test, extra='drop = ["num"]\ncategorical = ["count"]')
    assert "num" not in p.feature_names and "count" not in p.feature_names
    assert any(n.startswith("count=") for n in p.feature_names)


def test_forced_categorical_matches_int_and_float_columns(project):
    train, test = toy_frames()
    train.loc[0, "count"] = np.nan  # train column becomes float: 3.0, test stays int: 3
    p = _prepare(project, train, test, extra='categorical = ["count"]')
    onehot = [i for i, n in enumerate(p.feature_names) if n.startswith("count=")]
    assert (p.X_test[:, onehot].sum(axis=1) == 1).all()


def test_cache_is_reused_and_keyed_by_inputs(project):
    train, test = toy_frames()
    p1 = _prepare(project, train, test)
    stamp = (p1.path / "X_train.npy").stat().st_mtime_ns
    p2 = prepare(experiment.load("comp"))
    assert p2.fingerprint == p1.fingerprint
    assert (p2.path / "X_train.npy").stat().st_mtime_ns == stamp  # not rewritten
    np.testing.assert_array_equal(p1.X_train, p2.X_train)
    assert p2.classes == p1.classes and p2.feature_names == p1.feature_names
    p3 = _prepare(project, train, test, extra='drop = ["count"]')  # settings change
    assert p3.fingerprint != p1.fingerprint
    assert sorted(d.name for d in cache_root(experiment.load("comp").competition).iterdir()) \
        == sorted([p1.fingerprint, p3.fingerprint])  # no temp dirs left


def test_the_transform_by_blocks_of_rows_gives_the_same_arrays(project, monkeypatch):
    """Big data is transformed a block of rows at a time (bounded float64 copies): the same
    values bit for bit, one-hot, level codes and missing indicators included."""
    from pipeline.prepare import features

    train, test = toy_frames()
    whole = _prepare(project, train, test, extra="one_hot_max = 2")
    expected = np.array(whole.X_train), np.array(whole.X_test)
    monkeypatch.setattr(features, "TRANSFORM_ROWS", 7)  # 60 rows: 9 blocks, the last short
    blocks = prepare(experiment.load("comp"), force=True)
    assert blocks.X_train.shape == expected[0].shape and blocks.categorical
    assert "num[missing]" in blocks.feature_names
    np.testing.assert_array_equal(blocks.X_train, expected[0])
    np.testing.assert_array_equal(blocks.X_test, expected[1])


@pytest.mark.parametrize("n_numeric", [1, 5, 6])
def test_numbers_fitted_in_groups_of_columns_give_the_same_arrays(project, monkeypatch,
                                                                   n_numeric):
    """The imputer and scaler are fitted on groups of NUM_GROUP columns (bounded copies on big
    data); a lone last column joins the group before it. The statistics are per column: the
    same arrays and preprocessor as one fit on every column."""
    from pipeline.prepare import features

    rng = np.random.default_rng(0)
    train, test = toy_frames()
    for frame in (train, test):
        for j in range(n_numeric):
            frame[f"x{j}"] = rng.normal(j, 1 + j, len(frame)).round(3)
    train.loc[[2, 7], "x0"] = np.nan  # a median to impute, an indicator
    monkeypatch.setattr(features, "NUM_GROUP", 1000)  # one fit on every column
    one = _prepare(project, train, test)
    expected = np.array(one.X_train), np.array(one.X_test), json.loads(
        (one.path / "preprocessor.json").read_text())
    monkeypatch.setattr(features, "NUM_GROUP", 2)  # x0..: 2 numeric + n_numeric columns
    grouped = prepare(experiment.load("comp"), force=True)
    np.testing.assert_array_equal(grouped.X_train, expected[0])
    np.testing.assert_array_equal(grouped.X_test, expected[1])
    assert json.loads((grouped.path / "preprocessor.json").read_text()) == expected[2]
    assert all(len(g) >= 2 for g in features._groups([f"c{i}" for i in range(n_numeric + 2)]))


def test_a_long_lived_process_builds_big_inputs_apart(project, monkeypatch):
    """`apart`: a process that then trains for an hour (tune) builds a missing cache in a child
    process and maps it; the same arrays, and the child's errors as one line."""
    import pipeline.prepare.stage as stage

    train, test = toy_frames()
    here = _prepare(project, train, test)
    expected = np.array(here.X_train)
    monkeypatch.setattr(stage, "APART_BYTES", 0)
    monkeypatch.setattr(stage, "_build", None)  # this process must not build: the child does
    shutil.rmtree(here.path)
    apart = prepare(experiment.load("comp"), apart=True)
    assert apart.fingerprint == here.fingerprint and isinstance(apart.X_train, np.memmap)
    np.testing.assert_array_equal(apart.X_train, expected)
    bad = train.drop(columns="y")
    make_competition(project, bad, test, target="y")
    with pytest.raises(PipelineError, match=r"train\.csv: no column 'y'"):
        prepare(experiment.load("comp"), apart=True)


def test_a_cache_installed_meanwhile_is_kept_unless_forced(project):
    """Workers started together all build the same cache: the first one installed stays
    (others may be reading it); only --force replaces it, by renaming it aside."""
    from pipeline.prepare.cache import write_cache

    train, test = toy_frames()
    p = _prepare(project, train, test)
    spec = json.loads((p.path / "preprocessor.json").read_text())
    arrays = {k: np.array(getattr(p, k)) for k in ("X_train", "X_test")}
    first = (p.path / "preprocessor.json").stat().st_ino
    write_cache(p.path, arrays, spec)  # a late worker: its copy is dropped
    assert (p.path / "preprocessor.json").stat().st_ino == first
    write_cache(p.path, arrays, spec, replace=True)
    assert (p.path / "preprocessor.json").stat().st_ino != first
    assert [d.name for d in p.path.parent.iterdir()] == [p.fingerprint]  # nothing aside left


def _prepare_in(root: str) -> str:
    import os

    os.chdir(root)
    return prepare(experiment.load("comp")).fingerprint


def test_processes_preparing_one_fresh_cache_at_once_all_succeed(project):
    """Eight processes (tune workers started without --jobs) on one fresh cache: before the
    fix the late ones deleted the winner's files under each other (FileNotFoundError)."""
    import multiprocessing

    train, test = toy_frames()
    p = _prepare(project, train, test)
    with multiprocessing.get_context("fork").Pool(8) as pool:
        for _ in range(4):  # a race: several rounds make the old failure near certain
            shutil.rmtree(p.path)
            got = pool.map(_prepare_in, [str(project)] * 8)
            assert got == [p.fingerprint] * 8
    assert [d.name for d in p.path.parent.iterdir()] == [p.fingerprint]
    np.testing.assert_array_equal(prepare(experiment.load("comp")).X_train, p.X_train)


def test_damaged_cache_is_rebuilt(project):
    train, test = toy_frames()
    p = _prepare(project, train, test)
    expected = np.array(p.X_train)
    (p.path / "X_train.npy").write_bytes(b"junk")
    again = prepare(experiment.load("comp"))
    np.testing.assert_array_equal(again.X_train, expected)


def test_cache_of_the_old_npz_layout_is_rebuilt(project):
    """Caches written before the .npy layout hold one arrays.npz and no array list: rebuilt
    in place (same fingerprint), never read as if they were current."""
    import json

    train, test = toy_frames()
    p = _prepare(project, train, test)
    expected = np.array(p.X_train)
    spec = json.loads((p.path / "preprocessor.json").read_text())
    del spec["arrays"]
    (p.path / "preprocessor.json").write_text(json.dumps(spec))
    for f in p.path.glob("*.npy"):
        f.unlink()
    np.savez(p.path / "arrays.npz", X_train=expected.astype(np.float64))
    again = prepare(experiment.load("comp"))
    assert again.fingerprint == p.fingerprint and again.X_train.dtype == np.float32
    np.testing.assert_array_equal(again.X_train, expected)
    assert (p.path / "X_train.npy").is_file()


def _bad(project: Path, train, test, match: str, **kw) -> None:
    with pytest.raises(PipelineError, match=match):
        _prepare(project, train, test, **kw)
    assert not (project / "data" / "comp" / "prepared").exists()


def test_errors_name_the_file_and_column(project):
    train, test = toy_frames()
    _bad(project, train.drop(columns="y"), test, r"train\.csv: no column 'y'")
    _bad(project, train, test.drop(columns="id"), r"test\.csv: no column 'id'")
    _bad(project, train, test.drop(columns="num"), r"test\.csv: no column 'num' \(a feature")
    dup = train.copy()
    dup.loc[[3, 5], "id"] = [1, 2]
    _bad(project, dup, test, r"train\.csv: id column 'id' has 2 duplicated id\(s\): '1', '2'")
    one = train.assign(y=1)
    _bad(project, one, test, r"train\.csv: target 'y' has only one class")
    gap = train.astype({"y": float})
    gap.loc[4, "y"] = np.nan
    _bad(project, gap, test, r"train\.csv: target 'y' has 1 missing value\(s\) \(ids '4'\)")
    three = train.assign(y=np.arange(len(train)) % 3)
    _bad(project, three, test, r"target 'y' has 3 classes.*task binary expects 2")
    text = train.assign(y="abc")
    _bad(project, text, test, r"target 'y' must be numeric", task="regression", metric="rmse")
    _bad(project, train, test, r"comp\.toml: \[competition\] drop names column 'nope'",
         extra='drop = ["nope"]')
    _bad(project, train, test, r"\[competition\] categorical names column 'zz'",
         extra='categorical = ["zz"]')
    wrong = test.astype({"num": object})
    wrong.loc[0, "num"] = "n/a here"
    _bad(project, train, wrong, r"test\.csv: column 'num' is numeric in .*train\.csv")
    for cell in ("inf", "1e400"):  # overflowing numbers: one line, never sklearn's traceback
        huge = train.astype({"num": object})
        huge.loc[6, "num"] = cell
        _bad(project, huge, test, r"train\.csv: row 7 \(line 8\), column 'num' holds inf")
        huge = test.astype({"count": object})
        huge.loc[2, "count"] = cell
        _bad(project, train, huge, r"test\.csv: row 3 \(line 4\), column 'count' holds inf")


@pytest.mark.parametrize(
    ("content", "match"),
    [(b"", "empty file"), (b"id,num,y\n", "no data rows"),
     (b'id,num,y\n1,"2\n', "not a readable UTF-8 CSV"),
     (b"id,num,y\n1,\xff\xfe,0\n", "not a readable UTF-8 CSV")],
)
def test_unreadable_train_file(project, content, match):
    train, test = toy_frames()
    folder = make_competition(project, train, test)
    (folder / "train.csv").write_bytes(content)
    write_experiment(project, "comp", "data/comp")
    with pytest.raises(PipelineError, match=rf"data/comp/train\.csv: {match}"):
        prepare(experiment.load("comp"))
    assert not (project / "data" / "comp" / "prepared").exists()


def test_missing_file(project):
    train, test = toy_frames()
    folder = make_competition(project, train, test)
    (folder / "sample_submission.csv").unlink()
    write_experiment(project, "comp", "data/comp")
    with pytest.raises(PipelineError, match=r"sample_submission\.csv: file not found"):
        prepare(experiment.load("comp"))


def test_iso_dates_become_numeric_parts_that_reach_unseen_test_dates(project):
    train, test = toy_frames()
    start = pd.Timestamp("2021-03-01")
    train["when"] = (start + pd.to_timedelta(train["id"], unit="D")).dt.strftime("%Y-%m-%d")
    test["when"] = (start + pd.to_timedelta(test["id"] * 10, unit="D")).dt.strftime("%Y-%m-%d")
    test.loc[test.index[0], "when"] = None
    p = _prepare(project, train, test)
    parts = [n for n in p.feature_names if n.startswith("when")]
    assert parts == ["when.year", "when.month", "when.day", "when.weekday", "when.days"]
    days = p.X_test[:, p.feature_names.index("when.days")]
    assert (np.diff(days[1:]) > 0).all() and days[-1] > 3  # later than every train date
    assert not np.isnan(p.X_test).any()
    spec = json.loads((p.path / "preprocessor.json").read_text())
    np.testing.assert_allclose(transform(spec, test), p.X_test, atol=1e-12)


def _dated(train: pd.DataFrame, test: pd.DataFrame, fmt: str, start: str = "2015-07-01"):
    """`when` in both frames: train's days from `start`, test's later, spelled with `fmt`."""
    t0 = pd.Timestamp(start)
    train["when"] = (t0 + pd.to_timedelta(train["id"] * 13, unit="h")).dt.strftime(fmt)
    test["when"] = (t0 + pd.to_timedelta(test["id"] * 13, unit="h")).dt.strftime(fmt)
    return train, test


@pytest.mark.parametrize(("fmt", "hour"), [
    ("%Y-%m-%d", False), ("%Y/%m/%d", False), ("%m/%d/%Y", False), ("%d/%m/%Y", False),
    ("%d.%m.%Y", False), ("%Y-%m-%d %H:%M", True), ("%d/%m/%Y %H:%M:%S", True),
    ("%Y-%m-%dT%H:%M:%S", True), ("%d %b %Y", False), ("%b %d, %Y", False),
    ("%B %d %Y", False), ("%Y-%b-%d", False),
])
def test_dates_in_common_formats_become_the_same_parts(project, fmt, hour):
    train, test = _dated(*toy_frames(), fmt)
    p = _prepare(project, train, test)
    spec = json.loads((p.path / "preprocessor.json").read_text())
    assert spec["dates"] == [{"name": "when", "format": fmt,
                              "parts": [*DATE_PARTS, *(["hour"] if hour else [])]}]
    days = p.X_train[:, p.feature_names.index("when.days")]
    assert (np.diff(days) > 0).all() == hour  # 13 h apart: same day twice without a time
    assert (np.diff(days) >= 0).all() and not any(n.startswith("when=") for n in p.feature_names)
    iso = _prepare(project, *_dated(*toy_frames(), "%Y-%m-%d" + (" %H:%M:%S" if hour else "")),
                   force=True)
    np.testing.assert_allclose(iso.X_train, p.X_train, atol=1e-12)  # read as the same dates
    np.testing.assert_allclose(transform(spec, test), p.X_test, atol=1e-12)


def test_a_day_over_12_in_test_makes_the_column_day_first(project):
    train, test = toy_frames()
    train["when"] = [f"0{1 + i % 9}/0{1 + i % 7}/2015" for i in range(len(train))]  # both ways
    test["when"] = "13/07/2015"
    p = _prepare(project, train, test)
    spec = json.loads((p.path / "preprocessor.json").read_text())
    assert spec["dates"][0]["format"] == "%d/%m/%Y"
    month = transform(spec, train.head(2))[:, p.feature_names.index("when.month")]
    np.testing.assert_allclose(month, p.X_train[:2, p.feature_names.index("when.month")])


def test_ambiguous_dates_are_an_error_until_declared(project):
    train, test = toy_frames()
    for df in (train, test):
        df["sold"] = [f"0{1 + i % 9}/0{1 + i % 7}/2015" for i in range(len(df))]
    _bad(project, train, test, r"data/comp/train\.csv: column 'sold' holds dates that read as "
         r"%m/%d/%Y and as %d/%m/%Y .*\[competition\] dates = \{ sold = \"%d/%m/%Y\" \}")
    p = _prepare(project, train, test, extra='dates = { sold = "%d/%m/%Y" }')
    spec = json.loads((p.path / "preprocessor.json").read_text())
    assert spec["dates"][0]["format"] == "%d/%m/%Y"
    month = p.X_train[:, p.feature_names.index("sold.month")] * 1.0
    raw_month = np.array([1 + i % 7 for i in range(60)], float)  # the second field, day-first
    assert np.corrcoef(month, raw_month)[0, 1] > 0.999
    np.testing.assert_allclose(transform(spec, test), p.X_test, atol=1e-12)


def test_declared_formats_read_numbers_and_bad_ones_name_the_key(project):
    train, test = toy_frames()
    for df in (train, test):
        df["day"] = 20150700 + 1 + df["id"] % 28  # numbers stay numbers unless declared
    p = _prepare(project, train, test)
    assert "day" in p.feature_names and "day.year" not in p.feature_names
    p = _prepare(project, train, test, extra='dates = { day = "%Y%m%d" }')
    assert "day.weekday" in p.feature_names and "day" not in p.feature_names
    shutil.rmtree(cache_root(experiment.load("comp").competition))
    key = r"comp\.toml: \[competition\] dates"
    _bad(project, train, test, key + r"\.day = '%d/%m/%Y' does not read column 'day' of "
         r".*train\.csv: \['20150701'", extra='dates = { day = "%d/%m/%Y" }')
    _bad(project, train, test, key + r"\.day = '%Q' is not a strptime format",
         extra='dates = { day = "%Q" }')
    _bad(project, train, test, key + r" names column 'nope', which is not in .*train\.csv",
         extra='dates = { nope = "%Y" }')
    _bad(project, train, test, key + r" names column 'y', which is the id or target",
         extra='dates = { y = "%Y" }')
    _bad(project, train, test, key + r" names column 'day', which is categorical too",
         extra='dates = { day = "%Y%m%d" }\ncategorical = ["day"]')


def test_an_old_preprocessor_without_a_date_format_reads_iso(project):
    train, test = _dated(*toy_frames(), "%Y-%m-%d")
    p = _prepare(project, train, test)
    spec = json.loads((p.path / "preprocessor.json").read_text())
    del spec["dates"][0]["format"]
    np.testing.assert_allclose(transform(spec, test), p.X_test, atol=1e-12)


def test_a_train_csv_without_the_id_column_numbers_its_rows(project):
    train, test = toy_frames()
    p = _prepare(project, train.drop(columns="id"), test)
    assert list(p.train_ids) == [str(i) for i in range(60)]
    assert list(p.test_ids) == [str(i) for i in range(60, 90)]
    assert p.X_train.shape == (60, len(p.feature_names)) and "id" not in p.feature_names
    changed = train.drop(columns="id")
    changed.loc[0, "num"] = 99.0
    assert _prepare(project, changed, test).fingerprint != p.fingerprint  # still the file's
    shutil.rmtree(p.path.parent)
    _bad(project, train.drop(columns="id"), test.drop(columns="id"), r"test\.csv: no column 'id'")


def test_bool_column_with_gaps_only_in_test(project):
    train, test = toy_frames()
    train["flag"] = train["id"] % 3 == 0  # bool in train.csv: a number
    test["flag"] = np.array([True, False, None] * 10, dtype=object)  # read back as objects
    p = _prepare(project, train, test)
    j = p.feature_names.index("flag")
    assert np.isfinite(p.X_test[:, j]).all()
    assert p.X_test[0, j] > p.X_test[1, j]  # True above False, the gap imputed


def _cities(n_train: int = 400):
    train, test = toy_frames(n_train=n_train)
    train["y"] = np.arange(n_train) % 2
    train["city"] = [f"c{i % 300}" if i % 4 else "big" for i in range(n_train)]
    test["city"] = ["big", "c1", "never-seen"] * 10
    return train, test


def test_high_cardinality_columns_become_level_codes_for_the_network(project):
    train, test = _cities()
    p = _prepare(project, train, test)  # 227 levels > one_hot_max = 20: embedded
    assert not any(n.startswith("city=") for n in p.feature_names)
    assert p.feature_names[-1] == "city" and p.categorical == (len(p.feature_names) - 1,)
    spec = json.loads((p.path / "preprocessor.json").read_text())
    levels = spec["embedded"][0]["levels"]
    assert spec["embedded"][0]["name"] == "city" and levels == sorted(set(train["city"]))
    np.testing.assert_array_equal(p.X_train[:, -1], [levels.index(c) for c in train["city"]])
    assert list(p.X_test[:3, -1]) == [levels.index("big"), levels.index("c1"), -1]  # unseen
    np.testing.assert_allclose(transform(spec, test), p.X_test, atol=1e-12)
    assert "colour=red" in p.feature_names  # 4 levels: still one-hot


def test_one_hot_max_forces_one_hot_and_keys_the_cache(project):
    train, test = _cities()
    embedded = _prepare(project, train, test)
    p = _prepare(project, train, test, extra="one_hot_max = 400")
    assert p.fingerprint != embedded.fingerprint and p.categorical == ()
    city = [n for n in p.feature_names if n.startswith("city=")]
    assert len(city) == train["city"].nunique() and "city=big" in city
    onehot = p.X_test[:, [p.feature_names.index(n) for n in city]]
    assert onehot[0, city.index("city=big")] == 1 and onehot[2].sum() == 0
    spec = json.loads((p.path / "preprocessor.json").read_text())
    np.testing.assert_allclose(transform(spec, test), p.X_test, atol=1e-12)


def test_an_embedded_column_may_be_the_only_feature(project):
    train, test = _cities(100)
    p = _prepare(project, train[["id", "city", "y"]], test[["id", "city"]])
    assert p.feature_names == ("city",) and p.categorical == (0,)
    assert p.X_test[2, 0] == -1


def test_a_column_empty_in_train_is_left_out_whatever_test_holds(project):
    train, test = toy_frames()
    train["pool"] = np.nan  # read as an empty float column
    test["pool"] = ["Gd", None, "Ex"] * 10  # text first seen in test.csv
    p = _prepare(project, train, test)
    assert not any(n.startswith("pool") for n in p.feature_names)
    assert p.X_test.shape == (30, len(p.feature_names))


def test_the_raw_files_are_fingerprinted_once_per_process(project, monkeypatch):
    """Cached on each file's path, size and mtime: a second prepare hashes nothing; an edit
    (new mtime) hashes again and gives another fingerprint."""
    import os

    from pipeline.prepare import cache

    folder = make_competition(project, *toy_frames())
    exp = experiment.load(write_experiment(project, "fp", folder))
    hashed = []
    real = cache._fingerprint
    monkeypatch.setattr(cache, "_fingerprint", lambda *a: hashed.append(1) or real(*a))
    first = prepare(exp).fingerprint
    assert prepare(exp).fingerprint == first and hashed == [1]
    test = folder / "test.csv"
    test.write_text(test.read_text().replace("green", "blue", 1))
    os.utime(test, ns=(1, 1))  # a different mtime, whatever the clock's resolution
    assert prepare(exp).fingerprint != first and hashed == [1, 1]


@pytest.mark.slow
def test_the_child_that_prepares_apart_ends_when_its_parent_is_killed(project):
    """kill -9 of a tune that is building its cache apart: the child stops too (it would
    otherwise run the user's feature code and the transform to the end, alone)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    train, test = toy_frames()
    folder = make_competition(project, train, test)
    (project / "experiments").mkdir(exist_ok=True)
    (project / "experiments" / "slow.py").write_text(
        "import time\n\ndef features(df):\n    time.sleep(120)\n    return df\n")
    write_experiment(project, "comp", folder.relative_to(project),
                     extra='features = "experiments/slow.py"')
    code = ("import pipeline.prepare.stage as p; from pipeline import experiment; "
            "p.APART_BYTES = 0; p.prepare(experiment.load('comp'), apart=True)")
    parent = subprocess.Popen([sys.executable, "-c", code], cwd=project)

    def children() -> set[int]:
        found = set()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent.pid:  # ppid
                found.add(int(stat.parent.name))
        return found

    deadline, seen = time.monotonic() + 60, set()
    while time.monotonic() < deadline and len(seen) < 2:  # the worker and the resource tracker
        seen |= children()
        time.sleep(0.2)
    assert seen, "no child process started"
    time.sleep(3)  # the child is in the user's code now
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(Path(f"/proc/{c}").exists() for c in seen):
        time.sleep(0.2)
    alive = [c for c in seen if Path(f"/proc/{c}").exists()]
    for c in alive:
        os.kill(c, signal.SIGKILL)
    assert not alive, f"children {alive} outlived their parent"


def test_a_matrix_written_by_blocks_must_fill_its_rows(project):
    """The cache writes the feature matrices as their blocks come (never whole in memory); a
    producer that falls short of the rows it announced is an error, and nothing is left."""
    from pipeline.prepare.cache import write_cache
    from pipeline.prepare.features import Blocks

    def make():
        yield np.ones((3, 2), np.float32)
        yield np.zeros((2, 2), np.float32)

    out = project / "data" / "c" / "prepared" / "f"
    write_cache(out, {"X": Blocks((5, 2), make)}, {"fingerprint": "f"})
    np.testing.assert_array_equal(np.load(out / "X.npy"), [[1, 1]] * 3 + [[0, 0]] * 2)
    short = project / "data" / "d" / "prepared" / "f"
    with pytest.raises(ValueError, match="3 rows written, expected 4"):
        write_cache(short, {"X": Blocks((4, 2), lambda: iter([np.ones((3, 2))]))}, {})
    assert not (project / "data" / "d").exists()
