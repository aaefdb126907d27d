"""The rivals of the multi-scale network: an LSTM, a single-scale Transformer and a linear model.

Each takes the same ``forward(windows, masks=None, return_details=False)`` as
:class:`msa_lib.model.MultiScaleAttentionNet`, reads its settings from the same
:class:`msa_lib.model.ModelConfig`, and ends in the same :class:`msa_lib.model.ForecastHeads`
(``"returns"`` and ``"direction_logits"``, ``[B, H]`` each), so the training loop, the checkpoints
and the evaluation treat every model alike. Build them by kind with
:func:`msa_lib.model.build_model` (``"lstm"``, ``"single_scale"``, ``"linear"``); with
``return_details`` they add only ``"fused"``, the representation the heads read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from msa_lib.model import (
    Dropout,
    ForecastHeads,
    ModelConfig,
    ScaleEncoder,
    gather_inputs,
)

__all__ = ["LSTMBaseline", "SingleScaleTransformer", "LinearBaseline"]


class LSTMBaseline(nn.Module):
    """One LSTM per scale, last hidden states concatenated and mixed, then the forecast heads.

    Hidden rows (mask False) are fed as zeros.

    Parameters
    ----------
    config : ModelConfig
        Uses the scales, ``d_model`` (the LSTMs' hidden size), ``dropout`` and ``horizons``.
    """

    kind = "lstm"

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        d, S = config.d_model, len(config.scales)
        self.lstms = nn.ModuleDict(
            {s.name: nn.LSTM(s.n_features, d, batch_first=True) for s in config.scales}
        )
        self.mix = nn.Sequential(nn.Linear(S * d, d), nn.GELU(), Dropout(config.dropout))
        self.heads = ForecastHeads(d, len(config.horizons))

    def forward(
        self,
        windows: Mapping[str, Any],
        masks: Mapping[str, Any] | None = None,
        return_details: bool = False,
    ) -> dict[str, Tensor]:
        """See :meth:`msa_lib.model.MultiScaleAttentionNet.forward`."""
        xs, ms = gather_inputs(self.config, windows, masks, next(self.parameters()).device)
        finals = []
        for s, x, m in zip(self.config.scales, xs, ms, strict=True):
            if m is not None:
                x = x * m[..., None]
            _, (h_n, _) = self.lstms[s.name](x)  # h_n: [1, B, d]
            finals.append(h_n[-1])
        fused = self.mix(torch.cat(finals, dim=-1))  # [B, d]
        out = self.heads(fused)
        if return_details:
            out["fused"] = fused
        return out


class SingleScaleTransformer(nn.Module):
    """One :class:`msa_lib.model.ScaleEncoder` over a single scale, its last token -> the heads.

    The scale is ``config.single_scale`` (default: the first, finest one); the windows of other
    scales are ignored.

    Parameters
    ----------
    config : ModelConfig
    """

    kind = "single_scale"

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.scale_name = config.single_scale or config.scales[0].name
        d = config.d_model
        sc = config.scale(self.scale_name)
        self.encoder = ScaleEncoder(sc, d, config.pos_encoding, config.dropout, config.ff_mult)
        self.heads = ForecastHeads(d, len(config.horizons))

    def forward(
        self,
        windows: Mapping[str, Any],
        masks: Mapping[str, Any] | None = None,
        return_details: bool = False,
    ) -> dict[str, Tensor]:
        """See :meth:`msa_lib.model.MultiScaleAttentionNet.forward`."""
        device = next(self.parameters()).device
        (x,), (m,) = gather_inputs(self.config, windows, masks, device, [self.scale_name])
        fused = self.encoder(x, m)[:, -1]  # [B, d]
        out = self.heads(fused)
        if return_details:
            out["fused"] = fused
        return out


class LinearBaseline(nn.Module):
    """Every window of every scale flattened into one vector, then linear heads.

    Requires windows of exactly ``lookback`` rows per scale. Hidden rows are fed as zeros.

    Parameters
    ----------
    config : ModelConfig
    """

    kind = "linear"

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        n_in = sum(s.lookback * s.n_features for s in config.scales)
        self.heads = ForecastHeads(n_in, len(config.horizons))

    def forward(
        self,
        windows: Mapping[str, Any],
        masks: Mapping[str, Any] | None = None,
        return_details: bool = False,
    ) -> dict[str, Tensor]:
        """See :meth:`msa_lib.model.MultiScaleAttentionNet.forward`."""
        xs, ms = gather_inputs(self.config, windows, masks, next(self.parameters()).device)
        flat = []
        for s, x, m in zip(self.config.scales, xs, ms, strict=True):
            if x.shape[1] != s.lookback:
                raise ValueError(
                    f"LinearBaseline: windows[{s.name!r}] has {x.shape[1]} rows, needs exactly {s.lookback}"
                )
            if m is not None:
                x = x * m[..., None]
            flat.append(x.flatten(1))  # [B, L_s * F_s]
        z = torch.cat(flat, dim=1)  # [B, sum_s L_s * F_s]
        out = self.heads(z)
        if return_details:
            out["fused"] = z
        return out
