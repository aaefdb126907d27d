"""Tiny stand-ins shared by the tests: a forecaster, data for it, and an experiment on bundled bars."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from msa_lib.experiment import COURSE, ScaleSpec
from msa_lib.model import ModelConfig, ScaleConfig
from msa_lib.prepare import WindowDataset


class TinyNet(nn.Module):
    """Two scales in, H horizons out: flattens each window and runs a small MLP."""

    def __init__(self, n_horizons: int = 2, hidden: int = 32) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4 * 3 + 2 * 3, hidden), nn.Tanh())
        self.returns = nn.Linear(hidden, n_horizons)
        self.direction_head = nn.Linear(hidden, n_horizons)

    def forward(self, windows: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = torch.cat([windows["fast"].flatten(1), windows["slow"].flatten(1)], dim=1)  # [B, 18]
        h = self.body(x)  # [B, hidden]
        return {"returns": self.returns(h), "direction_logits": self.direction_head(h)}


def make_data(n: int, seed: int, sign: float = 1.0) -> WindowDataset:
    """Targets that depend linearly on the last fast feature (sign flips the relation)."""
    rng = np.random.default_rng(seed)
    fast = rng.normal(size=(n, 4, 3)).astype(np.float32)  # [N, L=4, F=3]
    slow = rng.normal(size=(n, 2, 3)).astype(np.float32)  # [N, L=2, F=3]
    y = sign * np.stack([fast[:, -1, 0], fast[:, -1, 0] + slow[:, -1, 1]], axis=1)  # [N, 2]
    y = y + 0.1 * rng.normal(size=y.shape)
    return WindowDataset({"fast": fast, "slow": slow}, y.astype(np.float32))


# Two scales of the bundled E-mini minutes (under two days), short feature windows on the 5-minute
# scale: prepares in well under a second.
ES = COURSE.replace(
    data={"source": "bundled", "name": "es_1min"},
    features={"scales": (ScaleSpec("1min", 16), ScaleSpec("5min", 8, lags=(1, 2), vol_windows=(3,),
                                                            ma_windows=(3,), volume_window=3,
                                                            rsi_window=3)),
              "horizons": ("15min", "30min")},
)


# --- small networks for the model tests ----------------------------------------------------------
#: Odd, unequal lengths (one of them a single bar) and different feature counts per scale.
ODD = (ScaleConfig("1min", 3, 7), ScaleConfig("5min", 4, 13), ScaleConfig("1D", 2, 1))


def make_config(**options) -> ModelConfig:
    """A small :class:`ModelConfig` over :data:`ODD` unless ``scales`` are given (no dropout
    unless asked for)."""
    options.setdefault("scales", ODD)
    options.setdefault("d_model", 16)
    options.setdefault("dropout", 0.0)
    options.setdefault("horizons", ("15min", "1h"))
    return ModelConfig(**options)


def make_windows(config: ModelConfig, batch: int = 5, seed: int = 0) -> dict[str, torch.Tensor]:
    """Standard-normal windows of ``config``'s shapes, ``[batch, L_s, F_s]`` per scale."""
    g = torch.Generator().manual_seed(seed)
    return {s.name: torch.randn(batch, s.lookback, s.n_features, generator=g) for s in config.scales}
