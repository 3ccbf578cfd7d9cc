"""`pipeline init`: infer an experiment file from a Kaggle-layout competition folder."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError
from pipeline.experiment import (
    EXPERIMENTS_DIR,
    MAX_LEVELS,
    ONE_HOT_MAX,
    Experiment,
    check_name,
    metric_fit,
    model_lines,
    parse,
    toml_value,
)
from pipeline.files import (
    DATE_PARTS,
    date_formats,
    dates_line,
    past_end,
    read_csv,
    write_text_atomic,
)
from pipeline.metrics import metrics_for

MAX_CLASSES = 20  # integer targets with at most this many values are labels, not numbers
FOLDS = 5
# Training rows from which init turns on multi-fidelity tuning (README "Multi-fidelity
# tuning"): trials on a subsample first, Hyperband on the epochs, 3 folds, one bagging seed,
# bigger batches.
BIG_DATA = 100_000
BIG_FOLDS = 3  # 3 fits on 2/3 of the rows per trial instead of 5 on 4/5: half the cost
SUBSAMPLE_ROWS = 50_000  # rows a trial starts on (a share of at least 5%, at most 50%)
# From here a trial on all rows costs minutes (~6 at 1M rows on 2 cores): half as many promoted
HUGE_DATA = 500_000
FREE_TEXT_NAMES = {"name", "ticket", "description", "text", "comment", "url", "email", "address"}


def init_experiment(
    data_dir: Path, *, name: str | None = None, force: bool = False,
    check: Callable[[Experiment], object] | None = None,
) -> Path:
    """Write experiments/<name>.toml for a Kaggle-layout folder by inference; return its path.

    `check(experiment)` runs before anything is written: the CLI passes the submission
    format's loader (a stage above this module in the import order).
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise PipelineError(
            f"{data_dir}: not a folder (expected train.csv, test.csv, sample_submission.csv)"
        )
    name = check_name(name) if name is not None else check_name(  # the same rule for both
        data_dir.resolve().name, f"{data_dir}: folder name (use --name)")
    path = EXPERIMENTS_DIR / f"{name}.toml"
    if path.exists() and not force:
        raise PipelineError(f"{path}: already exists (use --force to overwrite it)")

    sample = read_csv(data_dir / "sample_submission.csv")
    id_col = str(sample.columns[0])
    train = read_csv(data_dir / "train.csv", id_col=id_col)
    test = read_csv(data_dir / "test.csv", id_col=id_col)
    if id_col not in test.columns:
        raise PipelineError(
            f"{data_dir / 'test.csv'}: no id column {id_col!r} "
            "(the first column of sample_submission.csv)"
        )
    # Many competitions keep the id in test.csv and the sample only; prepare numbers the rows.
    notes = [] if id_col in train.columns else [
        f"train.csv has no id column: rows are numbered ({id_col!r} is in test.csv and the sample)"]
    target = _infer_target(data_dir, sample, train, test, id_col)
    _require_targets(data_dir / "train.csv", train, target)
    if isinstance(target, list):
        task, why_task, metric, why_metric = _infer_targets(data_dir, train, target)
        folds = FOLDS
    else:
        task, why_task = _infer_task(data_dir, train[target], target, sample)
        metric, why_metric = _infer_metric(data_dir, task, target, sample)
        folds = _folds(train[target], task)
    targets = target if isinstance(target, list) else [target]
    drop = _infer_drop(train, test, id_col, targets)
    dates = {str(c): found for c in train.columns if c not in (id_col, *targets, *drop)
             and (found := date_formats(train[c], test[c]))}
    embedded = _embedded(train, (id_col, *targets, *drop, *dates))
    later = _test_later(train, test, dates)
    dates = dict(sorted(dates.items(), key=lambda kv: kv[0] not in later))  # [cv] names it
    notes += [f"{c}: {n} levels (> one_hot_max = {ONE_HOT_MAX}): the network learns a "
              "vector per level" for c, n in embedded.items()]
    notes += _text_by_one_cell(train, [c for c in train.columns  # dropped ones too: typos
                                       if c not in (id_col, *targets, *dates)])

    text = _render(data_dir, id_col, target, task, metric, drop, len(train), why_task, why_metric,
                   dates, _big_folds(folds, len(train)), notes, name, bool(embedded), later)
    # What we write must load, and its sample must fit test.csv and the classes: found now,
    # not after a whole study has been tuned for a submission that cannot be written.
    exp = parse(tomllib.loads(text), path)
    if check is not None:
        check(exp)
    write_text_atomic(path, text)
    return path


def _require_targets(file: Path, train: Any, target: str | list[str]) -> None:
    """Every row needs its target (prepare refuses a gap): found at init, not after it."""
    for col in [target] if isinstance(target, str) else target:
        gaps = train[col].isna().to_numpy().nonzero()[0]
        if len(gaps):
            lines = ", ".join(str(i + 2) for i in gaps[:5]) + (" ..." if len(gaps) > 5 else "")
            raise PipelineError(f"{file}: target {col!r} has {len(gaps)} missing value(s) "
                                f"(lines {lines}); expected a value in every row")


def _text_by_one_cell(train: Any, columns: list[Any]) -> list[str]:
    """Columns read as text because of a few cells that are not numbers (a typo more often
    than a feature): each named with its first such cell, for init's comments."""
    import pandas as pd

    notes = []
    for col in columns:
        cells = train[col]
        if pd.api.types.is_numeric_dtype(cells) or pd.api.types.is_bool_dtype(cells):
            continue
        present = cells.notna()
        words = present & pd.to_numeric(cells, errors="coerce").isna()
        if 0 < words.sum() <= max(1, present.sum() // 100) and words.sum() < present.sum():
            row, more = int(words.to_numpy().nonzero()[0][0]), int(words.sum()) - 1
            notes.append(f"{col}: read as text only because of {cells.iloc[row]!r} (line "
                         f"{row + 2}){f' and {more} other cell(s)' if more else ''}; every "
                         "other value is a number: fix that if it is a number column")
    return notes


def _infer_target(
    data_dir: Path, sample: Any, train: Any, test: Any, id_col: str
) -> str | list[str]:
    columns = [str(c) for c in sample.columns[1:]]
    if len(columns) == 1 and columns[0] in train.columns:
        return columns[0]
    # Several sample columns that are train.csv columns test.csv lacks: several targets.
    if len(columns) > 1 and all(c in train.columns and c not in test.columns for c in columns):
        return columns
    # Several sample columns (per-class probabilities): the train column test lacks.
    only_train = [str(c) for c in train.columns if c not in test.columns and c != id_col]
    if len(only_train) == 1:
        return only_train[0]
    raise PipelineError(
        f"{data_dir / 'sample_submission.csv'}: cannot tell the target column: sample columns "
        f"{columns}, train.csv columns missing from test.csv {only_train} (expected exactly one)"
    )


def _infer_task(data_dir: Path, y: Any, target: str, sample: Any) -> tuple[str, str]:
    import pandas as pd

    values = y.dropna()
    n = values.nunique()
    if n < 2:
        raise PipelineError(
            f"{data_dir / 'train.csv'}: target {target!r} has {n} distinct value(s) "
            "(expected at least 2)"
        )
    if n == 2:
        return "binary", f"2 distinct values {sorted(values.unique().tolist(), key=str)}"
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if not numeric:
        return "multiclass", f"{n} text labels"
    if sample.shape[1] > 2:  # one probability column per class: labels, however many
        return "multiclass", f"{n} integer labels, one sample column each"
    if (k := _listed(data_dir, sample)) > 1:
        return "multiclass", f"{n} integer labels, {k} of them listed per sample row"
    integral = bool((values == values.round()).all())
    if integral and n <= MAX_CLASSES:
        # A sample value that is no label (a mean like 5.5, a 0 for labels 1..10) is a guess
        # of a number: a score to predict, not a class.
        guesses = _spelled(data_dir / "sample_submission.csv", str(sample.columns[1]))
        if not guesses.keys() <= _spelled(data_dir / "train.csv", target).keys():
            shown = sorted(guesses.values())[:3]
            return "regression", f"{n} distinct integers and the sample holds {shown}, not labels"
        return "multiclass", f"{n} integer labels"
    return "regression", f"{n} distinct numbers"


def _spelled(file: Path, column: str) -> dict[Any, str]:
    """A column's distinct values -> how the file spells them; numbers are keyed as floats, so
    '1', '1.0' and '1.00' are one value."""
    values: dict[Any, str] = {}
    for v in read_csv(file, str_cols=(column,), only=(column,))[column].dropna().unique():
        try:
            key: Any = float(v)
        except ValueError:
            key = str(v).strip()
        values.setdefault(key, str(v))
    return values


def _listed(data_dir: Path, sample: Any) -> int:
    """k when the sample's one value column lists k space-separated labels per row (MAP@k)."""
    if sample.shape[1] != 2:
        return 0
    column = str(sample.columns[1])
    cells = read_csv(data_dir / "sample_submission.csv", str_cols=(column,), only=(column,))
    counts = cells[column].dropna().astype(str).str.split().str.len()
    return int(counts.max()) if len(counts) and counts.min() > 1 else 0


def _infer_targets(data_dir: Path, train: Any, targets: list[str]) -> tuple[str, str, str, str]:
    """(task, why, metric, why) for several target columns: binary when every one holds only
    0 and 1, else regression."""
    import pandas as pd

    for t in targets:
        if not pd.api.types.is_numeric_dtype(train[t]) and not pd.api.types.is_bool_dtype(
                train[t]):
            raise PipelineError(f"{data_dir / 'train.csv'}: target {t!r} holds text; several "
                                "targets must be numbers (0/1 for binary)")
    n = len(targets)
    if all(set(train[t].dropna().astype(float).unique()) <= {0.0, 1.0} for t in targets):
        return ("binary", "hold only 0 / 1",
                "mean_roc_auc", f"the sample holds one probability column per target ({n})")
    return "regression", "hold numbers", "rmse", f"regression with {n} targets"


def _infer_metric(data_dir: Path, task: str, target: str, sample: Any) -> tuple[str, str]:
    if task == "regression":
        return "rmse", "regression"
    if task == "multiclass":
        if (k := _listed(data_dir, sample)) > 1:
            return f"map@{k}", f"the sample lists {k} space-separated labels per row"
        if sample.shape[1] > 2:
            return "log_loss", "the sample has one probability column per class"
        return "accuracy", "the sample holds one label per row"
    # Binary: compare the values the files spell, so '0.5' reads as a probability and '0' /
    # 'no' as labels; '0' is the label a train.csv spelling '0.0' / '1.0' has too.
    if target not in sample.columns:  # per-class columns for a binary target
        return "roc_auc", "the sample holds scores / probabilities"
    sample_values = _spelled(data_dir / "sample_submission.csv", target)
    if sample_values and sample_values.keys() <= _spelled(data_dir / "train.csv", target).keys():
        why = f"the sample holds labels {sorted(sample_values.values())}"
        if len(sample_values) == 1:  # all 0: labels, or a placeholder of an AUC contest
            why += ("; only one value, which AUC contests use as a placeholder too: if the "
                    'competition scores probabilities, set metric = "roc_auc"')
        return "accuracy", why
    return "roc_auc", "the sample holds scores / probabilities"


def _folds(y: Any, task: str) -> int:
    """FOLDS, or fewer when the rarest class has fewer rows (stratified folds need one each)."""
    if task == "regression":
        return FOLDS
    return max(2, min(FOLDS, int(y.value_counts().min())))


def _folds_note(folds: int, n_rows: int) -> str:
    if n_rows >= BIG_DATA and folds == BIG_FOLDS:
        return f"  # {BIG_FOLDS} from {BIG_DATA:,} rows: each fold validates on a third"
    return "  # the rarest class has only this many rows" if folds < FOLDS else ""


def _big_folds(folds: int, n_rows: int) -> int:
    """BIG_FOLDS from BIG_DATA rows (never more than the classes allow)."""
    return min(folds, BIG_FOLDS) if n_rows >= BIG_DATA else folds


def _tune_toml(n_rows: int) -> str:
    """[tune]'s pruner and row fidelity: multi-fidelity from BIG_DATA training rows."""
    if n_rows < BIG_DATA:
        return ('pruner = "median"\n'
                f"# From {BIG_DATA:,} training rows init writes pruner = \"hyperband\", subsample "
                "and promote\n# (README \"Multi-fidelity tuning\").")
    share = round(min(0.5, max(0.05, SUBSAMPLE_ROWS / n_rows)), 2)
    promote = 0.1 if n_rows >= HUGE_DATA else 0.2
    return f"""\
# Multi-fidelity tuning, on from {BIG_DATA:,} training rows (README "Multi-fidelity tuning"):
# Optuna's Hyperband stops fold 0's epoch curve early ("median" / "halving" / "none" also
# work); each trial first cross-validates on `subsample` of the rows ({round(share * n_rows):,}),
# and only those in the best `promote` share so far go on to all rows: one fold first, the
# other folds if that fold ranks in the best `promote` share too. The others end pruned: submit
# only picks a trial scored on all rows (promote 0.1 from {HUGE_DATA:,} rows, where a fold on
# all rows costs minutes). subsample = 1.0 turns it off.
pruner = "hyperband"
subsample = {share}
promote = {promote}"""


def _infer_drop(train: Any, test: Any, id_col: str, targets: list[str]) -> dict[str, str]:
    """Columns a network cannot use as they are -> the reason, for a TOML comment."""
    import pandas as pd

    drop: dict[str, str] = {}
    for col in train.columns:
        if col in (id_col, *targets):
            continue
        if col not in test.columns:
            drop[str(col)] = "not in test.csv"
            continue
        values = train[col].dropna()
        if pd.api.types.is_numeric_dtype(values) or values.empty:
            continue
        if date_formats(values, test[col]):
            continue  # dates (one format in train and test): prepare turns them into numbers
        # Categorical columns are kept up to MAX_LEVELS (10,000) levels: more than one_hot_max
        # are embedded. Nearly unique text (an id, free text) teaches an embedding nothing.
        n, rows = values.nunique(), len(values)
        if n >= 10 and n > 0.5 * rows:
            drop[str(col)] = f"free text / an id: {n} distinct values in {rows} rows"
        elif n > MAX_LEVELS:
            drop[str(col)] = f"{n} levels, more than {MAX_LEVELS:,} (the most init keeps)"
        elif str(col).lower() in FREE_TEXT_NAMES and n > 50:
            drop[str(col)] = f"looks like free text: {n} distinct values"
    return drop


def _embedded(train: Any, left_out: tuple[str, ...]) -> dict[str, int]:
    """Kept text columns with more than one_hot_max levels -> levels: prepare embeds them."""
    import pandas as pd

    return {str(c): n for c in train.columns if c not in left_out
            and not pd.api.types.is_numeric_dtype(train[c])
            and (n := train[c].nunique(dropna=False)) > ONE_HOT_MAX}


SMALL_DATA = 2_000  # rows: below this, small networks with strong regularisation


def network_setup(n_rows: int, metric: str = "",
                  embedded: bool = False) -> tuple[dict[str, Any], str]:
    """([model] defaults, [tune.space] lines) for a competition of this size and metric
    (`embedded`: it has categorical columns the network embeds).

    Measured on adult (benchmarks/bench_tabular.py; README "Measured"): ReLU MLPs with periodic
    embeddings of the continuous columns (initial frequency scale ~10 on standardised inputs)
    and early stopping on the validation loss win; PLE with tree bins comes next. Every study
    also measures the linear model (n_layers = 0), enqueued as its first trial.
    """
    small = n_rows < SMALL_DATA
    big = n_rows >= 20_000
    huge = n_rows >= BIG_DATA  # bigger batches: fewer, cheaper steps per epoch
    model = {
        "hidden_layer_sizes": [64],  # one layer of 64 won on adult, and is the cheapest
        "activation": "relu",
        "numeric_encoding": "none" if small else "periodic",
        "periodic_scale": 10.0,
        "dropout": 0.1,
        "learning_rate_init": 0.003 if small else 0.001,
        "alpha": 0.0001,
        "batch_size": 32 if small else (512 if huge else 256 if big else 128),
        "max_iter": 300 if small else 100,
        "early_stopping": True,
        "early_stopping_metric": "loss",
        "validation_fraction": 0.15 if small else 0.1,
        "n_iter_no_change": 20 if small else (5 if big else 10),
        **metric_fit(metric),
        **({"categorical_dim": 8} if embedded else {}),
    }
    r = _range
    space = [
        ("n_layers", r(0, 2), "0 is logistic / softmax / linear regression, always measured"),
        ("units", r(8, 128, log=True) if small else r(32, 256, log=True), "units per layer"),
        ("numeric_encoding", '["none", "ple", "periodic"]' if small
         else '["periodic", "ple", "none"]', "how continuous columns enter the network"),
        ("periodic_scale", r(2.0, 50.0, log=True), "periodic: frequency spread (~10 won)"),
        ("learning_rate_init", r(0.001, 0.01, log=True) if small else r(0.0003, 0.003, log=True),
         "Adam's step size"),
        ("alpha", r(1e-5, 0.1, log=True) if small else r(1e-6, 0.001, log=True),
         "L2 penalty" + (": small data needs strong regularisation" if small else "")),
        ("dropout", r(0.0, 0.3), "share of hidden units dropped per step"),
        ("batch_size", "[16, 32, 64]" if small else ("[256, 512, 1024]" if huge else
                                                     "[128, 256, 512]" if big
                                                     else "[64, 128, 256]"), "rows per step"),
    ]
    if small:
        space.insert(2, ("activation", '["relu", "sigmoid", "tanh"]', "hidden units"))
    if embedded:
        space.append(("categorical_dim", "[4, 8, 16]", "units per level of embedded columns"))
    width = max(len(f"{k} = {v}") for k, v, _ in space)
    lines = "".join(f"{f'{k} = {v}':<{width}}  # {why}\n" for k, v, why in space)
    return model, lines


def _alternatives(task: str, metric: str, multi_target: bool = False) -> str:
    """A comment naming the task's other metrics, so a wrong guess is one edit away."""
    others = [m.replace("map@3", "map@k") for m in metrics_for(task, multi_target=multi_target)
              if m != metric and not (m.startswith("map@") and metric.startswith("map@"))]
    return f"  # or: {', '.join(others)}" if others else ""


def _date_notes(dates: dict[str, tuple[str, ...]], later: dict[str, tuple]) -> list[str]:
    """init's reasons for each date column: how it is read, or the choice the user must make;
    and whether test.csv lies after train.csv on it."""
    parts = ", ".join((*DATE_PARTS, "hour"))
    notes = []
    for col, found in dates.items():
        if len(found) > 1:
            notes.append(f"date {col}: every value reads as {found[0]} and as {found[1]}; "
                         "uncomment `dates` in the file with the right one (prepare stops "
                         "until then)")
        else:
            notes.append(f"date {col}: used as numbers ({parts} where times vary), "
                         f"read as {found[0]}")
        if col in later:
            notes.append(f"date {col}: test.csv starts after train.csv ends ({later[col][0]} < "
                         f'{later[col][1]}): consider [cv] kind = "time" below')
    return notes


def _test_later(train: Any, test: Any, dates: dict[str, tuple[str, ...]]) -> dict[str, tuple]:
    """(train.csv's last, test.csv's first) of each date column (one format) whose test
    values all come after its training values: a test set from the future."""
    return {col: ends for col, found in dates.items()
            if len(found) == 1 and (ends := past_end(train[col], test[col], found[0]))}


def _dates_toml(dates: dict[str, tuple[str, ...]]) -> str:
    """[competition] dates, the guesses commented out: prepare finds a format the data decides
    itself; an ambiguous column (01/02/2015) is never guessed silently, so prepare stops with
    one line until the user uncomments the right format."""
    if not dates:
        return ""
    guessed = {c: found[0] for c, found in dates.items() if len(found) == 1}
    ambiguous = {c: found for c, found in dates.items() if len(found) > 1}
    text = "# Date columns -> strptime format (prepare finds a format the data decides).\n"
    if guessed:
        text += f"# {dates_line(guessed)}  # guessed from the data; uncomment to pin it\n"
    for col, found in ambiguous.items():
        text += (f"# {dates_line({col: found[0]})}  # CHECK: {col} reads as {found[0]} and "
                 f"as {found[1]}: uncomment with the right one\n")
    return text


def _shown(target: str | list[str], why: str) -> str:
    if isinstance(target, str):
        return f"target {target!r} has {why}"
    return f"targets {', '.join(map(repr, target))} {why}"


def _range(low: float, high: float, log: bool = False) -> str:
    return f"{{ low = {low!r}, high = {high!r}{', log = true' if log else ''} }}"


def _q(s: str) -> str:
    """A TOML basic string (JSON's escapes are valid TOML)."""
    import json

    return json.dumps(s, ensure_ascii=False)


def _cv_kind(task: str, several: bool, dates: dict[str, Any]) -> str:
    """[cv] kind for the task, and the alternatives as comments (a date column named)."""
    kind = "kfold" if task == "regression" or several else "stratified"
    when = _q(next(iter(dates))) if dates else '"<column>"'
    return (f"kind = {_q(kind)}\n"
            '# kind = "group"; group = "<column>"  keeps a group\'s rows in one fold\n'
            f'# kind = "time"; time = {when}  validates on later rows only')


def _render(
    data_dir: Path,
    id_col: str,
    target: str | list[str],
    task: str,
    metric: str,
    drop: dict[str, str],
    n_rows: int,
    why_task: str,
    why_metric: str,
    dates: dict[str, tuple[str, ...]],
    folds: int,
    notes: list[str],
    name: str,
    embedded: bool = False,
    later: dict[str, tuple] | None = None,
) -> str:
    model, space = network_setup(n_rows, metric, embedded)
    seeds = 5 if n_rows < SMALL_DATA else (3 if n_rows < BIG_DATA else 1)
    reasons = "".join(f"#   {line}\n" for line in (*notes, *_date_notes(dates, later or {})))
    drop_lines = "".join(f"    {_q(c)},  # {why}\n" for c, why in drop.items())
    drop_toml = f"drop = [\n{drop_lines}]" if drop else "drop = []"
    return f"""\
# Written by `pipeline init {data_dir}`: inferred, so check it before tuning.
#   task {task}: {_shown(target, why_task)}
#   metric {metric}: {why_metric}
{reasons}
[competition]
data_dir = {_q(str(data_dir))}
id = {_q(id_col)}
target = {toml_value(target)}
task = {_q(task)}
metric = {_q(metric)}{_alternatives(task, metric, isinstance(target, list))}
# The competition's slug (kaggle.com/c/<slug>) for the printed upload command: a guess from
# the folder's name.
kaggle = {_q(data_dir.resolve().name)}
# Columns left out of the features.
{drop_toml}
# Numeric columns to treat as categories instead of scaling (text columns always are).
categorical = []
# Categorical columns with up to this many levels are one-hot encoded; with more, the network
# learns a vector per level (README "Categorical columns"; at most {MAX_LEVELS:,}).
one_hot_max = {ONE_HOT_MAX}
{_dates_toml(dates)}# features = "experiments/{name}_features.py"  # see README: Feature code

[model]
# Defaults for `pipeline train`; tuning overrides what [tune.space] names. Every key of the
# network's hyperparameter table may be set (README: "Network parameters").
{model_lines(model)}
[cv]
{_cv_kind(task, isinstance(target, list), dates)}
folds = {folds}{_folds_note(folds, n_rows)}
seed = 42

[tune]
trials = 30
seed = 0
{_tune_toml(n_rows)}
# Fold models kept for the best this many complete trials (trials/): submit and show reuse
# them instead of training again; every complete trial keeps its OOF / test predictions.
keep = 10

[tune.space]
# Sized to {n_rows:,} training rows; a range {{ low, high, log }} or a list of choices.
{space}
[submit]
# Bagging: average the best trial's fold models, trained with {seeds} seed(s) (measured on adult:
# +0.001-0.002 private AUC over one refit; one from {BIG_DATA:,} rows, where each extra seed
# costs a full trial); its CV score is the bag's own out-of-fold score.
refit = false
seeds = {seeds}
"""


