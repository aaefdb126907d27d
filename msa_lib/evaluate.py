"""Judging forecasts honestly: ratios to naive forecasts, direction accuracy, intervals, bootstrap.

Every score here compares a forecast with something simpler, or comes with an interval, because a
number alone ("accuracy 53%") says nothing about whether the model learned anything:

* :func:`mse_ratio` and :func:`r2_oos`: squared error relative to the zero-return forecast.
* :func:`direction_accuracy` with :func:`wilson_interval`: how often the sign is right, and how sure
  we can be about that rate; :func:`direction_hits` time by time, and :func:`direction_score` to
  read the score out of a model's prediction.
* :func:`block_bootstrap_mean` and :func:`bootstrap_accuracy_difference`: an interval for the
  difference in accuracy between two forecasters on the *same* times, resampling blocks of
  consecutive times so that serial dependence (overlapping return horizons) is kept.
* :func:`overlap_block_length`: a block length long enough for targets that overlap in time.
* :func:`results_table` and :func:`accuracy_comparison`: the tables a chapter prints.
* :func:`holm_adjust`: Holm-Bonferroni adjusted p-values, for a table of many comparisons.
* :func:`seed_summary` and :func:`paired_seed_difference`: t-intervals over training seeds.

Conventions: ``y_true`` is an array of realised returns, ``[N]`` or ``[N, H]`` (one column per
horizon); a *direction score* is any number whose sign is the call, positive meaning "up" (a
return forecast, a logit, a probability minus one half, or a sign +1 / -1 of a naive rule). A
realised return of exactly zero counts as "not up", the same rule that turns returns into the
``up`` labels of training. A *prediction* is one forecaster's output as :func:`results_table`
reads it: an array (a return forecast) or a dict with ``"returns"`` and/or ``"direction_score"``,
``"direction_logits"`` or ``"direction_prob"``.

The naive forecasters themselves (zero return, last sign, majority class) are in
:mod:`msa_lib.baselines`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from msa_lib.data import as_timedelta

__all__ = [
    "BootstrapInterval",
    "PairedSeedDifference",
    "SeedSummary",
    "accuracy_comparison",
    "block_bootstrap_mean",
    "bootstrap_accuracy_difference",
    "default_block_length",
    "direction_accuracy",
    "direction_hits",
    "direction_score",
    "edge_captured",
    "holm_adjust",
    "mse_ratio",
    "overlap_block_length",
    "paired_seed_difference",
    "r2_oos",
    "results_table",
    "seed_summary",
    "wilson_interval",
]


# --------------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------------
def _array(values: Any, name: str) -> np.ndarray:
    """A float64 copy-free view of ``values`` as a 1-D or 2-D array, checked for NaN/inf."""
    if isinstance(values, pd.DataFrame | pd.Series):
        values = values.to_numpy()
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim not in (1, 2):
        raise ValueError(f"{name} must be 1-D [N] or 2-D [N, H], got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(
            f"{name} holds NaN or inf (first at position {tuple(int(i) for i in bad)})"
        )
    return arr


def _pair(y_true: Any, y_pred: Any, pred_name: str = "y_pred") -> tuple[np.ndarray, np.ndarray]:
    yt, yp = _array(y_true, "y_true"), _array(y_pred, pred_name)
    if yp.shape != yt.shape:
        if yp.ndim == 1 and yt.ndim == 2 and yp.shape[0] == yt.shape[0] and yt.shape[1] == 1:
            yp = yp[:, None]
        else:
            raise ValueError(f"{pred_name} has shape {yp.shape}, y_true has {yt.shape}")
    return yt, yp


def _scalar_or_array(value: np.ndarray) -> float | np.ndarray:
    return float(value) if np.ndim(value) == 0 else value


# --------------------------------------------------------------------------------------------------
# Point scores
# --------------------------------------------------------------------------------------------------
def mse_ratio(y_true: Any, y_pred: Any) -> float | np.ndarray:
    """Mean squared error of ``y_pred`` divided by that of the zero-return forecast.

    ``sum_t (y_t - yhat_t)^2 / sum_t y_t^2``. Below 1: better than predicting "no change"; above
    1: worse. The ratio does not depend on the units of the returns, so forecasts and targets that
    were both divided by the same scale give the same answer.

    Parameters
    ----------
    y_true, y_pred : array ``[N]`` or ``[N, H]``

    Returns
    -------
    float, or array ``[H]`` (one ratio per column) for 2-D input.
    """
    yt, yp = _pair(y_true, y_pred)
    denom = np.sum(yt**2, axis=0)
    if np.any(denom == 0):
        raise ValueError("y_true is identically zero (in some column): the ratio is undefined")
    return _scalar_or_array(np.sum((yt - yp) ** 2, axis=0) / denom)


def r2_oos(y_true: Any, y_pred: Any, benchmark: Any = 0.0) -> float | np.ndarray:
    """Out-of-sample R^2 of ``y_pred`` relative to a benchmark forecast.

    ``R2_oos = 1 - sum_t (y_t - yhat_t)^2 / sum_t (y_t - b_t)^2``.

    The benchmark ``b`` is the zero-return forecast by default, as in Gu, Kelly and Xiu (2020):
    then ``R2_oos = 1 - mse_ratio``. Campbell and Thompson (2008) use the training-period mean
    return instead; pass it as ``benchmark``. Unlike the in-sample R^2 it can be (and usually is,
    for returns) negative: a negative value means the benchmark forecast was closer.

    Parameters
    ----------
    y_true, y_pred : array ``[N]`` or ``[N, H]``
    benchmark : float, array ``[H]`` or array like ``y_true``, default 0.0

    Returns
    -------
    float, or array ``[H]`` for 2-D input.
    """
    yt, yp = _pair(y_true, y_pred)
    b = np.broadcast_to(np.asarray(benchmark, dtype=np.float64), yt.shape)
    denom = np.sum((yt - b) ** 2, axis=0)
    if np.any(denom == 0):
        raise ValueError("y_true equals the benchmark everywhere (in some column): R^2 undefined")
    return _scalar_or_array(1.0 - np.sum((yt - yp) ** 2, axis=0) / denom)


def _hits(y_true: np.ndarray, score: np.ndarray, threshold: float) -> np.ndarray:
    """Boolean ``[N]`` or ``[N, H]``: did the score call the direction right?"""
    return (score > threshold) == (y_true > 0)


def direction_hits(y_true: Any, score: Any, threshold: float = 0.0) -> np.ndarray:
    """Time by time, did ``score > threshold`` agree with ``y_true > 0``?

    The per-time version of :func:`direction_accuracy` (whose value is the mean of these hits), for
    accuracies by group (per fold, per month) and for bootstraps.

    Parameters
    ----------
    y_true : array ``[N]`` or ``[N, H]``
        Realised returns (zero counts as "not up").
    score : array like ``y_true``
        Direction score (see :func:`direction_accuracy`).
    threshold : float, default 0.0

    Returns
    -------
    ndarray of bool, ``[N]`` or ``[N, H]``
    """
    yt, sc = _pair(y_true, score, "score")
    return _hits(yt, sc, threshold)


def direction_accuracy(y_true: Any, score: Any, threshold: float = 0.0) -> float | np.ndarray:
    """Fraction of times where ``score > threshold`` agrees with ``y_true > 0``.

    Parameters
    ----------
    y_true : array ``[N]`` or ``[N, H]``
        Realised returns (zero counts as "not up").
    score : array like ``y_true``
        Direction score: a return forecast or logit (``threshold=0``), or a probability of "up"
        (``threshold=0.5``).
    threshold : float, default 0.0

    Returns
    -------
    float, or array ``[H]`` for 2-D input.
    """
    yt, sc = _pair(y_true, score, "score")
    return _scalar_or_array(_hits(yt, sc, threshold).mean(axis=0))


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a success probability after ``k`` successes in ``n`` trials.

    With ``p = k / n`` and ``z`` the standard normal quantile at ``1 - (1 - confidence) / 2``::

        centre = (p + z^2 / (2n)) / (1 + z^2 / n)
        half   = z / (1 + z^2 / n) * sqrt(p (1 - p) / n + z^2 / (4 n^2))

    Unlike the textbook ``p +- z sqrt(p(1-p)/n)`` it stays inside [0, 1] and does not collapse to a
    single point when ``k`` is 0 or ``n``. It treats the trials as independent: for overlapping
    return horizons the true uncertainty is larger (see :func:`bootstrap_accuracy_difference`).

    Returns
    -------
    (low, high) : tuple of float
    """
    if isinstance(k, bool) or isinstance(n, bool):
        raise TypeError("k and n must be integers, not booleans")
    if int(n) != n or int(k) != k:
        raise ValueError(f"k and n must be whole numbers, got k={k}, n={n}")
    k, n = int(k), int(n)
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    if not 0 <= k <= n:
        raise ValueError(f"k must lie in [0, n] = [0, {n}], got {k}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def edge_captured(accuracy: float, oracle_accuracy: float, baseline_accuracy: float) -> float:
    """Share of the oracle's edge over a baseline that a model captures.

    ``(accuracy - baseline) / (oracle - baseline)``: 0 means no better than the baseline (e.g.
    always predicting the majority class), 1 means as good as the oracle.
    """
    gap = oracle_accuracy - baseline_accuracy
    if gap <= 0:
        raise ValueError(
            f"the oracle ({oracle_accuracy:.4f}) is not better than the baseline "
            f"({baseline_accuracy:.4f}): there is no edge to capture"
        )
    return (accuracy - baseline_accuracy) / gap


# --------------------------------------------------------------------------------------------------
# Bootstrap
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BootstrapInterval:
    """A point estimate with a bootstrap percentile interval and a bootstrap p-value.

    Attributes
    ----------
    estimate : float
        The statistic on the original sample (the plain mean).
    low, high : float
        Percentile interval at ``confidence``.
    confidence : float
    block_length : int
    n_boot : int
    p_value : float
        Two-sided bootstrap p-value of "the mean is zero" (see :func:`block_bootstrap_mean`);
        NaN when built by hand without one.
    """

    estimate: float
    low: float
    high: float
    confidence: float
    block_length: int
    n_boot: int
    p_value: float = math.nan

    @property
    def excludes_zero(self) -> bool:
        """True when the whole interval lies on one side of zero."""
        return self.low > 0 or self.high < 0


def default_block_length(n: int) -> int:
    """Rule-of-thumb block length ``ceil(n ** (1/3))`` (at least 1, at most ``n``)."""
    return int(min(n, max(1, math.ceil(n ** (1 / 3)))))


def overlap_block_length(
    every: int | str | pd.Timedelta,
    horizon: int | str | pd.Timedelta | Sequence[int | str | pd.Timedelta],
    *,
    multiple: float = 4.0,
    minimum: int = 10,
) -> int:
    """Bootstrap block length, in decision times, for targets that overlap in time.

    Decisions every ``every`` with targets spanning ``horizon`` overlap when they are less than
    ``horizon`` apart: a target shares part of its price path with the next
    ``m - 1`` ones, ``m = ceil(horizon / every)``, so their hits are dependent over ``m``
    decision times. The block must be at least that long. It is ``multiple`` times longer because
    a block bootstrap keeps the dependence at lag ``k`` only with weight ``1 - k / L`` (pairs cut
    apart by a block boundary look independent): for the triangular dependence of overlapping
    targets, ``L = m`` recovers about 2/3 of the variance of the mean, ``L = 2m`` about 5/6 and
    ``L = 4m`` about 11/12 (intervals some 4% too narrow). ``minimum`` keeps some blocking when
    targets barely overlap, for dependence that does not come from overlap (volatility clusters,
    slow regimes).

    Parameters
    ----------
    every : int, str or pandas.Timedelta
        Spacing of the decision times (an int counts minutes), e.g. ``"5min"``.
    horizon : int, str, pandas.Timedelta, or a sequence of them
        The forecast horizon; for several, the longest decides.
    multiple : float, default 4.0
        Block length in units of the overlap ``m``; at least 1.
    minimum : int, default 10
        Floor of the block length, in decision times; at least 1.

    Returns
    -------
    int
        ``max(minimum, ceil(multiple * m))``. For 5-minute decisions and a 1-hour horizon:
        ``m = 12`` and the block is 48 decisions (4 hours).

    Examples
    --------
    >>> overlap_block_length("5min", "1h"), overlap_block_length("1h", ["1h", "1D"])
    (48, 96)
    """
    step = as_timedelta(every, what="every")
    horizons = (
        list(horizon)
        if isinstance(horizon, Sequence) and not isinstance(horizon, str)
        else [horizon]
    )
    if not horizons:
        raise ValueError("horizon is an empty sequence")
    longest = max(as_timedelta(h, what="horizon") for h in horizons)
    if isinstance(minimum, bool) or int(minimum) != minimum or minimum < 1:
        raise ValueError(f"minimum must be a whole number >= 1, got {minimum!r}")
    if not (math.isfinite(multiple) and multiple >= 1):
        raise ValueError(
            f"multiple must be >= 1 (the block spans at least the overlap), got {multiple!r}"
        )
    overlap = math.ceil(longest / step)  # decision times one target spans
    return max(int(minimum), math.ceil(multiple * overlap))


def _check_block_length(block_length: Any) -> None:
    """Raise unless ``block_length`` is None or a whole number >= 1 (the upper bound, ``N``, is
    checked where ``N`` is known)."""
    if block_length is None:
        return
    if isinstance(block_length, bool) or not isinstance(block_length, int | np.integer):
        raise ValueError(f"block_length must be a whole number >= 1 or None, got {block_length!r}")
    if block_length < 1:
        raise ValueError(f"block_length must be >= 1, got {block_length}")


def _bootstrap_means(
    arr: np.ndarray, b: int, n_boot: int, method: str, rng: np.random.Generator
) -> np.ndarray:
    """Means of ``n_boot`` block-bootstrap resamples of ``arr`` ``[N]``, blocks of ``b``: ``[n_boot]``."""
    n = arr.shape[0]
    n_blocks = math.ceil(n / b)
    tail = n - (n_blocks - 1) * b  # length of the last, possibly shorter, block (1..b)
    n_starts = n if method == "circular" else n - b + 1
    starts = rng.integers(0, n_starts, size=(n_boot, n_blocks))  # [n_boot, n_blocks]
    # Sums of every block from prefix sums, wrapping around for the circular scheme.
    extended = np.concatenate([arr, arr[:b]]) if method == "circular" else arr
    cumsum = np.concatenate([[0.0], np.cumsum(extended)])
    idx = np.arange(n_starts)
    full_sums = cumsum[idx + b] - cumsum[idx]  # [n_starts]
    tail_sums = cumsum[idx + tail] - cumsum[idx]  # [n_starts]
    totals = full_sums[starts[:, :-1]].sum(axis=1) + tail_sums[starts[:, -1]]  # [n_boot]
    return totals / n


def _bootstrap_p_value(means: np.ndarray) -> float:
    """Two-sided bootstrap p-value of "the mean is zero" from resampled means ``[n_boot]``.

    ``min(1, 2 * min(1 + #{m <= 0}, 1 + #{m >= 0}) / (1 + n_boot))``: each one-sided share
    counts the observed sample as one more draw, so the smallest p-value is ``2 / (n_boot + 1)``
    (never 0, which ``n_boot`` resamples cannot show).
    """
    n_boot = means.shape[0]
    below = 1 + int(np.count_nonzero(means <= 0))
    above = 1 + int(np.count_nonzero(means >= 0))
    return min(1.0, 2 * min(below, above) / (1 + n_boot))


def block_bootstrap_mean(
    x: Any,
    *,
    block_length: int | None = None,
    n_boot: int = 2000,
    confidence: float = 0.95,
    method: str = "circular",
    seed: int = 0,
) -> BootstrapInterval:
    """Percentile interval for the mean of a serially dependent series by block bootstrap.

    Each bootstrap sample glues together ``ceil(N / block_length)`` blocks of consecutive values,
    starting at random positions, and cuts the result to ``N`` values. Inside a block the order of
    time is kept, so dependence shorter than the block survives the resampling.

    The same resampled means give a two-sided p-value of "the mean is zero":
    ``p = min(1, 2 min(1 + #{means <= 0}, 1 + #{means >= 0}) / (1 + n_boot))``. It is below
    ``1 - confidence`` about when the interval excludes zero, and never below
    ``2 / (n_boot + 1)``: ``n_boot`` sets the resolution.

    Parameters
    ----------
    x : array ``[N]``
        The series, e.g. per-time differences in correctness between two forecasters.
    block_length : int, optional
        Defaults to :func:`default_block_length`. Choose at least the span of the dependence (for
        returns over ``h`` steps sampled every step, at least ``h``; see
        :func:`overlap_block_length`).
    n_boot : int, default 2000
    confidence : float, default 0.95
    method : {"circular", "moving"}
        ``"circular"`` (Politis and Romano): blocks may wrap from the end to the start, so every
        value is equally likely to be drawn. ``"moving"`` (Kuensch): blocks stay inside the series,
        so values near the ends are drawn less often.
    seed : int, default 0
        Seed of the generator used for this call only (global generators are untouched).

    Returns
    -------
    BootstrapInterval
    """
    arr = _array(x, "x")
    if arr.ndim != 1:
        raise ValueError(f"x must be 1-D, got shape {arr.shape}")
    n = arr.shape[0]
    _check_block_length(block_length)
    b = default_block_length(n) if block_length is None else int(block_length)
    if not 1 <= b <= n:
        raise ValueError(f"block_length must lie in [1, N] = [1, {n}], got {block_length}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if method not in ("circular", "moving"):
        raise ValueError(f"method must be 'circular' or 'moving', got {method!r}")

    means = _bootstrap_means(arr, b, n_boot, method, np.random.default_rng(seed))  # [n_boot]
    alpha = 1 - confidence
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return BootstrapInterval(
        estimate=float(arr.mean()),
        low=float(low),
        high=float(high),
        confidence=confidence,
        block_length=b,
        n_boot=n_boot,
        p_value=_bootstrap_p_value(means),
    )


def bootstrap_accuracy_difference(
    y_true: Any,
    score_a: Any,
    score_b: Any,
    *,
    threshold: float = 0.0,
    block_length: int | None = None,
    n_boot: int = 2000,
    confidence: float = 0.95,
    method: str = "circular",
    seed: int = 0,
) -> BootstrapInterval:
    """Interval for ``accuracy(a) - accuracy(b)`` when both forecast the same times.

    The two forecasters are compared time by time: ``d_t = 1[a right at t] - 1[b right at t]``,
    and the mean of ``d`` (the accuracy difference) is bootstrapped in blocks (see
    :func:`block_bootstrap_mean`). Pairing removes the noise both share (hard periods are hard for
    both), so the interval is much narrower than one built from two separate Wilson intervals.

    Parameters
    ----------
    y_true : array ``[N]``
        Realised returns for one horizon.
    score_a, score_b : array ``[N]``
        Direction scores of the two forecasters (see :func:`direction_accuracy`).
    threshold, block_length, n_boot, confidence, method, seed
        As in :func:`direction_accuracy` and :func:`block_bootstrap_mean`.

    Returns
    -------
    BootstrapInterval
        ``estimate`` is the observed accuracy difference; the interval lies above zero when
        ``a`` is reliably better.
    """
    yt, sa = _pair(y_true, score_a, "score_a")
    _, sb = _pair(y_true, score_b, "score_b")
    if yt.ndim != 1:
        raise ValueError(f"give one horizon at a time (1-D arrays), got shape {yt.shape}")
    diff = _hits(yt, sa, threshold).astype(np.float64) - _hits(yt, sb, threshold)  # [N]
    return block_bootstrap_mean(
        diff,
        block_length=block_length,
        n_boot=n_boot,
        confidence=confidence,
        method=method,
        seed=seed,
    )


# --------------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------------
_PREDICTION_KEYS = {"returns", "direction_score", "direction_logits", "direction_prob"}


def _split_prediction(name: str, pred: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(return forecast or None, direction score or None) from one entry of ``predictions``."""
    what = f"predictions[{name!r}]"
    if isinstance(pred, Mapping):
        unknown = set(pred) - _PREDICTION_KEYS
        if unknown:
            raise ValueError(
                f"{what} has unknown keys {sorted(unknown)}; known: {sorted(_PREDICTION_KEYS)}"
            )
        returns = pred.get("returns")
        if "direction_score" in pred:
            score = pred["direction_score"]
        elif "direction_logits" in pred:
            score = pred["direction_logits"]
        elif "direction_prob" in pred:
            score = np.asarray(pred["direction_prob"], dtype=np.float64) - 0.5
        else:
            score = returns  # the sign of the return forecast
        if returns is None and score is None:
            raise ValueError(f"{what} holds neither returns nor a direction score")
        return (
            None if returns is None else _array(returns, f"{what}['returns']"),
            None if score is None else _array(score, f"{what} direction score"),
        )
    arr = _array(pred, what)
    return arr, arr


def direction_score(prediction: Any, name: str = "prediction") -> np.ndarray | None:
    """The direction score of one forecaster's prediction: the numbers whose sign is its call.

    Read, in this order of preference, from

    * an array: a return forecast, its own direction score;
    * a dict's ``"direction_score"`` (a naive rule's +1 / -1, for example; ``None`` there means
      "makes no direction call", as the zero-return forecast);
    * its ``"direction_logits"`` (a network's log-odds of "up");
    * its ``"direction_prob"`` minus one half;
    * its ``"returns"``.

    Parameters
    ----------
    prediction : array ``[N]`` / ``[N, H]``, or dict
        One entry of the ``predictions`` of :func:`results_table`.
    name : str, default "prediction"
        Used in error messages.

    Returns
    -------
    ndarray ``[N]`` or ``[N, H]`` (float64), or None when the forecaster makes no direction call.
    """
    return _split_prediction(name, prediction)[1]


def _column(arr: np.ndarray, j: int) -> np.ndarray:
    return arr if arr.ndim == 1 else arr[:, j]


def _accuracy_interval(
    hits: np.ndarray,
    *,
    confidence: float,
    block_length: int | None,
    n_boot: int,
    method: str,
    seed: int,
) -> tuple[float, float]:
    """Wilson interval of the hit rate (``block_length`` None) or a block-bootstrap one."""
    if block_length is None:
        return wilson_interval(int(hits.sum()), hits.shape[0], confidence)
    boot = block_bootstrap_mean(
        hits.astype(np.float64),
        block_length=block_length,
        n_boot=n_boot,
        confidence=confidence,
        method=method,
        seed=seed,
    )
    return boot.low, boot.high


def results_table(
    y_true: Any,
    predictions: Mapping[str, Any],
    *,
    horizons: Sequence[str] | None = None,
    confidence: float = 0.95,
    threshold: float = 0.0,
    block_length: int | None = None,
    n_boot: int = 2000,
    method: str = "circular",
    seed: int = 0,
) -> pd.DataFrame:
    """One row per (model, horizon): error ratio, R^2, direction accuracy with an interval.

    The accuracy interval is a Wilson interval by default. It treats the hits as independent, which
    they are not when targets overlap (decisions every 5 minutes, targets an hour long): then it is
    too narrow. Give ``block_length`` (for example from :func:`overlap_block_length`) to get a
    circular block-bootstrap percentile interval of the mean of the hits instead
    (:func:`block_bootstrap_mean`), which keeps the dependence within blocks.

    Parameters
    ----------
    y_true : array ``[N, H]`` (or ``[N]``) or DataFrame
        Realised returns on the evaluation period; a DataFrame's columns name the horizons.
    predictions : dict of str to array or dict
        Model name -> either an array like ``y_true`` (a return forecast; its sign is the direction
        call), or a dict with ``"returns"`` and/or a direction score under ``"direction_score"``
        (sign = call), ``"direction_logits"`` or ``"direction_prob"`` (the output of
        :func:`msa_lib.train.predict` fits); see :func:`direction_score`. A forecaster with no
        return forecast (majority class, last sign) gets NaN error scores; one whose
        ``"direction_score"`` is ``None`` (zero return) gets NaN accuracy.
        Returns and targets must be in the same units (or both divided by the same scale).
    horizons : sequence of str, optional
        Names of the ``H`` columns.
    confidence : float, default 0.95
        Level of the accuracy interval.
    threshold : float, default 0.0
        Direction scores above it mean "up".
    block_length : int, optional
        None (default): Wilson intervals. A whole number >= 1: block-bootstrap intervals with
        blocks of that many decision times (at most ``N``).
    n_boot, method, seed
        As in :func:`block_bootstrap_mean`; used only with ``block_length`` (the same seed for
        every row).

    Returns
    -------
    DataFrame
        Index (``model``, ``horizon``) in the order given; columns ``mse_ratio``, ``r2_oos``,
        ``accuracy``, ``acc_low``, ``acc_high``, ``interval`` (which interval the row holds:
        ``"wilson"`` or ``"block bootstrap (L=48)"``; NaN where there is no accuracy), ``n``.
    """
    _check_block_length(block_length)
    interval_name = "wilson" if block_length is None else f"block bootstrap (L={block_length})"
    if isinstance(y_true, pd.DataFrame) and horizons is None:
        horizons = [str(c) for c in y_true.columns]
    yt = _array(y_true, "y_true")
    n_h = 1 if yt.ndim == 1 else yt.shape[1]
    if horizons is None:
        horizons = [f"h{j}" for j in range(n_h)]
    if len(horizons) != n_h:
        raise ValueError(f"{len(horizons)} horizon names for {n_h} columns of y_true")
    if len(predictions) == 0:
        raise ValueError("predictions is empty")
    rows = []
    for name, pred in predictions.items():
        returns, score = _split_prediction(name, pred)
        for part, what in ((returns, "returns"), (score, "direction score")):
            if part is not None:
                _pair(yt, part, f"predictions[{name!r}] {what}")
        for j, horizon in enumerate(horizons):
            y = _column(yt, j)
            row: dict[str, Any] = {"model": name, "horizon": horizon, "n": y.shape[0]}
            if returns is not None:
                r = _column(returns if returns.ndim == yt.ndim else returns[:, None], j)
                row["mse_ratio"] = mse_ratio(y, r)
                row["r2_oos"] = r2_oos(y, r)
            else:
                row["mse_ratio"] = row["r2_oos"] = math.nan
            if score is not None:
                d = _column(score if score.ndim == yt.ndim else score[:, None], j)
                hits = _hits(y, d, threshold)  # [N]
                row["accuracy"] = float(hits.mean())
                row["acc_low"], row["acc_high"] = _accuracy_interval(
                    hits,
                    confidence=confidence,
                    block_length=block_length,
                    n_boot=n_boot,
                    method=method,
                    seed=seed,
                )
                row["interval"] = interval_name
            else:
                row["accuracy"] = row["acc_low"] = row["acc_high"] = math.nan
                row["interval"] = math.nan
            rows.append(row)
    table = pd.DataFrame(rows).set_index(["model", "horizon"])
    return table[["mse_ratio", "r2_oos", "accuracy", "acc_low", "acc_high", "interval", "n"]]


def accuracy_comparison(
    y_true: Any,
    predictions: Mapping[str, Any],
    reference: str,
    *,
    horizons: Sequence[str] | None = None,
    block_length: int | None = None,
    n_boot: int = 2000,
    confidence: float = 0.95,
    method: str = "circular",
    seed: int = 0,
    holm: bool = False,
) -> pd.DataFrame:
    """Accuracy of ``reference`` minus that of every other model, with block-bootstrap intervals.

    Each row is one comparison (model, horizon) with its own ``confidence`` interval. A table of
    many comparisons will show some intervals above zero by chance alone; ``holm=True`` guards the
    claims against that. Each comparison then gets a two-sided bootstrap p-value of "no
    difference" (see :func:`block_bootstrap_mean`), the p-values of all rows of the call are
    adjusted together by :func:`holm_adjust`, and ``above_zero`` becomes the claim test
    ``p_holm < alpha`` (with ``alpha = 1 - confidence``) and a positive difference. The chance that
    the table makes *any* false claim is then at most ``alpha``.

    The p-value is two-sided, although the claims read "the reference is better": it makes the
    per-comparison verdict agree with the printed two-sided interval (``p < alpha`` about when the
    interval excludes zero), so adjusting can only remove claims, never add one. A one-sided test
    at ``alpha`` would accept differences whose 95% interval still holds zero. The interval columns
    stay per-comparison (not widened); read claims from ``above_zero``, not from ``low``.

    Parameters
    ----------
    y_true, predictions, horizons
        As in :func:`results_table`. Models without a direction score are skipped.
    reference : str
        Key of ``predictions`` to compare everyone else against.
    block_length, n_boot, confidence, method, seed
        As in :func:`block_bootstrap_mean` (the same seed for every comparison).
    holm : bool, default False
        Add ``p_value`` and ``p_holm`` and judge ``above_zero`` by ``p_holm < alpha``. With ``m``
        comparisons the smallest possible adjusted p-value is ``2 m / (n_boot + 1)``; if that is
        not below ``alpha`` no claim could pass, and a ValueError asks for more resamples.

    Returns
    -------
    DataFrame
        Index (``model``, ``horizon``); columns ``difference`` (reference minus model), ``low``,
        ``high`` (the per-comparison interval), then with ``holm=True`` ``p_value`` (two-sided,
        per comparison) and ``p_holm`` (Holm-adjusted over all rows), and ``above_zero``: without
        Holm, the interval's lower end is positive; with Holm, ``p_holm < alpha`` and
        ``difference > 0``.
    """
    if reference not in predictions:
        raise KeyError(f"reference {reference!r} is not among the predictions {list(predictions)}")
    _check_block_length(block_length)
    if isinstance(y_true, pd.DataFrame) and horizons is None:
        horizons = [str(c) for c in y_true.columns]
    yt = _array(y_true, "y_true")
    yt2 = yt if yt.ndim == 2 else yt[:, None]
    if horizons is None:
        horizons = [f"h{j}" for j in range(yt2.shape[1])]
    if len(horizons) != yt2.shape[1]:
        raise ValueError(f"{len(horizons)} horizon names for {yt2.shape[1]} columns of y_true")
    _, ref = _split_prediction(reference, predictions[reference])
    if ref is None:
        raise ValueError(f"reference {reference!r} has no direction score")
    _, ref = _pair(yt2, ref if ref.ndim == 2 else ref[:, None], f"predictions[{reference!r}]")
    rows = []
    for name, pred in predictions.items():
        if name == reference:
            continue
        _, other = _split_prediction(name, pred)
        if other is None:
            continue
        _, other = _pair(
            yt2, other if other.ndim == 2 else other[:, None], f"predictions[{name!r}]"
        )
        for j, horizon in enumerate(horizons):
            interval = bootstrap_accuracy_difference(
                yt2[:, j],
                ref[:, j],
                other[:, j],
                block_length=block_length,
                n_boot=n_boot,
                confidence=confidence,
                method=method,
                seed=seed,
            )
            rows.append(
                {
                    "model": name,
                    "horizon": horizon,
                    "difference": interval.estimate,
                    "low": interval.low,
                    "high": interval.high,
                    "p_value": interval.p_value,
                    "above_zero": interval.low > 0,
                }
            )
    table = pd.DataFrame(rows).set_index(["model", "horizon"])
    if not holm:
        return table.drop(columns="p_value")
    alpha = 1 - confidence
    m = len(table)
    if m == 0:
        return table.assign(p_holm=pd.Series(dtype=float))[
            ["difference", "low", "high", "p_value", "p_holm", "above_zero"]
        ]
    smallest = min(1.0, 2 * m / (n_boot + 1))
    if smallest >= alpha:
        raise ValueError(
            f"n_boot={n_boot} is too small for {m} comparisons: the smallest Holm-adjusted p-value "
            f"is 2 * {m} / ({n_boot} + 1) = {smallest:.3g} >= alpha = {alpha:.3g}, so no claim could "
            f"pass; use n_boot >= {math.ceil(2 * m / alpha)}"
        )
    table["p_holm"] = holm_adjust(table["p_value"].to_numpy())
    table["above_zero"] = (table["p_holm"] < alpha) & (table["difference"] > 0)
    return table[["difference", "low", "high", "p_value", "p_holm", "above_zero"]]


# --------------------------------------------------------------------------------------------------
# Many comparisons, many seeds
# --------------------------------------------------------------------------------------------------
def holm_adjust(p_values: Any) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (step-down), in the order given.

    Sort the ``m`` p-values, ``p_(1) <= ... <= p_(m)``; the adjusted value of the ``i``-th
    smallest is ``max_{j <= i} min(1, (m - j + 1) p_(j))`` (Holm, 1979). Rejecting every
    hypothesis whose adjusted p-value is below ``alpha`` keeps the chance of even one false
    rejection at most ``alpha``, whatever the dependence between the tests; it never rejects
    less than Bonferroni (``m p``). The adjusted values keep the order of the raw ones, are never
    below them and never above 1.

    Parameters
    ----------
    p_values : array-like ``[m]``
        Raw p-values, each in [0, 1].

    Returns
    -------
    ndarray ``[m]`` (float64)

    Examples
    --------
    >>> holm_adjust([0.01, 0.04, 0.03, 0.005]).round(3).tolist()
    [0.03, 0.06, 0.06, 0.02]
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"p_values must be 1-D [m], got shape {p.shape}")
    bad = np.flatnonzero(~np.isfinite(p) | (p < 0) | (p > 1))
    if bad.size:
        raise ValueError(
            f"p_values must be numbers in [0, 1]; p_values[{bad[0]}] = {float(p[bad[0]])!r}"
        )
    m = p.shape[0]
    order = np.argsort(p, kind="stable")  # [m], smallest first
    stepped = (m - np.arange(m)) * p[order]  # (m - j + 1) p_(j) with j = 1..m
    adjusted_sorted = np.minimum(1.0, np.maximum.accumulate(stepped))
    adjusted = np.empty(m)
    adjusted[order] = adjusted_sorted
    return adjusted


def _seed_values(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one value per seed), got shape {arr.shape}")
    if arr.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 seeds for a t-interval, got {arr.shape[0]}")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise ValueError(f"{name} holds NaN or inf (first at seed position {bad[0]})")
    return arr


def _t_quantile(confidence: float, dof: int) -> float:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    from scipy import stats  # imported here: only the seed summaries need it

    return float(stats.t.ppf(1 - (1 - confidence) / 2, dof))


class SeedSummary(NamedTuple):
    """Mean over seeds with a t-interval (see :func:`seed_summary`)."""

    mean: float
    low: float
    high: float


class PairedSeedDifference(NamedTuple):
    """Mean of ``a - b`` over seeds, its t-interval and one-sided p-value."""

    difference: float
    low: float
    high: float
    p_value: float
    n_seeds: int


def seed_summary(values_by_seed: Sequence[float], confidence: float = 0.95) -> SeedSummary:
    """Mean of a score over training seeds, with a Student t-interval.

    ``mean +- t_{n-1} * s / sqrt(n)``, with ``s`` the sample standard deviation over the ``n``
    seeds and ``t_{n-1}`` the ``1 - (1 - confidence) / 2`` quantile of Student's t with ``n - 1``
    degrees of freedom. It treats the seeds as independent draws of the training randomness
    (initial weights, batch order) and, with few seeds, assumes the score is roughly normal across
    them. The interval says how much the score moves from seed to seed *on this test period*; it
    says nothing about the uncertainty from the test period itself (for that, see
    :func:`results_table` with ``block_length``).

    Parameters
    ----------
    values_by_seed : sequence of float ``[n]``
        One value per seed (an accuracy, a Sharpe ratio, ...); at least 2.
    confidence : float, default 0.95

    Returns
    -------
    SeedSummary
        ``(mean, low, high)``; a tuple, so ``mean, low, high = seed_summary(v)`` works.
    """
    arr = _seed_values(values_by_seed, "values_by_seed")
    n = arr.shape[0]
    half = _t_quantile(confidence, n - 1) * arr.std(ddof=1) / math.sqrt(n)
    mean = float(arr.mean())
    return SeedSummary(mean, mean - half, mean + half)


def paired_seed_difference(
    a_by_seed: Sequence[float],
    b_by_seed: Sequence[float],
    *,
    confidence: float = 0.95,
) -> PairedSeedDifference:
    """Mean of ``a - b`` over seeds, paired seed by seed: t-interval and one-sided p-value.

    Position ``i`` of both sequences must come from the same seed (the same data, split and
    randomness, for two models or two settings), so what both share cancels in ``d_i = a_i - b_i``.
    The interval is :func:`seed_summary` of the ``d_i``; the p-value is that of a one-sided paired
    t-test of "``a`` is better", ``P(T_{n-1} >= mean(d) / (s_d / sqrt(n)))``. As in
    :func:`seed_summary`, it covers seed-to-seed variation only, on one test period. If the
    differences do not vary at all, the interval is the single value and the p-value is 0 when it
    is positive, 1 otherwise.

    Parameters
    ----------
    a_by_seed, b_by_seed : sequence of float ``[n]``
        One value per seed, in the same seed order; at least 2 seeds.
    confidence : float, default 0.95

    Returns
    -------
    PairedSeedDifference
        ``(difference, low, high, p_value, n_seeds)``.
    """
    a = _seed_values(a_by_seed, "a_by_seed")
    b = _seed_values(b_by_seed, "b_by_seed")
    if a.shape != b.shape:
        raise ValueError(f"a_by_seed has {a.shape[0]} seeds, b_by_seed has {b.shape[0]}")
    d = a - b  # [n]
    n = d.shape[0]
    mean, low, high = seed_summary(d, confidence)
    sd = float(d.std(ddof=1))
    if sd == 0:
        p_value = 0.0 if mean > 0 else 1.0
    else:
        from scipy import stats

        p_value = float(stats.t.sf(mean / (sd / math.sqrt(n)), n - 1))
    return PairedSeedDifference(mean, low, high, p_value, n)
