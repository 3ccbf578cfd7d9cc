"""A seeded bike-sharing-style competition: hourly rentals with a strong hour-of-week pattern.

None of the pip-shipped data sets (benchmarks/tabular_datasets.py) has a date and hour column,
so this writes one in Kaggle's bike-sharing layout: train.csv holds days 1-19 of each month,
test.csv the rest (Public / Private in solution.csv, about 30 / 70), metric rmsle.

Columns: id, datetime ("2011-01-01 07:00:00"), holiday (0/1), temp, humidity, windspeed,
weather (1 clear .. 3 rain), count (the target). The demand is a rhythm of the week times the
weather: on working days a commute peak at 8:00 and one at 17:30 (16:30 on Fridays, with an
evening out after it), on weekends and holidays a broad afternoon hump (later on Saturdays);
warmth helps, rain, humidity and wind hurt, and the service grows over the year. A holiday
on a weekday rides like a Sunday: what the hour means depends on the kind of day.

    python benchmarks/bike_demand.py --out /tmp/bike      # write the folder, print its path
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

START, DAYS = "2011-01-01", 365
HOLIDAYS = ("2011-01-17", "2011-02-21", "2011-04-15", "2011-05-30", "2011-07-04",
            "2011-09-05", "2011-10-10", "2011-11-11", "2011-11-24", "2011-12-26")
PUBLIC_SHARE = 0.3


def _bump(hour: np.ndarray, at: float, width: float) -> np.ndarray:
    return np.exp(-((hour - at) ** 2) / (2 * width**2))


def rhythm(when: pd.DatetimeIndex, holiday: np.ndarray) -> np.ndarray:
    """Expected rentals by hour of week, before weather and growth."""
    h = when.hour.to_numpy(dtype=float)
    weekday = when.day_of_week.to_numpy()
    friday = weekday == 4
    work = (weekday < 5) & ~holiday
    evening = np.where(friday, 17.0 - 1.0, 17.5)  # Fridays leave an hour early
    commute = (10 + 330 * _bump(h, 8.0, 0.8) + 420 * _bump(h, evening, 1.0)
               + 70 * _bump(h, 12.5, 1.2) + 60 * friday * _bump(h, 21.0, 1.5))
    peak = np.where(weekday == 5, 15.0, 13.0)  # Saturdays later, Sundays and holidays earlier
    leisure = 8 + 260 * _bump(h, peak, 3.0) + 40 * (weekday == 5) * _bump(h, 23.0, 1.5)
    return np.where(work, commute, leisure)


def generate(seed: int = 0) -> pd.DataFrame:
    """Every hour of one year with its features and `count`; the same seed, the same frame."""
    rng = np.random.default_rng(seed)
    when = pd.date_range(START, periods=DAYS * 24, freq="h")
    n = len(when)
    day = (when - when[0]).days.to_numpy()
    holiday = np.isin(when.normalize(), pd.to_datetime(HOLIDAYS))
    season = -np.cos(2 * np.pi * (day - 15) / 365)  # -1 mid-January, +1 mid-July
    daily = -np.cos(2 * np.pi * (when.hour.to_numpy() - 4) / 24)  # coolest before dawn
    temp = 15 + 11 * season + 4 * daily + np.repeat(rng.normal(0, 3, DAYS), 24) \
        + rng.normal(0, 1, n)
    # weather as a slow random walk: spells of rain, not independent hours
    walk = np.cumsum(rng.normal(0, 0.35, n))
    walk -= pd.Series(walk).rolling(24 * 7, min_periods=1, center=True).mean().to_numpy()
    weather = np.digitize(walk + rng.normal(0, 0.3, n), [0.7, 1.6]) + 1  # 1, 2, 3
    humidity = np.clip(55 + 12 * weather - 8 * daily + rng.normal(0, 8, n), 10, 100)
    windspeed = np.abs(rng.normal(12, 6, n))
    warmth = 0.25 + 0.75 / (1 + np.exp(-(temp - 12) / 4)) - 0.004 * np.clip(temp - 28, 0, None)
    mean = (rhythm(when, holiday) * warmth * np.array([1.0, 0.8, 0.35])[weather - 1]
            * (1 - 0.004 * (humidity - 60)) * (1 - 0.006 * windspeed) * (1 + 0.6 * day / DAYS))
    count = rng.poisson(np.clip(mean, 0.5, None) * rng.gamma(20, 1 / 20, n))
    return pd.DataFrame({
        "datetime": when.strftime("%Y-%m-%d %H:%M:%S"),
        "holiday": holiday.astype(int),
        "temp": temp.round(1),
        "humidity": humidity.round(0).astype(int),
        "windspeed": windspeed.round(1),
        "weather": weather,
        "count": count,
    })


def build(out: Path, seed: int = 0) -> Path:
    """Write train.csv (days 1-19), test.csv, sample_submission.csv, solution.csv to `out`."""
    frame = generate(seed)
    frame.insert(0, "id", np.arange(1, len(frame) + 1))
    in_test = pd.to_datetime(frame["datetime"]).dt.day.to_numpy() >= 20
    train, test = frame[~in_test], frame[in_test]
    public = np.random.default_rng(seed + 1).random(len(test)) < PUBLIC_SHARE
    out.mkdir(parents=True, exist_ok=True)
    train.to_csv(out / "train.csv", index=False)
    test.drop(columns="count").to_csv(out / "test.csv", index=False)
    test[["id"]].assign(count=round(float(train["count"].mean()), 1)).to_csv(
        out / "sample_submission.csv", index=False)
    test[["id", "count"]].assign(Usage=np.where(public, "Public", "Private")).to_csv(
        out / "solution.csv", index=False)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="folder to write")
    ap.add_argument("--seed", type=int, default=0)
    print(build(ap.parse_args().out, ap.parse_args().seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
