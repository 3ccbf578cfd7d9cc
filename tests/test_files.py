"""Dates in text columns: which format reads a column (train and test together), and parsing."""

from __future__ import annotations

import pandas as pd
import pytest

from pipeline.errors import PipelineError
from pipeline.files import date_format, date_formats, dates_line, parse_dates


def _text(*values: str | None) -> pd.Series:
    return pd.Series(values, dtype="str", name="sold")


@pytest.mark.parametrize(("values", "fmt"), [
    (("2015-07-31", "2015-08-01"), "%Y-%m-%d"),
    (("2015/07/31",), "%Y/%m/%d"),
    (("07/31/2015", "01/02/2015"), "%m/%d/%Y"),
    (("31/07/2015", "01/02/2015"), "%d/%m/%Y"),
    (("31.07.2015", None), "%d.%m.%Y"),
    (("2015-07-31 13:45",), "%Y-%m-%d %H:%M"),
    (("2015-07-31 13:45:30",), "%Y-%m-%d %H:%M:%S"),
    (("2015-07-31T13:45:30",), "%Y-%m-%dT%H:%M:%S"),
    (("2015-07-31 13:45", "2015-07-31", "2016-03-14T17:24:55Z"), "ISO8601"),  # mixed
    (("07/31/2015 1:45 PM",), "%m/%d/%Y %I:%M %p"),
    (("31 Jul 2015",), "%d %b %Y"),
    (("Jul 31, 2015",), "%b %d, %Y"),
    (("July 31 2015", "May 1 2015"), "%B %d %Y"),
    (("2015-Jul-31",), "%Y-%b-%d"),
    (("01/01/2015", "02/02/2015"), "%m/%d/%Y"),  # both ways the same dates: not ambiguous
])
def test_one_format_reads_the_column(values, fmt):
    assert date_formats(_text(*values)) == (fmt,)
    assert date_format(_text(*values), file="train.csv") == fmt
    assert parse_dates(_text(*values), fmt).notna().sum() == sum(v is not None for v in values)


@pytest.mark.parametrize("values", [
    ("20150731", "20150801"), ("red", "blue"), ("2015-07-31", "soon"), ("2015",), ("31/31/2015",),
])
def test_not_dates(values):
    assert date_formats(_text(*values)) == ()
    assert date_format(_text(*values), file="train.csv") is None


def test_numbers_are_never_dates_unless_a_format_says_so():
    assert date_formats(pd.Series([20150731, 20150801])) == ()
    t = parse_dates(pd.Series([20150731.0, None]), "%Y%m%d")  # a gap made them floats
    assert t.iloc[0] == pd.Timestamp("2015-07-31") and pd.isna(t.iloc[1])


def test_train_and_test_decide_together_and_ambiguity_names_the_file():
    both_ways = _text("01/02/2015", "03/04/2015")
    assert date_formats(both_ways) == ("%m/%d/%Y", "%d/%m/%Y")  # month-first first, as pandas
    assert date_formats(both_ways, _text("13/07/2015")) == ("%d/%m/%Y",)
    assert date_formats(both_ways, _text("07/13/2015")) == ("%m/%d/%Y",)
    with pytest.raises(PipelineError, match=(
            r"^data/x/train\.csv: column 'sold' holds dates that read as %m/%d/%Y and as "
            r"%d/%m/%Y .*\[competition\] dates = \{ sold = \"%d/%m/%Y\" \}")):
        date_format(both_ways, file="data/x/train.csv")


def test_parse_dates_zones_to_utc_and_unreadable_values_to_nat():
    t = parse_dates(_text("2016-03-14T17:24:55+01:00", "2016-03-14", "20160314", None), "ISO8601")
    assert t.iloc[0] == pd.Timestamp("2016-03-14 16:24:55") and t.iloc[1] == pd.Timestamp(
        "2016-03-14")
    assert t.iloc[2:].isna().all()  # pandas' ISO reader would take 20160314: a number
    assert parse_dates(_text(" 31/07/2015 ", "07/31/2015"), "%d/%m/%Y").isna().tolist() == [
        False, True]


def test_dates_line_is_toml():
    import tomllib

    line = dates_line({"sold": "%d/%m/%Y", "sale date": "%Y-%m-%d"})
    assert line == 'dates = { sold = "%d/%m/%Y", "sale date" = "%Y-%m-%d" }'
    assert tomllib.loads(line)["dates"] == {"sold": "%d/%m/%Y", "sale date": "%Y-%m-%d"}


# --- faults in any competition CSV (issue #23) ---------------------------------------------


@pytest.mark.parametrize("cell", ["inf", "1e400", "-inf"])
def test_an_infinite_number_names_file_row_and_column(tmp_path, cell):
    from pipeline.files import read_csv

    path = tmp_path / "train.csv"
    path.write_text(f"id,a,b\n1,0.5,2\n2,0.7,3\n3,0.1,{cell}\n", encoding="utf-8")
    with pytest.raises(PipelineError, match=r"train.csv: row 3 \(line 4\), column 'b' holds "
                       r"-?inf; expected a finite number"):
        read_csv(path, id_col="id")


@pytest.mark.parametrize(("sep", "name"), [(";", "semicolon"), ("\t", "tab")])
def test_another_delimiter_is_named(tmp_path, sep, name):
    from pipeline.files import read_csv

    path = tmp_path / "train.csv"
    path.write_text(sep.join(["id", "a", "y"]) + "\n" + sep.join(["1", "0,5", "1"]) + "\n",
                    encoding="utf-8")
    with pytest.raises(PipelineError, match=f"train.csv: {name}-delimited"):
        read_csv(path, id_col="id")
