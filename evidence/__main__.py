"""``python -m evidence [--seeds 0,1,2,3,4] [--workers 2] [--output PATH]``: the central claim, over seeds.

Trains every contender of chapter 06 (the network, the single-scale Transformers, the LSTM, the
N-HiTS- and PatchTST-style models) and the ablations, fits the non-neural rivals (logistic
regression on lags and on the hand-made interaction feature, LightGBM), and scores them with the
naive rules and the oracle on the test block of every seed. Seed ``k`` means market seed ``k`` and
training seed ``k``: each seed is a new market *and* a new initialisation.

Writes ``evidence/results.json``: ``seeds``, ``horizons``, ``accuracy``
(``{model: {horizon: [one value per seed]}}``), ``ablations`` (the same, for the ablated networks),
``roles`` (which model plays which part in the claims), ``protocol`` (how every model was trained
and tuned), ``seconds`` and ``fingerprint`` (a hash of the code the numbers depend on:
``tests/test_evidence.py`` fails when it no longer matches, so stale evidence cannot ship).
Trained networks go to the network cache, so chapter 06 then loads seed 0's networks.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results.json"
SEEDS = (0, 1, 2, 3, 4)
#: The code the numbers depend on, besides the library modules the network cache hashes.
_EXTRA_SOURCES = ("msa_lib/evaluate.py", "evidence/__main__.py")


def fingerprint() -> str:
    """A hash of everything the evidence depends on: the training modules (as the network cache
    hashes them), the evaluation code, this script and the course's experiment."""
    from msa_lib.cache import _library_fingerprint
    from msa_lib.experiment import COURSE

    digest = hashlib.blake2b(digest_size=8)
    digest.update(_library_fingerprint().encode())
    for name in _EXTRA_SOURCES:
        digest.update(name.encode() + (ROOT / name).read_bytes())
    digest.update(repr(COURSE.cache_key()).encode())
    return digest.hexdigest()


def experiment_for(seed: int):
    """The course's experiment with market seed and training seed ``seed``."""
    from msa_lib.experiment import COURSE

    return COURSE.replace(seed=seed, data={"market_seed": seed})


def _task(seed: int, part: str) -> dict[str, Any]:
    """Fit one share of the models on one seed; returns their test accuracies."""
    import numpy as np
    import torch

    from msa_lib.baselines import contenders, naive_predictions, non_neural_rivals
    from msa_lib.cache import fit_experiment
    from msa_lib.evaluate import direction_accuracy, direction_score
    from msa_lib.prepare import experiment_market, prepare_experiment
    from msa_lib.train import predict

    torch.set_num_threads(1)
    experiment = experiment_for(seed)
    market = experiment_market(experiment)
    data = prepare_experiment(experiment, market.bars)
    y = data.log_returns["test"].to_numpy()
    base = experiment.model_config(data.train.windows)
    neural = contenders(base)
    jobs = [(label, kind, cfg, group) for group, models in neural.items()
            for label, (kind, cfg) in models.items()]
    # two balanced shares: the expensive networks alternate between them
    share = [j for i, j in enumerate(jobs) if i % 2 == (0 if part == "a" else 1)]
    accuracy: dict[str, dict[str, list[float]]] = {"models": {}, "ablations": {}}
    seconds: dict[str, float] = {}
    for label, kind, cfg, group in share:
        start = time.perf_counter()
        run = fit_experiment(experiment, data, kind=kind, config=cfg)
        out = predict(run.model, data.test)
        accuracy["models" if group != "ablations" else "ablations"][label] = list(
            map(float, direction_accuracy(y, out["direction_logits"])))
        seconds[label] = time.perf_counter() - start
    if part == "b":
        start = time.perf_counter()
        rivals = non_neural_rivals(experiment, data, market.bars)
        for label, prediction in rivals.items():
            accuracy["models"][label] = list(map(float, direction_accuracy(y, direction_score(prediction))))
        seconds["non-neural rivals"] = time.perf_counter() - start
        naive = naive_predictions(market.bars, data.times["test"], experiment.horizons,
                                  data.log_returns["train"])
        for label in ("last sign", "majority class"):
            accuracy["models"][label] = list(map(float, direction_accuracy(y, direction_score(naive[label]))))
        oracle = np.stack([market.expected_return(h).reindex(data.times["test"]).to_numpy()
                           for h in experiment.horizons], axis=1)
        accuracy["models"]["oracle"] = list(map(float, direction_accuracy(y, oracle)))
    return {"seed": seed, "accuracy": accuracy, "seconds": seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evidence", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)), help="comma-separated seeds")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    if len(seeds) < 1 or len(set(seeds)) != len(seeds):
        parser.error(f"--seeds: give distinct seeds, got {args.seeds!r}")

    from msa_lib.baselines import roles
    from msa_lib.experiment import COURSE

    start = time.perf_counter()
    tasks = [(seed, part) for seed in seeds for part in ("a", "b")]
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        results = list(pool.map(_task, [s for s, _ in tasks], [p for _, p in tasks]))
    horizons = list(COURSE.horizons)
    accuracy: dict[str, dict[str, list[float]]] = {}
    ablations: dict[str, dict[str, list[float]]] = {}
    seconds: dict[str, float] = {}
    for seed in seeds:
        for result in (r for r in results if r["seed"] == seed):
            for target, key in ((accuracy, "models"), (ablations, "ablations")):
                for label, values in result["accuracy"][key].items():
                    per_h = target.setdefault(label, {h: [] for h in horizons})
                    for h, v in zip(horizons, values, strict=True):
                        per_h[h].append(v)
            for label, s in result["seconds"].items():
                seconds[label] = seconds.get(label, 0.0) + s
    payload = {
        "command": "make evidence",
        "date": dt.date.today().isoformat(),
        "fingerprint": fingerprint(),
        "seeds": seeds,
        "horizons": horizons,
        "accuracy": accuracy,
        "ablations": ablations,
        "roles": roles(COURSE.features.scale_names),
        "protocol": {
            "data": "seed k: market seed k and training seed k; the course's experiment otherwise "
                    "(msa_lib.experiment.COURSE)",
            "neural": "every network and neural rival: the experiment's training settings "
                      "(AdamW, early stopping on the validation block), one run per seed",
            "non_neural": "logistic regressions and LightGBM: TUNING_BUDGET settings each, chosen on "
                          "the validation block's accuracy",
        },
        "seconds": {"total": time.perf_counter() - start, **seconds},
    }
    args.output.write_text(json.dumps(payload, indent=1) + "\n")
    print(f"evidence: {len(seeds)} seeds, {len(accuracy)} models, {len(ablations)} ablations, "
          f"{payload['seconds']['total'] / 60:.1f} min -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
