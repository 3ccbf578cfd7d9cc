"""The avocado competition: is this avocado perfectly ripe?

The story comes from a beginner's deep-learning talk: you stand at the market with an avocado in
your hand. You can measure its height, squeeze it (squishiness) and look at its skin. Is it
perfectly ripe? We add what a real data set would carry along (weight, variety, days since
harvest, country of origin) and a few percent of missing values, and generate a Kaggle-layout
folder from a seed: train.csv, test.csv, sample_submission.csv, solution.csv (id, ripe, Usage =
Public / Private, about 30 / 70) and oracle_submission.csv (the true probability of ripeness of
every test row: the best submission possible).

Ground truth (why a linear model cannot get close and a small hidden layer can):

- Every fruit has a hidden ripeness stage: days since harvest divided by its variety's days to
  ripen, times a per-fruit rate. The stage drives squishiness (0 rock hard .. 10 mush) plus
  bruising noise, so some fruit is squishy but still green.
- Ripe means squishiness inside a BAND of about +-1.5 around a variety-dependent centre; fruit
  older than about 12 days must be a little firmer (the centre shifts down). Both band edges are
  sigmoids, so the transition is smooth: too hard and too mushy are both unripe.
- Skin colour is a darkness score in [0, 1]. It darkens with ripeness only for Hass and Gem; for
  them a ripe fruit must also be dark (a sigmoid gate around 0.5). For the other varieties the
  colour says nothing.
- p_true = 0.03 + 0.94 * band * gate: even the oracle is wrong on about 3% of the labels.
  Labels are Bernoulli(p_true) draws from the same seeded generator.
- Distractors: height depends on the variety, weight on height (with slight water loss over the
  days), origin only shifts days since harvest through its typical transit time.

Measured by benchmarks/bench_avocado_baselines.py (seed 0, 8,000 train / 4,000 test rows):
prevalence 0.33; private-split ROC AUC: oracle 0.928, logistic regression (median impute +
indicator, one-hot, scaling) 0.730, scikit-learn MLPClassifier((32,)) 0.917.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.errors import PipelineError
from pipeline.files import atomic_path

ID = "id"
TARGET = "ripe"
FEATURES = (
    "height_cm",
    "squishiness",
    "skin_colour",
    "weight_g",
    "variety",
    "days_since_harvest",
    "origin",
)
CATEGORICAL = ("variety", "origin")
PUBLIC_SHARE = 0.3

# name, share, days to ripen, mean height (cm), squishiness band centre, skin darkens?
VARIETIES = (
    ("Hass", 0.42, 11.0, 9.0, 5.0, True),
    ("Gem", 0.10, 12.0, 8.5, 5.2, True),
    ("Fuerte", 0.14, 9.0, 11.0, 4.4, False),
    ("Reed", 0.12, 14.0, 11.5, 3.8, False),
    ("Bacon", 0.10, 8.0, 10.0, 5.8, False),
    ("Pinkerton", 0.12, 11.0, 12.0, 4.6, False),
)
# name, share, typical transit days (a distractor: it only shifts days_since_harvest)
ORIGINS = (
    ("Mexico", 0.34, 3),
    ("Peru", 0.20, 7),
    ("Chile", 0.14, 8),
    ("Spain", 0.12, 2),
    ("Kenya", 0.10, 9),
    ("Israel", 0.10, 5),
)
MISSING = {"weight_g": 0.04, "skin_colour": 0.03, "days_since_harvest": 0.03, "origin": 0.025}

BAND_HALF_WIDTH = 1.5  # squishiness units either side of the centre
BAND_EDGE = 0.30  # sigmoid scale of the band edges
OLD_AFTER_DAYS = 12.0  # older fruit must be firmer ...
OLD_SHIFT = 0.8  # ... by this much squishiness
DARK_GATE = 0.5  # Hass / Gem: ripe only when darker than this
DARK_EDGE = 0.06
FLIP = 0.03  # p_true = FLIP + (1 - 2 FLIP) * band * gate

DECIMALS = {"height_cm": 1, "squishiness": 2, "skin_colour": 3, "weight_g": 1}
ORACLE_DECIMALS = 6

FILES = ("train.csv", "test.csv", "sample_submission.csv", "solution.csv", "oracle_submission.csv")


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _table(rng: np.random.Generator, n: int) -> tuple[pd.DataFrame, np.ndarray]:
    """n rows of complete features (rounded as written) and p_true for each row."""
    columns = zip(*VARIETIES, strict=True)
    names, shares, ripen_days, heights, centres, darkens = map(np.array, columns)
    o_names, o_shares, transit = map(np.array, zip(*ORIGINS, strict=True))
    v = rng.choice(len(VARIETIES), size=n, p=shares / shares.sum())
    o = rng.choice(len(ORIGINS), size=n, p=o_shares / o_shares.sum())

    # days since harvest: transit plus time on the shelf
    days = transit[o] + rng.integers(0, 11, size=n)
    # hidden ripeness stage: 0 green, 1 perfectly ripe, beyond that overripe
    rate = rng.lognormal(0.0, 0.25, size=n)
    stage = days * rate / ripen_days[v]

    height = np.round(heights[v] + rng.normal(0.0, 0.7, size=n), DECIMALS["height_cm"])
    weight = 0.29 * height**3 * (1.0 - 0.004 * days) * rng.lognormal(0.0, 0.07, size=n)

    # squishiness follows the stage; bruising makes some green fruit squishy
    bruise = (rng.random(n) < 0.15) * rng.exponential(2.0, size=n)
    squish = centres[v] * stage + rng.normal(0.0, 0.6, size=n) + bruise
    squish = np.round(np.clip(squish, 0.0, 10.0), DECIMALS["squishiness"])

    # skin darkness: follows the stage for Hass and Gem, says nothing for the others
    dark_dark = _sigmoid((stage - 0.85) / 0.15) + rng.normal(0.0, 0.08, size=n)
    dark_other = rng.beta(2.0, 5.0, size=n)
    colour = np.where(darkens[v].astype(bool), dark_dark, dark_other)
    colour = np.round(np.clip(colour, 0.0, 1.0), DECIMALS["skin_colour"])

    # ground truth from the features as written
    centre = centres[v] - OLD_SHIFT * _sigmoid((days - OLD_AFTER_DAYS) / 1.0)
    band = _sigmoid((squish - (centre - BAND_HALF_WIDTH)) / BAND_EDGE) * _sigmoid(
        ((centre + BAND_HALF_WIDTH) - squish) / BAND_EDGE
    )
    gate = np.where(darkens[v].astype(bool), _sigmoid((colour - DARK_GATE) / DARK_EDGE), 1.0)
    p_true = np.round(FLIP + (1.0 - 2.0 * FLIP) * band * gate, ORACLE_DECIMALS)

    frame = pd.DataFrame({
        "height_cm": height,
        "squishiness": squish,
        "skin_colour": colour,
        "weight_g": np.round(weight, DECIMALS["weight_g"]),
        "variety": names[v].astype(object),
        "days_since_harvest": pd.array(days, dtype="Int64"),
        "origin": o_names[o].astype(object),
    })
    return frame, p_true


def _write_atomic(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, lineterminator="\n")


def generate(
    out_dir: Path, *, seed: int = 0, rows: int = 8000, test_rows: int | None = None
) -> list[Path]:
    """Write the avocado competition into out_dir; the same seed gives the same bytes."""
    if test_rows is None:
        test_rows = rows // 2
    if rows < 10 or test_rows < 10:
        raise PipelineError(
            f"avocado needs at least 10 train and 10 test rows, not {rows}/{test_rows}"
        )
    rng = np.random.default_rng(seed)
    n = rows + test_rows
    features, p_true = _table(rng, n)
    labels = (rng.random(n) < p_true).astype(np.int64)
    for column, share in MISSING.items():
        features.loc[rng.random(n) < share, column] = None
    public = rng.random(test_rows) < PUBLIC_SHARE

    ids = np.arange(n, dtype=np.int64)
    table = pd.concat([pd.DataFrame({ID: ids}), features], axis=1)
    train = table.iloc[:rows].assign(**{TARGET: labels[:rows]})
    test = table.iloc[rows:].reset_index(drop=True)
    test_ids = ids[rows:]
    frames = {
        "train.csv": train,
        "test.csv": test,
        "sample_submission.csv": pd.DataFrame({ID: test_ids, TARGET: 0.5}),
        "solution.csv": pd.DataFrame({
            ID: test_ids,
            TARGET: labels[rows:],
            "Usage": np.where(public, "Public", "Private"),
        }),
        "oracle_submission.csv": pd.DataFrame({ID: test_ids, TARGET: p_true[rows:]}),
    }

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in FILES:
        path = out_dir / name
        _write_atomic(frames[name], path)
        written.append(path)
    return written


def baseline(model: Any) -> Any:
    """`model` behind the preprocessing of the baselines quoted above (a scikit-learn pipeline
    on FEATURES): median imputation with missing indicators and scaling for the numbers,
    one-hot for CATEGORICAL."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [c for c in FEATURES if c not in CATEGORICAL]
    prep = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median", add_indicator=True),
                              StandardScaler()), numeric),
        ("cat", make_pipeline(SimpleImputer(strategy="constant", fill_value="missing"),
                              OneHotEncoder(handle_unknown="ignore")), list(CATEGORICAL)),
    ])
    return make_pipeline(prep, model)
