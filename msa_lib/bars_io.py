"""Bar files in and out: the CSV and Parquet files people have, read into the course's bars.

One job: turn a file of OHLCV bars into the frame every other module expects (float64 columns
``open, high, low, close, volume``; a sorted, unique UTC index of **close** times, the course's
rule that a timestamp is when the data became known), and write such a frame back.

:func:`read_bars` reads

* CSV, plain or compressed (``.gz``, ``.bz2``, ``.xz``, a ``.zip`` holding one file), with ``,``,
  ``;``, tab or ``|`` between fields (sniffed from the first lines; a ``;`` file may write decimal
  commas, ``1,0945``), and Parquet;
* one time column (``time``, ``timestamp``, ``datetime`` or ``date``: ISO text, year-first dates
  such as ``2024.01.02``, or epoch numbers in seconds, milliseconds, microseconds or nanoseconds,
  told apart by their size), or separate ``Date`` and ``Time`` columns as MetaTrader and HistData
  write them (``2024.01.02`` and ``00:01``);
* Binance's public kline files: twelve columns without a header (or with Binance's own header),
  open and close time in epoch milliseconds (microseconds in newer files). Each bar is stamped when
  it closed: Binance's close time is the bar's last millisecond, so the stamp is that instant
  rounded up to the second, which is the open time plus the bar length.

A problem in a file is a :class:`BarFileError` that names the file, the line (the row, for
Parquet) and what is wrong. Bars that look labelled by their *start* (daily bars stamped at midnight
of their own trading day, intraday bars whose first bar sits at midnight or whose sessions start on a
quarter hour) raise a :class:`UserWarning` that suggests ``time_label="start"``; the data are never
changed on a guess.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import lzma
import re
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from msa_lib.data import OHLCV_COLUMNS, OHLCVError, validate_ohlcv

__all__ = [
    "BINANCE_COLUMNS",
    "TIME_COLUMNS",
    "BarFileError",
    "MissingDependencyError",
    "bar_spacing",
    "read_bars",
    "write_bars",
]

TIME_COLUMNS: tuple[str, ...] = ("time", "timestamp", "datetime", "date")
"""Names of a single time column, in order of preference (any case; ``<DATE>`` and ``<TIME>``, as
MetaTrader 5 writes them, count too). A ``date`` column beside a ``time`` column of times of day is
combined with it."""

BINANCE_COLUMNS: tuple[str, ...] = (
    "open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume", "trades",
    "taker_buy_base_volume", "taker_buy_quote_volume", "ignore",
)
"""The twelve unnamed columns of Binance's kline files (data.binance.vision), in order."""

_TIME_NAMES = frozenset({*TIME_COLUMNS, "open_time", "close_time"})
_SEPARATORS = (";", "\t", "|", ",")  # candidates; on a tie the first wins (decimal commas lose)
_HEAD_BYTES = 1 << 16  # how much of a file is looked at to sniff its layout
_DAY_NS = 86_400 * 10**9
_TIME_OF_DAY = r"\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?"  # 00:01, 00:01:00, 00:01:00.5
_DAY_FIRST = r"\d{1,2}[./-]\d{1,2}[./-]\d{2,4}(?:\D.*)?"  # 02/01/2024: 2 January or February 1?


class BarFileError(ValueError):
    """A file that cannot be read as OHLCV bars; the message names the file, the line and the problem."""


class MissingDependencyError(ImportError, ValueError):
    """An optional package (pyarrow, for Parquet) is missing.

    An :class:`ImportError`, and a :class:`ValueError` too, so that callers which report bad input
    in one line (the command line) report this the same way.
    """


def bar_spacing(index: pd.DatetimeIndex) -> pd.Timedelta:
    """The most common step between consecutive bars: the bar length, even when bars are missing.

    Parameters
    ----------
    index : pandas.DatetimeIndex
        Sorted bar times, at least two.

    Returns
    -------
    pandas.Timedelta
        The modal step (the shortest one on a tie).
    """
    if len(index) < 2:
        raise ValueError("need at least two bars to tell their spacing")
    steps = pd.Series(np.diff(index.as_unit("ns").asi8))
    return pd.Timedelta(int(steps.mode().iloc[0]), unit="ns")


# --------------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------------
def read_bars(path: str | Path, time_label: str = "close") -> pd.DataFrame:
    """Read OHLCV bars from a CSV or Parquet file, convert them to close-labelled UTC bars, validate.

    The file needs columns ``open, high, low, close, volume`` (any case; others are ignored) and its
    times: one time column (one of :data:`TIME_COLUMNS`, or a Parquet DatetimeIndex), separate
    ``date`` and ``time`` columns, or Binance's ``open_time`` and ``close_time``. A file without a
    header line is read only when it has Binance's twelve kline columns (:data:`BINANCE_COLUMNS`).
    Times without a zone are read as UTC. The layouts read are listed in the module's docstring.

    Parameters
    ----------
    path : str or Path
        ``.csv`` (also ``.csv.gz``, ``.bz2``, ``.xz``, ``.zip``, or any other name: CSV is the
        default) or ``.parquet`` / ``.pq`` (needs pyarrow).
    time_label : {"close", "start"}
        What the file's times mark. ``"start"``: each bar is stamped by its start, so every stamp
        is moved forward by the most common spacing between bars (the bar length). Files that carry
        both the open and the close time (Binance) are stamped by their close whatever this says.

    Returns
    -------
    pandas.DataFrame
        float64 columns ``open, high, low, close, volume``, index ``time`` (UTC, close time).

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    BarFileError
        A ValueError naming the file, the line (the row for Parquet) and the problem: no header,
        a missing column, a value that is not a time or not a number, rows out of time order or
        repeated, or a bar that breaks a rule of :func:`msa_lib.data.validate_ohlcv`.
    MissingDependencyError
        A Parquet file, and pyarrow is not installed.

    Warns
    -----
    UserWarning
        When ``time_label="close"`` and the bars look labelled by their start: the warning says
        why and suggests ``time_label="start"``. Nothing is changed.
    """
    if time_label not in ("close", "start"):
        raise ValueError(f"time_label must be 'close' or 'start', got {time_label!r}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file {path} does not exist")
    if path.suffix.lower() in (".parquet", ".pq"):
        frame, where = _read_parquet(path)
        decimal_comma = False
    else:
        frame, where, decimal_comma = _read_csv(path)
    if len(frame) == 0:
        raise BarFileError(f"{path} holds no bars (no data rows)")

    columns = [_column_name(c) for c in frame.columns]
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise BarFileError(f"{path}: more than one column is called {repeated[0]!r}")
    frame = frame.set_axis(columns, axis=1)

    times, labels, column, date_only = _times(frame, path, where)
    missing = [c for c in OHLCV_COLUMNS if c not in frame.columns]
    if missing:
        raise BarFileError(
            f"{path} is not OHLCV bars: missing column(s) {missing}; columns are {columns[:12]}"
        )
    values = {c: _numbers(frame[c], c, decimal_comma, path, where) for c in OHLCV_COLUMNS}
    _check_order(times, path, where)
    if labels is not times:
        _check_order(labels, path, where)
    bars = pd.DataFrame(values, index=pd.DatetimeIndex(labels, name="time"))
    _validate(bars, path, where)

    if column == "open_time+close_time":
        return bars  # stamped by their close time already
    if time_label == "start":
        if len(bars) < 2:
            raise BarFileError(f"{path}: time_label='start' needs at least two bars to tell the "
                               "bar length")
        bars.index = pd.DatetimeIndex(bars.index + bar_spacing(bars.index), name="time")
    else:
        reason = _start_label_reason(times, column, date_only)
        if reason is not None:
            warnings.warn(
                f"{path}: the bars look labelled by their start time ({reason}), but they are read "
                "as labelled by their close. If each time is when its bar opened, read the file "
                "with time_label='start' (in a config: data.time_label: start); if the times are "
                "close times, ignore this warning.",
                UserWarning,
                stacklevel=2,
            )
    return bars


Where = Callable[[int], str]  # row position -> "line 7" (CSV) or "row 6" (Parquet)


def _read_parquet(path: Path) -> tuple[pd.DataFrame, Where]:
    try:
        frame = pd.read_parquet(path)
    except ImportError as err:
        raise MissingDependencyError(
            f"{path}: reading Parquet needs pyarrow ({err}); install pyarrow or save the bars as CSV"
        ) from None
    except (OSError, ValueError) as err:
        raise BarFileError(f"{path} is not a readable Parquet file: {_first_line(err)}") from None
    if isinstance(frame.index, pd.DatetimeIndex):
        frame = frame.reset_index(names=frame.index.name or "time")
    return frame, lambda i: f"row {i + 1}"


def _read_csv(path: Path) -> tuple[pd.DataFrame, Where, bool]:
    """The file as text columns, a row -> line-number function, and whether it writes 1,5 for 1.5."""
    lines = _head_lines(path)
    numbered = [(n, line) for n, line in enumerate(lines, start=1) if line.strip()]
    if not numbered:
        raise BarFileError(f"{path} is empty")
    first_line, first = numbered[0]
    sep = _sniff_separator([line for _, line in numbered[:50]])
    fields = next(csv.reader([first], delimiter=sep))
    has_header = any(_looks_like_name(f) for f in fields)
    names: tuple[str, ...] | None = None
    if not has_header:
        if len(fields) == len(BINANCE_COLUMNS) and fields[0].strip().isdigit() and (
            fields[6].strip().isdigit()
        ):
            names = BINANCE_COLUMNS
        else:
            example = ("Date,Time,Open,High,Low,Close,Volume" if len(fields) >= 7
                       else "time,open,high,low,close,volume")
            raise BarFileError(
                f"{path}, line {first_line}: no header line, the first line is data "
                f"({first.strip()[:80]!r}). Add a first line that names the file's columns in "
                f"order, such as {example!r} (separated like the data); the only layout read "
                "without a header is Binance's twelve-column kline file"
            )
    decimal_comma = sep != "," and _writes_decimal_commas(numbered[1:50], sep)
    # times stay text (20240102 and 0001 are not numbers); the reader parses the prices, and a
    # column holding a bad value stays text, so that _numbers can name its line
    text = {n: str for n in (names or fields) if _column_name(n) in _TIME_NAMES}
    try:
        frame = pd.read_csv(
            path, sep=sep, header=0 if has_header else None, names=names,
            skiprows=first_line - 1, dtype=text, decimal="," if decimal_comma else ".",
            keep_default_na=False, na_filter=False, skip_blank_lines=False,
            encoding="utf-8-sig", compression="infer",
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError,
            EOFError, zipfile.BadZipFile, lzma.LZMAError) as err:
        raise BarFileError(f"{path} is not a readable CSV file of bars: {_first_line(err)}") from None
    # line number of each data row: blank lines were kept as rows of "" so the count stays exact
    # (a blank line leaves no column numeric)
    data_line = first_line + 1 if has_header else first_line
    line_of = np.arange(len(frame)) + data_line
    if not any(pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns):
        blank = (frame == "").all(axis=1).to_numpy()
        frame, line_of = frame.loc[~blank].reset_index(drop=True), line_of[~blank]
    return frame, lambda i: f"line {line_of[i]}", decimal_comma


def _head_lines(path: Path) -> list[str]:
    """The first lines of a (possibly compressed) text file, without a partial last line."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".zip":
            with zipfile.ZipFile(path) as archive:
                members = [m for m in archive.namelist() if not m.endswith("/")]
                if len(members) != 1:
                    raise BarFileError(
                        f"{path}: a zip file of bars must hold exactly one file, it holds "
                        f"{len(members)}"
                    )
                with archive.open(members[0]) as fh:
                    head = fh.read(_HEAD_BYTES)
        else:
            opener = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}.get(suffix, open)
            with opener(path, "rb") as fh:
                head = fh.read(_HEAD_BYTES)
    except (OSError, EOFError, zipfile.BadZipFile, lzma.LZMAError) as err:
        raise BarFileError(f"{path} is not a readable file: {_first_line(err)}") from None
    if b"\x00" in head:
        raise BarFileError(f"{path} is not a text (CSV) file of bars; a Parquet file needs a "
                           ".parquet name")
    lines = head.decode("utf-8-sig", errors="replace").splitlines()
    return lines[:-1] if len(head) == _HEAD_BYTES and len(lines) > 1 else lines


def _sniff_separator(lines: list[str]) -> str:
    """The separator that splits every sampled line into the same number of fields (the most)."""
    best, best_count = None, 0
    for sep in _SEPARATORS:
        counts = {line.count(sep) for line in lines}
        if len(counts) == 1 and (count := counts.pop()) > best_count:
            best, best_count = sep, count
    if best is not None:
        return best
    # ragged lines: split like the first line; the CSV reader then names the line that differs
    return max(_SEPARATORS, key=lambda s: (lines[0].count(s), s == ","))


def _writes_decimal_commas(lines: list[tuple[int, str]], sep: str) -> bool:
    """True when numbers in the sampled data lines are written 1,0945 and never 1.0945."""
    fields = [f.strip() for _, line in lines for f in line.split(sep)]
    comma = sum(bool(re.fullmatch(r"-?\d+,\d+", f)) for f in fields)
    point = sum(bool(re.fullmatch(r"-?\d+\.\d+", f)) for f in fields)
    return comma > 0 and point == 0


def _looks_like_name(field: str) -> bool:
    """A header field starts with a letter (``Open``, ``<DATE>``); data start with digits."""
    text = field.strip().strip("\"'<>").strip()
    return bool(text) and (text[0].isalpha() or text[0] == "_")


def _column_name(name: object) -> str:
    """``<DATE>`` -> ``date``, ``Open Time`` -> ``open_time``."""
    return re.sub(r"[\s\-]+", "_", str(name).strip().strip("<>").strip().lower())


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


# --------------------------------------------------------------------------------------------------
# times
# --------------------------------------------------------------------------------------------------
def _times(
    frame: pd.DataFrame, path: Path, where: Where
) -> tuple[pd.DatetimeIndex, pd.DatetimeIndex, str, bool]:
    """The file's times, the close-time labels, which column(s) they came from, and date-only-ness.

    The file's times are what the file says (the open times for Binance); they decide the order
    checks and the start-label hint. The labels are what the bars will be stamped with.
    """
    if "open_time" in frame.columns and "close_time" in frame.columns:
        opens, _ = _parse_times(frame["open_time"], "open_time", path, where)
        closes, _ = _parse_times(frame["close_time"], "close_time", path, where)
        early = np.flatnonzero(closes.as_unit("ns").asi8 <= opens.as_unit("ns").asi8)
        if early.size:
            i = int(early[0])
            raise BarFileError(f"{path}, {where(i)}: close_time {closes[i]} is not after "
                               f"open_time {opens[i]}")
        # Binance's close time is the bar's last millisecond (or microsecond): the bar is known at
        # the next whole second, which is open time + bar length
        return opens, closes.ceil("s"), "open_time+close_time", False
    if "date" in frame.columns and "time" in frame.columns and _times_of_day(frame["time"]):
        clock = frame["time"].astype(str)
        if re.fullmatch(r"\d{4}|\d{6}", clock.iloc[0].strip()):  # 0001 or 000100
            clock = clock.str.strip()
            clock = clock.str.replace(r"^(\d{2})(\d{2})(\d{2})$", r"\1:\2:\3", regex=True)
            clock = clock.str.replace(r"^(\d{2})(\d{2})$", r"\1:\2", regex=True)
        text = frame["date"].astype(str) + " " + clock
        times, _ = _parse_times(text, "date and time", path, where)
        return times, times, "date+time", False
    column = next((c for c in (*TIME_COLUMNS, "close_time", "open_time") if c in frame.columns),
                  None)
    if column is None:
        raise BarFileError(
            f"{path} is not OHLCV bars: no time column (expected one of "
            f"{', '.join(TIME_COLUMNS)}, or date and time); columns are {list(frame.columns)[:12]}"
        )
    times, date_only = _parse_times(frame[column], column, path, where)
    return times, times, column, date_only


def _times_of_day(values: pd.Series) -> bool:
    """True when a column holds times of day (00:01, 0001, 000100), judged from its first values."""
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_datetime64_any_dtype(values):
        return False
    head = values.iloc[:50].astype(str).str.strip()
    return bool(head.str.fullmatch(rf"{_TIME_OF_DAY}|\d{{4}}|\d{{6}}").all())


def _parse_times(
    raw: pd.Series, what: str, path: Path, where: Where
) -> tuple[pd.DatetimeIndex, bool]:
    """UTC times from text, epoch numbers or datetimes; and whether they were dates alone."""
    if pd.api.types.is_datetime64_any_dtype(raw):  # Parquet
        stamps = pd.DatetimeIndex(raw)
        stamps = stamps.tz_localize("UTC") if stamps.tz is None else stamps.tz_convert("UTC")
        if stamps.hasnans:
            raise BarFileError(f"{path}, {where(int(np.flatnonzero(stamps.isna())[0]))}: "
                               f"no time in {what}")
        return stamps, False
    if pd.api.types.is_numeric_dtype(raw):  # Parquet
        return _from_epoch(raw, what, path, where), False
    first = str(raw.iloc[0]).strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", first) and len(first) != 8:  # epoch numbers (not 20240102)
        numbers = pd.to_numeric(raw.astype(str).str.strip(), errors="coerce")
        bad = numbers.isna().to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise BarFileError(f"{path}, {where(i)}: {what} {raw.iloc[i]!r} is not a time")
        return _from_epoch(numbers, what, path, where), False
    # the common case, ISO 8601 (2024-01-02 00:01, 2024.01.02 00:01, 20240102, with or without a
    # zone), is read in one fast pass; anything else goes the slow way below
    stamps = pd.to_datetime(raw, utc=True, format="ISO8601", errors="coerce")
    if stamps.isna().any():
        stamps = _parse_other_times(raw, what, path, where)
    stamps = pd.DatetimeIndex(stamps)
    date_only = bool((stamps == stamps.normalize()).all() and raw.astype(str).str.len().max() <= 10)
    return stamps, date_only


def _parse_other_times(raw: pd.Series, what: str, path: Path, where: Where) -> pd.Series:
    """Times that are not ISO 8601: name the first empty, clock-only, day-first or unreadable one."""
    text = raw.astype(str).str.strip()
    empty = (text == "").to_numpy()
    if empty.any():
        raise BarFileError(f"{path}, {where(int(np.flatnonzero(empty)[0]))}: no time in {what}")
    if text.str.fullmatch(_TIME_OF_DAY).all():
        raise BarFileError(
            f"{path}, {where(0)}: column {what!r} holds times of day without a date "
            f"({text.iloc[0]!r}); add a date column (a Date,Time,... file is read as date + time)"
        )
    day_first = text.str.fullmatch(_DAY_FIRST).to_numpy()
    if day_first.any():
        i = int(np.flatnonzero(day_first)[0])
        raise BarFileError(
            f"{path}, {where(i)}: the date in {text.iloc[i]!r} may be day-first or month-first; "
            "write dates year first (2024-01-02 or 2024.01.02)"
        )
    text = text.str.replace(r"^(\d{4})[./](\d{1,2})[./](\d{1,2})", r"\1-\2-\3", regex=True)
    text = text.str.replace(r"^(\d{4})(\d{2})(\d{2})(?=[ T])", r"\1-\2-\3", regex=True)
    text = text.str.replace(r"(?<=[ T])(\d{2})(\d{2})(\d{2})$", r"\1:\2:\3", regex=True)
    stamps = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
    if stamps.isna().any():
        stamps = pd.to_datetime(text, utc=True, format="mixed", errors="coerce")
    bad = stamps.isna().to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise BarFileError(f"{path}, {where(i)}: {what} {raw.iloc[i]!r} is not a time")
    return stamps


def _from_epoch(numbers: pd.Series, what: str, path: Path, where: Where) -> pd.DatetimeIndex:
    """Epoch numbers, each read in the unit its size says: s < 1e11 <= ms < 1e14 <= us < 1e17 <= ns."""
    values = numbers.to_numpy()
    bad = ~np.isfinite(values.astype("float64")) | (values < 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise BarFileError(f"{path}, {where(i)}: {what} {numbers.iloc[i]!r} is not a time")
    size = np.abs(values.astype("float64"))
    per_unit = np.select([size < 1e11, size < 1e14, size < 1e17], [10**9, 10**6, 10**3], 1)
    if np.issubdtype(values.dtype, np.integer):
        ns = values.astype(np.int64) * per_unit  # exact: ms and us stamps do not fit a float
    else:
        ns = np.round(values.astype("float64") * per_unit).astype(np.int64)
    return pd.DatetimeIndex(pd.to_datetime(ns, unit="ns", utc=True))


# --------------------------------------------------------------------------------------------------
# values and checks
# --------------------------------------------------------------------------------------------------
def _numbers(raw: pd.Series, column: str, decimal_comma: bool, path: Path, where: Where) -> np.ndarray:
    """One OHLCV column as float64; the first value that is empty or not a number is an error."""
    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        numbers = raw.astype("float64")
    else:
        text = raw.astype(str).str.strip()
        if decimal_comma:
            text = text.str.replace(",", ".", regex=False)
        numbers = pd.to_numeric(text, errors="coerce")
    bad = numbers.isna().to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        value = raw.iloc[i]
        if pd.isna(value):
            problem = "is NaN"
        elif str(value).strip() == "":
            problem = "is empty"
        else:
            problem = f"is not a number: {value!r}"
        raise BarFileError(f"{path}, {where(i)}: column {column!r} {problem}")
    return numbers.to_numpy(dtype="float64")


def _check_order(times: pd.DatetimeIndex, path: Path, where: Where) -> None:
    """Rows must be in time order, each time once: name the first row that is not."""
    step = np.diff(times.as_unit("ns").asi8)
    if len(step) > 1 and (step < 0).all():
        raise BarFileError(f"{path}: the rows run newest first ({times[0]} down to {times[-1]}); "
                           "sort them oldest first")
    wrong = np.flatnonzero(step <= 0)
    if wrong.size:
        i = int(wrong[0]) + 1
        if step[i - 1] == 0:
            raise BarFileError(f"{path}, {where(i)}: time {times[i]} repeats the time of "
                               f"{where(i - 1)} (each bar must appear once)")
        raise BarFileError(f"{path}, {where(i)}: time {times[i]} comes before {times[i - 1]} on "
                           f"{where(i - 1)}; the rows must be in time order, oldest first")


def _validate(bars: pd.DataFrame, path: Path, where: Where) -> None:
    """:func:`validate_ohlcv`, naming the file's line of the first bar that breaks a rule."""
    try:
        validate_ohlcv(bars, name=str(path))
    except OHLCVError:
        pass  # find the line below
    else:
        return

    def breaks_a_rule(stop: int) -> bool:
        try:
            validate_ohlcv(bars.iloc[:stop])
        except OHLCVError:
            return True
        return False

    # The times are in order (checked before), so every rule left is about single rows: the
    # shortest failing prefix ends at the first bad row. Bisect for it, then name its line.
    lo, hi = 1, len(bars)
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if breaks_a_rule(mid) else (mid + 1, hi)
    row = lo - 1
    try:
        validate_ohlcv(bars.iloc[row : row + 1], name=f"{path}, {where(row)}")
    except OHLCVError as err:
        raise BarFileError(str(err)) from None
    validate_ohlcv(bars, name=str(path))  # not a single-row problem after all: the plain message


def _start_label_reason(times: pd.DatetimeIndex, column: str, date_only: bool) -> str | None:
    """Why these times look like bar starts, or None. Only a hint: the caller warns."""
    if column == "open_time":
        return "the time column is called 'open_time'"
    if date_only:
        return "the times are dates without a time of day, which name the day a bar covers"
    if len(times) < 2:
        return None
    ns = times.as_unit("ns").asi8
    of_day = ns % _DAY_NS
    spacing = bar_spacing(times)
    if spacing >= pd.Timedelta(days=1):
        # over a week or more, a weekday market's bars stamped at their close (midnight after the
        # session) include Saturdays and no Mondays; stamped at their start, the other way round
        weekdays = set(times.day_of_week)
        week = times[-1] - times[0] >= pd.Timedelta(days=7)
        if week and (of_day == 0).all() and 0 in weekdays and 5 not in weekdays:
            return ("daily bars stamped at 00:00 of weekdays, Monday to Friday: the start of "
                    "their own day (close-labelled, they would fall on Tuesday to Saturday)")
        return None
    if of_day[0] == 0:
        return f"the first bar, {times[0]}, is stamped at midnight exactly, where a day's first bar starts"
    if spacing < pd.Timedelta(minutes=15):
        after_break = np.flatnonzero(np.diff(ns) >= 3_600 * 10**9) + 1
        quarter = 15 * 60 * 10**9
        if after_break.size and (of_day[after_break] % quarter == 0).all():
            first = times[after_break[0]]
            return (f"each session's first bar is stamped on a quarter hour, such as {first}, "
                    "when sessions open")
    return None


# --------------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------------
def write_bars(bars: pd.DataFrame, path: str | Path) -> Path:
    """Write bars as CSV (gzipped when the name ends in ``.gz``) or Parquet (``.parquet``).

    The CSV has a ``time`` column of ISO 8601 UTC times and is read back unchanged by
    :func:`read_bars`. ``bars`` is not modified; missing parent folders are created.

    Parameters
    ----------
    bars : pandas.DataFrame
        Bars with a UTC DatetimeIndex of close times.
    path : str or Path
        Where to write.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    MissingDependencyError
        A Parquet name, and pyarrow is not installed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".parquet", ".pq"):
        try:
            bars.to_parquet(path)
        except ImportError as err:
            raise MissingDependencyError(
                f"writing Parquet needs pyarrow ({err}); install pyarrow or use a .csv.gz name"
            ) from None
    else:
        out = bars.copy()
        out.index = out.index.map(lambda t: t.isoformat())
        out.to_csv(path, index_label="time", float_format="%.10g")
    return path
