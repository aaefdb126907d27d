"""One definition of an experiment: every setting of a run, checked once, and the course default.

An :class:`Experiment` is a frozen dataclass made of sections, each a frozen dataclass too:

==============  ====================================================================================
``seed``        the training seed (initial weights, dropout, batch order)
``data``        where the bars come from: the synthetic market (days, its own seed, signal
                strength), a bundled data set, a file, or Bybit
``features``    the scales with their lookbacks and per-scale feature windows, the spacing of
                decision times (``every``), the forecast horizons and the chronological split
``model``       the network (kind, width, heads, dropout, ablation switches)
``train``       the training loop (epochs, batch size, learning rate, early stopping, loss weights)
``backtest``    trading the forecasts (used by the command line)
``output``      where the command line writes its runs
==============  ====================================================================================

:data:`COURSE` is the course's experiment: chapters 05 to 08, the command line
(``configs/default.yaml`` holds the same values) and the benchmarks start from it. A chapter states
only what it changes::

    EXPERIMENT = COURSE.replace(train={"num_epochs": 4}, model={"d_model": 64})

Every value is checked when an object is built, by the same code whether it comes from Python or
from a YAML file (:func:`load_experiment`): a wrong type, an unknown key or a value out of range
raises :class:`ConfigError`, whose message starts with the dotted key at fault
(``features.scales[1].lookback: must be >= 1, got 0``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import yaml

from msa_lib.backtest import SizingRule
from msa_lib.data import as_timedelta
from msa_lib.model import ModelConfig, config_from_windows

__all__ = [
    "COURSE",
    "EURUSD_1H",
    "BacktestSection",
    "ConfigError",
    "DataSection",
    "Experiment",
    "FeatureSection",
    "LossWeights",
    "ModelSection",
    "OutputSection",
    "ScaleSpec",
    "TrainSection",
    "load_experiment",
    "save_experiment",
]


class ConfigError(ValueError):
    """A setting that is not valid; the message starts with the dotted key at fault."""


# ==================================================================================================
# The checking machinery: one converter for every field of every section
# ==================================================================================================
def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " or ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is tuple:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if tp is type(None):
        return "null"
    if isinstance(tp, type) and issubclass(tp, _Section):
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, key: str) -> Any:
    """``value`` checked against the annotation ``tp`` and normalised (lists become tuples,
    mappings become sections, YAML dates become ISO strings); ConfigError names ``key``."""
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
        if isinstance(value, bool) or value not in typing.get_args(tp):
            raise ConfigError(f"{key}: expected {_type_name(tp)}, got {_describe(value)}")
        return value
    if origin is tuple:  # tuple[X, ...]: a list in YAML, a tuple in Python
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected {_type_name(tp)}, got {_describe(value)}")
        item = typing.get_args(tp)[0]
        return tuple(_convert(v, item, f"{key}[{i}]") for i, v in enumerate(value))
    if isinstance(tp, type) and issubclass(tp, _Section):
        if isinstance(value, tp):
            return value
        return tp.from_dict(value, key)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {_describe(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {_describe(value)}")
        return int(value)
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


def _within(prefix: str, err: ConfigError) -> ConfigError:
    """``err`` with its key moved under ``prefix`` (``lookback: ...`` -> ``scales[0].lookback: ...``)."""
    return ConfigError(f"{prefix}.{err}" if prefix else str(err))


def _plain(value: Any) -> Any:
    """Sections -> dicts, tuples -> lists, recursively (what YAML and JSON hold)."""
    if isinstance(value, _Section):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True)
class _Section:
    """Base of every section: fields are checked and normalised on construction.

    Subclasses declare typed fields and may add cross-field rules in :meth:`_check`, raising
    :class:`ConfigError` with a message that starts with the field's name.
    """

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = _convert(getattr(self, f.name), hints[f.name], f.name)
            object.__setattr__(self, f.name, value)  # frozen: normalise once, here
        self._check()

    def _check(self) -> None:
        """Rules between fields (ranges, divisibility...). Nothing to check by default."""

    @classmethod
    def from_dict(cls, mapping: Any, where: str = "") -> Any:
        """Build from nested dicts, as read from YAML (missing keys take their defaults).

        Parameters
        ----------
        mapping : dict
        where : str
            Dotted key of this section, put in front of every error message.

        Raises
        ------
        ConfigError
            Unknown keys, wrong types, values out of range; the message names the dotted key.
        """
        label = where or "config"
        if not isinstance(mapping, Mapping):
            raise ConfigError(f"{label}: expected a mapping of keys to values, got {_describe(mapping)}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        prefix = f"{where}." if where else ""
        for key in mapping:
            if key not in fields:
                raise ConfigError(f"{prefix}{key}: unknown key; known keys here are {', '.join(fields)}")
        for name, f in fields.items():
            missing = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            if missing and name not in mapping:
                raise ConfigError(f"{prefix}{name}: required key is missing")
        try:
            return cls(**dict(mapping))
        except ConfigError as err:
            raise _within(where, err) from None

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dicts and lists (YAML- and JSON-ready); ``from_dict`` reads it back."""
        return _plain(self)

    def replace(self, **changes: Any) -> Any:
        """A checked copy with some fields changed (the original is untouched).

        A section's new value may be given as a dict of only the fields that change
        (``train={"num_epochs": 4}``), and a key may be dotted (``**{"train.num_epochs": 4}``).
        """
        fields = [f.name for f in dataclasses.fields(self)]
        direct: dict[str, Any] = {}
        nested: dict[str, dict[str, Any]] = {}
        for key, value in changes.items():
            head, _, rest = key.partition(".")
            if head not in fields:
                raise ConfigError(f"{key}: unknown key; known keys here are {', '.join(fields)}")
            if rest:
                nested.setdefault(head, {})[rest] = value
            else:
                direct[head] = value
        for name in set(direct) | set(nested):
            current = getattr(self, name)
            value = direct.get(name, current)
            if not isinstance(current, _Section) or not (
                isinstance(value, Mapping) or name in nested
            ):
                continue
            try:
                if isinstance(value, Mapping):
                    value = current.replace(**{**value, **nested.get(name, {})})
                else:
                    value = _convert(value, type(current), name).replace(**nested[name])
            except ConfigError as err:
                raise _within(name, err) from None
            direct[name] = value
        return dataclasses.replace(self, **direct)


# ==================================================================================================
# The sections
# ==================================================================================================
def _duration(value: str, key: str) -> pd.Timedelta:
    try:
        return as_timedelta(value, what=key)
    except ValueError as err:
        raise ConfigError(f"{key}: {value!r} is not a duration like '5min', '1h', '1D' ({err})") from None


@dataclass(frozen=True)
class DataSection(_Section):
    """Where the bars come from (``data:`` in YAML).

    Attributes
    ----------
    source : {"simulate", "bundled", "file", "bybit"}
        ``simulate``: :func:`msa_lib.datasets.simulate_market`; ``bundled``: a data set shipped
        with the package (:func:`msa_lib.datasets.load_dataset`); ``file``: a CSV or Parquet file
        of OHLCV bars; ``bybit``: live klines (:func:`msa_lib.bybit.fetch_bybit_klines`).
    days, market_seed, signal_strength
        The synthetic market (``simulate``): days of 1-minute bars, the market's own random seed,
        the size of the planted jumps in typical 1-minute moves, ``>= 0`` (``None``: the library
        default).
    start, end
        ``simulate``: ``start`` is the first midnight (UTC). ``bybit``: the range ``[start, end)``,
        ``end=None`` meaning now.
    name
        ``bundled`` only: one of :data:`msa_lib.datasets.DATASETS`.
    path, time_label
        ``file`` only: the file, and whether its times label the bar's ``close`` (the course's
        convention) or its ``start`` (then every label is moved forward by one bar length).
    symbol, interval, category
        ``bybit`` only.
    cache_dir
        Folder of ``msa data`` output files and of the Bybit page cache.
    """

    source: Literal["simulate", "bundled", "file", "bybit"] = "simulate"
    days: int = 120
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

    def _check(self) -> None:
        if self.days < 1:
            raise ConfigError(f"days: must be >= 1, got {self.days}")
        if self.source == "file" and not self.path:
            raise ConfigError("path: source 'file' needs a path")
        if self.signal_strength is not None and not self.signal_strength >= 0:
            raise ConfigError(f"signal_strength: must be >= 0, got {self.signal_strength}")
        for key in ("start", "end"):
            value = getattr(self, key)
            if value is not None:
                try:
                    pd.Timestamp(value)
                except ValueError:
                    raise ConfigError(f"{key}: {value!r} is not a date") from None


@dataclass(frozen=True)
class ScaleSpec(_Section):
    """One time scale: its bar length, its window length and its feature windows.

    Attributes
    ----------
    name : str
        Bar length, a pandas duration: ``"1min"``, ``"5min"``, ``"1h"``, ``"1D"``.
    lookback : int
        Rows (bars) of this scale in every input window.
    lags, vol_windows, ma_windows, volume_window, rsi_window
        Feature windows of :func:`msa_lib.data.scale_features`, in bars of this scale; ``None``
        keeps the library default. Coarse scales want short windows: the longest window is the
        warm-up lost at the start of the data (20 daily bars would eat 20 days).
    """

    name: str
    lookback: int
    lags: tuple[int, ...] | None = None
    vol_windows: tuple[int, ...] | None = None
    ma_windows: tuple[int, ...] | None = None
    volume_window: int | None = None
    rsi_window: int | None = None

    def _check(self) -> None:
        _duration(self.name, "name")
        if self.lookback < 1:
            raise ConfigError(f"lookback: must be >= 1, got {self.lookback}")
        for key in ("lags", "vol_windows", "ma_windows"):
            values = getattr(self, key)
            if values is not None and (not values or min(values) < 1):
                raise ConfigError(f"{key}: needs one or more integers >= 1, got {list(values)}")
        for key in ("volume_window", "rsi_window"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise ConfigError(f"{key}: must be >= 1, got {value}")
        if self.vol_windows is not None and min(self.vol_windows) < 2:
            raise ConfigError("vol_windows: a standard deviation needs windows >= 2")

    def feature_kwargs(self) -> dict[str, Any]:
        """The feature windows that are set, as keyword arguments of ``scale_features``."""
        keys = ("lags", "vol_windows", "ma_windows", "volume_window", "rsi_window")
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}


#: Short feature windows for daily bars: a warm-up of five days instead of twenty.
SHORT_FEATURE_WINDOWS: dict[str, Any] = {
    "lags": (1, 2, 5), "vol_windows": (5,), "ma_windows": (5,), "volume_window": 5, "rsi_window": 5,
}


@dataclass(frozen=True)
class FeatureSection(_Section):
    """Scales, decision times, horizons and the chronological split (``features:`` in YAML).

    Attributes
    ----------
    scales : tuple of ScaleSpec
        Finest first; the finest must not be finer than the bars.
    every : str
        Spacing of decision times (a decision at every multiple of it since midnight UTC).
    horizons : tuple of str
        Forecast horizons; the network has one return output and one direction output per horizon.
    val_frac, test_frac : float
        Shares of the decision times for validation and test (the latest ones), split with a purge
        gap equal to the longest horizon.
    """

    scales: tuple[ScaleSpec, ...] = (
        ScaleSpec("1min", 30),
        ScaleSpec("5min", 6),
        ScaleSpec("1h", 12),
        ScaleSpec("1D", 7, **SHORT_FEATURE_WINDOWS),
    )
    every: str = "5min"
    horizons: tuple[str, ...] = ("5min", "15min", "30min")
    val_frac: float = 0.2
    test_frac: float = 0.2

    def _check(self) -> None:
        if not self.scales:
            raise ConfigError("scales: give at least one scale")
        names = [s.name for s in self.scales]
        if len(set(names)) != len(names):
            raise ConfigError(f"scales: duplicated scale names {names}")
        lengths = [_duration(s.name, f"scales[{i}].name") for i, s in enumerate(self.scales)]
        if lengths != sorted(lengths):
            raise ConfigError(f"scales: list them finest first, got {names}")
        _duration(self.every, "every")
        if not self.horizons:
            raise ConfigError("horizons: give at least one horizon")
        if len(set(self.horizons)) != len(self.horizons):
            raise ConfigError(f"horizons: duplicated horizons {list(self.horizons)}")
        for i, h in enumerate(self.horizons):
            _duration(h, f"horizons[{i}]")
        if not 0 < self.val_frac < 1 or not 0 < self.test_frac < 1:
            raise ConfigError("val_frac/test_frac: each must be in (0, 1)")
        if self.val_frac + self.test_frac >= 1:
            raise ConfigError("val_frac + test_frac: must be < 1 to leave training data")

    @property
    def lookbacks(self) -> dict[str, int]:
        """Scale name -> lookback, finest first (what :func:`msa_lib.data.make_windows` takes)."""
        return {s.name: s.lookback for s in self.scales}

    @property
    def scale_names(self) -> list[str]:
        """Scale names, finest first."""
        return [s.name for s in self.scales]

    def scale(self, name: str) -> ScaleSpec:
        """The scale called ``name`` (ConfigError listing the scales if there is none)."""
        for s in self.scales:
            if s.name == name:
                return s
        raise ConfigError(f"scales: no scale {name!r}; the scales are {self.scale_names}")

    @property
    def longest_horizon(self) -> pd.Timedelta:
        """The longest horizon: the purge gap between split blocks."""
        return max(as_timedelta(h) for h in self.horizons)


@dataclass(frozen=True)
class ModelSection(_Section):
    """The network (``model:`` in YAML); see :class:`msa_lib.model.ModelConfig`.

    Attributes
    ----------
    kind : {"multiscale", "lstm", "single_scale", "linear", "nhits", "patchtst"}
        The multi-scale attention network, or one of its rivals (:mod:`msa_lib.baselines`).
    d_model, n_layers, n_heads, n_cross_heads, conv_kernel, dropout, pos_encoding,
    cross_attention, gates, pyramid_levels
        As in :class:`msa_lib.model.ModelConfig`; ``n_layers``, ``n_heads`` and ``conv_kernel``
        apply to every scale's encoder.
    """

    kind: Literal["multiscale", "lstm", "single_scale", "linear", "nhits", "patchtst"] = "multiscale"
    d_model: int = 32
    n_layers: int = 1
    n_heads: int = 4
    n_cross_heads: int = 4
    conv_kernel: int = 0
    dropout: float = 0.2
    pos_encoding: Literal["learnable", "sinusoidal", "none"] = "learnable"
    cross_attention: bool = True
    gates: bool = True
    pyramid_levels: int = 0

    def _check(self) -> None:
        for key in ("d_model", "n_layers", "n_heads", "n_cross_heads"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key}: must be >= 1, got {getattr(self, key)}")
        for key in ("n_heads", "n_cross_heads"):
            if self.d_model % getattr(self, key):
                raise ConfigError(
                    f"{key}: {getattr(self, key)} does not divide d_model={self.d_model}"
                )
        if self.conv_kernel < 0 or self.pyramid_levels < 0:
            raise ConfigError("conv_kernel/pyramid_levels: must be >= 0")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout: must be in [0, 1), got {self.dropout}")


@dataclass(frozen=True)
class LossWeights(_Section):
    """Weights of the two parts of the training loss (``train.loss_weights`` in YAML).

    ``total = returns * mean_h MSE_h + direction * mean_h BCE_h``

    Attributes
    ----------
    returns : float, default 1.0
        Weight of the mean squared error on scaled returns. Scaled returns have a variance near 1,
        so a forecast of zero scores an MSE near 1.
    direction : float, default 1.0
        Weight of the binary cross-entropy on the direction. A coin-flip forecast scores
        ``ln 2 ~ 0.69``, so with weight 1 both terms start on the same footing; the direction term
        keeps pushing on the sign even when the squared error is dominated by a few large returns.
    horizons : tuple of float, optional
        Relative weight of each horizon (normalised to mean 1). Equal when omitted.
    """

    returns: float = 1.0
    direction: float = 1.0
    horizons: tuple[float, ...] | None = None

    def _check(self) -> None:
        if self.returns < 0 or self.direction < 0 or self.returns + self.direction == 0:
            raise ConfigError(
                f"returns/direction: loss weights must be >= 0 and not both 0, got "
                f"returns={self.returns}, direction={self.direction}"
            )
        if self.horizons is not None and (
            len(self.horizons) == 0 or min(self.horizons) < 0 or sum(self.horizons) == 0
        ):
            raise ConfigError(
                f"horizons: horizon weights must be >= 0 and not all 0, got {list(self.horizons)}"
            )

    @classmethod
    def coerce(cls, value: LossWeights | Mapping[str, Any] | None) -> LossWeights:
        """Accept a :class:`LossWeights`, a dict of its fields, or ``None`` (the defaults)."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, Mapping):
            return cls.from_dict(value, "loss_weights")
        raise TypeError(f"loss_weights must be LossWeights, a dict or None, got {type(value)}")


@dataclass(frozen=True)
class TrainSection(_Section):
    """The training loop (``train:`` in YAML); see :func:`msa_lib.train.fit`.

    Attributes
    ----------
    num_epochs, batch_size, lr, weight_decay, patience
        As in :func:`msa_lib.train.fit` (``patience=None`` never stops early).
    max_seconds : float or None
        Wall-clock budget (results then depend on the machine's speed).
    loss_weights : LossWeights
        Weights of the squared error and the cross-entropy.
    device : str or None
        ``"cpu"``, ``"cuda"``; ``None`` picks CUDA when available.
    threads : int or None
        ``torch.set_num_threads`` for the command line (``None``: PyTorch's choice).
    progress : bool
        Show a progress bar (the command line's ``--no-progress`` turns it off too).

    ``device``, ``threads`` and ``progress`` change how fast a run goes, not what it computes: the
    network cache ignores them.
    """

    num_epochs: int = 12
    batch_size: int = 256
    lr: float = 3e-3
    weight_decay: float = 0.05
    patience: int | None = 4
    max_seconds: float | None = None
    loss_weights: LossWeights = LossWeights()
    device: str | None = None
    threads: int | None = None
    progress: bool = True

    def _check(self) -> None:
        for key in ("num_epochs", "batch_size"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key}: must be >= 1, got {getattr(self, key)}")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ConfigError("lr/weight_decay: need lr > 0 and weight_decay >= 0")
        if self.patience is not None and self.patience < 1:
            raise ConfigError(f"patience: must be >= 1 or null, got {self.patience}")
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise ConfigError("max_seconds: must be > 0 or null")
        if self.threads is not None and self.threads < 1:
            raise ConfigError("threads: must be >= 1 or null")


@dataclass(frozen=True)
class BacktestSection(_Section):
    """Trading the forecasts (``backtest:`` in YAML); see :func:`msa_lib.backtest.run_backtest`.

    Attributes
    ----------
    horizon : str or None
        Which horizon's probability of "up" is traded (``None``: the first).
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

    def sizing_rule(self) -> SizingRule:
        """The position-sizing rule these settings describe (validated by :class:`SizingRule`)."""
        return SizingRule(method=self.method, threshold=self.threshold, allow_short=self.allow_short,
                          max_position=self.max_position, kelly_fraction=self.kelly_fraction)

    def _check(self) -> None:
        try:
            self.sizing_rule()  # one validator for sizing: the backtest's own
        except ValueError as err:
            raise ConfigError(str(err).removeprefix("SizingRule.").replace(" must ", ": must ", 1)) from None
        if self.cost_bps < 0 or self.delay < 0:
            raise ConfigError("cost_bps/delay: must be >= 0")


@dataclass(frozen=True)
class OutputSection(_Section):
    """Where the command line writes runs (``output:`` in YAML).

    Attributes
    ----------
    runs_dir : str
        Parent folder of run folders.
    run_name : str or None
        The run folder's name; ``None`` uses the config file's name (``default`` for
        ``configs/default.yaml``), so predict and backtest find the run that train wrote.
    """

    runs_dir: str = "runs"
    run_name: str | None = None

    def _check(self) -> None:
        if self.run_name is not None and (
            not self.run_name or not all(c.isalnum() or c in "-_." for c in self.run_name)
        ):
            raise ConfigError("run_name: use letters, digits, '-', '_' or '.'")


#: Sections and fields that change how fast or where a run goes, not the weights it trains.
_NOT_IN_CACHE_KEY = {"backtest": None, "output": None, "train": ("device", "threads", "progress"),
                     "data": ("cache_dir",)}


@dataclass(frozen=True)
class Experiment(_Section):
    """Every setting of an experiment, from the bars to the trades.

    The defaults are the course's experiment (:data:`COURSE`). Change any part with
    :meth:`replace`; every value is checked on construction.

    Attributes
    ----------
    seed : int
        The training seed (:func:`msa_lib.seed_everything`): initial weights, dropout, batch order.
        The synthetic market has its own, ``data.market_seed``.
    data, features, model, train, backtest, output
        The sections (:class:`DataSection`, :class:`FeatureSection`, :class:`ModelSection`,
        :class:`TrainSection`, :class:`BacktestSection`, :class:`OutputSection`).

    Examples
    --------
    >>> longer = COURSE.replace(train={"num_epochs": 12}).with_lookbacks({"1min": 60})
    >>> longer.lookbacks["1min"], longer.train.num_epochs, COURSE.lookbacks["1min"]
    (60, 12, 30)
    """

    seed: int = 0
    data: DataSection = DataSection()
    features: FeatureSection = FeatureSection()
    model: ModelSection = ModelSection()
    train: TrainSection = TrainSection()
    backtest: BacktestSection = BacktestSection()
    output: OutputSection = OutputSection()

    def _check(self) -> None:
        if not 0 <= self.seed < 2**32:
            raise ConfigError("seed: must be in [0, 2**32)")
        horizons = self.features.horizons
        if self.backtest.horizon is not None and self.backtest.horizon not in horizons:
            raise ConfigError(
                f"backtest.horizon: {self.backtest.horizon!r} is not one of features.horizons "
                f"{list(horizons)}"
            )
        weights = self.train.loss_weights.horizons
        if weights is not None and len(weights) != len(horizons):
            raise ConfigError(
                f"train.loss_weights.horizons: {len(weights)} weights for {len(horizons)} "
                f"horizons {list(horizons)}"
            )

    # -- shortcuts a chapter reads often ------------------------------------------------------
    @property
    def lookbacks(self) -> dict[str, int]:
        """Scale name -> lookback, finest first."""
        return self.features.lookbacks

    @property
    def horizons(self) -> tuple[str, ...]:
        """The forecast horizons."""
        return self.features.horizons

    def with_lookbacks(self, lookbacks: Mapping[str, int]) -> Experiment:
        """A copy whose named scales have new lookbacks (their feature windows are kept)."""
        for name in lookbacks:
            try:
                self.features.scale(name)
            except ConfigError as err:
                raise _within("features", err) from None
        scales = tuple(
            s.replace(lookback=lookbacks[s.name]) if s.name in lookbacks else s
            for s in self.features.scales
        )
        return self.replace(features={"scales": scales})

    # -- what the library's functions take ----------------------------------------------------
    def feature_kwargs(self) -> dict[str, dict[str, Any]]:
        """Scale -> keyword arguments of :func:`msa_lib.data.scale_features`."""
        return {s.name: s.feature_kwargs() for s in self.features.scales}

    def model_config(self, windows: Mapping[str, Any], **changes: Any) -> ModelConfig:
        """The :class:`msa_lib.model.ModelConfig` of this experiment's network for ``windows``.

        Parameters
        ----------
        windows : dict of str to array ``[N, L, F]``
            Windows of every scale (their shapes give the lookbacks and feature counts).
        **changes
            Any :class:`~msa_lib.model.ModelConfig` field to change (``single_scale="1h"``...).
        """
        m = self.model
        config = config_from_windows(
            windows, n_layers=m.n_layers, n_heads=m.n_heads, conv_kernel=m.conv_kernel,
            d_model=m.d_model, horizons=self.features.horizons, dropout=m.dropout,
            pos_encoding=m.pos_encoding, cross_attention=m.cross_attention, gates=m.gates,
            n_cross_heads=m.n_cross_heads, pyramid_levels=m.pyramid_levels,
        )
        return config.replace(**changes) if changes else config

    def fit_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`msa_lib.train.fit` that change the trained weights."""
        t = self.train
        return {"num_epochs": t.num_epochs, "batch_size": t.batch_size, "lr": t.lr,
                "weight_decay": t.weight_decay, "loss_weights": t.loss_weights,
                "patience": t.patience, "max_seconds": t.max_seconds}

    def cache_key(self) -> dict[str, Any]:
        """The settings a trained network depends on, as plain dicts (for the network cache)."""
        key = self.to_dict()
        for section, fields in _NOT_IN_CACHE_KEY.items():
            if fields is None:
                del key[section]
            else:
                for name in fields:
                    del key[section][name]
        return key

    def describe(self, *sections: str) -> pd.Series:
        """Every setting of ``sections`` (default: all) as a Series indexed by dotted key."""
        tree = self.to_dict()
        rows: dict[str, Any] = {}
        for name in sections or tuple(tree):
            if name not in tree:
                raise ConfigError(f"{name}: unknown section; sections are {', '.join(tree)}")
            value = tree[name]
            if not isinstance(value, dict):
                rows[name] = value
                continue
            for key, item in value.items():
                if key == "scales":
                    for s in item:
                        rows[f"{name}.scales.{s['name']}"] = ", ".join(
                            f"{k} {v}" for k, v in s.items() if k != "name" and v is not None)
                elif isinstance(item, dict):
                    rows.update({f"{name}.{key}.{k}": v for k, v in item.items()})
                else:
                    rows[f"{name}.{key}"] = item
        return pd.Series({k: "None" if v is None else str(v) for k, v in rows.items()},
                         name="setting", dtype=object)


# ==================================================================================================
# The course's experiments
# ==================================================================================================
COURSE = Experiment()
"""The course's experiment: 120 days of the synthetic market, scales 1min/5min/1h/1D with
lookbacks 30/6/12/7 (half an hour of 1-minute and of 5-minute bars, the market's reaction delay, so
no fine window holds both a burst and its jump), horizons 5min/15min/30min, the multi-scale network
of width 32 and at most 12 epochs at a peak learning rate of 3e-3. Chapters 05 to 08,
``configs/default.yaml`` and the benchmarks start from it."""

EURUSD_1H = COURSE.replace(
    data={"source": "bundled", "name": "eurusd_1h"},
    features={
        "scales": (ScaleSpec("1h", 24), ScaleSpec("4h", 12),
                   ScaleSpec("1D", 10, **SHORT_FEATURE_WINDOWS)),
        "every": "1h",
        "horizons": ("1h", "4h", "1D"),
    },
)
"""The course's experiment on real prices: the bundled EUR/USD hourly bars of 2017, scales
1h/4h/1D (a day, two days and two weeks of history), a decision every hour, horizons 1h/4h/1D.
Chapter 06 ends with it, chapter 08 studies it."""


# ==================================================================================================
# YAML
# ==================================================================================================
def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for i, key in enumerate(keys[:-1]):
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"{dotted}: {'.'.join(keys[: i + 1])} is not a section")
        node = child
    node[keys[-1]] = value


def load_experiment(
    path: str | Path | None = None, overrides: Mapping[str, Any] | Sequence[tuple[str, Any]] = ()
) -> Experiment:
    """Read an experiment from a YAML file (missing keys take the course's values) and check it.

    Parameters
    ----------
    path : str or Path, optional
        A YAML file with the sections of :class:`Experiment`. ``None``: no file (the defaults).
    overrides : dict or sequence of (dotted key, value)
        Settings applied on top of the file before checking: ``{"train.num_epochs": 1}``.

    Raises
    ------
    ConfigError
        A missing or unreadable file, YAML syntax errors, or an invalid setting; the message
        starts with the file's name and names the dotted key.
    """
    tree: Any = {}
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
    items = overrides.items() if isinstance(overrides, Mapping) else overrides
    for key, value in items:
        _set_dotted(tree, key, value)
    try:
        return Experiment.from_dict(tree)
    except ConfigError as err:
        source = f"config file {path}" if path is not None else "config"
        raise ConfigError(f"{source}: {err}") from None


def save_experiment(experiment: Experiment, path: str | Path, header: str = "") -> Path:
    """Write ``experiment`` as YAML, every key explicit; :func:`load_experiment` reads it back."""
    text = yaml.safe_dump(experiment.to_dict(), sort_keys=False, default_flow_style=None)
    path = Path(path)
    path.write_text("".join(f"# {line}\n" for line in header.splitlines()) + text)
    return path
