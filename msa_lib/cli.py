"""The command line: ``python -m msa_lib`` (or ``msa``) with the subcommands data, train, predict, backtest.

Every subcommand runs with no arguments on the bundled defaults (:data:`DEFAULT_CONFIG`, which is
``configs/default.yaml`` of the repository), and reads another YAML file with ``--config``. Single
settings are overridden with ``--set key=value`` (``--set train.num_epochs=1``).

================  ==============================================================================
``msa data``      get bars (simulate, bundled, a CSV/Parquet file, or Bybit), validate them, write
                  them to a cache file
``msa train``     train the model; writes a run folder: ``model.pt`` (checkpoint), ``config.yaml``
                  (the resolved config), ``scalers.json``, ``metrics.json``, ``history.csv``
``msa predict``   multi-horizon forecasts of a run for its test period (or ``--data FILE``)
``msa backtest``  trade those forecasts with costs beside naive baselines: ``metrics.csv`` and
                  ``.json``, ``equity.png``, ``equity.html``
================  ==============================================================================

Nothing is overwritten without ``--force``. Bad input (a missing file, a file that is not OHLCV, an
empty range, an unknown symbol, a malformed config) ends the program with status 1 and one line on
standard error naming the problem; ``--traceback`` shows the full Python traceback instead.

The configuration is a tree of dataclasses (:class:`Config`). :func:`load_config` reads YAML and
checks it against them: unknown keys and values of the wrong type are rejected with the dotted name
of the key (``features.scales[1].lookback``).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import math
import shutil
import sys
import time
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from msa_lib.bars_io import bar_spacing as _modal_spacing
from msa_lib.bars_io import read_bars, write_bars

__all__ = [
    "BacktestSection",
    "Config",
    "ConfigError",
    "DataSection",
    "FeatureSection",
    "ModelSection",
    "OutputSection",
    "ScaleSection",
    "TrainSection",
    "config_from_dict",
    "config_to_dict",
    "load_bars",
    "load_config",
    "main",
]

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "default.yaml"
"""The repository's ``configs/default.yaml`` (used when ``--config`` is not given and it exists)."""


class ConfigError(ValueError):
    """A configuration that is not valid; the message starts with the dotted key at fault."""


class CLIError(RuntimeError):
    """A problem the command line reports in one line (missing run folder, existing output...)."""


# ==================================================================================================
# Configuration: dataclasses, checked on load
# ==================================================================================================
@dataclass
class DataSection:
    """Where the bars come from (``data:`` in the YAML file).

    Attributes
    ----------
    source : {"simulate", "bundled", "file", "bybit"}
        ``simulate``: :func:`msa_lib.datasets.simulate_market`; ``bundled``: a dataset shipped with
        the package (:func:`msa_lib.datasets.load_dataset`); ``file``: a CSV or Parquet file of OHLCV
        bars; ``bybit``: live klines (:func:`msa_lib.bybit.fetch_bybit_klines`, needs internet).
    days, market_seed, signal_strength
        ``simulate`` only: days of 1-minute bars, the market's random seed, the planted signal's
        strength (``null``: the library default).
    start, end
        ``simulate``: ``start`` is the first midnight (UTC). ``bybit``: the range ``[start, end)``;
        ``end: null`` means now.
    name
        ``bundled`` only: one of :data:`msa_lib.datasets.DATASETS`.
    path, time_label
        ``file`` only: the file, and whether its times label the bar ``close`` (the course's
        convention) or its ``start`` (then every label is moved forward by one bar length).
    symbol, interval, category
        ``bybit`` only.
    cache_dir
        Folder for ``msa data`` output files and the Bybit page cache.
    """

    source: Literal["simulate", "bundled", "file", "bybit"] = "simulate"
    days: int = 30
    market_seed: int = 0
    signal_strength: float | None = None
    start: str = "2024-01-01"
    end: str | None = None
    name: str = "es_1min"
    path: str | None = None
    time_label: Literal["close", "start"] = "close"
    symbol: str = "BTCUSDT"
    interval: str = "1"
    category: Literal["linear", "inverse", "spot"] = "linear"
    cache_dir: str = "data"

    def check(self, where: str) -> None:
        if self.days < 1:
            raise ConfigError(f"{where}.days: must be >= 1, got {self.days}")
        if self.source == "file" and not self.path:
            raise ConfigError(f"{where}.path: source 'file' needs a path")
        if self.signal_strength is not None and not 0 <= self.signal_strength < 1:
            raise ConfigError(f"{where}.signal_strength: must be in [0, 1), got {self.signal_strength}")
        for key in ("start", "end"):
            value = getattr(self, key)
            if value is not None:
                try:
                    pd.Timestamp(value)
                except ValueError:
                    raise ConfigError(f"{where}.{key}: {value!r} is not a date") from None


@dataclass
class ScaleSection:
    """One time scale (an entry of ``features.scales``).

    Attributes
    ----------
    name : str
        Bar length, a pandas duration: ``"1min"``, ``"5min"``, ``"1h"``, ``"1D"``.
    lookback : int
        Rows of this scale in every input window.
    lags, vol_windows, ma_windows, volume_window, rsi_window
        Feature windows of :func:`msa_lib.data.scale_features`, in bars of this scale; ``null``
        keeps the library default. Coarse scales want short windows: the longest window is the
        warm-up lost at the start of the data.
    """

    name: str
    lookback: int
    lags: list[int] | None = None
    vol_windows: list[int] | None = None
    ma_windows: list[int] | None = None
    volume_window: int | None = None
    rsi_window: int | None = None

    def check(self, where: str) -> None:
        _duration(self.name, f"{where}.name")
        if self.lookback < 1:
            raise ConfigError(f"{where}.lookback: must be >= 1, got {self.lookback}")
        for key in ("lags", "vol_windows", "ma_windows"):
            values = getattr(self, key)
            if values is not None and (not values or min(values) < 1):
                raise ConfigError(f"{where}.{key}: needs one or more integers >= 1, got {values}")
        for key in ("volume_window", "rsi_window"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise ConfigError(f"{where}.{key}: must be >= 1, got {value}")
        if self.vol_windows is not None and min(self.vol_windows) < 2:
            raise ConfigError(f"{where}.vol_windows: a standard deviation needs windows >= 2")

    def feature_kwargs(self) -> dict[str, Any]:
        """The non-null feature windows, as keyword arguments of ``scale_features``."""
        keys = ("lags", "vol_windows", "ma_windows", "volume_window", "rsi_window")
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}


def _default_scales() -> list[ScaleSection]:
    daily = ScaleSection("1D", 7, lags=[1, 2, 5], vol_windows=[3], ma_windows=[5],
                         volume_window=5, rsi_window=5)
    return [ScaleSection("1min", 30), ScaleSection("5min", 24), ScaleSection("1h", 12), daily]


@dataclass
class FeatureSection:
    """Scales, decision times, horizons and the chronological split (``features:``).

    Attributes
    ----------
    scales : list of ScaleSection
        Finest first; the finest must not be finer than the bars.
    every : str
        Spacing of decision times (multiples of it since midnight UTC).
    horizons : list of str
        Forecast horizons; the model has one output per horizon.
    val_frac, test_frac : float
        Shares of the decision times for validation and test (the latest ones), split with a
        purge gap equal to the longest horizon.
    """

    scales: list[ScaleSection] = field(default_factory=_default_scales)
    every: str = "5min"
    horizons: list[str] = field(default_factory=lambda: ["15min", "1h"])
    val_frac: float = 0.2
    test_frac: float = 0.2

    def check(self, where: str) -> None:
        if not self.scales:
            raise ConfigError(f"{where}.scales: give at least one scale")
        names = [s.name for s in self.scales]
        if len(set(names)) != len(names):
            raise ConfigError(f"{where}.scales: duplicated scale names {names}")
        lengths = [_duration(s.name, f"{where}.scales[{i}].name") for i, s in enumerate(self.scales)]
        if lengths != sorted(lengths):
            raise ConfigError(f"{where}.scales: list them finest first, got {names}")
        _duration(self.every, f"{where}.every")
        if not self.horizons:
            raise ConfigError(f"{where}.horizons: give at least one horizon")
        if len(set(self.horizons)) != len(self.horizons):
            raise ConfigError(f"{where}.horizons: duplicated horizons {self.horizons}")
        for i, h in enumerate(self.horizons):
            _duration(h, f"{where}.horizons[{i}]")
        if not 0 < self.val_frac < 1 or not 0 < self.test_frac < 1:
            raise ConfigError(f"{where}.val_frac/test_frac: each must be in (0, 1)")
        if self.val_frac + self.test_frac >= 1:
            raise ConfigError(f"{where}.val_frac + test_frac: must be < 1 to leave training data")


@dataclass
class ModelSection:
    """The network (``model:``); see :class:`msa_lib.model.ModelConfig`.

    Attributes
    ----------
    kind : {"multiscale", "lstm", "single_scale", "linear"}
        The multi-scale attention network, or one of its baselines.
    d_model, n_layers, n_heads, n_cross_heads, conv_kernel, dropout, pos_encoding,
    cross_attention, gates, pyramid_levels
        As in :class:`msa_lib.model.ModelConfig`; ``n_layers``, ``n_heads`` and ``conv_kernel``
        apply to every scale's encoder.
    """

    kind: Literal["multiscale", "lstm", "single_scale", "linear"] = "multiscale"
    d_model: int = 32
    n_layers: int = 1
    n_heads: int = 4
    n_cross_heads: int = 4
    conv_kernel: int = 0
    dropout: float = 0.1
    pos_encoding: Literal["learnable", "sinusoidal", "none"] = "learnable"
    cross_attention: bool = True
    gates: bool = True
    pyramid_levels: int = 0

    def check(self, where: str) -> None:
        for key in ("d_model", "n_layers", "n_heads", "n_cross_heads"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{where}.{key}: must be >= 1, got {getattr(self, key)}")
        for key in ("n_heads", "n_cross_heads"):
            if self.d_model % getattr(self, key):
                raise ConfigError(
                    f"{where}.{key}: {getattr(self, key)} does not divide d_model={self.d_model}"
                )
        if self.conv_kernel < 0 or self.pyramid_levels < 0:
            raise ConfigError(f"{where}.conv_kernel/pyramid_levels: must be >= 0")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"{where}.dropout: must be in [0, 1), got {self.dropout}")


@dataclass
class TrainSection:
    """The training loop (``train:``); see :func:`msa_lib.train.fit`.

    Attributes
    ----------
    num_epochs, batch_size, lr, weight_decay, patience
        As in :func:`msa_lib.train.fit` (``patience: null`` never stops early).
    max_seconds : float or null
        Wall-clock budget (results then depend on the machine's speed).
    device : str or null
        ``"cpu"``, ``"cuda"``; ``null`` picks CUDA when available.
    threads : int or null
        ``torch.set_num_threads`` (``null``: PyTorch's choice).
    progress : bool
        Show a progress bar (``--no-progress`` turns it off too).
    """

    num_epochs: int = 5
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-2
    patience: int | None = 3
    max_seconds: float | None = None
    device: str | None = None
    threads: int | None = None
    progress: bool = True

    def check(self, where: str) -> None:
        for key in ("num_epochs", "batch_size"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{where}.{key}: must be >= 1, got {getattr(self, key)}")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ConfigError(f"{where}.lr/weight_decay: need lr > 0 and weight_decay >= 0")
        if self.patience is not None and self.patience < 1:
            raise ConfigError(f"{where}.patience: must be >= 1 or null, got {self.patience}")
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise ConfigError(f"{where}.max_seconds: must be > 0 or null")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"{where}.threads: must be >= 1 or null")


@dataclass
class BacktestSection:
    """Trading the forecasts (``backtest:``); see :func:`msa_lib.backtest.run_backtest`.

    Attributes
    ----------
    horizon : str or null
        Which horizon's probability of "up" is traded (``null``: the first).
    method, threshold, allow_short, max_position, kelly_fraction
        The :class:`msa_lib.backtest.SizingRule`.
    cost_bps : float
        Proportional cost per unit of turnover, in basis points.
    delay : int
        Execute every decision this many bars late.
    """

    horizon: str | None = None
    method: Literal["fixed", "confidence", "kelly"] = "fixed"
    threshold: float = 0.5
    allow_short: bool = True
    max_position: float = 1.0
    kelly_fraction: float = 0.5
    cost_bps: float = 1.0
    delay: int = 0

    def check(self, where: str) -> None:
        if not 0.5 <= self.threshold <= 1:
            raise ConfigError(f"{where}.threshold: must be in [0.5, 1], got {self.threshold}")
        if self.max_position <= 0 or not 0 < self.kelly_fraction <= 1:
            raise ConfigError(f"{where}.max_position/kelly_fraction: need > 0 and in (0, 1]")
        if self.cost_bps < 0 or self.delay < 0:
            raise ConfigError(f"{where}.cost_bps/delay: must be >= 0")


@dataclass
class OutputSection:
    """Where runs go (``output:``).

    Attributes
    ----------
    runs_dir : str
        Parent folder of run folders.
    run_name : str or null
        The run folder's name; ``null`` uses the config file's name (``default`` for
        ``configs/default.yaml``), so predict and backtest find the run that train wrote.
    """

    runs_dir: str = "runs"
    run_name: str | None = None

    def check(self, where: str) -> None:
        if self.run_name is not None and (
            not self.run_name or not all(c.isalnum() or c in "-_." for c in self.run_name)
        ):
            raise ConfigError(f"{where}.run_name: use letters, digits, '-', '_' or '.'")


@dataclass
class Config:
    """The whole configuration (the top level of the YAML file).

    Attributes
    ----------
    seed : int
        One seed for Python, NumPy and PyTorch (:func:`msa_lib.seed_everything`).
    data, features, model, train, backtest, output
        The sections above.
    """

    seed: int = 0
    data: DataSection = field(default_factory=DataSection)
    features: FeatureSection = field(default_factory=FeatureSection)
    model: ModelSection = field(default_factory=ModelSection)
    train: TrainSection = field(default_factory=TrainSection)
    backtest: BacktestSection = field(default_factory=BacktestSection)
    output: OutputSection = field(default_factory=OutputSection)

    def check(self, where: str) -> None:
        if not 0 <= self.seed < 2**32:
            raise ConfigError("seed: must be in [0, 2**32)")
        if self.backtest.horizon is not None and self.backtest.horizon not in self.features.horizons:
            raise ConfigError(
                f"backtest.horizon: {self.backtest.horizon!r} is not one of features.horizons "
                f"{self.features.horizons}"
            )


def _duration(value: str, key: str) -> pd.Timedelta:
    from msa_lib.data import as_timedelta

    try:
        return as_timedelta(value, what=key)
    except ValueError as err:
        raise ConfigError(f"{key}: {value!r} is not a duration like '5min', '1h', '1D' ({err})") from None


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " or ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it (dataclasses built, dates as str)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(value, option, key)
            except ConfigError as err:
                errors.append(err)
        if len(errors) == 1:
            raise errors[0]
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {_describe(value)}")
    if origin is Literal:
        if value not in typing.get_args(tp) or isinstance(value, bool):
            raise ConfigError(f"{key}: expected {_type_name(tp)}, got {_describe(value)}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected {_type_name(tp)}, got {_describe(value)}")
        (item,) = typing.get_args(tp)
        return [_convert(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {_describe(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {_describe(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ConfigError(f"{key}: expected a number, got {_describe(value)}")
        return float(value)
    if tp is str:
        if isinstance(value, dt.date):  # YAML reads 2024-01-01 as a date
            return value.isoformat()
        if not isinstance(value, str):
            hint = " (quote it in YAML)" if isinstance(value, int | float) else ""
            raise ConfigError(f"{key}: expected a string, got {_describe(value)}{hint}")
        return value
    raise TypeError(f"{key}: unsupported annotation {tp!r}")  # a bug in this module, not in input


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def _build(cls: type, mapping: Any, where: str) -> Any:
    """Build dataclass ``cls`` from ``mapping``, rejecting unknown keys and wrong types."""
    label = where or "config"
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"{label}: expected a mapping of keys to values, got {_describe(mapping)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    prefix = f"{where}." if where else ""
    for key in mapping:
        if key not in fields:
            raise ConfigError(
                f"{prefix}{key}: unknown key; known keys here are {', '.join(fields)}"
            )
    values = {}
    for name, f in fields.items():
        if name in mapping:
            values[name] = _convert(mapping[name], hints[name], f"{prefix}{name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{prefix}{name}: required key is missing")
    obj = cls(**values)
    obj.check(where)
    return obj


def config_from_dict(mapping: Mapping[str, Any] | None) -> Config:
    """Build and check a :class:`Config` from nested dicts (missing keys take their defaults).

    Raises
    ------
    ConfigError
        Naming the dotted key: unknown keys, wrong types, values out of range.
    """
    return _build(Config, {} if mapping is None else mapping, "")


def config_to_dict(config: Config) -> dict[str, Any]:
    """The config as plain nested dicts (what ``config.yaml`` of a run holds)."""
    return dataclasses.asdict(config)


def _set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for i, key in enumerate(keys[:-1]):
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"--set {dotted}: {'.'.join(keys[: i + 1])} is not a section")
        node = child
    node[keys[-1]] = value


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> Config:
    """Read a YAML config (default :data:`DEFAULT_CONFIG`, or built-in defaults) and apply overrides.

    Parameters
    ----------
    path : str or Path, optional
        A YAML file. ``None``: ``configs/default.yaml`` of the repository when present, else the
        defaults of the dataclasses.
    overrides : sequence of str
        ``"key.sub=value"`` items; the value is read as YAML (``1``, ``true``, ``[15min, 1h]``).

    Raises
    ------
    ConfigError
        A missing or unreadable file, YAML syntax errors, or an invalid config (naming the key).
    """
    import yaml

    tree: Any = {}
    if path is None and DEFAULT_CONFIG.is_file():
        path = DEFAULT_CONFIG
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            tree = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            problem = getattr(err, "problem", None) or "syntax error"
            raise ConfigError(f"config file {path}: invalid YAML{where}: {problem}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"config file {path} is not a text file") from None
        if tree is None:
            tree = {}
        if not isinstance(tree, dict):
            raise ConfigError(f"config file {path}: the top level must be a mapping of sections")
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value, like train.num_epochs=1")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            raise ConfigError(f"--set {key}: value {raw!r} is not valid YAML") from None
        _set_path(tree, key.strip(), value)
    try:
        return config_from_dict(tree)
    except ConfigError as err:
        source = f"config file {path}" if path is not None else "config"
        raise ConfigError(f"{source}: {err}") from None


# ==================================================================================================
# Bars: from every source, validated
# ==================================================================================================
def load_bars(data: DataSection) -> tuple[pd.DataFrame, str]:
    """The bars a data section describes, validated, and a one-line description of them."""
    from msa_lib import datasets

    if data.source == "simulate":
        market = datasets.simulate_market(
            days=data.days, seed=data.market_seed, start=data.start,
            signal_strength=data.signal_strength,
        )
        return market.bars, f"simulated market, {data.days} days, seed {data.market_seed}"
    if data.source == "bundled":
        return datasets.load_dataset(data.name), f"bundled dataset {data.name!r}"
    if data.source == "file":
        assert data.path is not None  # checked by DataSection.check
        return read_bars(data.path, data.time_label), f"file {data.path}"
    from msa_lib.bybit import fetch_bybit_klines

    end = data.end if data.end is not None else pd.Timestamp.now(tz="UTC").floor("min")
    bars = fetch_bybit_klines(data.symbol, data.interval, data.start, end,
                              category=data.category, cache_dir=data.cache_dir)
    gaps = bars.attrs.get("gaps", [])
    note = f", {sum(g['missing'] for g in gaps)} missing klines (not filled)" if gaps else ""
    return bars.loc[:, ["open", "high", "low", "close", "volume"]], (
        f"Bybit {data.symbol} {data.interval} ({data.category}){note}"
    )


def _data_file_name(data: DataSection) -> str:
    if data.source == "simulate":
        return f"simulated_{data.days}d_seed{data.market_seed}.csv.gz"
    if data.source == "bundled":
        return f"{data.name}.csv.gz"
    if data.source == "file":
        return Path(str(data.path)).name.split(".")[0] + ".csv.gz"
    end = (data.end or "now").replace(":", "")
    return f"bybit_{data.symbol}_{data.interval}_{data.start}_{end}.csv.gz"


# ==================================================================================================
# From bars to windows, with the settings of a config
# ==================================================================================================
def _frames(bars: pd.DataFrame, features: FeatureSection) -> dict[str, pd.DataFrame]:
    """Causal features of every configured scale, after checking that the bars are fine enough."""
    from msa_lib.data import resample_ohlcv, scale_features

    spacing = _modal_spacing(bars.index)
    finest = _duration(features.scales[0].name, "features.scales[0].name")
    if finest < spacing:
        raise ValueError(
            f"the bars come every {spacing} but the finest scale is {features.scales[0].name}: "
            "use scales no finer than the bars"
        )
    frames = {}
    for s in features.scales:
        frame = scale_features(resample_ohlcv(bars, s.name), **s.feature_kwargs())
        if len(frame) < s.lookback:
            raise ValueError(
                f"scale {s.name}: only {len(frame)} bars after the feature warm-up, fewer than "
                f"its lookback {s.lookback}; use more data or shorter windows"
            )
        frames[s.name] = frame
    return frames


def _windows(
    bars: pd.DataFrame, features: FeatureSection
) -> tuple[dict[str, np.ndarray], pd.DatetimeIndex]:
    from msa_lib.data import decision_times, make_windows

    frames = _frames(bars, features)
    lookbacks = {s.name: s.lookback for s in features.scales}
    windows, kept = make_windows(frames, lookbacks, decision_times(bars, features.every))
    if len(kept) == 0:
        raise ValueError(
            f"no decision time every {features.every} has a full window at every scale "
            f"(data {bars.index[0]} .. {bars.index[-1]}); use more data or shorter lookbacks"
        )
    return windows, kept


# ==================================================================================================
# Runs
# ==================================================================================================
_RUN_MARKERS = ("config.yaml", "model.pt")


def _run_dir(config: Config, config_path: str | None) -> Path:
    name = config.output.run_name
    if name is None:
        name = Path(config_path).stem if config_path else "default"
    return Path(config.output.runs_dir) / name


def _claim(path: Path, force: bool, what: str) -> None:
    """Refuse to replace an existing ``path`` unless ``force``; with ``force``, remove it."""
    if not path.exists():
        return
    if not force:
        raise CLIError(f"{what} {path} already exists; pass --force to overwrite it")
    if path.is_dir():
        if what == "run folder" and not any((path / m).exists() for m in _RUN_MARKERS) and any(
            path.iterdir()
        ):
            raise CLIError(f"{path} is not a run folder (no config.yaml or model.pt); not removing it")
        shutil.rmtree(path)
    else:
        path.unlink()


def _say(message: str, quiet: bool = False) -> None:
    if not quiet:
        print(message, flush=True)


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                       for i, (c, w) in enumerate(zip(row, widths, strict=True)))
             for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _set_threads(config: Config) -> None:
    if config.train.threads is not None:
        import torch

        torch.set_num_threads(config.train.threads)


# --------------------------------------------------------------------------------------------------
# msa data
# --------------------------------------------------------------------------------------------------
def cmd_data(args: argparse.Namespace, config: Config) -> int:
    """Get bars from the configured source, validate them, write them to a cache file."""
    data = config.data
    if args.source:
        data = dataclasses.replace(data, source=args.source)
    for key in ("name", "path", "symbol", "interval", "start", "end"):
        if getattr(args, key, None) is not None:
            data = dataclasses.replace(data, **{key: getattr(args, key)})
    data.check("data")
    out = Path(args.out) if args.out else Path(data.cache_dir) / _data_file_name(data)
    _claim(out, args.force, "data file")
    bars, description = load_bars(data)
    write_bars(bars, out)
    span = f"{bars.index[0]} .. {bars.index[-1]}"
    spacing = _modal_spacing(bars.index) / pd.Timedelta(minutes=1)
    _say(f"{description}: {len(bars):,} bars, {span}, mostly {spacing:g} min apart")
    _say(f"wrote {out}")
    return 0


# --------------------------------------------------------------------------------------------------
# msa train
# --------------------------------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace, config: Config) -> int:
    """Train the configured model and write a run folder."""
    import torch

    from msa_lib import evaluate, seed_everything
    from msa_lib.data import as_timedelta, chronological_split, make_targets
    from msa_lib.model import build_model, config_from_windows, count_parameters, save_checkpoint
    from msa_lib.train import fit, predict, prepare_datasets

    run = Path(args.run) if args.run else _run_dir(config, args.config)
    _claim(run, args.force, "run folder")  # fail before any work
    _set_threads(config)
    started = time.perf_counter()
    bars, description = load_bars(config.data)
    _say(f"data: {description}: {len(bars):,} bars, {bars.index[0]} .. {bars.index[-1]}")
    feats = config.features
    windows, kept = _windows(bars, feats)
    targets = make_targets(bars, kept, list(feats.horizons))
    if len(targets) == 0:
        raise ValueError(f"no decision time has {max(feats.horizons)} of future data left")
    longest = max(as_timedelta(h) for h in feats.horizons)
    splits = chronological_split(targets.index, feats.val_frac, feats.test_frac, purge=longest)
    prepared = prepare_datasets(windows, kept, targets, splits)
    _say(
        f"windows: {len(prepared.train):,} train / {len(prepared.val):,} val / "
        f"{len(prepared.test):,} test decision times, scales "
        + ", ".join(f"{s.name}x{s.lookback}" for s in feats.scales)
    )

    m = config.model
    model_config = config_from_windows(
        windows, n_layers=m.n_layers, n_heads=m.n_heads, conv_kernel=m.conv_kernel,
        d_model=m.d_model, horizons=tuple(feats.horizons), dropout=m.dropout,
        pos_encoding=m.pos_encoding, cross_attention=m.cross_attention, gates=m.gates,
        n_cross_heads=m.n_cross_heads, pyramid_levels=m.pyramid_levels,
    )
    seed_everything(config.seed)
    model = build_model(m.kind, model_config)
    _say(f"model: {m.kind}, {count_parameters(model):,} parameters")
    t = config.train
    history = fit(
        model, prepared.train, prepared.val, num_epochs=t.num_epochs, batch_size=t.batch_size,
        lr=t.lr, weight_decay=t.weight_decay, patience=t.patience, max_seconds=t.max_seconds,
        device=t.device, progress=t.progress and not args.no_progress,
    )
    model.to("cpu")

    # test scores beside the naive forecasts
    out = predict(model, prepared.test, device="cpu")
    y_test = prepared.returns["test"].to_numpy(dtype=np.float64)  # [N_test, H]
    y_train = prepared.returns["train"].to_numpy(dtype=np.float64)
    majority = evaluate.majority_class_score(y_train, len(y_test))  # [N_test, H]
    forecast = prepared.unscale(out["returns"])
    test_scores: dict[str, Any] = {}
    rows = []
    for j, h in enumerate(prepared.horizons):
        acc = float(evaluate.direction_accuracy(y_test[:, j], out["direction_logits"][:, j]))
        hits = int(round(acc * len(y_test)))
        low, high = evaluate.wilson_interval(hits, len(y_test))
        base = float(evaluate.direction_accuracy(y_test[:, j], majority[:, j]))
        ratio = float(evaluate.mse_ratio(y_test[:, j], forecast[:, j]))
        test_scores[h] = {"direction_accuracy": acc, "accuracy_ci95": [low, high],
                          "majority_class_accuracy": base, "mse_ratio_vs_zero": ratio,
                          "n": int(len(y_test))}
        rows.append([h, f"{acc:.1%}", f"[{low:.1%}, {high:.1%}]", f"{base:.1%}", f"{ratio:.3f}"])

    run.mkdir(parents=True)
    scalers = {
        "windows": {s: {"mean": prepared.scaler.mean_[s].tolist(),
                        "std": prepared.scaler.std_[s].tolist()} for s in prepared.scaler.mean_},
        "target_scale": dict(zip(prepared.horizons, prepared.target_scale.tolist(), strict=True)),
    }
    (run / "scalers.json").write_text(json.dumps(scalers, indent=1))
    save_checkpoint(model, run / "model.pt", seed=config.seed)
    _write_config(config, run / "config.yaml")
    history.to_frame().to_csv(run / "history.csv")
    metrics = {
        "data": description,
        "bars": {"n": len(bars), "first": bars.index[0].isoformat(),
                 "last": bars.index[-1].isoformat()},
        "splits": {k: {"n": len(v), "first": v[0].isoformat(), "last": v[-1].isoformat()}
                   for k, v in prepared.times.items()},
        "model": {"kind": m.kind, "parameters": count_parameters(model)},
        "training": {"epochs": history.num_epochs, "best_epoch": history.best_epoch + 1,
                     "best_val_loss": history.best_val_loss, "stop_reason": history.stop_reason,
                     "seconds": round(sum(history.seconds), 3)},
        "test": test_scores,
        "torch": torch.__version__,
        "seconds_total": round(time.perf_counter() - started, 3),
    }
    (run / "metrics.json").write_text(json.dumps(metrics, indent=1))
    _say(
        f"trained {history.num_epochs} epoch(s) in {sum(history.seconds):.1f} s "
        f"({history.stop_reason}); best epoch {history.best_epoch + 1}, "
        f"val loss {history.best_val_loss:.4f}"
    )
    _say("test period, direction of the return over each horizon:")
    _say(_table(rows, ["horizon", "accuracy", "95% interval", "majority", "MSE/zero"]))
    _say(f"wrote {run}/ (model.pt, config.yaml, scalers.json, metrics.json, history.csv)")
    return 0


def _write_config(config: Config, path: Path) -> None:
    import yaml

    text = yaml.safe_dump(config_to_dict(config), sort_keys=False, default_flow_style=None)
    path.write_text("# resolved configuration of this run (every key explicit)\n" + text)


# --------------------------------------------------------------------------------------------------
# msa predict
# --------------------------------------------------------------------------------------------------
@dataclass
class _Run:
    path: Path
    config: Config
    model: Any
    scalers: dict[str, Any]
    metrics: dict[str, Any]


def _load_run(path: Path) -> _Run:
    from msa_lib.model import load_checkpoint

    if not path.is_dir():
        raise CLIError(f"no run folder at {path}; train one first with: msa train")
    for name in ("config.yaml", "model.pt", "scalers.json", "metrics.json"):
        if not (path / name).is_file():
            raise CLIError(f"{path} is not a complete run folder: {name} is missing")
    config = load_config(path / "config.yaml")
    model, _ = load_checkpoint(path / "model.pt")
    scalers = json.loads((path / "scalers.json").read_text())
    metrics = json.loads((path / "metrics.json").read_text())
    return _Run(path, config, model, scalers, metrics)


def _forecast(run: _Run, bars: pd.DataFrame, since: pd.Timestamp | None) -> pd.DataFrame:
    """Forecasts of ``run`` at every decision time of ``bars`` (from ``since`` on), unscaled."""
    from msa_lib.data import WindowScaler, horizon_label, make_targets
    from msa_lib.train import predict

    windows, kept = _windows(bars, run.config.features)
    if since is not None:
        keep = kept >= since
        if not keep.any():
            raise ValueError(f"the data hold no decision time at or after {since}")
        windows = {s: w[keep] for s, w in windows.items()}
        kept = kept[keep]
    scaler = WindowScaler()
    scaler.mean_ = {s: np.asarray(v["mean"]) for s, v in run.scalers["windows"].items()}
    scaler.std_ = {s: np.asarray(v["std"]) for s, v in run.scalers["windows"].items()}
    out = predict(run.model, scaler.transform(windows), device="cpu")
    horizons = list(run.model.config.horizons)
    frame = pd.DataFrame(index=pd.DatetimeIndex(kept, name="time"))
    for j, h in enumerate(horizons):
        scale = float(run.scalers["target_scale"][h])
        frame[f"forecast_{h}"] = out["returns"][:, j].astype(np.float64) * scale
        frame[f"prob_up_{h}"] = out["direction_prob"][:, j].astype(np.float64)
    for h in horizons:
        realised = make_targets(bars, kept, [h])[horizon_label(h)]
        frame[f"realised_{h}"] = realised.reindex(kept).to_numpy()
    return frame


def _bars_for(run: _Run, data_path: str | None) -> tuple[pd.DataFrame, str, pd.Timestamp | None]:
    """The bars to forecast: ``data_path``, or the run's own data from its test period on."""
    if data_path is not None:
        bars = read_bars(data_path, run.config.data.time_label)
        return bars, f"file {data_path}", None
    bars, description = load_bars(run.config.data)
    since = pd.Timestamp(run.metrics["splits"]["test"]["first"])
    return bars, f"{description}, test period", since


def cmd_predict(args: argparse.Namespace, config: Config) -> int:
    """Forecast every horizon with a trained run; write a CSV."""
    run = _load_run(Path(args.run) if args.run else _run_dir(config, args.config))
    stem = Path(args.data).name.split(".")[0] if args.data else ""
    out = Path(args.out) if args.out else run.path / (
        f"predictions_{stem}.csv" if stem else "predictions.csv"
    )
    _claim(out, args.force, "predictions file")
    _set_threads(run.config)
    bars, description, since = _bars_for(run, args.data)
    frame = _forecast(run, bars, since)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, float_format="%.8g")
    _say(f"{len(frame):,} forecasts for {description}, {frame.index[0]} .. {frame.index[-1]}")
    horizons = list(run.model.config.horizons)
    rows = []
    for h in horizons:
        ok = frame[f"realised_{h}"].notna()
        hit = (frame.loc[ok, f"prob_up_{h}"] > 0.5) == (frame.loc[ok, f"realised_{h}"] > 0)
        rows.append([h, f"{frame[f'prob_up_{h}'].mean():.3f}",
                     f"{hit.mean():.1%}" if ok.any() else "n/a", f"{int(ok.sum()):,}"])
    _say(_table(rows, ["horizon", "mean P(up)", "accuracy", "scored"]))
    _say(f"wrote {out}")
    return 0


# --------------------------------------------------------------------------------------------------
# msa backtest
# --------------------------------------------------------------------------------------------------
# annualised returns of a test period lasting hours are meaningless numbers: the table leaves them out
_SHOWN = ("total_return", "sharpe", "sharpe_ci_low", "sharpe_ci_high",
          "max_drawdown", "win_rate", "profit_factor", "turnover_per_year", "n_trades", "exposure")


def cmd_backtest(args: argparse.Namespace, config: Config) -> int:
    """Trade a run's forecasts with costs, beside buy-and-hold and a naive momentum rule."""
    from msa_lib.backtest import SizingRule, buy_and_hold_positions, run_backtest
    from msa_lib.data import as_timedelta

    run = _load_run(Path(args.run) if args.run else _run_dir(config, args.config))
    stem = Path(args.data).name.split(".")[0] if args.data else ""
    out = Path(args.out) if args.out else run.path / (f"backtest_{stem}" if stem else "backtest")
    _claim(out, args.force, "backtest folder")
    _set_threads(run.config)
    b = run.config.backtest
    horizons = list(run.model.config.horizons)
    horizon = b.horizon or horizons[0]
    bars, description, since = _bars_for(run, args.data)
    frame = _forecast(run, bars, since)

    # decisions need a later price to trade, `delay` bars later still; all strategies end together
    close = bars["close"]
    every = as_timedelta(run.config.features.every)
    last_usable = close.index[-1 - b.delay - 1] if len(close) > b.delay + 1 else close.index[0]
    decisions = frame.index[frame.index + every <= last_usable]
    if len(decisions) < 2:
        raise ValueError("fewer than two decision times leave room to trade before the data end")
    end_pos = close.index.searchsorted(decisions[-1] + every, side="right") - 1
    end = close.index[end_pos]
    prob = frame.loc[decisions, f"prob_up_{horizon}"]
    rule = SizingRule(method=b.method, threshold=b.threshold, allow_short=b.allow_short,
                      max_position=b.max_position, kelly_fraction=b.kelly_fraction)
    common = {"cost_bps": b.cost_bps, "delay": b.delay, "end": end}
    results = {f"model ({horizon}, {b.method})": run_backtest(prob, close, sizing=rule, **common)}
    log_close = np.log(close)
    past = log_close.loc[decisions].to_numpy() - np.interp(
        (decisions - as_timedelta(horizon)).as_unit("ns").asi8.astype(np.float64),
        close.index.as_unit("ns").asi8.astype(np.float64), log_close.to_numpy())
    momentum = pd.Series(np.sign(past) * b.max_position + 0.0, index=decisions)
    if not b.allow_short:
        momentum = momentum.clip(lower=0.0)
    results[f"naive: sign of last {horizon}"] = run_backtest(momentum, close, **common)
    hold = buy_and_hold_positions(close, start=decisions[0], end=decisions[-1])
    results["buy and hold"] = run_backtest(hold, close, **common)

    table = pd.DataFrame({name: r.metrics for name, r in results.items()})
    out.mkdir(parents=True)
    table.to_csv(out / "metrics.csv", float_format="%.6g")
    (out / "metrics.json").write_text(json.dumps(
        {"data": description, "horizon": horizon, "cost_bps": b.cost_bps,
         "start": decisions[0].isoformat(), "end": end.isoformat(),
         "strategies": {k: {m: (None if not math.isfinite(v) else v) for m, v in r.metrics.items()}
                        for k, r in results.items()}}, indent=1))
    _equity_figures(results, out, title=f"{description}, cost {b.cost_bps:g} bp")
    _say(f"backtest on {description}: {len(decisions):,} decisions, {decisions[0]} .. {end}, "
         f"cost {b.cost_bps:g} bp per unit traded")
    shown = table.loc[list(_SHOWN)]
    rows = [[k] + [_fmt(k, v) for v in shown.loc[k]] for k in shown.index]
    _say(_table(rows, ["metric", *shown.columns]))
    _say(f"wrote {out}/ (metrics.csv, metrics.json, equity.png, equity.html)")
    return 0


def _fmt(metric: str, value: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    if metric in ("total_return", "annual_return", "max_drawdown", "win_rate", "exposure"):
        return f"{value:.2%}"
    if metric == "n_trades":
        return f"{value:,.0f}"
    return f"{value:.2f}"


def _equity_figures(results: Mapping[str, Any], out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import plotly.graph_objects as go

    fig, ax = plt.subplots(figsize=(9, 4))
    for name, r in results.items():
        ax.plot(r.equity.index, r.equity.to_numpy(), label=name, linewidth=1.2)
    ax.set_ylabel("equity (start = 1)")
    ax.set_title(title)
    ax.legend()
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(out / "equity.png", dpi=110)
    plt.close(fig)
    figure = go.Figure([go.Scatter(x=r.equity.index, y=r.equity.to_numpy(), name=name, mode="lines")
                        for name, r in results.items()])
    figure.update_layout(title=title, yaxis_title="equity (start = 1)", template="plotly_white")
    # plotly.js is written once beside the page, so the file opens with no internet
    figure.write_html(out / "equity.html", include_plotlyjs="directory", include_mathjax=False)


# ==================================================================================================
# Argument parsing and the one-line error rule
# ==================================================================================================
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="msa",
        description="Multi-scale attention for financial time series: data, training, "
        "forecasts and backtests from the command line. Every subcommand runs on the bundled "
        "defaults when given no arguments.",
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="{data,train,predict,backtest}")
    sub.required = True

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", metavar="YAML",
                       help="configuration file (default: configs/default.yaml)")
        p.add_argument("--set", dest="overrides", action="append", default=[],
                       metavar="KEY=VALUE", help="override one setting, e.g. train.num_epochs=1 "
                       "(repeatable; values are read as YAML)")
        p.add_argument("--force", action="store_true", help="overwrite existing output")
        p.add_argument("--traceback", action="store_true",
                       help="on error, show the Python traceback instead of one line")

    p = sub.add_parser("data", help="get, validate and cache bars",
                       description="Get bars from the configured source (simulate, bundled, file "
                       "or bybit), validate them and write them to a CSV cache file.")
    common(p)
    p.add_argument("--source", choices=["simulate", "bundled", "file", "bybit"])
    p.add_argument("--name", help="bundled dataset name (es_1min, eurusd_1h, spx_1d)")
    p.add_argument("--path", help="CSV or Parquet file of OHLCV bars (source file)")
    p.add_argument("--symbol", help="Bybit symbol, e.g. BTCUSDT")
    p.add_argument("--interval", help="Bybit interval: 1 3 5 15 30 60 120 240 360 720 D")
    p.add_argument("--start", help="first time (simulate: a midnight; bybit: range start)")
    p.add_argument("--end", help="end of a Bybit range (default: now)")
    p.add_argument("--out", help="output file (.csv, .csv.gz; default: <cache_dir>/<source>.csv.gz)")
    p.set_defaults(func=cmd_data)

    p = sub.add_parser("train", help="train the model and write a run folder",
                       description="Train the configured model; write <runs_dir>/<run_name>/ with "
                       "model.pt, config.yaml, scalers.json, metrics.json and history.csv.")
    common(p)
    p.add_argument("--run", help="run folder to write (default: runs/<config name>)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    for name, func, what in (
        ("predict", cmd_predict, "forecasts of every horizon, written as CSV"),
        ("backtest", cmd_backtest, "a backtest with costs beside naive baselines: metrics table, "
         "equity.png and equity.html"),
    ):
        p = sub.add_parser(name, help=what,
                           description=f"Use a trained run: {what}. Without --data it uses the "
                           "run's own data, from the start of its test period.")
        common(p)
        p.add_argument("--run", help="run folder (default: runs/<config name>)")
        p.add_argument("--data", help="CSV or Parquet file of OHLCV bars to use instead")
        p.add_argument("--out", help="output path (default: inside the run folder)")
        p.set_defaults(func=func)
    return parser


def _version() -> str:
    from msa_lib import __version__

    return f"msa_lib {__version__}"


def _one_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    if isinstance(err, KeyError) and len(err.args) == 1 and isinstance(err.args[0], str):
        text = err.args[0]
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 success, 1 error, 2 usage error)."""
    parser = _parser()
    args = parser.parse_args(argv)
    prog = f"msa {args.command}"
    try:
        config = load_config(args.config, args.overrides)
        return int(args.func(args, config) or 0)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # the one-line rule: every failure is reported in a single line
        if args.traceback:
            raise
        expected = (ConfigError, CLIError, ValueError, FileNotFoundError, KeyError, RuntimeError,
                    OSError)
        kind = "error" if isinstance(err, expected) else f"unexpected {type(err).__name__}"
        print(f"{prog}: {kind}: {_one_line(err)} (--traceback shows details)"
              if kind != "error" else f"{prog}: error: {_one_line(err)}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
