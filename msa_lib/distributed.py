"""Data-parallel training with PyTorch's own engine: ``torch.distributed`` + ``torchrun``.

:func:`msa_lib.train.fit` (and so ``msa train``) runs unchanged under
``torchrun --nproc_per_node=N``: it calls :func:`init_from_env`, which joins the process group that
``torchrun`` describes in the environment (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``...), wraps the
network in :class:`~torch.nn.parallel.DistributedDataParallel`, and gives every process (rank) its
share of each mini-batch. This module holds the few pieces that need to know about ranks:

* :func:`init_from_env` and :func:`world`: join the group (gloo on the CPU, NCCL on GPUs) and ask
  who we are;
* :func:`rank_rows`: which rows of a global mini-batch this rank computes;
* :func:`all_reduce_sum`, :func:`broadcast_order`, :func:`all_gather`: the three collective
  operations the loop needs (sum losses, agree on the shuffle, gather RNG states for a checkpoint);
* :func:`check_ddp` and ``python -m msa_lib.distributed check`` (``make ddp-check``): train the same
  network in one process and in two, and compare the loss trajectories.

Why the two runs can agree to rounding: every rank draws the same shuffled order (rank 0's,
broadcast), takes a contiguous slice of each global batch, and scales its mean loss by its share
of the batch; DistributedDataParallel averages the gradients over ranks, so the step uses the
gradient of the mean loss over the whole global batch, as a single process would. Dropout draws
different masks for a slice than for a whole batch, so the comparison switches dropout off.
"""

from __future__ import annotations

import argparse
import atexit
import json
import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

__all__ = [
    "all_gather",
    "all_reduce_sum",
    "broadcast_order",
    "check_ddp",
    "init_from_env",
    "launch",
    "is_main",
    "rank_rows",
    "world",
]


def world() -> tuple[int, int]:
    """``(rank, world_size)`` of this process: ``(0, 1)`` outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    """True on rank 0 (and in a plain, single-process run): the one process that writes files."""
    return world()[0] == 0


def init_from_env(backend: str | None = None) -> bool:
    """Join the process group ``torchrun`` set up, if any; return True when running distributed.

    Does nothing (and returns False) when ``WORLD_SIZE`` is absent or 1, and nothing more when a
    group already exists (the caller set it up). The backend defaults to NCCL when CUDA is
    available and gloo otherwise; the group is destroyed when the process exits.
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size() > 1
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed")
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    dist.init_process_group(backend=backend)
    atexit.register(_destroy)
    return dist.get_world_size() > 1


def _destroy() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def _device() -> torch.device:
    """Where collective tensors live: the GPU of this rank under NCCL, else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def rank_rows(n_rows: int, rank: int, world_size: int) -> tuple[int, int]:
    """``(start, stop)`` of the contiguous part of a batch of ``n_rows`` that ``rank`` computes.

    Parts differ in size by at most one row, larger ones first (as :func:`numpy.array_split`);
    with fewer rows than ranks the last ranks get none.

    Examples
    --------
    >>> [rank_rows(10, r, 4) for r in range(4)]
    [(0, 3), (3, 6), (6, 8), (8, 10)]
    """
    base, extra = divmod(n_rows, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (rank < extra)


def all_reduce_sum(values: Sequence[float]) -> list[float]:
    """Sum a list of floats over all ranks (float64); the list itself outside a process group."""
    if world()[1] == 1:
        return [float(v) for v in values]
    tensor = torch.tensor(list(values), dtype=torch.float64, device=_device())
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.cpu().tolist()


def broadcast_order(order: torch.Tensor) -> torch.Tensor:
    """Rank 0's copy of ``order`` (a shuffled index) on every rank, so all ranks slice one order."""
    if world()[1] == 1:
        return order
    tensor = order.to(_device())
    dist.broadcast(tensor, src=0)
    return tensor.cpu()


def all_gather(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (any picklable value), in rank order; ``[obj]`` outside a group."""
    if world()[1] == 1:
        return [obj]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


# --------------------------------------------------------------------------------------------------
# One process against two: the check `make ddp-check` runs
# --------------------------------------------------------------------------------------------------
#: The comparison's settings: small enough to run in seconds on two CPU cores. ``threads`` is per
#: process; ``device`` and ``precision`` are passed to :func:`msa_lib.train.fit`.
CHECK_SETTINGS: dict[str, Any] = {
    "days": 40, "seed": 0, "num_epochs": 3, "batch_size": 128, "d_model": 16, "n_layers": 1,
    "threads": 1, "device": "cpu", "precision": "auto",
}


def _check_run(out: str, settings: dict[str, Any]) -> None:
    """Train the check's network (in this process, under torchrun or not) and write its history."""
    import datetime
    import platform

    from msa_lib import seed_everything
    from msa_lib.experiment import COURSE
    from msa_lib.model import build_model
    from msa_lib.prepare import prepare_experiment
    from msa_lib.train import fit

    torch.set_num_threads(settings["threads"])
    init_from_env()
    experiment = COURSE.replace(
        data={"days": settings["days"]},
        model={"d_model": settings["d_model"], "n_layers": settings["n_layers"], "dropout": 0.0},
    )
    prepared = prepare_experiment(experiment)
    seed_everything(settings["seed"])
    model = build_model("multiscale", experiment.model_config(prepared.train.windows))
    history = fit(model, prepared.train, prepared.val, num_epochs=settings["num_epochs"],
                  batch_size=settings["batch_size"], lr=experiment.train.lr, patience=None,
                  progress=False, device=settings["device"], precision=settings["precision"])
    if is_main():
        device = next(model.parameters()).device
        Path(out).write_text(json.dumps({
            "world_size": world()[1], "threads": settings["threads"],
            "step_loss": history.step_loss, "train_loss": history.train_loss,
            "val_loss": history.val_loss, "seconds": sum(history.seconds),
            "rows": len(prepared.train), "epochs": history.num_epochs,
            "samples_per_second": len(prepared.train) * history.num_epochs / sum(history.seconds),
            "device": torch.cuda.get_device_name(device) if device.type == "cuda"
            else f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)",
            "precision": settings["precision"], "torch": torch.__version__,
            "date": datetime.date.today().isoformat(),
        }, indent=1))


def launch(nproc: int = 1, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train the check's network in a fresh process (``nproc == 1``) or under
    ``torchrun --standalone --nproc_per_node=nproc``; return what rank 0 recorded."""
    settings = {**CHECK_SETTINGS, **(settings or {})}
    if settings["batch_size"] % nproc:
        raise ValueError(f"batch_size {settings['batch_size']} is not divisible by {nproc} processes")
    env = {**os.environ, "OMP_NUM_THREADS": str(settings["threads"]), "PYTHONHASHSEED": "0"}
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    if nproc == 1:
        command = [sys.executable, "-m", "msa_lib.distributed"]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   f"--nproc_per_node={nproc}", "-m", "msa_lib.distributed"]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run.json"
        done = subprocess.run([*command, "run", "--out", str(out), "--settings", json.dumps(settings)],
                              env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command[2:4])} failed:\n{done.stderr[-3000:]}")
        return json.loads(out.read_text())


def check_ddp(
    nproc: int = 2, *, settings: dict[str, Any] | None = None, rtol: float = 1e-5
) -> dict[str, Any]:
    """Train the same network in one process and with ``torchrun --nproc_per_node=nproc``.

    Both runs use the same data, seed and global batch (dropout off); each runs in a fresh
    process with ``settings["threads"]`` threads per process (default 1).

    Returns
    -------
    dict
        ``"single"`` and ``"ddp"`` (each: ``step_loss``, ``train_loss``, ``val_loss``,
        ``seconds``, ``samples_per_second``...), ``"max_abs_diff"`` and ``"max_rel_diff"`` over
        every step's and epoch's loss, and ``"agree"``: every relative difference below ``rtol``.
    """
    result = {"single": launch(1, settings), "ddp": launch(nproc, settings)}
    pairs = [(a, b) for key in ("step_loss", "train_loss", "val_loss")
             for a, b in zip(result["single"][key], result["ddp"][key], strict=True)]
    result["max_abs_diff"] = max(abs(a - b) for a, b in pairs)
    result["max_rel_diff"] = max(abs(a - b) / max(abs(a), 1e-12) for a, b in pairs)
    result["agree"] = bool(result["max_rel_diff"] < rtol and math.isfinite(result["max_abs_diff"]))
    result["rtol"] = rtol
    return result


#: Where ``python -m msa_lib.distributed throughput`` records a GPU run (the Scaling-up chapter
#: shows it in its throughput table when the file exists).
GPU_RECORD = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_throughput.json"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m msa_lib.distributed check [--nproc N]``: one line, exit status 1 on disagreement."""
    parser = argparse.ArgumentParser(prog="python -m msa_lib.distributed")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("check", help="1 process vs N processes (gloo): compare the loss trajectories")
    p.add_argument("--nproc", type=int, default=2)
    p = sub.add_parser("run", help="(internal) one run of the check, under torchrun or not")
    p.add_argument("--out", required=True)
    p.add_argument("--settings", required=True)
    p = sub.add_parser("throughput", help="train the check's network on a GPU (bf16) and record it")
    p.add_argument("--device", default="cuda")
    p.add_argument("--out", default=str(GPU_RECORD))
    args = parser.parse_args(argv)
    if args.command == "run":
        _check_run(args.out, {**CHECK_SETTINGS, **json.loads(args.settings)})
        return 0
    if args.command == "throughput":
        record = launch(1, {"device": args.device, "num_epochs": 5})
        Path(args.out).write_text(json.dumps(record, indent=1))
        print(f"{record['device']}: {record['samples_per_second']:,.0f} samples/s "
              f"({record['precision']}), written to {args.out}")
        return 0
    r = check_ddp(args.nproc)
    steps = len(r["single"]["step_loss"])
    verdict = "agree" if r["agree"] else "DISAGREE"
    print(f"ddp-check: 1 process vs {args.nproc} (gloo), {steps} steps + {len(r['single']['val_loss'])} "
          f"validations: largest loss difference {r['max_abs_diff']:.2e} "
          f"(relative {r['max_rel_diff']:.2e}, tolerance {r['rtol']:.0e}) -> {verdict}")
    return 0 if r["agree"] else 1


if __name__ == "__main__":
    sys.exit(main())
