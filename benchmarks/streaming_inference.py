"""streaming_inference: a live forecast per 1-minute bar, recomputed from scratch or streamed.

Live, a new 1-minute bar arrives every minute and the course's network
(:data:`msa_lib.experiment.COURSE`: scales 1min/5min/1h/1D) must forecast at its close. The
straightforward way recomputes everything for every bar: take the trailing 1-minute history the
windows need (:func:`msa_lib.streaming.history_start`: 12 days, for 7 daily bars and their feature
warm-up), resample it to every scale, compute the features, cut and scale the windows, run the
whole network. :class:`msa_lib.streaming.StreamingPredictor` keeps each scale's open bar, recent
closed bars, scaled window and encoding, computes the features of a bar once when it closes, and
re-encodes only the scales whose bar just closed.

Both forecast every bar of a stretch that crosses a daily close (22:00 to 02:00 UTC), with a random
network of the course's shape (weights do not change the cost) and a scaler fitted on the market's
windows; the agreement check is that both give the same forecasts at every bar. The time is the
whole stretch's, per bar. The model-only ratio (all four encoders and the combination, against
only the closed scales' encoders and the combination) is reported for honesty: most of the saving
is in the data pipeline, not in the network.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import pandas as pd
import torch

from benchmarks.common import Result, fmt_seconds
from msa_lib.experiment import COURSE

NAME = "streaming_inference"
TARGET = 5.0
DESCRIPTION = "per-bar live forecasts: recompute everything / StreamingPredictor (COURSE network)"

ATOL = 1e-5
EXPERIMENT = COURSE
DAYS = 15  # 12 days of history for the daily windows, then the stretch


def make_inputs(experiment=EXPERIMENT, days: int = DAYS, seed: int = 0):
    """Bars, a random network of the experiment's shape (eval mode) and a scaler fitted on its windows."""
    from msa_lib.data import WindowScaler
    from msa_lib.datasets import simulate_market
    from msa_lib.model import MultiScaleAttentionNet
    from msa_lib.prepare import experiment_windows

    bars = simulate_market(days=days, seed=experiment.data.market_seed).bars
    windows, _ = experiment_windows(bars, experiment)
    scaler = WindowScaler().fit(windows)
    torch.manual_seed(seed)
    net = MultiScaleAttentionNet(experiment.model_config(windows)).eval()
    return bars, net, scaler


def recompute(bars: pd.DataFrame, t: pd.Timestamp, experiment, net, scaler) -> dict:
    """The forecast at ``t`` from scratch: trailing history -> scales -> features -> windows -> network."""
    from msa_lib.data import make_windows
    from msa_lib.prepare import experiment_frames
    from msa_lib.streaming import history_start

    history = bars.loc[history_start(t, experiment):t]
    frames = experiment_frames(history, experiment)
    windows, kept = make_windows(frames, experiment.lookbacks, pd.DatetimeIndex([t]))
    assert len(kept) == 1, f"no full window at {t} from the trailing history"
    scaled = scaler.transform(windows)
    with torch.inference_mode():
        out = net(scaled)
    return {"returns": out["returns"][0].numpy(), "scaled": scaled}


def stream(bars: pd.DataFrame, split: pd.Timestamp, stretch: pd.DataFrame, experiment, net, scaler):
    """Warm a predictor up to ``split`` (untimed), then time one update per bar of ``stretch``."""
    from msa_lib.streaming import StreamingPredictor

    predictor = StreamingPredictor(net, experiment, scaler)
    predictor.warm_up(bars.loc[:split])
    rows = [stretch.iloc[i] for i in range(len(stretch))]  # the bars as they would arrive
    start = time.perf_counter()
    outs = [predictor.update(row) for row in rows]
    return time.perf_counter() - start, outs, predictor


def model_only(net, scaled: list[dict], encoded: list[tuple[str, ...]]) -> tuple[float, float]:
    """Seconds for the stretch: every encoder + combine per bar, against the closed scales' only."""
    names = net.config.scale_names
    xs = [{n: torch.from_numpy(w[n]) for n in names} for w in scaled]
    with torch.inference_mode():
        start = time.perf_counter()
        for x in xs:
            net.combine([net.encode_scale(n, x[n]) for n in names])
        every = time.perf_counter() - start
        tokens = {n: net.encode_scale(n, xs[0][n]) for n in names}
        start = time.perf_counter()
        for x, changed in zip(xs, encoded, strict=True):
            for n in changed:
                tokens[n] = net.encode_scale(n, x[n])
            net.combine(tokens)
        closed_only = time.perf_counter() - start
    return every, closed_only


def run(quick: bool = False) -> Result:
    """Forecast every bar of the stretch both ways, compare, and time."""
    experiment = EXPERIMENT
    bars, net, scaler = make_inputs(experiment)
    day = bars.index[-1].floor("D") - pd.Timedelta("1D")  # the last midnight but one: the stretch crosses it
    split = day - pd.Timedelta("2h") if not quick else day - pd.Timedelta("15min")
    end = day + pd.Timedelta("2h") if not quick else day + pd.Timedelta("15min")
    stretch = bars.loc[split + pd.Timedelta("1min"):end]
    repeats = 1 if quick else 3

    start = time.perf_counter()
    reference = [recompute(bars, t, experiment, net, scaler) for t in stretch.index]
    recompute_s = time.perf_counter() - start

    runs = [stream(bars, split, stretch, experiment, net, scaler) for _ in range(repeats)]
    stream_s = statistics.median(r[0] for r in runs)
    _, outs, predictor = runs[0]
    assert all(o is not None for o in outs), "the predictor gave no forecast for some bars"
    got = np.stack([o["returns"] for o in outs])  # [T, H]
    want = np.stack([r["returns"] for r in reference])
    diff = float(np.abs(got - want).max())
    assert diff <= ATOL, f"streamed forecasts differ from the recomputed ones: max |diff| {diff:.3g}"
    encoded = [o["encoded"] for o in outs]

    every_s, closed_s = model_only(net, [r["scaled"] for r in reference], encoded)
    n = len(stretch)
    counts = {name: sum(name in e for e in encoded) for name in experiment.lookbacks}
    ratio = recompute_s / stream_s
    details = (
        f"recompute {fmt_seconds(recompute_s / n)} vs streaming {fmt_seconds(stream_s / n)} per bar "
        f"over {n} bars ({stretch.index[0]:%H:%M} to {stretch.index[-1]:%H:%M} UTC, median of "
        f"{repeats} streaming runs); encodes per scale {counts}; model only (all encoders / closed "
        f"scales' encoders, both + combine): {fmt_seconds(every_s / n)} vs {fmt_seconds(closed_s / n)} "
        f"per bar, ratio {every_s / closed_s:.1f}"
    )
    return Result(
        name=NAME,
        ratio=ratio,
        target=TARGET,
        agreement=f"same forecasts at every bar (max |diff| {diff:.1e} <= {ATOL:g})",
        details=details,
        metrics={
            "bars": n,
            "recompute_seconds": recompute_s,
            "streaming_seconds": [r[0] for r in runs],
            "recompute_per_bar_seconds": recompute_s / n,
            "streaming_per_bar_seconds": stream_s / n,
            "model_all_scales_seconds": every_s,
            "model_closed_scales_seconds": closed_s,
            "model_only_ratio": every_s / closed_s,
            "encode_counts": counts,
            "history_minutes": int(len(bars.loc[:split])),
            "max_abs_diff": diff,
        },
    )
