"""Live bars from Bybit's public v5 market API, fetched page by page, checked, and cached on disk.

The course itself runs offline on bundled data; this module is for readers who want to take the
model to live crypto markets. One public function does the work:

>>> bars = fetch_bybit_klines("BTCUSDT", "1", "2024-01-01", "2024-01-08")   # doctest: +SKIP

What it takes care of
---------------------
* **Pagination.** ``GET /v5/market/kline`` returns at most 1,000 klines per call, newest first. The
  range ``[start, end)`` is cut into fixed request windows of ``limit`` klines each, aligned on
  multiples of ``limit * interval`` since the Unix epoch, so the same window always maps to the same
  request, whatever range asked for it (that is what makes the cache reusable).
* **Timestamps.** Bybit labels a kline by its *start* time; the course labels bars by their *close*
  time (the moment the bar became known, rule 1 of the course). Every label is moved forward by one
  interval, once, here. A kline that is still open at the server's clock is dropped.
* **Validation.** ``retCode`` must be 0 (otherwise :class:`BybitError` quotes Bybit's own message,
  e.g. an unknown symbol); the body must be JSON with ``result.list`` rows of seven numeric strings;
  every kline must start on the interval grid inside the requested window; prices must form valid
  OHLC bars (:func:`msa_lib.data.validate_ohlcv`). Missing klines inside the range are *reported*,
  never filled: a :class:`BybitGapWarning` is issued and ``bars.attrs["gaps"]`` lists them.
* **Retries.** Timeouts, HTTP 429, HTTP 5xx and Bybit's rate-limit code ``10006`` are retried up to
  ``max_retries`` times, waiting ``backoff * 2**attempt`` seconds (capped at 30 s) between attempts.
* **Cache.** Each request window that lies entirely in the past is stored as a JSON file under
  ``cache_dir``; a second call reads the files and sends no request.
* **Offline.** When the host cannot be reached at all (no network, DNS failure, connection refused)
  the call fails at once, without retrying, and the message names the bundled datasets.
"""

from __future__ import annotations

import json
import math
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from msa_lib import user_cache_dir
from msa_lib.data import OHLCV_COLUMNS, validate_ohlcv

__all__ = [
    "BYBIT_BASE_URL",
    "BYBIT_INTERVALS",
    "BybitError",
    "BybitGapWarning",
    "fetch_bybit_klines",
    "parse_kline_page",
]

BYBIT_BASE_URL = "https://api.bybit.com"
"""Bybit's public REST host (mainnet). Market data needs no API key."""

BYBIT_INTERVALS: dict[str, pd.Timedelta] = {
    **{str(m): pd.Timedelta(minutes=m) for m in (1, 3, 5, 15, 30, 60, 120, 240, 360, 720)},
    "D": pd.Timedelta(days=1),
}
"""Kline intervals this client accepts, with their length. Bybit's weekly klines start on Mondays
and its monthly ones have no fixed length: ``"W"`` and ``"M"`` are not supported (resample daily
bars with :func:`msa_lib.data.resample_ohlcv` instead)."""

RATE_LIMIT_RETCODE = 10006
"""Bybit's ``retCode`` for "too many visits"."""

_MAX_WAIT_S = 30.0
_CATEGORIES = ("linear", "inverse", "spot")


class BybitError(RuntimeError):
    """The exchange could not be reached, refused the request, or sent something unusable."""


class BybitGapWarning(UserWarning):
    """Klines are missing inside the requested range (the exchange had no trades, or was down)."""


def _bundled_names() -> list[str]:
    """Names of the datasets shipped in ``msa_lib/bundled`` (read from the files themselves, so
    this module needs nothing from :mod:`msa_lib.datasets`, which imports it)."""
    folder = resources.files("msa_lib").joinpath("bundled")
    return sorted(p.name.removesuffix(".csv.gz") for p in folder.iterdir() if p.name.endswith(".csv.gz"))


def _offline_hint() -> str:
    names = ", ".join(_bundled_names())
    return (
        f"work offline with a bundled dataset instead: msa_lib.datasets.load_dataset(name) with "
        f"name in {names} (command line: msa data --source bundled --name <name>)"
    )


def _as_utc(value: str | pd.Timestamp, what: str) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{what} {value!r} is not a date or time") from err
    if ts is pd.NaT:
        raise ValueError(f"{what} is missing (NaT)")
    return ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")


_EPOCH = pd.Timestamp(0, tz="UTC")


def _ms(ts: pd.Timestamp) -> int:
    """Whole milliseconds since the Unix epoch (floored)."""
    return int((ts - _EPOCH) // pd.Timedelta(milliseconds=1))


# --------------------------------------------------------------------------------------------------
# one page
# --------------------------------------------------------------------------------------------------
def parse_kline_page(
    payload: Any,
    *,
    symbol: str,
    interval: str,
    window: tuple[int, int] | None = None,
    where: str = "page",
) -> tuple[np.ndarray, int | None]:
    """Check one decoded ``/v5/market/kline`` response and return its rows.

    Parameters
    ----------
    payload : object
        The decoded JSON body.
    symbol, interval : str
        What was asked for (used to check the reply and in messages).
    window : (int, int), optional
        ``(first_ms, last_ms)``: every kline must start inside this closed range (milliseconds).
    where : str
        How to name this page in error messages (for example its URL).

    Returns
    -------
    rows : numpy.ndarray
        ``[n, 7]`` float64: start time in ms, open, high, low, close, volume, turnover; in the
        order received (newest first).
    server_ms : int or None
        The server's clock (``time`` field), when present.

    Raises
    ------
    BybitError
        ``retCode`` not 0 (quoting ``retMsg``), or a body that does not have the documented shape.
    """
    if not isinstance(payload, dict):
        raise BybitError(f"{where}: expected a JSON object, got {type(payload).__name__}")
    code = payload.get("retCode")
    if code != 0:
        raise BybitError(
            f"Bybit refused the request for {symbol} interval {interval}: retCode {code}, "
            f"retMsg {payload.get('retMsg')!r} ({where})"
        )
    result = payload.get("result")
    rows = result.get("list") if isinstance(result, dict) else None
    if not isinstance(rows, list):
        raise BybitError(f"{where}: result.list is missing or not a list")
    server = payload.get("time")
    server_ms = int(server) if isinstance(server, int | float) and not isinstance(server, bool) else None
    if isinstance(result, dict) and result.get("symbol") not in (None, "", symbol):
        raise BybitError(f"{where}: asked for {symbol} but the reply is for {result.get('symbol')}")
    table = np.empty((len(rows), 7), dtype=np.float64)
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) < 7:
            raise BybitError(f"{where}: row {i} is not a list of 7 fields: {row!r}")
        for j, field in enumerate(row[:7]):
            if not isinstance(field, str):
                raise BybitError(
                    f"{where}: row {i} field {j} should be a string, got {type(field).__name__}"
                )
            try:
                table[i, j] = float(field)
            except ValueError:
                raise BybitError(f"{where}: row {i} field {j} is not a number: {field!r}") from None
    if not np.isfinite(table).all():
        i = int(np.flatnonzero(~np.isfinite(table).all(axis=1))[0])
        raise BybitError(f"{where}: row {i} holds a non-finite number: {rows[i]!r}")
    start = table[:, 0]
    if (start != np.round(start)).any():
        raise BybitError(f"{where}: a start time is not a whole number of milliseconds")
    step_ms = _ms(_EPOCH + BYBIT_INTERVALS[interval])
    if (start.astype(np.int64) % step_ms != 0).any():
        i = int(np.flatnonzero(start.astype(np.int64) % step_ms != 0)[0])
        raise BybitError(f"{where}: kline start {int(start[i])} ms is not on the {interval} grid")
    if window is not None:
        outside = (start < window[0]) | (start > window[1])
        if outside.any():
            i = int(np.flatnonzero(outside)[0])
            raise BybitError(
                f"{where}: kline starting {pd.Timestamp(int(start[i]), unit='ms', tz='UTC')} "
                "lies outside the requested window"
            )
    return table, server_ms


# --------------------------------------------------------------------------------------------------
# HTTP with retries
# --------------------------------------------------------------------------------------------------
def _is_timeout(err: BaseException) -> bool:
    if isinstance(err, TimeoutError | socket.timeout):
        return True
    reason = getattr(err, "reason", None)
    return isinstance(reason, TimeoutError | socket.timeout) or "timed out" in str(reason or "")


def _get_json(
    url: str,
    *,
    opener: urllib.request.OpenerDirector,
    timeout: float,
    max_retries: int,
    backoff: float,
    sleep: Callable[[float], None],
) -> Any:
    """GET ``url`` and decode its JSON, retrying timeouts and rate limits with exponential backoff."""
    host = urllib.parse.urlsplit(url).netloc
    last = ""
    for attempt in range(max_retries + 1):
        wait = min(backoff * 2**attempt, _MAX_WAIT_S)
        request = urllib.request.Request(url, headers={"Accept": "application/json",
                                                       "User-Agent": "msa_lib"})
        try:
            with opener.open(request, timeout=timeout) as response:
                body = response.read()
        except urllib.error.HTTPError as err:
            if err.code == 429 or err.code >= 500:
                last = f"HTTP {err.code} {err.reason}"
                retry_after = err.headers.get("Retry-After") if err.headers else None
                if retry_after and retry_after.strip().isdigit():
                    wait = min(float(retry_after), _MAX_WAIT_S)
                if attempt < max_retries:
                    sleep(wait)
                continue
            raise BybitError(f"HTTP {err.code} {err.reason} from {url}") from None
        except (urllib.error.URLError, OSError) as err:
            if _is_timeout(err):
                last = f"timed out after {timeout:g} s"
                if attempt < max_retries:
                    sleep(wait)
                continue
            reason = getattr(err, "reason", err)
            raise BybitError(f"cannot reach {host} ({reason}); {_offline_hint()}") from None
        try:
            payload = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise BybitError(f"malformed JSON from {url}: {err}") from None
        if isinstance(payload, dict) and payload.get("retCode") == RATE_LIMIT_RETCODE:
            last = f"rate limited (retCode {RATE_LIMIT_RETCODE}, {payload.get('retMsg')!r})"
            if attempt < max_retries:
                sleep(wait)
            continue
        return payload
    raise BybitError(f"gave up on {url} after {max_retries + 1} attempts: {last}")


# --------------------------------------------------------------------------------------------------
# the public function
# --------------------------------------------------------------------------------------------------
def fetch_bybit_klines(
    symbol: str,
    interval: str,
    start: str | pd.Timestamp,
    end: str | pd.Timestamp,
    *,
    category: str = "linear",
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    base_url: str = BYBIT_BASE_URL,
    timeout: float = 10.0,
    max_retries: int = 4,
    backoff: float = 0.5,
    limit: int = 1000,
    opener: urllib.request.OpenerDirector | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> pd.DataFrame:
    """Bars of ``symbol`` from Bybit whose klines *start* in ``[start, end)``, labelled by close time.

    Parameters
    ----------
    symbol : str
        Bybit symbol such as ``"BTCUSDT"`` (an unknown one raises :class:`BybitError` quoting the
        exchange's message).
    interval : str
        One of :data:`BYBIT_INTERVALS`: ``"1"``, ``"3"``, ``"5"``, ``"15"``, ``"30"``, ``"60"``,
        ``"120"``, ``"240"``, ``"360"``, ``"720"`` (minutes) or ``"D"``.
    start, end : str or pandas.Timestamp
        The range, ``start < end``; naive times are read as UTC.
    category : {"linear", "inverse", "spot"}, default "linear"
    cache_dir : str or Path, optional
        Where pages are cached (default :func:`msa_lib.user_cache_dir`).
    use_cache : bool, default True
        ``False`` neither reads nor writes the cache.
    base_url : str, default ``"https://api.bybit.com"``
        Another host (a test server, a mirror).
    timeout : float, default 10.0
        Seconds to wait for one response.
    max_retries : int, default 4
        Further attempts after a timeout, HTTP 429/5xx or ``retCode`` 10006.
    backoff : float, default 0.5
        First wait in seconds; doubles on every retry, capped at 30 s.
    limit : int, default 1000
        Klines per request, in ``[1, 1000]`` (Bybit's maximum is 1000).
    opener : urllib.request.OpenerDirector, optional
        How requests are sent (default :func:`urllib.request.build_opener`); tests pass one that
        ignores proxies.
    sleep : callable, default :func:`time.sleep`
        Called with the number of seconds to wait between attempts.

    Returns
    -------
    pandas.DataFrame
        Columns ``open, high, low, close, volume, turnover`` (float64), index ``time`` in UTC at
        the bar's **close** (kline start + interval), oldest first. Only klines already closed at
        the server's clock are kept. ``attrs["gaps"]`` lists missing stretches as
        ``{"after": close_time, "before": close_time, "missing": n}`` dicts (empty when none).

    Raises
    ------
    ValueError
        A bad argument (unknown interval or category, ``start >= end``, a limit out of range).
    BybitError
        Host unreachable (names the bundled datasets), a ``retCode`` other than 0, malformed JSON,
        a reply of the wrong shape, retries exhausted, or no kline at all in the range.

    Warns
    -----
    BybitGapWarning
        When klines are missing inside the range.
    """
    if interval not in BYBIT_INTERVALS:
        raise ValueError(f"interval {interval!r} not supported; use one of {list(BYBIT_INTERVALS)}")
    if category not in _CATEGORIES:
        raise ValueError(f"category {category!r} not supported; use one of {list(_CATEGORIES)}")
    if not isinstance(symbol, str) or not symbol or not symbol.replace("-", "").isalnum():
        raise ValueError(f"symbol must be letters and digits like 'BTCUSDT', got {symbol!r}")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
        raise ValueError(f"limit must be an int in [1, 1000], got {limit!r}")
    if max_retries < 0 or timeout <= 0 or backoff < 0:
        raise ValueError("need max_retries >= 0, timeout > 0 and backoff >= 0")
    t0, t1 = _as_utc(start, "start"), _as_utc(end, "end")
    if t0 >= t1:
        raise ValueError(f"empty range: start {t0} is not before end {t1}")
    step = BYBIT_INTERVALS[interval]
    step_ms = _ms(_EPOCH + step)
    first_ms = math.ceil(_ms(t0) / step_ms) * step_ms  # first kline start on the grid
    stop_ms = _ms(t1)  # klines must start before this
    if first_ms >= stop_ms:
        raise ValueError(f"empty range: no {interval} kline starts in [{t0}, {t1})")
    opener = opener or urllib.request.build_opener()
    folder = Path(cache_dir) if cache_dir is not None else user_cache_dir()
    folder = folder / "bybit" / f"{category}_{symbol}_{interval}_{limit}"

    chunk_ms = step_ms * limit
    pages: list[np.ndarray] = []
    server_ms: int | None = None
    for lo in range(first_ms // chunk_ms * chunk_ms, stop_ms, chunk_ms):
        hi = lo + chunk_ms - 1  # inclusive bound on kline start
        cache_file = folder / f"{lo}.json"
        payload = None
        if use_cache and cache_file.is_file():
            try:
                payload = json.loads(cache_file.read_text())
            except json.JSONDecodeError:
                payload = None  # a damaged cache file is simply fetched again
        fresh = payload is None
        query = urllib.parse.urlencode({"category": category, "symbol": symbol,
                                        "interval": interval, "start": lo, "end": hi,
                                        "limit": limit})
        url = f"{base_url.rstrip('/')}/v5/market/kline?{query}"
        if fresh:
            payload = _get_json(url, opener=opener, timeout=timeout, max_retries=max_retries,
                                backoff=backoff, sleep=sleep)
        table, page_ms = parse_kline_page(payload, symbol=symbol, interval=interval,
                                          window=(lo, hi), where=url)
        if page_ms is not None:
            server_ms = page_ms  # the clock of the newest window decides what may exist yet
            table = table[table[:, 0] + step_ms <= page_ms]  # drop a kline that is still open
        # a window whose last kline has closed by the server's clock will never change: cache it
        complete = page_ms is not None and hi + 1 <= page_ms
        if fresh and use_cache and complete:
            folder.mkdir(parents=True, exist_ok=True)
            tmp = cache_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(payload))
            tmp.replace(cache_file)
        pages.append(table)

    table = np.concatenate(pages) if pages else np.empty((0, 7))
    start_ms = table[:, 0].astype(np.int64)
    keep = (start_ms >= first_ms) & (start_ms < stop_ms)
    table, start_ms = table[keep], start_ms[keep]
    order = np.argsort(start_ms, kind="stable")
    table, start_ms = table[order], start_ms[order]
    if len(start_ms) > 1 and (np.diff(start_ms) == 0).any():
        dup = int(start_ms[1:][np.diff(start_ms) == 0][0])
        raise BybitError(
            f"{symbol}: the kline starting {pd.Timestamp(dup, unit='ms', tz='UTC')} was sent twice"
        )
    if len(table) == 0:
        raise BybitError(
            f"no closed {interval} klines for {symbol} ({category}) starting in [{t0}, {t1}): "
            "the symbol was not listed yet, or the range lies in the future"
        )
    close_time = pd.to_datetime(start_ms + step_ms, unit="ms", utc=True)
    bars = pd.DataFrame(
        table[:, 1:7],
        columns=[*OHLCV_COLUMNS, "turnover"],
        index=pd.DatetimeIndex(close_time, name="time"),
    )
    validate_ohlcv(bars, name=f"Bybit {symbol} {interval} klines")
    bars.attrs["gaps"] = _gaps(start_ms, step_ms, first_ms, stop_ms, server_ms)
    if bars.attrs["gaps"]:
        gaps = bars.attrs["gaps"]
        missing = sum(g["missing"] for g in gaps)
        warnings.warn(
            f"{symbol} {interval}: {missing} kline(s) missing in {len(gaps)} gap(s), the first "
            f"between {gaps[0]['after']} and {gaps[0]['before']} (not filled)",
            BybitGapWarning,
            stacklevel=2,
        )
    return bars


def _gaps(
    start_ms: np.ndarray, step_ms: int, first_ms: int, stop_ms: int, server_ms: int | None
) -> list[dict[str, Any]]:
    """Stretches of missing klines in the range, as close-time labels around each hole."""
    last_ms = stop_ms - 1
    if server_ms is not None:
        last_ms = min(last_ms, server_ms - step_ms)  # the last kline that could have closed
    expected_first = first_ms
    expected_last = (last_ms - first_ms) // step_ms * step_ms + first_ms
    bounds = np.concatenate([[expected_first - step_ms], start_ms, [expected_last + step_ms]])
    jumps = np.diff(bounds) // step_ms - 1  # klines missing between neighbours
    gaps = []
    for i in np.flatnonzero(jumps > 0):

        def label(ms: int) -> str:
            return pd.Timestamp(int(ms) + step_ms, unit="ms", tz="UTC").isoformat()

        gaps.append({"after": label(bounds[i]), "before": label(bounds[i + 1]),
                     "missing": int(jumps[i])})
    return gaps
