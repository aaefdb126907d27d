"""The command line: ``python -m msa_lib`` (or ``msa``) with the subcommands data, train, predict, backtest.

Every subcommand runs with no arguments on the course's experiment (:data:`DEFAULT_CONFIG`, which is
``configs/default.yaml`` of the repository and holds the values of
:data:`msa_lib.experiment.COURSE`), and reads another YAML file with ``--config``. Single settings
are overridden with ``--set key=value`` (``--set train.num_epochs=1``).

================  ==============================================================================
``msa data``      get bars (simulate, bundled, a CSV/Parquet file, or Bybit), validate them, write
                  them to a cache file
``msa train``     train the model; writes a run folder: ``model.pt`` (checkpoint), ``config.yaml``
                  (the resolved config), ``scalers.json``, ``metrics.json``, ``history.csv`` and
                  ``model.state.pt`` (the training state: ``--resume`` continues from it); runs
                  unchanged under ``torchrun --nproc_per_node=N -m msa_lib train``
``msa predict``   multi-horizon forecasts of a run for its test period (or ``--data FILE``)
``msa backtest``  trade those forecasts with costs beside naive baselines: ``metrics.csv`` and
                  ``.json``, ``equity.png``, ``equity.html``
================  ==============================================================================

Nothing is overwritten without ``--force``. Bad input (a missing file, a file that is not OHLCV, an
empty range, an unknown symbol, a malformed config) ends the program with status 1 and one line on
standard error naming the problem; ``--traceback`` shows the full Python traceback instead.

The YAML file is an :class:`msa_lib.experiment.Experiment`: it is read and checked by
:func:`msa_lib.experiment.load_experiment`, the same code that checks an experiment built in a
notebook. Unknown keys and values of the wrong type are rejected with the dotted name of the key
(``features.scales[1].lookback``). Bars, windows, data preparation, training, checkpoints, the naive
rules and the figures come from the library functions the chapters use (:mod:`msa_lib.prepare`,
:mod:`msa_lib.train`, :mod:`msa_lib.checkpoints`, :mod:`msa_lib.baselines`, :mod:`msa_lib.plots`).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml

from msa_lib import __version__, distributed, evaluate, seed_everything
from msa_lib.backtest import buy_and_hold_positions, run_backtest
from msa_lib.bars_io import bar_spacing, read_bars, write_bars
from msa_lib.baselines import last_sign_score, majority_class_score
from msa_lib.checkpoints import load_checkpoint, save_checkpoint
from msa_lib.data import WindowScaler, as_timedelta, horizon_label, make_targets
from msa_lib.experiment import (
    ConfigError,
    DataSection,
    Experiment,
    load_experiment,
    save_experiment,
)
from msa_lib.model import build_model, count_parameters
from msa_lib.prepare import experiment_windows, load_bars, prepare_experiment
from msa_lib.train import fit, predict

__all__ = [
    "CLIError",
    "DEFAULT_CONFIG",
    "load_config",
    "main",
]

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "default.yaml"
"""The repository's ``configs/default.yaml`` (used when ``--config`` is not given and it exists)."""


class CLIError(RuntimeError):
    """A problem the command line reports in one line (missing run folder, existing output...)."""


# ==================================================================================================
# Configuration: an experiment read from YAML, with --set overrides
# ==================================================================================================
def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> Experiment:
    """The experiment of a YAML file (default :data:`DEFAULT_CONFIG`) with ``--set`` overrides.

    Parameters
    ----------
    path : str or Path, optional
        A YAML file. ``None``: ``configs/default.yaml`` of the repository when present, else the
        course's experiment (:data:`msa_lib.experiment.COURSE`, the same values).
    overrides : sequence of str
        ``"key.sub=value"`` items; the value is read as YAML (``1``, ``true``, ``[15min, 1h]``).

    Raises
    ------
    ConfigError
        A missing or unreadable file, YAML syntax errors, or an invalid config (naming the key).
    """
    if path is None and DEFAULT_CONFIG.is_file():
        path = DEFAULT_CONFIG
    pairs = []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value, like train.num_epochs=1")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            raise ConfigError(f"--set {key}: value {raw!r} is not valid YAML") from None
        pairs.append((key.strip(), value))
    return load_experiment(path, pairs)


# ==================================================================================================
# Bars: from every source, validated
# ==================================================================================================


def _data_file_name(data: DataSection) -> str:
    """Default name of the file ``msa data`` writes for a data section."""
    if data.source == "simulate":
        return f"simulated_{data.days}d_seed{data.market_seed}.csv.gz"
    if data.source == "bundled":
        return f"{data.name}.csv.gz"
    if data.source == "file":
        return Path(str(data.path)).name.split(".")[0] + ".csv.gz"
    end = (data.end or "now").replace(":", "")
    return f"bybit_{data.symbol}_{data.interval}_{data.start}_{end}.csv.gz"


# ==================================================================================================
# Runs
# ==================================================================================================
_RUN_MARKERS = ("config.yaml", "model.pt")


def _run_dir(config: Experiment, config_path: str | None) -> Path:
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
    if not quiet and distributed.is_main():  # under torchrun only rank 0 speaks
        print(message, flush=True)


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                       for i, (c, w) in enumerate(zip(row, widths, strict=True)))
             for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _set_threads(config: Experiment) -> None:
    if config.train.threads is not None:
        torch.set_num_threads(config.train.threads)


# --------------------------------------------------------------------------------------------------
# msa data
# --------------------------------------------------------------------------------------------------
def cmd_data(args: argparse.Namespace, config: Experiment) -> int:
    """Get bars from the configured source, validate them, write them to a cache file."""
    changes = {key: getattr(args, key) for key in ("source", "name", "path", "symbol", "interval",
                                                   "start", "end") if getattr(args, key, None)}
    config = config.replace(data=changes)  # checked: "data.path: source 'file' needs a path"
    data = config.data
    out = Path(args.out) if args.out else Path(data.cache_dir) / _data_file_name(data)
    _claim(out, args.force, "data file")
    bars, description = load_bars(config)
    write_bars(bars, out)
    span = f"{bars.index[0]} .. {bars.index[-1]}"
    spacing = bar_spacing(bars.index) / pd.Timedelta(minutes=1)
    _say(f"{description}: {len(bars):,} bars, {span}, mostly {spacing:g} min apart")
    _say(f"wrote {out}")
    return 0


# --------------------------------------------------------------------------------------------------
# msa train
# --------------------------------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace, config: Experiment) -> int:
    """Train the configured model and write a run folder.

    Under ``torchrun --nproc_per_node=N -m msa_lib train ...`` every process prepares the same data
    and trains its share of each batch (:func:`msa_lib.train.fit`); rank 0 alone writes the run
    folder. The best weights and the training state are kept in the run folder while training, so
    ``--resume`` continues an interrupted run.
    """
    run = Path(args.run) if args.run else _run_dir(config, args.config)
    distributed.init_from_env()
    if distributed.is_main() and not (args.resume and run.exists()):
        _claim(run, args.force, "run folder")  # fail before any work
    _set_threads(config)
    started = time.perf_counter()
    bars, description = load_bars(config)
    _say(f"data: {description}: {len(bars):,} bars, {bars.index[0]} .. {bars.index[-1]}")
    prepared = prepare_experiment(config, bars)
    _say(
        f"windows: {len(prepared.train):,} train / {len(prepared.val):,} val / "
        f"{len(prepared.test):,} test decision times, scales "
        + ", ".join(f"{name}x{lookback}" for name, lookback in config.lookbacks.items())
    )

    m = config.model
    seed_everything(config.seed)
    model = build_model(m.kind, config.model_config(prepared.train.windows))
    _say(f"model: {m.kind}, {count_parameters(model):,} parameters")
    t = config.train
    history = fit(model, prepared.train, prepared.val, **config.fit_kwargs(), device=t.device,
                  progress=t.progress and not args.no_progress, checkpoint_path=run / "model.pt",
                  resume=args.resume)
    model.to("cpu")
    if not distributed.is_main():
        return 0

    # test scores beside the naive forecasts
    out = predict(model, prepared.test, device="cpu")
    y_test = prepared.log_returns["test"].to_numpy(dtype=np.float64)  # [N_test, H], unscaled
    y_train = prepared.log_returns["train"].to_numpy(dtype=np.float64)
    majority = majority_class_score(y_train, len(y_test))  # [N_test, H]
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

    run.mkdir(parents=True, exist_ok=True)
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
    _say(f"wrote {run}/ (model.pt, model.state.pt, config.yaml, scalers.json, metrics.json, history.csv)")
    return 0


def _write_config(config: Experiment, path: Path) -> None:
    save_experiment(config, path, header="resolved configuration of this run (every key explicit)")


# --------------------------------------------------------------------------------------------------
# msa predict
# --------------------------------------------------------------------------------------------------
@dataclass
class _Run:
    path: Path
    config: Experiment
    model: Any
    scalers: dict[str, Any]
    metrics: dict[str, Any]


def _load_run(path: Path) -> _Run:
    if not path.is_dir():
        raise CLIError(f"no run folder at {path}; train one first with: msa train")
    for name in ("config.yaml", "model.pt", "scalers.json", "metrics.json"):
        if not (path / name).is_file():
            raise CLIError(f"{path} is not a complete run folder: {name} is missing")
    config = load_experiment(path / "config.yaml")
    model, _ = load_checkpoint(path / "model.pt")
    scalers = json.loads((path / "scalers.json").read_text())
    metrics = json.loads((path / "metrics.json").read_text())
    return _Run(path, config, model, scalers, metrics)


def _forecast(run: _Run, bars: pd.DataFrame, since: pd.Timestamp | None) -> pd.DataFrame:
    """Forecasts of ``run`` at every decision time of ``bars`` (from ``since`` on), unscaled."""
    windows, kept = experiment_windows(bars, run.config)
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
    bars, description = load_bars(run.config)
    since = pd.Timestamp(run.metrics["splits"]["test"]["first"])
    return bars, f"{description}, test period", since


def cmd_predict(args: argparse.Namespace, config: Experiment) -> int:
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


def cmd_backtest(args: argparse.Namespace, config: Experiment) -> int:
    """Trade a run's forecasts with costs, beside buy-and-hold and a naive momentum rule."""
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
    rule = b.sizing_rule()
    common = {"cost_bps": b.cost_bps, "delay": b.delay, "end": end}
    results = {f"model ({horizon}, {b.method})": run_backtest(prob, close, sizing=rule, **common)}
    last_sign = last_sign_score(bars, decisions, [horizon])[:, 0]  # [N], +1 / -1 / 0
    momentum = pd.Series(last_sign * b.max_position + 0.0, index=decisions)
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
    # imported here: the file-only Agg backend must be chosen before msa_lib.plots imports pyplot
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from msa_lib.plots import equity_figure, equity_plot

    ax = equity_plot(results, title=title)
    ax.figure.tight_layout()
    ax.figure.savefig(out / "equity.png", dpi=110)
    plt.close(ax.figure)
    figure = equity_figure(results, log_y=False, title=title, height=450)
    figure.update_layout(template="plotly_white")
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
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run from the training state in its folder")
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
