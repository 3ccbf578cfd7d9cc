"""k-fold cross-validation: fixed folds, out-of-fold predictions, per-epoch curves."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from helpers_tune import tiny_project

from pipeline import evaluate
from pipeline.errors import PipelineError
from pipeline.experiment import load
from pipeline.prepare import prepare


@pytest.fixture
def tiny(project):
    exp = load(tiny_project(project, folds=3, max_iter=4))
    return exp, prepare(exp)


def test_folds_are_fixed_by_the_seed_and_stratified(tiny):
    exp, prepared = tiny
    a, b = evaluate.folds(prepared, exp), evaluate.folds(prepared, exp)
    assert len(a) == 3
    for (tr1, va1), (tr2, va2) in zip(a, b, strict=True):
        assert np.array_equal(tr1, tr2) and np.array_equal(va1, va2)
    covered = np.sort(np.concatenate([va for _, va in a]))
    assert np.array_equal(covered, np.arange(len(prepared.y)))  # every row held out once
    rate = prepared.y.mean()
    for _, va in a:
        assert abs(prepared.y[va].mean() - rate) < 0.05
    other = evaluate.folds(prepared, replace(exp, cv=replace(exp.cv, seed=99)))
    assert not np.array_equal(a[0][1], other[0][1])


def test_cross_validate_gives_scores_oof_and_curves(tiny):
    exp, prepared = tiny
    seen: list[tuple[int, int]] = []
    params = {**exp.model.params(), "random_state": 1}
    res = evaluate.cross_validate(
        prepared, exp, params, on_epoch=lambda f, e, m: seen.append((f, e)), keep_models=True
    )
    n = len(prepared.y)
    assert res.oof.shape == (n,) and np.all((res.oof >= 0) & (res.oof <= 1))
    assert len(res.scores) == 3 and res.mean == pytest.approx(np.mean(res.scores))
    assert res.std == pytest.approx(np.std(res.scores))
    assert len(res.models) == 3 and res.n_iters == [4, 4, 4]
    for curve, n_iter in zip(res.curves, res.n_iters, strict=True):
        assert set(curve) == {"train_loss", "val_loss", "val_error"}
        assert all(len(v) == n_iter for v in curve.values())
    assert seen == [(f, e) for f in range(3) for e in range(1, 5)]
    # same params, same seed -> same numbers (each trial can be re-run exactly)
    again = evaluate.cross_validate(prepared, exp, params)
    assert np.allclose(again.oof, res.oof)


def test_exceptions_from_on_epoch_propagate(tiny):
    exp, prepared = tiny

    class Stop(Exception):
        pass

    def stop(fold, epoch, m):
        if epoch == 2:
            raise Stop

    with pytest.raises(Stop):
        evaluate.cross_validate(prepared, exp, {**exp.model.params(), "random_state": 0},
                                on_epoch=stop)


def test_regression_uses_plain_kfold(project):
    exp = load(tiny_project(project, task="regression", metric="rmse", max_iter=3))
    prepared = prepare(exp)
    res = evaluate.cross_validate(prepared, exp, {**exp.model.params(), "random_state": 0})
    assert res.oof.shape == (len(prepared.y),) and res.mean > 0
    assert all(len(c["val_error"]) == 3 for c in res.curves)


def test_regression_target_in_the_hundred_thousands_is_learnt(project):
    # house-price sized targets: the network only reaches them trained on a standardised y
    exp = load(tiny_project(project, task="regression", metric="rmse", max_iter=5))
    train_csv = exp.competition.data_dir / "train.csv"
    train = pd.read_csv(train_csv)
    train["y"] = 500_000 + 100_000 * train["y"]
    train.to_csv(train_csv, index=False)
    prepared = prepare(exp)
    res = evaluate.cross_validate(prepared, exp, {**exp.model.params(), "random_state": 0},
                                  keep_models=True)
    assert res.mean < 0.8 * prepared.y.std()
    assert res.curves[0]["val_error"][-1] == pytest.approx(res.scores[0], rel=1e-3)  # y's units
    assert abs(evaluate.predict(res.models[0], prepared.X_test).mean() - 500_000) < 50_000


def test_a_class_with_a_single_row_is_named_not_blamed_on_folds(project):
    exp = load(tiny_project(project, task="multiclass", metric="log_loss"))
    train_csv = exp.competition.data_dir / "train.csv"
    train = pd.read_csv(train_csv)
    train.loc[5, "y"] = 7
    train.to_csv(train_csv, index=False)
    with pytest.raises(PipelineError, match=r"train\.csv: class 7 of 'y' has a single row"):
        evaluate.folds(prepare(exp), exp)


def test_label_fitted_bins_never_see_the_held_out_fold(tiny, monkeypatch):
    """Tree bins read labels: fitted on all rows they would leak the held-out fold's labels into
    its out-of-fold score. Every encoder fit of cross_validate sees only its fold's training
    rows (minus the network's early-stopping split)."""
    from pipeline.network.encoders import PiecewiseLinearEncoder

    exp, prepared = tiny
    fitted: list[set[bytes]] = []
    fit = PiecewiseLinearEncoder.fit

    def spy(self, X, y=None, classification=True, *, rows=None, columns=None):
        read = np.asarray(X) if rows is None else np.asarray(X)[rows]  # whole rows, compared
        fitted.append({row.tobytes() for row in read})
        return fit(self, X, y, classification, rows=rows, columns=columns)

    monkeypatch.setattr(PiecewiseLinearEncoder, "fit", spy)
    params = {**exp.model.params(), "random_state": 0, "numeric_encoding": "ple",
              "early_stopping": True, "validation_fraction": 0.2}
    evaluate.cross_validate(prepared, exp, params)
    X = prepared.X_train
    folds = evaluate.folds(prepared, exp)
    assert len(fitted) == len(folds)
    for rows, (tr, va) in zip(fitted, folds, strict=True):
        train_rows = {r.tobytes() for r in X[tr]}
        held_out = {r.tobytes() for r in X[va]} - train_rows
        assert rows <= train_rows and not rows & held_out
        assert len(rows) < len(train_rows)  # the early-stopping split stayed out as well


def test_a_label_metric_is_scored_with_the_decision_chosen_on_the_other_folds(project):
    """f1: fold f's score applies the threshold chosen on the other folds' OOF; the plain
    0.5 scores stay in raw_scores, and the decision chosen on every OOF row comes along."""
    from pipeline.decision import apply, choose

    exp = load(tiny_project(project, metric="f1", folds=3, max_iter=4))
    prepared = prepare(exp)
    res = evaluate.cross_validate(prepared, exp, {**exp.model.params(), "random_state": 1})
    y, oof = prepared.y, res.oof
    splits = evaluate.folds(prepared, exp)
    assert res.decision == choose("f1", "binary", y, oof) and res.decision.kind == "threshold"
    assert res.raw_scores == pytest.approx([evaluate.METRICS["f1"](y[va], oof[va])
                                            for _, va in splits])
    for (_, va), score in zip(splits, res.scores, strict=True):
        rest = np.setdiff1d(np.arange(len(y)), va)
        chosen = choose("f1", "binary", y[rest], oof[rest])
        assert score == pytest.approx(evaluate.METRICS["f1"](y[va], apply(chosen, oof[va])))
    assert res.mean == pytest.approx(np.mean(res.scores))


def test_log1p_on_a_negative_target_is_one_line_naming_the_column(project):
    exp = load(tiny_project(project, task="regression", metric="rmse", max_iter=2))
    prepared = prepare(exp)  # tiny's regression target has negative values
    with pytest.raises(PipelineError, match=r"train.csv: target 'y' has negative values"):
        evaluate.cross_validate(prepared, exp, {**exp.model.params(), "random_state": 0,
                                                "target_transform": "log1p"})


# --- [cv] kind: group and time folds --------------------------------------------------------


def _fold_project(project, cv: str, *, drop: str = "", **kw):
    """tiny with a `store` (12 groups) and a `day` column (60 dates, 4 rows each) in train and
    test, rows shuffled so file order is not time order; `cv` replaces [cv]'s kind lines."""
    path = tiny_project(project, folds=3, max_iter=3, **kw)
    for name in ("train.csv", "test.csv"):
        file = project / "data" / "tiny" / name
        df = pd.read_csv(file)
        rng = np.random.default_rng(len(df))
        df["store"] = rng.choice([f"s{i}" for i in range(12)], len(df))
        days = pd.Timestamp("2021-03-01") + pd.to_timedelta(df["id"] // 4, unit="D")
        df["day"] = days.dt.strftime("%Y-%m-%d")
        df.sample(frac=1, random_state=1).to_csv(file, index=False)
    text = path.read_text().replace("[cv]\n", f"[cv]\n{cv}\n")
    path.write_text(text.replace('metric = "', f"drop = [{drop}]\nmetric = \"", 1))
    return load(path)


@pytest.mark.parametrize(("task", "metric"), [("binary", "roc_auc"), ("regression", "rmse")])
def test_group_folds_keep_a_group_in_one_fold(project, task, metric):
    exp = _fold_project(project, 'kind = "group"\ngroup = "store"', drop='"store"',
                        task=task, metric=metric)
    prepared = prepare(exp)
    assert "store" not in " ".join(prepared.feature_names)  # dropped, yet it groups the folds
    groups = prepared.groups
    a = evaluate.folds(prepared, exp)
    assert len(a) == 3
    for tr, va in a:
        assert not set(groups[tr]) & set(groups[va])
    covered = np.sort(np.concatenate([va for _, va in a]))
    assert np.array_equal(covered, np.arange(len(prepared.y)))
    b = evaluate.folds(prepared, exp)
    assert all(np.array_equal(x[1], y[1]) for x, y in zip(a, b, strict=True))
    other = evaluate.folds(prepared, replace(exp, cv=replace(exp.cv, seed=99)))
    assert any(not np.array_equal(x[1], y[1]) for x, y in zip(a, other, strict=True))


def test_time_folds_validate_on_later_rows_only(project):
    exp = _fold_project(project, 'kind = "time"\ntime = "day"')  # day is a feature too
    prepared = prepare(exp)
    assert any(name.startswith("day.") for name in prepared.feature_names)
    order = prepared.order
    a = evaluate.folds(prepared, exp)
    assert len(a) == 3
    for tr, va in a:
        assert order[tr].max() < order[va].min()  # rows of one day never straddle the cut
    vals = [va for _, va in a]
    assert all(len(np.intersect1d(x, y)) == 0 for x, y in zip(vals, vals[1:], strict=False))
    never = np.setdiff1d(np.arange(len(order)), np.concatenate(vals))
    assert len(never) == 60 and order[never].max() < order[vals[0]].min()  # the first block
    assert order.max() - order.min() == 59  # days, parsed from the date text


def test_time_folds_order_by_a_number_column(project):
    exp = _fold_project(project, 'kind = "time"\ntime = "x1"')
    prepared = prepare(exp)
    for tr, va in evaluate.folds(prepared, exp):
        assert prepared.order[tr].max() < prepared.order[va].min()


def test_time_oof_has_only_validated_rows_and_the_score_is_the_folds_mean(project):
    from pipeline.submission import predictions

    exp = _fold_project(project, 'kind = "time"\ntime = "day"')
    prepared = prepare(exp)
    res = evaluate.cross_validate(prepared, exp, {**exp.model.params(), "random_state": 0})
    validated = np.zeros(len(prepared.y), bool)
    for _, va in evaluate.folds(prepared, exp):
        validated[va] = True
    assert np.array_equal(res.validated, validated) and validated.sum() == 180
    assert np.isnan(res.oof[~validated]).all() and np.isfinite(res.oof[validated]).all()
    assert res.mean == pytest.approx(np.mean(res.scores)) and np.isfinite(res.mean)
    text = predictions.to_csv(prepared.train_ids, res.oof, prepared.classes, prepared.y)
    assert len(text.splitlines()) == 1 + 180 and "nan" not in text  # left out, not NaN


def test_default_kinds_keep_the_fingerprint_and_group_time_change_it(project):
    exp = _fold_project(project, "")
    plain = prepare(exp)
    assert plain.groups is None and plain.order is None
    kfold = replace(exp, cv=replace(exp.cv, kind="kfold"))
    assert prepare(kfold).fingerprint == plain.fingerprint  # same arrays, same cache
    grouped = prepare(replace(exp, cv=replace(exp.cv, kind="group", group="store")))
    assert grouped.fingerprint != plain.fingerprint and grouped.groups is not None
    again = prepare(replace(exp, cv=replace(exp.cv, kind="group", group="store")))
    assert np.array_equal(again.groups, grouped.groups)  # from the cache
    with pytest.raises(PipelineError, match="prepared without the \\[cv\\] group column"):
        evaluate.folds(plain, replace(exp, cv=replace(exp.cv, kind="group", group="store")))


FOLD_ERRORS = [
    ('kind = "group"\ngroup = "shop"', None,
     r"data/tiny/train\.csv: no column 'shop' \(\[cv\] group in .*tiny\.toml\); columns are: "
     r"id, x1, x2, colour, y, store, day$"),
    ('kind = "time"\ntime = "colour"', None,
     r"train\.csv: column 'colour' \(\[cv\] time\) holds .*expected dates or numbers"),
    ('kind = "group"\ngroup = "store"', "gap",
     r"train\.csv: column 'store' \(\[cv\] group\) has 1 empty value\(s\) \(lines \d+\)"),
    ('kind = "group"\ngroup = "store"', "two groups",
     r"tiny\.toml: \[cv\] folds = 3 but column 'store' of .*train\.csv has only 2 groups"),
    ('kind = "time"\ntime = "day"', "late positives",
     r"tiny\.toml: \[cv\] fold 1 of 3 \(time\(day\)/3\) validates on no row of class 1; "
     r"roc_auc needs every class in every fold"),
    ('kind = "time"\ntime = "day"', "three days",
     r"tiny\.toml: \[cv\] folds = 3 with kind = \"time\" needs at least 4 distinct values of "
     r"'day' in .*train\.csv, found 3"),
]


@pytest.mark.parametrize(("cv", "edit", "message"), FOLD_ERRORS)
def test_fold_column_errors_are_one_line(project, cv, edit, message):
    exp = _fold_project(project, cv)
    file = exp.competition.data_dir / "train.csv"
    df = pd.read_csv(file)
    if edit == "gap":
        df.loc[3, "store"] = None
    elif edit == "two groups":
        df["store"] = np.where(df["x1"] > 0, "a", "b")
    elif edit == "late positives":  # class 1 only in the last two blocks
        df["y"] = (df["id"] >= 120).astype(int)
    elif edit == "three days":
        df["day"] = np.array(["2021-01-01", "2021-01-02", "2021-01-03"])[df["id"] % 3]
    df.to_csv(file, index=False)
    with pytest.raises(PipelineError, match=message) as info:
        evaluate.folds(prepare(exp), exp)
    assert "\n" not in str(info.value)


def test_several_targets_give_an_n_by_m_oof_from_plain_kfold(project):
    path = tiny_project(project, max_iter=3)
    folder = project / "data" / "tiny"
    train = pd.read_csv(folder / "train.csv")
    train["z"] = (train["x2"] > 0).astype(int)
    train.to_csv(folder / "train.csv", index=False)
    path.write_text(path.read_text().replace('target = "y"', 'target = ["y", "z"]')
                    .replace('"roc_auc"', '"mean_roc_auc"'))
    exp = load(path)
    prepared = prepare(exp)
    res = evaluate.cross_validate(prepared, exp, {**exp.model.params(), "random_state": 0},
                                  keep_models=True)
    assert res.oof.shape == (240, 2) and np.all((res.oof >= 0) & (res.oof <= 1))
    assert 0 < res.mean <= 1 and len(res.scores) == 2
    assert evaluate.predict(res.models[0], prepared.X_test).shape == (120, 2)
    from sklearn.model_selection import KFold

    plain = KFold(n_splits=2, shuffle=True, random_state=7).split(prepared.X_train)
    assert all(np.array_equal(va, b) for (_, va), (_, b) in
               zip(evaluate.folds(prepared, exp), plain, strict=True))


def test_several_targets_default_to_plain_folds_and_cannot_stratify(project):
    from pipeline.tune import study_identity

    path = tiny_project(project)
    assert study_identity(load(path), "f")["folds"] == "stratified/2/seed7"
    text = path.read_text().replace('target = "y"', 'target = ["y", "x2"]')
    path.write_text(text.replace('"binary"', '"regression"').replace('"roc_auc"', '"rmse"'))
    assert study_identity(load(path), "f")["folds"] == "kfold/2/seed7"
    path.write_text(text.replace('"roc_auc"', '"mean_roc_auc"')
                    .replace("[cv]\n", '[cv]\nkind = "stratified"\n'))
    with pytest.raises(PipelineError, match='kind = "stratified" needs one column of classes; '
                       'several targets uses "kfold"'):
        load(path)
