"""``python -m evidence.sweeps [--seeds 0,1,2] [--workers 2] [--only NAME,...] [--quick] [--output PATH]``.

Checks the "Best Practices" of the source chapter (issue #18) with measured numbers: one sweep per
recommendation, every point an :class:`~msa_lib.experiment.Experiment` change of the course's
experiment (:data:`msa_lib.experiment.COURSE`) and a model kind, trained on seeds 0, 1, 2 with the
seed protocol of ``make evidence`` (:func:`evidence.__main__.experiment_for`: seed ``k`` is market
seed ``k`` and training seed ``k``). Every network is fitted with
:func:`msa_lib.cache.fit_experiment` exactly as ``make evidence`` fits it, so a sweep's course
point is the evidence's own network, loaded from the network cache.

Sweeps (:func:`sweep_points`; ``*`` marks the course's point):

* ``scales``: subsets of 1min/5min/1h/1D (each scale keeps the course's lookback and windows);
* ``d_model``: 16, 32*, 64, 128; ``n_heads``: 1, 2, 4*, 8 heads in every scale's encoder
  (``model.n_heads``; the cross-scale attention keeps ``model.n_cross_heads`` = 4); ``n_layers``:
  1*, 2, 3 encoder layers per scale;
* ``lookback``: every scale's lookback x0.5, x1*, x2 (rounded half up, at least 2);
* ``depth_by_lookback``: 1* or 2 encoder layers, crossed with lookbacks x1* and x2;
* ``dropout``: 0.0, 0.1, 0.2*, 0.3;
* ``data_size``: 30, 60, 120 days x d_model 16, 64 x dropout 0.1, 0.3, and the course's point
  (120 days, d_model 32, dropout 0.2) as the reference;
* ``short_horizons``: horizons 1min/2min/5min for the network and each single-scale Transformer,
  plus the oracle (and the course's horizons as the reference);
* ``small_data``: 30, 60, 120* days for the network and each single-scale Transformer, plus the
  oracle;
* ``imbalanced_scales``: the network on un-standardised windows against the course's network,
  with the learned scale weights and mean gates on the test block.

Writes ``evidence/sweeps.json`` (after every finished sweep, and at the end): ``seeds``,
``horizons``, ``sweeps`` (``{name: [point, ...]}``, each point with ``label``, ``changes``,
``kind``, ``accuracy`` ``{horizon: [per seed]}`` and the per-seed training record), ``course``
(``{name: label of the course's point}``), ``protocol``, ``seconds``, ``date``, ``complete``
and ``fingerprint`` (evidence's :func:`~evidence.__main__.fingerprint` plus this file's source:
``tests/test_sweeps.py`` fails when it no longer matches). :func:`summarise` and :func:`verdict`
turn a sweep into the page's table and its one-word verdict.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import pandas as pd

from evidence.__main__ import experiment_for
from evidence.__main__ import fingerprint as evidence_fingerprint

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "sweeps.json"
SEEDS = (0, 1, 2)
#: Tiny settings of ``--quick`` (applied under every point's own changes).
QUICK_BASE: dict[str, Any] = {"data.days": 25, "train.num_epochs": 1, "model.d_model": 8}
QUICK_SEEDS = (0, 1)
VERDICTS = ("holds", "holds partly", "does not hold here")

__all__ = ["DEFAULT_OUTPUT", "SEEDS", "VERDICTS", "Point", "build_experiment", "fingerprint",
           "main", "summarise", "sweep_points", "verdict"]


def fingerprint() -> str:
    """A hash of what the sweeps depend on: evidence's fingerprint (training modules, evaluation,
    the course's experiment) and the source of this script."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(evidence_fingerprint().encode())
    digest.update(Path(__file__).read_bytes())
    return digest.hexdigest()


# ==================================================================================================
# The points
# ==================================================================================================
@dataclass(frozen=True)
class Point:
    """One point of a sweep: an experiment change and the model trained on it.

    Attributes
    ----------
    sweep, label : str
    changes : dict
        Dotted keys of :meth:`Experiment.replace <msa_lib.experiment.Experiment.replace>`
        (``{"model.d_model": 64}``), plus two of this script: ``"features.scales"`` (a list of
        scale names; each keeps the course's :class:`~msa_lib.experiment.ScaleSpec`) and
        ``"features.lookbacks"`` (scale -> lookback). Plain JSON values.
    kind : str
        ``"multiscale"``, ``"single_scale"`` or ``"oracle"`` (scored, not trained).
    scale : str or None
        The scale a ``single_scale`` Transformer reads.
    variant : str
        ``"standardised"`` (the course's windows) or ``"unscaled"`` (the scaler inverted).
    course : bool
        True for the course's point (the network ``make evidence`` trains).
    """

    sweep: str
    label: str
    changes: dict[str, Any] = field(default_factory=dict)
    kind: str = "multiscale"
    scale: str | None = None
    variant: str = "standardised"
    course: bool = False

    def cost(self) -> float:
        """A rough training cost, to start the longest tasks first: decision times x tokens read x
        width x layers (the oracle, and the course's settings that ``make evidence`` cached, cost
        nearly nothing)."""
        if self.kind == "oracle":
            return 0.0
        experiment = build_experiment(self, 0)
        m = experiment.model
        scales = experiment.features.scales
        if self.kind == "single_scale":
            scales = tuple(s for s in scales if s.name == self.scale)
        tokens = sum(s.lookback for s in scales)
        cost = experiment.data.days * tokens * m.d_model * m.n_layers
        return cost / 100 if not self.changes and self.variant == "standardised" else float(cost)


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def _scaled_lookbacks(factor: float) -> dict[str, int]:
    from msa_lib.experiment import COURSE

    return {s.name: max(2, _round_half_up(s.lookback * factor)) for s in COURSE.features.scales}


def sweep_points() -> dict[str, list[Point]]:
    """Every sweep's points, in display order (see the module docstring)."""
    from msa_lib.experiment import COURSE

    names = COURSE.features.scale_names  # 1min, 5min, 1h, 1D
    m = COURSE.model
    sweeps: dict[str, list[Point]] = {}

    subsets = [("1min", "1D"), ("1min", "5min", "1D"), ("1min", "1h", "1D"), tuple(names),
               ("5min", "1h", "1D"), ("1min", "5min", "1h")]
    sweeps["scales"] = [
        Point("scales", "+".join(s), {} if list(s) == names else {"features.scales": list(s)},
              course=list(s) == names)
        for s in subsets
    ]
    for name, key, values in (("d_model", "model.d_model", (16, 32, 64, 128)),
                              ("n_heads", "model.n_heads", (1, 2, 4, 8)),
                              ("n_layers", "model.n_layers", (1, 2, 3)),
                              ("dropout", "model.dropout", (0.0, 0.1, 0.2, 0.3))):
        current = getattr(m, key.split(".")[1])
        sweeps[name] = [Point(name, f"{key.split('.')[1]}={v}", {} if v == current else {key: v},
                              course=v == current) for v in values]
    sweeps["lookback"] = [
        Point("lookback", f"lookback x{f:g}", {} if f == 1 else {"features.lookbacks": _scaled_lookbacks(f)},
              course=f == 1)
        for f in (0.5, 1.0, 2.0)
    ]
    # "deeper for longer sequences": depth crossed with the lookback (the (1, x1), (2, x1) and
    # (1, x2) networks are the n_layers and lookback sweeps' own: only (2, x2) is new)
    sweeps["depth_by_lookback"] = [
        Point("depth_by_lookback", f"n_layers={layers} lookback x{f:g}",
              {**({} if layers == m.n_layers else {"model.n_layers": layers}),
               **({} if f == 1 else {"features.lookbacks": _scaled_lookbacks(f)})},
              course=layers == m.n_layers and f == 1)
        for f in (1.0, 2.0) for layers in (1, 2)
    ]
    sweeps["data_size"] = [
        Point("data_size", f"days={days} d_model={d} dropout={p:g}",
              {"data.days": days, "model.d_model": d, "model.dropout": p})
        for days in (30, 60, 120) for d in (16, 64) for p in (0.1, 0.3)
    ] + [Point("data_size", f"days={COURSE.data.days} d_model={m.d_model} dropout={m.dropout:g}",
               course=True)]  # the reference, free: make evidence cached it

    def with_rivals(sweep: str, settings: Sequence[tuple[str, dict[str, Any], bool]]) -> list[Point]:
        points = []
        for tag, changes, course in settings:
            points.append(Point(sweep, f"network {tag}", changes, course=course))
            points += [Point(sweep, f"Transformer {s} only {tag}", changes, kind="single_scale", scale=s)
                       for s in names]
            points.append(Point(sweep, f"oracle {tag}", changes, kind="oracle"))
        return points

    horizons = list(COURSE.horizons)
    sweeps["short_horizons"] = with_rivals("short_horizons", [
        ("1min/2min/5min", {"features.horizons": ["1min", "2min", "5min"]}, False),
        ("/".join(horizons), {}, True),
    ])
    sweeps["small_data"] = with_rivals("small_data", [
        (f"days={days}", {} if days == COURSE.data.days else {"data.days": days}, days == COURSE.data.days)
        for days in (30, 60, COURSE.data.days)
    ])
    sweeps["imbalanced_scales"] = [
        Point("imbalanced_scales", "standardised windows", course=True),
        Point("imbalanced_scales", "un-standardised windows", variant="unscaled"),
    ]
    for name, points in sweeps.items():
        if sum(p.course for p in points) != 1:  # a bug here, not input
            raise AssertionError(f"sweep {name} has {sum(p.course for p in points)} course points")
    return sweeps


def build_experiment(point: Point, seed: int, quick: bool = False):
    """The experiment of ``point`` on seed ``seed`` (``quick``: under :data:`QUICK_BASE`)."""
    experiment = experiment_for(seed)
    if quick:
        experiment = experiment.replace(**QUICK_BASE)
    plain = {k: v for k, v in point.changes.items() if k not in ("features.scales", "features.lookbacks")}
    if "features.scales" in point.changes:
        specs = {s.name: s for s in experiment.features.scales}
        unknown = [n for n in point.changes["features.scales"] if n not in specs]
        if unknown:
            raise ValueError(f"point {point.label!r}: scales {unknown} are not the course's {list(specs)}")
        experiment = experiment.replace(
            features={"scales": tuple(specs[n] for n in point.changes["features.scales"])})
    if "features.lookbacks" in point.changes:
        experiment = experiment.with_lookbacks(point.changes["features.lookbacks"])
    return experiment.replace(**plain) if plain else experiment


# ==================================================================================================
# One task: one point on one seed
# ==================================================================================================
def _unscaled(data):
    """``data`` with every block's windows turned back into raw features (the scaler inverted)."""
    import dataclasses

    from msa_lib.prepare import WindowDataset

    def raw(block):
        windows = {s: w.numpy() * data.scaler.std_[s] + data.scaler.mean_[s]  # [N, L, F]
                   for s, w in block.windows.items()}
        return WindowDataset(windows, block.scaled_returns, block.up, horizons=block.horizons)

    return dataclasses.replace(data, train=raw(data.train), val=raw(data.val), test=raw(data.test))


def _run_task(point: Point, seed: int, quick: bool, cache_dir: str | None = None) -> dict[str, Any]:
    """Fit (or load) ``point``'s model on ``seed`` and score it on the test block.

    ``cache_dir``: the network cache (None: :func:`msa_lib.cache.network_cache_dir`). Returns the
    seed's record (``accuracy`` per horizon, and for a network its training record; for the
    multi-scale network also the mean scale weights and gates on the test block).
    """
    import numpy as np
    import torch

    from msa_lib.cache import fit_experiment
    from msa_lib.evaluate import direction_accuracy
    from msa_lib.model import count_parameters
    from msa_lib.prepare import experiment_market, prepare_experiment
    from msa_lib.train import predict

    torch.set_num_threads(1)
    start = time.perf_counter()
    experiment = build_experiment(point, seed, quick)
    market = experiment_market(experiment)
    data = prepare_experiment(experiment, market.bars)
    y = data.log_returns["test"].to_numpy()  # [N, H]
    record: dict[str, Any] = {"seed": seed, "horizons": list(experiment.horizons)}
    if point.kind == "oracle":
        oracle = np.stack([market.expected_return(h).reindex(data.times["test"]).to_numpy()
                           for h in experiment.horizons], axis=1)  # [N, H]
        record["accuracy"] = [float(a) for a in direction_accuracy(y, oracle)]
        record["wall_seconds"] = time.perf_counter() - start
        return record
    if point.variant == "unscaled":
        data = _unscaled(data)
    config = experiment.model_config(data.train.windows)
    if point.kind == "single_scale":
        config = config.replace(single_scale=point.scale)
    name = None if point.variant == "standardised" else f"{point.kind}-{point.variant}"
    run = fit_experiment(experiment, data, kind=point.kind, config=config, name=name,
                         cache_dir=cache_dir or "auto")
    out = predict(run.model, data.test)
    history = run.history
    best = history.best_epoch
    record.update(
        accuracy=[float(a) for a in direction_accuracy(y, out["direction_logits"])],
        train_loss=float(history.train_loss[best]) if best >= 0 else math.nan,
        val_loss=float(history.best_val_loss),
        best_epoch=best + 1,
        epochs=history.num_epochs,
        stop_reason=history.stop_reason,
        train_seconds=float(sum(history.seconds)),
        parameters=count_parameters(run.model),
        from_cache=run.from_cache,
    )
    if point.kind == "multiscale":
        with torch.no_grad():
            details = run.model(data.test.windows, return_details=True)
        record["scale_weights"] = dict(zip(config.scale_names, details["scale_weights"].tolist(), strict=True))
        record["mean_gates"] = dict(zip(config.scale_names, details["gates"].mean(dim=0).tolist(),
                                        strict=True))  # gates [B, S] -> [S]
    record["wall_seconds"] = time.perf_counter() - start
    return record


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)


# ==================================================================================================
# Collecting the records into the file
# ==================================================================================================
_PER_SEED = ("train_loss", "val_loss", "best_epoch", "epochs", "stop_reason", "train_seconds",
             "parameters", "from_cache", "wall_seconds", "scale_weights", "mean_gates")


def _collect(point: Point, records: Sequence[dict[str, Any]], seeds: Sequence[int]) -> dict[str, Any]:
    """One point of the file from its per-seed records (in ``seeds`` order)."""
    by_seed = {r["seed"]: r for r in records}
    ordered = [by_seed[s] for s in seeds]
    horizons = ordered[0]["horizons"]
    out: dict[str, Any] = {
        "label": point.label, "changes": dict(point.changes), "kind": point.kind,
        "scale": point.scale, "variant": point.variant, "course": point.course,
        "horizons": horizons,
        "accuracy": {h: [r["accuracy"][j] for r in ordered] for j, h in enumerate(horizons)},
    }
    for key in _PER_SEED:
        if key in ordered[0]:
            out[key] = [r[key] for r in ordered]
    return out


def _payload(points: Mapping[str, list[Point]], done: Mapping[tuple[str, str], list[dict[str, Any]]],
             seeds: Sequence[int], quick: bool, start: float, finished: set[str]) -> dict[str, Any]:
    from msa_lib.experiment import COURSE

    sweeps = {name: [_collect(p, done[(name, p.label)], seeds) for p in points[name]]
              for name in points if name in finished}
    base = "the course's experiment" + (f" under --quick settings {QUICK_BASE}" if quick else "")
    return {
        "command": "make sweeps" if not quick else "python -m evidence.sweeps --quick",
        "date": dt.date.today().isoformat(),
        "fingerprint": fingerprint(),
        "quick": quick,
        "complete": set(points) == finished,
        "seeds": list(seeds),
        "horizons": list(COURSE.horizons),
        "sweeps": sweeps,
        "course": {name: next(p.label for p in points[name] if p.course) for name in sweeps},
        "protocol": {
            "data": f"seed k: market seed k and training seed k (evidence.experiment_for); {base}, "
                    "with each point's changes",
            "training": "every network: msa_lib.cache.fit_experiment with the experiment's training "
                        "settings (AdamW, early stopping on the validation block), one run per seed; "
                        "the course's point is the network make evidence trains (same cache entry)",
            "n_heads": "model.n_heads: the heads of every scale's encoder; the cross-scale attention "
                       "keeps model.n_cross_heads",
            "lookback": "every scale's lookback times the factor, rounded half up, at least 2; "
                        "feature windows unchanged",
            "imbalanced_scales": "the course's network trained on the windows with the training "
                                 "scaler inverted (raw features, each scale on its own scale); "
                                 "scale_weights and mean_gates: on the test block",
            "seconds": "total: wall-clock of the run; per sweep: the wall-clock of its tasks, a network "
                       "shared by several sweeps (the course's) counted in each",
            "oracle": "the planted conditional mean (SyntheticMarket.expected_return), not trained",
            "scores": "direction accuracy on the test block per horizon; train_loss and val_loss of "
                      "the best epoch; train_seconds: the training run's epochs (the original run's "
                      "time for a network loaded from the cache)",
        },
        "seconds": {"total": time.perf_counter() - start,
                    **{name: sum(r["wall_seconds"] for (n, _), rs in done.items() if n == name for r in rs)
                       for name in finished}},
    }


def _write(path: Path, payload: Mapping[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1) + "\n")
    tmp.replace(path)  # a reader never sees half a file


def _unique_tasks(points: Mapping[str, list[Point]], seeds: Sequence[int],
                  quick: bool) -> dict[str, list[tuple[Point, int]]]:
    """(point, seed) pairs grouped by the network they fit: same experiment (as the network cache
    keys it), kind, scale and variant. Each group is trained once (the course's network is in
    eight sweeps), so no two workers ever train the same network at the same time."""
    groups: dict[str, list[tuple[Point, int]]] = {}
    for ps in points.values():
        for p in ps:
            for seed in seeds:
                key = json.dumps([build_experiment(p, seed, quick).cache_key(), p.kind, p.scale, p.variant],
                                 sort_keys=True)
                groups.setdefault(key, []).append((p, seed))
    return groups


def _quick_points(points: Mapping[str, list[Point]]) -> dict[str, list[Point]]:
    """The course's point and the first other point of every sweep (the oracle too where there is one)."""
    out = {}
    for name, ps in points.items():
        other = next(p for p in ps if not p.course and p.kind != "oracle")
        keep = [p for p in ps if p.course or p is other or (p.kind == "oracle" and p.changes == other.changes)]
        out[name] = keep
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evidence.sweeps", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default=None, help="comma-separated seeds (default 0,1,2; --quick 0,1)")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--only", default=None, help="comma-separated sweep names (default: all)")
    parser.add_argument("--quick", action="store_true",
                        help=f"tiny settings {QUICK_BASE}, two points per sweep, to test the machinery")
    parser.add_argument("--output", type=Path, default=None,
                        help=f"default {DEFAULT_OUTPUT} (--quick: a temporary file)")
    args = parser.parse_args(argv)
    seeds_text = args.seeds if args.seeds is not None else ",".join(map(str, QUICK_SEEDS if args.quick else SEEDS))
    try:
        seeds = [int(s) for s in seeds_text.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--seeds: give integers separated by commas, got {seeds_text!r}")
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        parser.error(f"--seeds: give at least two distinct seeds (for an interval), got {seeds_text!r}")
    if args.workers < 1:
        parser.error(f"--workers: must be >= 1, got {args.workers}")
    points = sweep_points()
    if args.only is not None:
        only = [s.strip() for s in args.only.split(",") if s.strip()]
        unknown = [s for s in only if s not in points]
        if unknown or not only:
            parser.error(f"--only: unknown sweep(s) {unknown or only}; sweeps are {', '.join(points)}")
        points = {name: points[name] for name in only}
    if args.quick:
        points = _quick_points(points)
    output = args.output
    if output is None:
        output = (Path(tempfile.mkdtemp(prefix="sweeps-")) / "sweeps.json") if args.quick else DEFAULT_OUTPUT

    # quick: a fresh cache, so the tiny networks never enter the course's network cache
    cache_dir = tempfile.mkdtemp(prefix="sweeps-cache-") if args.quick else None

    start = time.perf_counter()
    groups = _unique_tasks(points, seeds, args.quick)  # one fit per distinct network and seed
    order = sorted(groups, key=lambda key: -groups[key][0][0].cost())
    n_points = sum(len(ps) for ps in points.values()) * len(seeds)
    remaining = {name: len(ps) * len(seeds) for name, ps in points.items()}
    done: dict[tuple[str, str], list[dict[str, Any]]] = {}
    finished: set[str] = set()
    print(f"sweeps: {n_points} (point, seed) pairs, {len(order)} distinct tasks ({', '.join(points)}) "
          f"on {args.workers} workers -> {output}", flush=True)
    with ProcessPoolExecutor(max_workers=args.workers, mp_context=get_context("spawn"),
                             initializer=_worker_init) as pool:
        futures = {pool.submit(_run_task, *groups[key][0], args.quick, cache_dir): key for key in order}
        for n, future in enumerate(as_completed(futures), 1):
            record = future.result()
            members = groups[futures[future]]
            for point, _ in members:
                done.setdefault((point.sweep, point.label), []).append(record)
            first = members[0][0]
            accuracy = " ".join(f"{h} {a:.3f}" for h, a in zip(record["horizons"], record["accuracy"], strict=True))
            notes = (" (cached)" if record.get("from_cache") else "") + (
                f" (shared by {len(members)} points)" if len(members) > 1 else "")
            print(f"[{n}/{len(order)} {(time.perf_counter() - start) / 60:.1f} min] {first.sweep}: "
                  f"{first.label} seed {record['seed']}: {accuracy}, {record['wall_seconds']:.0f} s{notes}",
                  flush=True)
            for point, _ in members:
                remaining[point.sweep] -= 1
                if remaining[point.sweep] == 0:
                    finished.add(point.sweep)
                    _write(output, _payload(points, done, seeds, args.quick, start, finished))
    payload = _payload(points, done, seeds, args.quick, start, finished)
    _write(output, payload)
    if cache_dir is not None:
        shutil.rmtree(cache_dir, ignore_errors=True)
    print(f"sweeps: {len(points)} sweeps, {len(order)} tasks, {payload['seconds']['total'] / 60:.1f} min "
          f"-> {output}", flush=True)
    return 0


# ==================================================================================================
# What the page shows
# ==================================================================================================
def summarise(points: Sequence[Mapping[str, Any]], horizon: str, confidence: float = 0.95) -> pd.DataFrame:
    """One row per point that forecasts ``horizon``: mean test accuracy over seeds, with a t-interval.

    Parameters
    ----------
    points : list of dict
        A sweep of ``sweeps.json`` (``payload["sweeps"][name]``): each with ``label`` and
        ``accuracy`` ``{horizon: [one value per seed]}`` (at least 2 seeds).
    horizon : str
        Points without this horizon (the short-horizon points at ``"30min"``...) have no row.
    confidence : float, default 0.95
        Of the Student-t interval over seeds (:func:`msa_lib.evaluate.seed_summary`).

    Returns
    -------
    DataFrame
        Columns ``label``, ``mean``, ``low``, ``high``, ``seeds``, ``course`` (the course's point),
        in the sweep's order.

    Raises
    ------
    ValueError
        When no point forecasts ``horizon``, or labels repeat.
    """
    from msa_lib.evaluate import seed_summary

    labels = [p["label"] for p in points]
    if len(set(labels)) != len(labels):
        raise ValueError(f"points: repeated labels {sorted({x for x in labels if labels.count(x) > 1})}")
    rows = []
    for p in points:
        if horizon not in p["accuracy"]:
            continue
        values = p["accuracy"][horizon]
        mean, low, high = seed_summary(values, confidence)
        rows.append({"label": p["label"], "mean": mean, "low": low, "high": high,
                     "seeds": len(values), "course": bool(p.get("course", False))})
    if not rows:
        raise ValueError(f"horizon {horizon!r}: no point forecasts it (labels {labels})")
    return pd.DataFrame(rows, columns=["label", "mean", "low", "high", "seeds", "course"])


def verdict(summary: pd.DataFrame, recommended: Sequence[str]) -> str:
    """Does a recommended range hold on these numbers? ``"holds"``, ``"holds partly"`` or
    ``"does not hold here"``.

    A recommendation ("d_model 64-256") says two things: inside the range is as good as it gets,
    and leaving the range costs. With ``R`` the recommended point of highest mean, ``B`` the point
    of highest mean overall and ``[low, high]`` the seed intervals of :func:`summarise`:

    * *reaches the best*: ``mean(R) >= low(B)`` (the range's best is within seed noise of the best);
    * *beaten*: some point outside the range has ``low > high(R)`` (its whole interval lies above
      the range's best interval: clearly better);
    * *leaving costs*: some point outside the range has ``high < low(R)`` (clearly worse).

    Beaten -> "does not hold here". Otherwise: reaches the best and leaving costs -> "holds";
    only one of the two -> "holds partly" (for example: every setting ties, so the range does no
    harm but nothing shows it matters); neither -> "does not hold here" (the range trails the best
    and nothing outside it is worse). "Clearly" means non-overlapping intervals, a conservative
    test: with three seeds, only large gaps count. With no point outside the range, the
    recommendation cannot be checked: a ValueError.

    Parameters
    ----------
    summary : DataFrame
        From :func:`summarise` (columns ``label``, ``mean``, ``low``, ``high``).
    recommended : sequence of str
        Labels of the points inside the recommended range.

    Returns
    -------
    str
        One of :data:`VERDICTS`.
    """
    missing = [label for label in recommended if label not in set(summary["label"])]
    if missing:
        raise ValueError(f"recommended: labels {missing} are not in the summary ({list(summary['label'])})")
    inside = summary[summary["label"].isin(list(recommended))]
    outside = summary[~summary["label"].isin(list(recommended))]
    if inside.empty:
        raise ValueError("recommended: give at least one label")
    if outside.empty:
        raise ValueError("every point is recommended: nothing outside the range to compare with")
    best_inside = inside.loc[inside["mean"].idxmax()]
    best = summary.loc[summary["mean"].idxmax()]
    if (outside["low"] > best_inside["high"]).any():
        return "does not hold here"
    reaches = best_inside["mean"] >= best["low"]
    costs = (outside["high"] < best_inside["low"]).any()
    if reaches and costs:
        return "holds"
    if reaches or costs:
        return "holds partly"
    return "does not hold here"



def paired_gains(better: Mapping[str, Any], worse: Mapping[str, Any], horizons: Sequence[str],
                 confidence: float = 0.95) -> tuple[float, float, float]:
    """How much point ``better`` beats point ``worse``: the mean over seeds of the accuracy
    difference (averaged over ``horizons``), paired seed by seed, with its t-interval
    (:func:`msa_lib.evaluate.paired_seed_difference`). Returns ``(mean, low, high)``."""
    import numpy as np

    from msa_lib.evaluate import paired_seed_difference

    a = np.mean([better["accuracy"][h] for h in horizons], axis=0)  # [seeds]
    b = np.mean([worse["accuracy"][h] for h in horizons], axis=0)
    d = paired_seed_difference(a, b, confidence=confidence)
    return float(d[0]), float(d[1]), float(d[2])


def trend_verdict(gains: Sequence[tuple[float, float, float]], *, grows: bool, positive_at: str) -> str:
    """Does an advice of the kind "more X when Y is larger" hold? ``"holds"``, ``"holds partly"``
    or ``"does not hold here"``.

    ``gains`` are the paired gains ``(mean, low, high)`` of the advised setting over the other one
    (:func:`paired_gains`), at increasing values of Y ("d_model 64 over 16" at 30, 60, 120 days).
    The advice says the gain moves one way as Y grows (``grows=True``: it increases) and is real
    where the advice applies (``positive_at``: ``"last"`` or ``"first"`` value of Y):

    * the gain moves the advised way from the first to the last value, and its interval at
      ``positive_at`` lies above zero -> "holds";
    * it moves the advised way but that interval reaches zero -> "holds partly";
    * it moves the other way (or not at all) -> "does not hold here".
    """
    if len(gains) < 2:
        raise ValueError(f"a trend needs at least 2 values, got {len(gains)}")
    if positive_at not in ("first", "last"):
        raise ValueError(f"positive_at must be 'first' or 'last', got {positive_at!r}")
    first, last = gains[0][0], gains[-1][0]
    if (last > first) != grows or last == first:
        return "does not hold here"
    where = gains[-1] if positive_at == "last" else gains[0]
    return "holds" if where[1] > 0 else "holds partly"


if __name__ == "__main__":
    # run the importable module's main, so worker processes unpickle evidence.sweeps' names
    from evidence.sweeps import main as _main

    sys.exit(_main())
