"""Blend: several submissions' out-of-fold and test predictions -> one weighted submission.

Members are our experiments (each by its latest standing ledger row whose file exists: the
`predictions/<stem>.oof.csv` / `.test.csv` that `submit` kept) and outside models: an OOF / test
pair in exactly that layout (`submission.predictions`). Every input must hold the competition's
rows: the training rows the first experiment's folds validate, and test.csv's ids.

Weights: Caruana et al. (2004) greedy ensemble selection with replacement. Each step adds the
member whose addition most improves the competition's metric of the running mean; the weights
are how often each member was picked (the best prefix of STEPS steps). Chosen over non-negative
weights in logit space because the blend stays a weighted mean of metric-form predictions, so
one rule fits every shape we submit (P(positive), class probabilities that still sum to 1,
values, several targets), it climbs the metric itself (AUC, log loss, rmse, map@k) rather than
a surrogate, and the registered model is the same weighted mean of the members' models.

Honest CV: each fold is scored with weights (and a label metric's decision) chosen on the other
folds' rows only, then the mean over folds, like the trials' own scores. The folds are the
first member's `fold` column; a member whose folds disagree is named in a note.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.decision import Decision, apply, best_cuts, choose, fold_scores, kind_for
from pipeline.errors import PipelineError
from pipeline.experiment import EXPERIMENTS_DIR, Experiment, load
from pipeline.files import one_line, write_bytes_atomic
from pipeline.metrics import METRICS
from pipeline.provenance import git_commit
from pipeline.submission import ledger, predictions
from pipeline.submission.format import (
    check,
    decided,
    load_format,
    parse_text,
    to_csv_text,
    to_frame,
)
from pipeline.submission.ledger import MANIFEST, experiment_of

STEPS = 50  # greedy steps: weights in steps of 1/50 at most
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class Member:
    label: str  # `adult (t26)` for ours, the OOF file's name for an outside model
    oof: predictions.Table
    test: predictions.Table
    experiment: Experiment | None = None  # ours only
    row: dict[str, str] | None = None  # ours: the ledger row


@dataclass(frozen=True)
class MemberScore:
    label: str
    weight: float  # on every OOF row (what the test blend uses)
    cv: float  # its own CV on the blend's folds


@dataclass(frozen=True)
class BlendResult:
    name: str
    path: Path
    sha256: str
    cv_score: float  # honest: each fold scored with weights chosen on the other folds
    metric: str
    members: list[MemberScore]
    notes: list[str] = field(default_factory=list)  # folds that disagree, ...
    decision: Decision = field(default_factory=Decision)
    prediction_paths: list[Path] = field(default_factory=list)
    existing: bool = False  # an identical CSV was already in the ledger: nothing written
    registered: Any = None  # registry.Registered, when every member is ours
    not_registered: str = ""  # why not, otherwise


# --- members -------------------------------------------------------------------------------


def ours(name: str) -> Member:
    """An experiment's (or a blend's) latest standing submission whose CSV exists, with its
    predictions."""
    blended = experiment_of(name)  # a blend's own predictions can join, too
    exp = blended or load(name)
    rows = [r for r in ledger.current(ledger.read())
            if r.get("experiment") == exp.name and Path(r["file"]).is_file()]
    if not rows:
        raise PipelineError(f"{ledger.LEDGER}: no standing submission of {exp.name!r}; run "
                            f"`pipeline submit {exp.name}` first")
    row = rows[-1]
    csv_path = Path(row["file"])
    folder = csv_path.parent / "predictions"
    oof = folder / f"{csv_path.stem}.oof.csv"
    test = folder / f"{csv_path.stem}.test.csv"
    for path in (oof, test):
        if not path.is_file():
            raise PipelineError(f"{path}: file not found (the predictions of {csv_path}); run "
                                f"`pipeline submit {exp.name}` again")
    trials = row.get("trials", "").split()
    tag = ("blend" if blended else f"t{trials[0]}" if len(trials) == 1 else
           f"top{len(trials)}" if trials else "?")
    return Member(f"{exp.name} ({tag})", predictions.read(oof, oof=True),
                  predictions.read(test, oof=False), exp, row)


def outside(oof: Path, test: Path) -> Member:
    return Member(Path(oof).name, predictions.read(Path(oof), oof=True),
                  predictions.read(Path(test), oof=False))


def members_of(experiments: list[str], oofs: list[Path], tests: list[Path]) -> list[Member]:
    if not experiments:
        raise PipelineError("a blend needs at least one --from EXP (its competition and folds)")
    if len(oofs) != len(tests):
        raise PipelineError(f"{len(oofs)} --oof file(s) but {len(tests)} --test file(s): "
                            "give them in pairs, in the same order")
    if len(experiments) + len(oofs) < 2:
        raise PipelineError("a blend needs two members at least (--from / --oof + --test)")
    pairs = zip(oofs, tests, strict=True)
    return [*(ours(e) for e in experiments), *(outside(o, t) for o, t in pairs)]


# --- the members against the competition ---------------------------------------------------


def _order(table: predictions.Table, want: np.ndarray, what: str) -> np.ndarray:
    """Indices into `table` giving `want`'s ids in order; missing or extra ids: one line."""
    where = {i: k for k, i in enumerate(table.ids)}
    missing = [i for i in want if i not in where]
    extra = sorted(set(table.ids) - set(want))
    if missing or extra:
        shown = ", ".join(str(i) for i in (missing or extra)[:3])  # plain text, not np.str_
        bad = (f"misses {len(missing)} id(s) of {what} (e.g. {shown})" if missing else
               f"holds {len(extra)} id(s) that are not {what} (e.g. {shown})")
        raise PipelineError(f"{table.path}: {bad}")
    return np.array([where[i] for i in want], dtype=np.int64)


def _check_truth(table: predictions.Table, rows: np.ndarray, y: np.ndarray,
                 classes: tuple | None) -> None:
    """The target cells must be the competition's target for each id."""
    cells = table.truth[rows]
    if classes is not None:
        same = cells == np.asarray([str(c) for c in classes], dtype=object)[y].astype(str)
    else:
        with np.errstate(invalid="ignore"):
            values = np.array([[float(v) if _is_number(v) else np.nan for v in np.atleast_1d(r)]
                               for r in cells]).reshape(y.shape)
        same = np.isclose(values, y, rtol=1e-9, atol=1e-12)
    same = same.reshape(len(rows), -1).all(axis=1)
    if not same.all():
        k = int(np.flatnonzero(~same)[0])
        raise PipelineError(f"{table.path}: target of id {table.ids[rows[k]]!r} is "
                            f"{cells[k]!r}, not the competition's (a different target column?)")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Aligned:
    y: np.ndarray  # validated training rows, prepared order
    rows: np.ndarray  # their positions in prepared.train_ids
    folds: list[np.ndarray]  # positions into `rows` validated by each fold
    fold: np.ndarray  # per validated row
    oof: list[np.ndarray]  # per member, metric form, `rows` order
    test: list[np.ndarray]  # per member, test.csv order
    notes: list[str]


def align(members: list[Member], prepared: Any, exp: Experiment) -> Aligned:
    """Every member's predictions in the competition's row order, checked; the folds."""
    from pipeline import evaluate

    fold_all = predictions.fold_of(len(prepared.y), evaluate.folds(prepared, exp))
    rows = np.flatnonzero(fold_all >= 0)
    want, y = prepared.train_ids[rows], prepared.y[rows]
    first = members[0]
    notes: list[str] = []
    oofs, tests = [], []
    if first.oof.fold is None:
        raise PipelineError(f"{first.oof.path}: no `fold` column (written before submit kept "
                            f"folds); run `pipeline submit {exp.name}` again")
    for m in members:
        other = m.experiment.competition if m.experiment is not None else exp.competition
        if (other.data_dir.resolve(), other.targets) != (exp.competition.data_dir.resolve(),
                                                         exp.competition.targets):
            raise PipelineError(f"{m.label}: predicts {', '.join(other.targets)} of "
                                f"{other.data_dir}, not {', '.join(exp.competition.targets)} of "
                                f"{exp.competition.data_dir}: a blend combines one "
                                "competition's submissions")
        if m.oof.columns != first.oof.columns or (predictions.truth_columns(m.oof.header) !=
                                                  predictions.truth_columns(first.oof.header)):
            raise PipelineError(f"{m.oof.path}: header {list(m.oof.header)}, expected "
                                f"{list(first.oof.header)} (`fold` optional)")
        if m.test.columns != first.oof.columns:
            raise PipelineError(f"{m.test.path}: header {list(m.test.header)}, expected "
                                f"{['id', *first.oof.columns]}")
        at = _order(m.oof, want, f"{exp.name}'s validated training rows")
        _check_truth(m.oof, at, y, prepared.classes)
        oofs.append(m.oof.pred[at])
        tests.append(m.test.pred[_order(m.test, prepared.test_ids, "test.csv's ids")])
        if m is first:
            fold = m.oof.fold[at]
        elif m.oof.fold is not None and not _same_partition(m.oof.fold[at], fold):
            notes.append(f"folds of {m.label} differ from {first.label}'s: the blend uses "
                         f"{first.label}'s")
    folds = [np.flatnonzero(fold == f) for f in np.unique(fold)]
    return Aligned(y, rows, folds, fold, oofs, tests, notes)


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """The same folds, whatever their numbering."""
    pairs = set(zip(a.tolist(), b.tolist(), strict=True))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


# --- weights and the honest score ----------------------------------------------------------


def select(metric: str, y: np.ndarray, preds: list[np.ndarray], steps: int = STEPS) -> np.ndarray:
    """Caruana's greedy selection with replacement: weights (summing to 1) per member. The
    first step picks the best single member; ties go to the earlier member and the shorter
    prefix."""
    m = METRICS[metric]
    sign = 1.0 if m.direction == "maximize" else -1.0
    counts = np.zeros(len(preds), dtype=np.int64)
    total = np.zeros_like(preds[0], dtype=np.float64)
    best, kept = -math.inf, counts
    for step in range(1, steps + 1):
        scores = [sign * m(y, (total + p) / step) for p in preds]
        j = int(np.nanargmax(scores))
        counts = counts.copy()
        counts[j] += 1
        total = total + preds[j]
        if scores[j] > best + 1e-12:
            best, kept = scores[j], counts
    return kept / kept.sum()


def mix(preds: list[np.ndarray], weights: np.ndarray) -> np.ndarray:
    return np.tensordot(weights, np.stack(preds), axes=1)


def honest(metric: str, task: str, a: Aligned) -> tuple[float, bool]:
    """(CV score, decided?): each fold scored with weights fitted on the other folds; a label
    metric also with the decision chosen on the other folds' blend, kept when those decided
    scores beat the plain rule on average (as `decision.decide` keeps it)."""
    m = METRICS[metric]
    decides = kind_for(metric, task) != "none"
    plain, decided_scores = [], []
    for va in a.folds:
        rest = np.ones(len(a.y), dtype=bool)
        rest[va] = False
        w = select(metric, a.y[rest], [p[rest] for p in a.oof])
        blend = mix(a.oof, w)
        plain.append(m(a.y[va], blend[va]))
        if decides:
            d = choose(metric, task, a.y[rest], blend[rest])
            decided_scores.append(m(a.y[va], apply(d, blend[va])))
    if decides and float(np.mean(decided_scores)) > float(np.mean(plain)) + 1e-12:
        return float(np.mean(decided_scores)), True
    return float(np.mean(plain)), False


def final_decision(metric: str, task: str, y: np.ndarray, oof: np.ndarray,
                   decides: bool) -> Decision:
    """The decision applied to the test blend, chosen on every OOF row of the blend."""
    if decides:
        return choose(metric, task, y, oof)
    if kind_for(metric, task) == "ordinal_cuts" and task == "regression":  # rounding
        return best_cuts(task, y, oof, search=False)
    return Decision()


# --- the blend -----------------------------------------------------------------------------


def blend(name: str, experiments: list[str], oofs: list[Path], tests: list[Path], *,
          message: str = "", tracking_uri: str | None = None) -> BlendResult:
    """Fit the weights, score them honestly, write the submission, its predictions and a
    ledger row under `name` (every check comes before anything is written)."""
    from pipeline.prepare import prepare

    base = _check_name(name, experiments)
    members = members_of(experiments, oofs, tests)
    comp = base.competition
    fmt = load_format(base)
    prepared = prepare(base)
    a = align(members, prepared, base)
    cv, decides = honest(comp.metric, comp.task, a)
    weights = select(comp.metric, a.y, a.oof)
    oof, test = mix(a.oof, weights), mix(a.test, weights)
    decision = final_decision(comp.metric, comp.task, a.y, oof, decides)
    text = to_csv_text(to_frame(fmt, decided(fmt.kind, decision, test), prepared.test_ids,
                                prepared.classes))
    check(parse_text(text), fmt, f"the blend {name}")  # the exact text that will be written
    scores = [MemberScore(m.label, float(w), float(np.mean(
        fold_scores(comp.metric, comp.task, a.y, p, a.folds))))
        for m, w, p in zip(members, weights, a.oof, strict=True)]
    data = text.encode("utf-8")
    sha = hashlib.sha256(data).hexdigest()
    result = BlendResult(name, Path(), sha, cv, comp.metric, scores, a.notes, decision)
    if (same := ledger.find_sha(sha, name)) is not None:
        return replace(result, path=Path(same["file"]), existing=True)
    full_oof = np.full((len(prepared.y), *oof.shape[1:]), np.nan)
    full_oof[a.rows] = oof
    fold = np.full(len(prepared.y), -1, dtype=np.int64)
    fold[a.rows] = a.fold
    path, written = _target(name, cv), []
    try:
        written += _write_predictions(path, prepared, full_oof, test, fold, base)
        write_bytes_atomic(path, data)
        written.append(path)
        written += _write_manifest(name, base)
        ledger.append({
            "file": path.as_posix(), "sha256": sha, "experiment": name,
            "trials": " + ".join(f"{s.label} x{s.weight:.2f}" for s in scores if s.weight > 0),
            "cv_score": f"{cv:.5f}", "metric": comp.metric, "git_commit": git_commit(),
            "fingerprint": prepared.fingerprint,
            "message": message or f"blend of {', '.join(m.label for m in members)}",
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
        })
    except BaseException:
        for p in written:  # a failed blend leaves no orphan file behind
            p.unlink(missing_ok=True)
        raise
    result = replace(result, path=path, prediction_paths=written[:2])
    return register(replace(base, name=name), members, result, weights, tracking_uri)


# --- the MLflow registry -------------------------------------------------------------------


def model_paths(csv_path: Path) -> list[Path]:
    """A submission's networks as `submit` saved them: <stem>.npz or <stem>.m<i>.npz, i rising."""
    single = csv_path.with_suffix(".npz")
    if single.is_file():
        return [single]
    found = csv_path.parent.glob(f"{csv_path.stem}.m*.npz")
    numbered = [(p, p.name[len(csv_path.stem) + 2:-4]) for p in found]
    return [p for p, i in sorted(numbered, key=lambda t: int(t[1])) if i.isdigit()]


def register(base: Experiment, members: list[Member], result: BlendResult,
             weights: np.ndarray, tracking_uri: str | None) -> BlendResult:
    """Every member ours: the weighted mean of their models as MLflow model `base.name`;
    otherwise `not_registered` says why."""
    from pipeline.prepare import fingerprint

    outside = [m.label for m in members if m.experiment is None or m.row is None]
    if outside:
        return replace(result, not_registered=f"outside member(s) {', '.join(outside)} bring "
                       "predictions only, no model to score new rows")
    parts = []
    for m in members:
        assert m.experiment is not None and m.row is not None
        paths = model_paths(Path(m.row["file"]))
        if not paths:
            return replace(result, not_registered=f"{m.label}: no model file beside "
                           f"{m.row['file']}")
        if fingerprint(m.experiment) != m.row.get("fingerprint"):
            return replace(result, not_registered=f"{m.label} was trained on other data than "
                           f"{m.experiment.name} prepares today (submit it again)")
        parts.append((m.experiment, paths))
    from pipeline.tracking.blend_registry import register_blend

    tags = {"members": " + ".join(f"{s.label} x{s.weight:.2f}" for s in result.members),
            "cv_score": repr(result.cv_score), "metric": result.metric,
            "fingerprint": fingerprint(base), "submission": result.path.name}
    try:
        registered = register_blend(base, parts, [float(w) for w in weights], result.decision,
                                    tags, tracking_uri=tracking_uri)
    except Exception as e:  # the blend is written; a registry hiccup must not undo it
        return replace(result, not_registered=f"MLflow failed ({one_line(e)})")
    return replace(result, registered=registered)


def _check_name(name: str, experiments: list[str]) -> Experiment:
    """The blend's name is its own (not an experiment's); one blend name, one competition."""
    if not NAME.fullmatch(name):
        raise PipelineError(f"blend name {name!r}: letters, digits, '_', '.', '-' only")
    if (EXPERIMENTS_DIR / f"{name}.toml").is_file():
        raise PipelineError(f"{EXPERIMENTS_DIR / f'{name}.toml'} exists: a blend needs a name "
                            "of its own (its ledger rows and submissions/NAME/)")
    if not experiments:
        raise PipelineError("a blend needs at least one --from EXP (its competition and folds)")
    base = experiment_of(experiments[0]) or load(experiments[0])
    known = experiment_of(name)
    if known is not None and known.competition.data_dir != base.competition.data_dir:
        raise PipelineError(f"{ledger.SUBMISSIONS / name / MANIFEST}: blend {name!r} blends "
                            f"{known.competition.data_dir}, not {base.competition.data_dir}; "
                            "choose another name")
    return base


def _write_manifest(name: str, base: Experiment) -> list[Path]:
    manifest = ledger.SUBMISSIONS / name / MANIFEST
    if manifest.is_file():
        return []
    text = json.dumps({"experiment": base.path.as_posix()}, indent=1) + "\n"
    write_bytes_atomic(manifest, text.encode("utf-8"))
    return [manifest]


def _write_predictions(path: Path, prepared: Any, oof: np.ndarray, test: np.ndarray,
                       fold: np.ndarray, base: Experiment) -> list[Path]:
    """predictions/<stem>.oof.csv and .test.csv, the layout of our own: a blend can be blended."""
    comp = base.competition
    targets = comp.targets if comp.multi_target else ()
    out = []
    for kind, text in (
        ("oof", predictions.to_csv(prepared.train_ids, oof, prepared.classes, prepared.y,
                                   targets, fold)),
        ("test", predictions.to_csv(prepared.test_ids, test, prepared.classes,
                                    targets=targets)),
    ):
        target = path.parent / "predictions" / f"{path.stem}.{kind}.csv"
        write_bytes_atomic(target, text.encode("utf-8"))
        out.append(target)
    return out


def _target(name: str, cv: float) -> Path:
    folder = ledger.SUBMISSIONS / name
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    stem = f"{stamp}-blend-cv{cv:.5f}" if math.isfinite(cv) else f"{stamp}-blend-cvnan"
    path, n = folder / f"{stem}.csv", 1
    while path.exists():  # same second: never overwrite
        n += 1
        path = folder / f"{stem}-{n}.csv"
    return path
