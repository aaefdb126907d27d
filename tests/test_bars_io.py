"""Tests for msa_lib.bars_io: the bar files people have, read into close-labelled UTC bars, and
bad files failing with the file, the line and the problem."""

from __future__ import annotations

import gzip
import re
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from msa_lib.bars_io import (
    BarFileError,
    MissingDependencyError,
    bar_spacing,
    read_bars,
    write_bars,
)
from msa_lib.data import resample_ohlcv
from msa_lib.datasets import load_dataset

# three minutes of EUR/USD-like prices, used by most files below: open, high, low, close, volume
ROWS = [
    (1.1040, 1.1045, 1.1038, 1.1042, 120.0),
    (1.1042, 1.1047, 1.1041, 1.1046, 95.0),
    (1.1046, 1.1046, 1.1039, 1.1040, 130.0),
]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def utc(*times: str) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(pd.to_datetime(list(times), utc=True), name="time")


def assert_bars(bars: pd.DataFrame, index: pd.DatetimeIndex, rows: list[tuple]) -> None:
    """Exactly these close times (UTC) and these values, in the course's layout."""
    assert list(bars.columns) == ["open", "high", "low", "close", "volume"]
    assert (bars.dtypes == "float64").all()
    assert str(bars.index.tz) == "UTC" and bars.index.name == "time"
    assert bars.index.equals(index), (bars.index, index)
    np.testing.assert_array_equal(bars.to_numpy(), np.array(rows, dtype="float64"))


def read_quietly(path: Path, **kwargs) -> pd.DataFrame:
    """read_bars, failing the test if it warns."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return read_bars(path, **kwargs)


def error_of(path: Path, **kwargs) -> str:
    with pytest.raises(BarFileError) as info:
        read_bars(path, **kwargs)
    message = str(info.value)
    assert str(path) in message  # every error names the file
    return message


# --------------------------------------------------------------------------------------------------
# the layouts people have
# --------------------------------------------------------------------------------------------------
def test_course_csv_round_trips_through_write_bars(tmp_path):
    bars = load_dataset("es_1min")
    before = bars.copy()
    path = write_bars(bars, tmp_path / "sub" / "es.csv.gz")
    assert path == tmp_path / "sub" / "es.csv.gz"
    pd.testing.assert_frame_equal(bars, before)  # not modified
    back = read_quietly(path)
    assert back.index.equals(bars.index)
    np.testing.assert_array_equal(back.to_numpy(), bars.to_numpy())


def test_metatrader_date_and_time_columns_are_combined(tmp_path):
    # HistData / MetaTrader: dates 2024.01.02, times 00:01; read from "Time" alone, these used to
    # become today's date and fail with a misleading "index not sorted"
    lines = ["Date,Time,Open,High,Low,Close,Volume"] + [
        f"2024.01.02,00:0{m + 1},{o},{h},{lo},{c},{v:g}" for m, (o, h, lo, c, v) in enumerate(ROWS)
    ]
    path = write(tmp_path, "EURUSD_M1.csv", "\n".join(lines) + "\n")
    bars = read_quietly(path)
    assert_bars(bars, utc("2024-01-02 00:01", "2024-01-02 00:02", "2024-01-02 00:03"), ROWS)


def test_metatrader_five_tab_file_with_angle_brackets_and_compact_dates(tmp_path):
    text = "<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<VOLUME>\t<SPREAD>\n" + "".join(
        f"20240102\t00{m + 1:02d}00\t{o}\t{h}\t{lo}\t{c}\t{v:g}\t2\n"
        for m, (o, h, lo, c, v) in enumerate(ROWS)
    )
    bars = read_quietly(write(tmp_path, "mt5.csv", text))
    assert_bars(bars, utc("2024-01-02 00:01", "2024-01-02 00:02", "2024-01-02 00:03"), ROWS)


def binance_line(open_ms: int, row: tuple, length_ms: int = 60_000, scale: int = 1) -> str:
    """One line of a Binance kline file; ``scale=1000`` writes microseconds as newer files do."""
    o, h, lo, c, v = row
    close = (open_ms + length_ms) * scale - 1  # Binance: the bar's last millisecond/microsecond
    return (f"{open_ms * scale},{o},{h},{lo},{c},{v:g},{close},{v * c:.4f},42,{v / 2:g},"
            f"{v * c / 2:.4f},0")


JAN2 = 1_704_153_600_000  # 2024-01-02 00:00 UTC in epoch milliseconds


def test_binance_headerless_milliseconds_are_stamped_at_open_plus_bar_length(tmp_path):
    text = "".join(binance_line(JAN2 + 60_000 * i, row) + "\n" for i, row in enumerate(ROWS))
    bars = read_quietly(write(tmp_path, "BTCUSDT-1m-2024-01-02.csv", text))
    # open times 00:00, 00:01, 00:02; each bar became known when it closed, a minute later
    assert_bars(bars, utc("2024-01-02 00:01", "2024-01-02 00:02", "2024-01-02 00:03"), ROWS)


def test_binance_microseconds_hours_zip_and_own_header(tmp_path):
    micro = "".join(binance_line(JAN2 + 60_000 * i, row, scale=1000) + "\n"
                    for i, row in enumerate(ROWS))
    expected = utc("2024-01-02 00:01", "2024-01-02 00:02", "2024-01-02 00:03")
    assert_bars(read_quietly(write(tmp_path, "micro.csv", micro)), expected, ROWS)

    hours = "".join(binance_line(JAN2 + 3_600_000 * i, row, length_ms=3_600_000) + "\n"
                    for i, row in enumerate(ROWS))
    assert_bars(read_quietly(write(tmp_path, "hours.csv", hours)),
                utc("2024-01-02 01:00", "2024-01-02 02:00", "2024-01-02 03:00"), ROWS)

    # a file that joins a millisecond day and a microsecond day: each stamp read by its size
    mixed = (binance_line(JAN2 + 60_000 * 0, ROWS[0]) + "\n"
             + binance_line(JAN2 + 60_000 * 1, ROWS[1], scale=1000) + "\n"
             + binance_line(JAN2 + 60_000 * 2, ROWS[2]) + "\n")
    assert_bars(read_quietly(write(tmp_path, "mixed.csv", mixed)), expected, ROWS)

    # the downloads are zip files of one CSV; futures files carry Binance's own header
    header = ("open_time,open,high,low,close,volume,close_time,quote_volume,count,"
              "taker_buy_volume,taker_buy_quote_volume,ignore\n")
    with zipfile.ZipFile(tmp_path / "BTCUSDT-1m-2024-01-02.zip", "w") as archive:
        archive.writestr("BTCUSDT-1m-2024-01-02.csv", header + micro)
    assert_bars(read_quietly(tmp_path / "BTCUSDT-1m-2024-01-02.zip"), expected, ROWS)
    # their labels are known from the file: time_label="start" does not move them twice
    assert_bars(read_quietly(tmp_path / "BTCUSDT-1m-2024-01-02.zip", time_label="start"),
                expected, ROWS)


def test_semicolon_files_with_points_or_decimal_commas(tmp_path):
    points = "time;open;high;low;close;volume\n" + "".join(
        f"2024-01-02T00:0{m + 1}:00Z;{o};{h};{lo};{c};{v:g}\n" for m, (o, h, lo, c, v) in enumerate(ROWS)
    )
    expected = utc("2024-01-02 00:01", "2024-01-02 00:02", "2024-01-02 00:03")
    assert_bars(read_quietly(write(tmp_path, "points.csv", points)), expected, ROWS)

    # a European spreadsheet export: decimal commas, and the time column last
    commas = "Date;Open;High;Low;Close;Volume;Time\n" + "".join(
        f"2024-01-02;{o};{h};{lo};{c};{v:g};00:0{m + 1}\n".replace(".", ",")
        for m, (o, h, lo, c, v) in enumerate(ROWS)
    )
    assert "1,1045" in commas
    assert_bars(read_quietly(write(tmp_path, "commas.csv", commas)), expected, ROWS)


def test_epoch_seconds_and_offsets_are_read_as_utc(tmp_path):
    seconds = "timestamp,open,high,low,close,volume\n" + "".join(
        f"{JAN2 // 1000 + 60 * (m + 1)},{o},{h},{lo},{c},{v:g}\n"
        for m, (o, h, lo, c, v) in enumerate(ROWS)
    )
    expected = utc("2024-01-02 00:01", "2024-01-02 00:02", "2024-01-02 00:03")
    assert_bars(read_quietly(write(tmp_path, "seconds.csv", seconds)), expected, ROWS)
    offsets = "Datetime,Open,High,Low,Close,Volume\n" + "".join(
        f"2024-01-02 01:0{m + 1}:00+01:00,{o},{h},{lo},{c},{v:g}\n"
        for m, (o, h, lo, c, v) in enumerate(ROWS)
    )
    assert_bars(read_quietly(write(tmp_path, "offsets.csv", offsets)), expected, ROWS)


def test_parquet_round_trip(tmp_path):
    pytest.importorskip("pyarrow")
    bars = load_dataset("eurusd_1h").iloc[:100]
    path = write_bars(bars, tmp_path / "eurusd.parquet")
    back = read_quietly(path)
    assert back.index.equals(bars.index)
    np.testing.assert_array_equal(back.to_numpy(), bars.to_numpy())


def test_parquet_frames_are_read_like_csv_files(tmp_path, monkeypatch):
    # what pyarrow hands back, without pyarrow: an index of naive datetimes, or epoch numbers
    frames = {}
    monkeypatch.setattr(pd, "read_parquet", lambda path: frames[Path(path).name].copy())
    values = pd.DataFrame(ROWS, columns=["Open", "High", "Low", "Close", "Volume"])
    expected = utc("2024-01-02 00:01", "2024-01-02 00:02", "2024-01-02 00:03")
    frames["naive.parquet"] = values.set_axis(expected.tz_localize(None))
    frames["epoch.pq"] = values.assign(timestamp=[JAN2 + 60_000 * (i + 1) for i in range(3)])
    for name in frames:
        (tmp_path / name).write_bytes(b"PAR1")
        assert_bars(read_quietly(tmp_path / name), expected, ROWS)
    frames["nan.parquet"] = frames["epoch.pq"].assign(Close=[1.1042, 1.1046, np.nan])
    (tmp_path / "nan.parquet").write_bytes(b"PAR1")
    assert error_of(tmp_path / "nan.parquet").endswith("nan.parquet, row 3: column 'close' is NaN")


def test_parquet_without_pyarrow_is_a_clear_error(tmp_path, monkeypatch):
    def no_pyarrow(*args, **kwargs):
        raise ImportError("Unable to find a usable engine")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", no_pyarrow)
    monkeypatch.setattr(pd, "read_parquet", no_pyarrow)
    bars = load_dataset("eurusd_1h").iloc[:10]
    with pytest.raises(MissingDependencyError, match="writing Parquet needs pyarrow") as info:
        write_bars(bars, tmp_path / "bars.parquet")
    assert isinstance(info.value, ImportError) and isinstance(info.value, ValueError)
    (tmp_path / "bars.parquet").write_bytes(b"PAR1")
    with pytest.raises(MissingDependencyError, match="bars.parquet: reading Parquet needs pyarrow"):
        read_bars(tmp_path / "bars.parquet")


def test_read_bars_moves_start_labels_to_close_labels(tmp_path):
    bars = load_dataset("eurusd_1h").iloc[:50]
    path = tmp_path / "starts.csv"
    shifted = bars.copy()
    shifted.index = shifted.index - pd.Timedelta("1h")  # as a start-labelled source would write
    shifted.to_csv(path)
    back = read_bars(path, time_label="start")
    assert back.index.equals(bars.index)


def test_bar_spacing_is_the_most_common_step():
    index = utc("2024-01-02 00:01", "2024-01-02 00:02", "2024-01-02 00:03", "2024-01-02 00:10")
    assert bar_spacing(index) == pd.Timedelta("1min")
    with pytest.raises(ValueError, match="at least two bars"):
        bar_spacing(index[:1])


# --------------------------------------------------------------------------------------------------
# start-labelled files: a hint, never a silent change
# --------------------------------------------------------------------------------------------------
def ohlcv_lines(times: list[str], sep: str = ",") -> str:
    rows = [ROWS[i % len(ROWS)] for i in range(len(times))]
    return "".join(sep.join([t, *(f"{x:g}" for x in row)]) + "\n" for t, row in zip(times, rows, strict=True))


def test_minute_bars_starting_at_midnight_get_a_hint(tmp_path):
    text = "Date,Time,Open,High,Low,Close,Volume\n" + ohlcv_lines(
        ["2024.01.02,00:00", "2024.01.02,00:01", "2024.01.02,00:02"])
    path = write(tmp_path, "starts.csv", text)
    with pytest.warns(UserWarning, match=re.escape("time_label='start'")) as record:
        bars = read_bars(path)
    assert "stamped at midnight exactly" in str(record[0].message)
    assert str(path) in str(record[0].message)
    # nothing was changed on a guess; saying what the file means moves each stamp to the close
    assert_bars(bars, utc("2024-01-02 00:00", "2024-01-02 00:01", "2024-01-02 00:02"), ROWS)
    assert_bars(read_quietly(path, time_label="start"),
                utc("2024-01-02 00:01", "2024-01-02 00:02", "2024-01-02 00:03"), ROWS)


def test_sessions_opening_on_a_quarter_hour_get_a_hint(tmp_path):
    # US stocks, start-labelled: each day's first minute is 14:30 UTC (9:30 in New York)
    times = [f"2024-01-0{d} {t}" for d in (2, 3) for t in ("14:30", "14:31", "14:32")]
    path = write(tmp_path, "aapl.csv", "time,open,high,low,close,volume\n" + ohlcv_lines(times))
    with pytest.warns(UserWarning, match="quarter hour"):
        read_bars(path)
    # close-labelled, the same sessions start at 14:31: no hint
    closes = [f"2024-01-0{d} {t}" for d in (2, 3) for t in ("14:31", "14:32", "14:33")]
    path = write(tmp_path, "closes.csv", "time,open,high,low,close,volume\n" + ohlcv_lines(closes))
    assert len(read_quietly(path)) == 6


def test_daily_bars_labelled_by_their_own_day_get_a_hint(tmp_path):
    days = ["2024-01-05", "2024-01-08", "2024-01-09", "2024-01-10"]  # Friday, Monday .. Wednesday
    path = write(tmp_path, "spx.csv", "Date,Open,High,Low,Close,Volume\n" + ohlcv_lines(days))
    with pytest.warns(UserWarning, match="dates without a time of day"):
        read_bars(path)
    moved = read_quietly(path, time_label="start")
    assert moved.index.equals(utc("2024-01-06", "2024-01-09", "2024-01-10", "2024-01-11"))

    # the same bars stamped at 00:00 of their own day; a week is needed to tell
    week = ["2024-01-03", "2024-01-04", *days]  # Wednesday 3 to Wednesday 10 January
    midnights = [f"{d}T00:00:00Z" for d in week]
    path = write(tmp_path, "spx_t.csv", "time,open,high,low,close,volume\n" + ohlcv_lines(midnights))
    with pytest.warns(UserWarning, match="Monday to Friday"):
        read_bars(path)
    path = write(tmp_path, "short.csv", "time,open,high,low,close,volume\n"
                 + ohlcv_lines(midnights[-3:]))  # Monday to Wednesday: could be either
    assert len(read_quietly(path)) == 3


def test_close_labelled_files_get_no_hint(tmp_path):
    # the course's own daily bars close at midnight UTC (Tuesday to Saturday for a weekday market)
    daily = resample_ohlcv(load_dataset("spx_1d").iloc[:30], "1D")
    assert (daily.index.hour == 0).all() and 5 in set(daily.index.day_of_week)
    read_quietly(write_bars(daily, tmp_path / "daily.csv"))
    for name in ("es_1min", "eurusd_1h", "spx_1d"):
        read_quietly(write_bars(load_dataset(name), tmp_path / f"{name}.csv"))


def test_open_time_column_alone_gets_a_hint(tmp_path):
    text = "open_time,open,high,low,close,volume\n" + ohlcv_lines(
        [str(JAN2 + 60_000 * (i + 5)) for i in range(3)])
    with pytest.warns(UserWarning, match="called 'open_time'"):
        read_bars(write(tmp_path, "opens.csv", text))


# --------------------------------------------------------------------------------------------------
# bad files: the file, the line and the problem
# --------------------------------------------------------------------------------------------------
GOOD = ["2024-01-02 00:01", "2024-01-02 00:02", "2024-01-02 00:03", "2024-01-02 00:04"]
HEADER = "time,open,high,low,close,volume\n"


def test_unsorted_rows_name_the_line(tmp_path):
    times = [GOOD[0], GOOD[2], GOOD[1], GOOD[3]]
    message = error_of(write(tmp_path, "unsorted.csv", HEADER + ohlcv_lines(times)))
    assert "line 4: time 2024-01-02 00:02:00+00:00 comes before" in message
    assert "on line 3" in message and "time order" in message


def test_newest_first_files_are_named_as_such(tmp_path):
    message = error_of(write(tmp_path, "newest.csv", HEADER + ohlcv_lines(GOOD[::-1])))
    assert "newest first" in message and "sort them oldest first" in message


def test_duplicated_times_name_both_lines(tmp_path):
    times = [GOOD[0], GOOD[1], GOOD[1], GOOD[2]]
    message = error_of(write(tmp_path, "dup.csv", HEADER + ohlcv_lines(times)))
    assert "line 4: time 2024-01-02 00:02:00+00:00 repeats the time of line 3" in message


def test_non_numeric_and_empty_prices_name_line_and_column(tmp_path):
    lines = ohlcv_lines(GOOD).splitlines()
    lines[2] = "2024-01-02 00:03,1.1046,1.1046,1.1039,n/a,130"
    message = error_of(write(tmp_path, "na.csv", HEADER + "\n".join(lines) + "\n"))
    assert message.endswith("na.csv, line 4: column 'close' is not a number: 'n/a'")
    lines[2] = "2024-01-02 00:03,1.1046,,1.1039,1.1040,130"
    message = error_of(write(tmp_path, "empty.csv", HEADER + "\n".join(lines) + "\n"))
    assert message.endswith("empty.csv, line 4: column 'high' is empty")


def test_line_numbers_count_blank_lines_and_compressed_files(tmp_path):
    lines = ohlcv_lines(GOOD).splitlines()
    lines[3] = "2024-01-02 00:04,1.1046,1.1038,1.1039,1.1040,130"  # high below low
    text = "\n" + HEADER + lines[0] + "\n\n" + "\n".join(lines[1:]) + "\n"
    # line 1 blank, 2 header, 3 data, 4 blank, 5 .. 7 data: the bad bar is on line 7
    path = tmp_path / "gaps.csv.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(text)
    message = error_of(path)
    assert "gaps.csv.gz, line 7: high below low at 2024-01-02 00:04:00+00:00" in message


def test_missing_column_names_the_file_and_the_columns(tmp_path):
    text = "time,open,high,low,close\n" + "".join(
        f"{t},{o},{h},{lo},{c}\n" for t, (o, h, lo, c, _) in zip(GOOD[:3], ROWS, strict=True))
    message = error_of(write(tmp_path, "novol.csv", text))
    assert "is not OHLCV bars: missing column(s) ['volume']" in message
    assert "columns are ['time', 'open', 'high', 'low', 'close']" in message


def test_times_that_cannot_be_read_name_the_line(tmp_path):
    lines = ohlcv_lines(GOOD).splitlines()
    lines[1] = lines[1].replace("00:02", "25:02")
    message = error_of(write(tmp_path, "hour25.csv", HEADER + "\n".join(lines) + "\n"))
    assert "line 3: time '2024-01-02 25:02' is not a time" in message

    clock = "time,open,high,low,close,volume\n" + ohlcv_lines(["00:01", "00:02"])
    assert "holds times of day without a date" in error_of(write(tmp_path, "clock.csv", clock))

    day_first = HEADER + ohlcv_lines(["02/01/2024 00:01", "02/01/2024 00:02"])
    message = error_of(write(tmp_path, "dayfirst.csv", day_first))
    assert "line 2: the date in '02/01/2024 00:01' may be day-first or month-first" in message


def test_headerless_files_other_than_binance_say_which_header_to_add(tmp_path):
    text = "2024.01.02,00:01,1.104,1.1045,1.1038,1.1042,120\n"
    message = error_of(write(tmp_path, "history.csv", text))
    assert "line 1: no header line" in message
    assert "'Date,Time,Open,High,Low,Close,Volume'" in message


def test_ragged_rows_and_other_failures(tmp_path):
    text = HEADER + ohlcv_lines(GOOD[:2]) + "2024-01-02 00:03,1,2,0.5,1,7,99\n"
    message = error_of(write(tmp_path, "ragged.csv", text))
    assert "not a readable CSV file" in message and "line 4" in message
    assert "holds no bars" in error_of(write(tmp_path, "header_only.csv", HEADER))
    assert "is empty" in error_of(write(tmp_path, "blank.csv", "\n\n"))
    with pytest.raises(FileNotFoundError, match="data file nowhere.csv does not exist"):
        read_bars("nowhere.csv")
    with pytest.raises(ValueError, match="time_label must be 'close' or 'start'"):
        read_bars(write(tmp_path, "ok.csv", HEADER + ohlcv_lines(GOOD)), time_label="end")


def test_binance_close_before_open_is_an_error(tmp_path):
    line = binance_line(JAN2, ROWS[0]).split(",")
    line[6] = str(JAN2 - 1)
    message = error_of(write(tmp_path, "binance.csv", ",".join(line) + "\n"))
    assert "line 1: close_time" in message and "is not after open_time" in message
