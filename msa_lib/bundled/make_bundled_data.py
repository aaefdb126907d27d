"""Rebuild the real datasets bundled in ``msa_lib/bundled/`` from the wheels that ship them.

Run once, by a maintainer, with the three wheels downloaded (no install needed)::

    pip download --no-deps -d /tmp/wheels gym-anytrading==2.0.0 mlfinpy==0.1.2 arch==8.0.0
    python msa_lib/bundled/make_bundled_data.py \\
        /tmp/wheels/gym_anytrading-2.0.0-py3-none-any.whl \\
        /tmp/wheels/mlfinpy-0.1.2-py3-none-any.whl \\
        /tmp/wheels/arch-8.0.0-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.manylinux_2_28_x86_64.whl

Versions used for the committed files: gym-anytrading 2.0.0 (MIT), mlfinpy 0.1.2 (MIT),
arch 8.0.0 (NCSA). The wheels are read as zip files: none of the packages is imported.

Every output is a gzip CSV with columns ``time, open, high, low, close, volume``, ``time`` in UTC
(ISO 8601) and labelled by the bar's **close** time. Each step below says how the source's own
labels were converted. The outputs are checked with :func:`msa_lib.data.validate_ohlcv`.
"""

from __future__ import annotations

import gzip
import io
import sys
import zipfile
from pathlib import Path

import pandas as pd

from msa_lib.data import OHLCV_COLUMNS, resample_ohlcv, validate_ohlcv

HERE = Path(__file__).resolve().parent


def _read_member(wheel: str, suffix: str) -> bytes:
    """Bytes of the single file in ``wheel`` whose path ends with ``suffix``."""
    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist() if n.endswith(suffix)]
        if len(names) != 1:
            raise SystemExit(f"{wheel}: expected one file ending with {suffix}, found {names}")
        return zf.read(names[0])


def eurusd_1h(wheel: str) -> pd.DataFrame:
    """EUR/USD hourly ask bars (Dukascopy export): times are UTC and mark the bar's *start*."""
    raw = pd.read_csv(io.BytesIO(_read_member(wheel, "FOREX_EURUSD_1H_ASK.csv")))
    start = pd.to_datetime(raw["Time"], format="%d.%m.%Y %H:%M:%S.%f", utc=True)
    bars = pd.DataFrame(
        {c: raw[c.capitalize()].astype("float64") for c in OHLCV_COLUMNS},
    )
    bars.index = pd.DatetimeIndex(start + pd.Timedelta(hours=1), name="time")  # start -> close
    return bars


def es_1min(wheel: str) -> pd.DataFrame:
    """E-mini S&P 500 ticks, times in US Central (exchange) time, aggregated to 1-minute bars.

    A tick stamped ``t`` goes into the bar ``(T - 1 min, T]`` labelled ``T`` (its close time);
    minutes without a tick get no bar.
    """
    raw = pd.read_csv(io.BytesIO(_read_member(wheel, "dataset/data/tick_data.csv")))
    local = pd.to_datetime(raw["DateTime"], format="%Y-%m-%d %H:%M:%S.%f")
    utc = local.dt.tz_localize("America/Chicago").dt.tz_convert("UTC")
    price = raw["Price"].astype("float64").to_numpy()
    ticks = pd.DataFrame(
        {"open": price, "high": price, "low": price, "close": price,
         "volume": raw["Volume"].astype("float64").to_numpy()},
        index=pd.DatetimeIndex(utc, name="time"),
    )
    # ticks share timestamps; a stable sort keeps their file order, then per-tick "bars" of
    # identical timestamps are merged by the same aggregation as any resample
    ticks = ticks.sort_index(kind="stable")
    grouped = ticks.groupby(level=0, sort=True)
    merged = pd.DataFrame({
        "open": grouped["open"].first(), "high": grouped["high"].max(),
        "low": grouped["low"].min(), "close": grouped["close"].last(),
        "volume": grouped["volume"].sum(),
    })
    return resample_ohlcv(merged, "1min")


def spx_1d(wheel: str) -> pd.DataFrame:
    """S&P 500 daily bars; a date becomes that day's 16:00 New York close, converted to UTC."""
    raw = pd.read_csv(io.BytesIO(gzip.decompress(_read_member(wheel, "data/sp500/sp500.csv.gz"))))
    day = pd.to_datetime(raw["Date"], format="%m/%d/%Y")
    close_time = (day + pd.Timedelta(hours=16)).dt.tz_localize("America/New_York").dt.tz_convert("UTC")
    bars = pd.DataFrame({c: raw[c.capitalize()].astype("float64") for c in OHLCV_COLUMNS})
    bars.index = pd.DatetimeIndex(close_time, name="time")
    return bars


def write(name: str, bars: pd.DataFrame) -> None:
    validate_ohlcv(bars, name=name)
    out = bars.loc[:, list(OHLCV_COLUMNS)].copy()
    out.index = out.index.strftime("%Y-%m-%dT%H:%M:%SZ")
    path = HERE / f"{name}.csv.gz"
    with gzip.GzipFile(path, "wb", mtime=0) as fh:  # mtime=0: byte-identical reruns
        fh.write(out.to_csv(float_format="%.10g").encode())
    print(f"{path.name}: {len(bars):,} bars, {bars.index[0]} .. {bars.index[-1]}, "
          f"{path.stat().st_size / 1024:.0f} KiB")


def main(argv: list[str]) -> None:
    if len(argv) != 3:
        raise SystemExit(__doc__)
    gym, mlfinpy, arch = argv
    write("eurusd_1h", eurusd_1h(gym))
    write("es_1min", es_1min(mlfinpy))
    write("spx_1d", spx_1d(arch))


if __name__ == "__main__":
    main(sys.argv[1:])
