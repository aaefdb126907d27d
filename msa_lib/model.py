"""Multi-scale attention networks: one encoder per time scale, cross-scale attention, fusion, heads.

The module reads top to bottom in the order the model computes:

1. :class:`ScaleConfig` / :class:`ModelConfig` - plain dataclasses that describe a network. All
   validation happens here, once, when a config is built; the modules below trust their config.
   Configs serialise to plain dicts, so a checkpoint can hold them and be loaded with
   ``weights_only=True``.
2. Positional encodings (:class:`LearnablePositionalEncoding`, :class:`SinusoidalPositionalEncoding`)
   indexed by the *age* of a bar (0 = the most recent row of a window, 1 = the one before, ...).
3. :func:`attend` - multi-head attention, written once: the fused kernel, or with
   ``need_weights=True`` the explicit ``softmax(QK^T / sqrt(d_head)) V`` that also returns the
   weights; and :class:`Dropout`, dropout with a mask that is cheap to draw on the CPU.
4. :class:`ScaleEncoder` - input projection, optional causal convolution, positional encoding and
   pre-LayerNorm Transformer layers for one scale.
5. :class:`CrossScaleAttention` - the most recent token of every scale queries all tokens of all
   scales in one batched multi-head attention call; :func:`cross_scale_attention_loop` is the slow,
   readable version that computes the same numbers one query scale and one head at a time.
6. :class:`CrossScaleFusion` - learnable scale weights (softmax) times per-sample sigmoid gates.
7. :class:`HierarchicalAggregation` - attention over an average-pooled pyramid, for any length.
8. :class:`ForecastHeads` (the outputs every model shares) and :class:`MultiScaleAttentionNet`, the
   whole network. The baselines with the same ``forward`` live in :mod:`msa_lib.baselines`.
9. :func:`build_model` (every kind, baselines included); checkpoints are :mod:`msa_lib.checkpoints`.

Conventions
-----------
* ``windows`` is a dict ``scale name -> [B, L_s, F_s]`` (NumPy or torch, float), as returned by
  :func:`msa_lib.data.make_windows`; the LAST row of each window is the most recent bar.
* Values are checked once, where data enters: :class:`msa_lib.train.WindowDataset` rejects NaN and
  inf. ``forward`` checks only what costs nothing to check (scale names, shapes), so a training
  step spends its time on arithmetic.
* Masks are boolean ``[B, L_s]`` with ``True`` = a real, visible bar and ``False`` = padding or missing
  history. (PyTorch's own ``key_padding_mask`` uses the opposite convention; this module never
  exposes it.) The most recent row of every window must be visible.
* Every model returns a dict with ``"returns"`` ``[B, H]`` (one regression output per horizon) and
  ``"direction_logits"`` ``[B, H]`` (logit of "the return over that horizon is positive").
"""

from __future__ import annotations

import dataclasses
import importlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import Tensor, nn

__all__ = [
    "POS_ENCODINGS",
    "MODEL_KINDS",
    "ScaleConfig",
    "ModelConfig",
    "config_from_windows",
    "LearnablePositionalEncoding",
    "SinusoidalPositionalEncoding",
    "attend",
    "dropout",
    "Dropout",
    "EncoderLayer",
    "ScaleEncoder",
    "CrossScaleAttention",
    "cross_scale_attention_loop",
    "CrossScaleFusion",
    "pool_recent_aligned",
    "HierarchicalAggregation",
    "ForecastHeads",
    "gather_inputs",
    "MultiScaleAttentionNet",
    "build_model",
    "model_class",
    "count_parameters",
]

POS_ENCODINGS = ("learnable", "sinusoidal", "none")


# ------------------------------------------------------------------------------------------------
# 1. Configuration: every setting is validated here, once
# ------------------------------------------------------------------------------------------------
def _check_int(value: Any, name: str, minimum: int, where: str) -> None:
    """Raise unless ``value`` is an integer (not a bool) >= ``minimum``."""
    if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{where}: {name} must be an integer >= {minimum}, got {value!r}")


def _check_heads(d_model: int, n_heads: int, where: str) -> None:
    """Raise unless ``n_heads`` divides ``d_model`` (each head gets ``d_model / n_heads`` features)."""
    if d_model % n_heads:
        raise ValueError(f"{where}: n_heads={n_heads} does not divide d_model={d_model}")


def _check_pos_encoding(pos_encoding: Any, where: str) -> None:
    if pos_encoding not in POS_ENCODINGS:
        raise ValueError(f"{where}: pos_encoding must be one of {POS_ENCODINGS}, got {pos_encoding!r}")


@dataclass
class ScaleConfig:
    """How one time scale is encoded.

    Parameters
    ----------
    name : str
        Scale name, the key of the windows dict (``"1min"``, ``"5min"``, ``"1h"``, ``"1D"``).
    n_features : int
        Features per bar at this scale (the last axis of its windows).
    lookback : int
        Longest window the encoder accepts (bars). Shorter windows are accepted too.
    n_layers : int, default 1
        Transformer encoder layers for this scale.
    n_heads : int, default 4
        Attention heads in this scale's encoder; must divide ``ModelConfig.d_model``.
    conv_kernel : int, default 0
        Width of a causal 1-D convolution applied before attention (0 = none). Useful for the
        finest, noisiest scales, where neighbouring bars form local patterns.
    pool_kernel : int, default 1
        Read by :class:`msa_lib.baselines.NHiTSStyle` only: kernel (and stride) of the max-pooling
        over time applied to this scale's window before its MLP block (1 = no pooling).
    patch_len : int, default 5
        Read by :class:`msa_lib.baselines.PatchTSTStyle` only: rows per patch, capped at the
        lookback (the patch length used is ``min(lookback, patch_len)``).
    """

    name: str
    n_features: int
    lookback: int
    n_layers: int = 1
    n_heads: int = 4
    conv_kernel: int = 0
    pool_kernel: int = 1
    patch_len: int = 5

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"ScaleConfig.name must be a non-empty string, got {self.name!r}")
        where = f"scale {self.name!r}"
        for key in ("n_features", "lookback", "n_layers", "n_heads", "pool_kernel", "patch_len"):
            _check_int(getattr(self, key), key, 1, where)
        _check_int(self.conv_kernel, "conv_kernel", 0, where)


@dataclass
class ModelConfig:
    """Everything needed to rebuild a network (and nothing else: no weights, no data).

    Building one validates every setting and raises a ValueError that names the setting (and the
    scale) at fault; the modules of this file do not check their settings again.

    Parameters
    ----------
    scales : tuple of ScaleConfig
        One entry per scale, finest first. A subset of scales is simply a config with fewer.
    d_model : int, default 32
        Width of every token representation.
    horizons : tuple of str, default ("15min", "1h", "4h")
        Forecast horizons; the model has one regression output and one direction logit per horizon.
    dropout : float, default 0.1
        Dropout on the residual branches of the encoder layers and inside the fusion MLP
        (attention weights are not dropped).
    pos_encoding : {"learnable", "sinusoidal", "none"}, default "learnable"
        Positional encoding of every scale encoder. ``"none"`` exists to show what is lost.
    cross_attention : bool, default True
        If False (ablation), each scale is represented by its own last token; scales meet only in
        the fusion layer.
    gates : bool, default True
        If False (ablation), the per-sample sigmoid gates of the fusion are fixed at 1.
    n_cross_heads : int, default 4
        Heads of the cross-scale attention; must divide ``d_model``.
    ff_mult : int, default 4
        Feed-forward width of encoder layers, as a multiple of ``d_model``.
    pyramid_levels : int, default 0
        If > 0, every scale's encoded sequence is also summarised by a
        :class:`HierarchicalAggregation` with this many levels, added to its token.
    pool_size : int, default 2
        Pooling factor between pyramid levels.
    single_scale : str or None, default None
        Scale used by :class:`msa_lib.baselines.SingleScaleTransformer` (None = the first, finest
        scale).
    """

    scales: tuple[ScaleConfig, ...]
    d_model: int = 32
    horizons: tuple[str, ...] = ("15min", "1h", "4h")
    dropout: float = 0.1
    pos_encoding: str = "learnable"
    cross_attention: bool = True
    gates: bool = True
    n_cross_heads: int = 4
    ff_mult: int = 4
    pyramid_levels: int = 0
    pool_size: int = 2
    single_scale: str | None = None

    def __post_init__(self) -> None:
        # Accept dicts and lists (as they come back from JSON or a checkpoint); store tuples.
        if isinstance(self.scales, Mapping | str) or not isinstance(self.scales, Sequence):
            raise ValueError(
                f"ModelConfig.scales must be a sequence of ScaleConfig, got {type(self.scales).__name__}"
            )
        scales = tuple(s if isinstance(s, ScaleConfig) else ScaleConfig(**s) for s in self.scales)
        self.scales = scales
        if isinstance(self.horizons, str):
            raise ValueError(f"ModelConfig.horizons must be a sequence of str, got {self.horizons!r}")
        self.horizons = tuple(str(h) for h in self.horizons)
        if not scales:
            raise ValueError("ModelConfig.scales is empty: give at least one ScaleConfig")
        names = [s.name for s in scales]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"ModelConfig.scales: duplicated scale names {duplicated}")
        if not self.horizons:
            raise ValueError("ModelConfig.horizons is empty: give at least one horizon")
        if len(set(self.horizons)) != len(self.horizons):
            raise ValueError(f"ModelConfig.horizons has duplicates: {self.horizons}")
        where = "ModelConfig"
        _check_int(self.d_model, "d_model", 1, where)
        _check_int(self.n_cross_heads, "n_cross_heads", 1, where)
        _check_int(self.ff_mult, "ff_mult", 1, where)
        _check_int(self.pyramid_levels, "pyramid_levels", 0, where)
        _check_int(self.pool_size, "pool_size", 2, where)
        for s in scales:
            _check_heads(self.d_model, s.n_heads, f"scale {s.name!r}")
        _check_heads(self.d_model, self.n_cross_heads, "cross-scale attention (n_cross_heads)")
        _check_pos_encoding(self.pos_encoding, where)
        for key in ("cross_attention", "gates"):
            if not isinstance(getattr(self, key), bool | np.bool_):
                raise ValueError(f"ModelConfig.{key} must be True or False, got {getattr(self, key)!r}")
        if (
            not isinstance(self.dropout, int | float | np.number)
            or isinstance(self.dropout, bool)
            or not 0.0 <= self.dropout < 1.0
        ):
            raise ValueError(f"ModelConfig.dropout must be a number in [0, 1), got {self.dropout!r}")
        if self.single_scale is not None and self.single_scale not in names:
            raise ValueError(f"single_scale {self.single_scale!r} is not one of the scales {names}")

    @property
    def scale_names(self) -> list[str]:
        """Scale names in model order."""
        return [s.name for s in self.scales]

    def scale(self, name: str) -> ScaleConfig:
        """The :class:`ScaleConfig` called ``name`` (KeyError naming the scales if absent)."""
        for s in self.scales:
            if s.name == name:
                return s
        raise KeyError(f"no scale {name!r} in this config; scales are {self.scale_names}")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of str/int/float/bool/None/lists (JSON- and ``weights_only``-safe)."""
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelConfig:
        """Rebuild a config from :meth:`to_dict` output. Unknown keys raise a ValueError."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown ModelConfig keys {unknown}; known keys are {sorted(known)}")
        return cls(**dict(d))

    def replace(self, **changes: Any) -> ModelConfig:
        """A copy with some fields changed (the original is untouched), validated again."""
        return dataclasses.replace(self, **changes)


def _plain(obj: Any) -> Any:
    """Tuples -> lists, NumPy scalars -> Python scalars, recursively."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def config_from_windows(
    windows: Mapping[str, Any],
    *,
    scales: Sequence[str] | None = None,
    n_layers: int | Mapping[str, int] = 1,
    n_heads: int | Mapping[str, int] = 4,
    conv_kernel: int | Mapping[str, int] = 0,
    pool_kernel: int | Mapping[str, int] = 1,
    patch_len: int | Mapping[str, int] = 5,
    **model_options: Any,
) -> ModelConfig:
    """A :class:`ModelConfig` whose scales, feature counts and lookbacks match a windows dict.

    Parameters
    ----------
    windows : dict of str -> array [N, L_s, F_s]
        As returned by :func:`msa_lib.data.make_windows`.
    scales : sequence of str, optional
        Scales to use, in order (default: every key of ``windows``, in its order).
    n_layers, n_heads, conv_kernel, pool_kernel, patch_len : int or dict of str -> int
        One value for every scale, or a value per scale name (missing names get the default).
    **model_options
        Any other :class:`ModelConfig` field (``d_model``, ``horizons``, ``cross_attention``...).

    Examples
    --------
    >>> import numpy as np
    >>> w = {"1min": np.zeros((2, 60, 5), "float32"), "1h": np.zeros((2, 24, 6), "float32")}
    >>> cfg = config_from_windows(w, d_model=32, horizons=("15min",))
    >>> [(s.name, s.lookback, s.n_features) for s in cfg.scales]
    [('1min', 60, 5), ('1h', 24, 6)]
    """
    names = list(windows) if scales is None else list(scales)

    def pick(option: int | Mapping[str, int], name: str, default: int) -> int:
        return int(option.get(name, default)) if isinstance(option, Mapping) else int(option)

    configs = []
    for name in names:
        if name not in windows:
            raise KeyError(f"scale {name!r} is not in windows (keys: {list(windows)})")
        shape = tuple(np.shape(windows[name]))
        if len(shape) != 3:
            raise ValueError(f"windows[{name!r}] must be [N, lookback, n_features], got shape {shape}")
        configs.append(
            ScaleConfig(
                name=name,
                n_features=int(shape[2]),
                lookback=int(shape[1]),
                n_layers=pick(n_layers, name, 1),
                n_heads=pick(n_heads, name, 4),
                conv_kernel=pick(conv_kernel, name, 0),
                pool_kernel=pick(pool_kernel, name, 1),
                patch_len=pick(patch_len, name, 5),
            )
        )
    return ModelConfig(scales=tuple(configs), **model_options)



# ------------------------------------------------------------------------------------------------
# 2. Positional encodings, indexed by age (0 = most recent bar)
# ------------------------------------------------------------------------------------------------
class LearnablePositionalEncoding(nn.Module):
    """One learned vector per age 0..max_len-1, added to the tokens.

    Ages are counted back from the most recent row, so the newest bar always gets the same vector
    whatever the window length. Costs ``max_len * d_model`` parameters; cannot encode ages it has
    no vector for (a longer window raises a ValueError).
    """

    def __init__(self, d_model: int, max_len: int, name: str = "") -> None:
        super().__init__()
        self.max_len = max_len
        self.name = name
        self.table = nn.Parameter(torch.randn(max_len, d_model) * 0.02)  # [max_len, d], age order

    def encoding(self, length: int) -> Tensor:
        """Encodings of a window of ``length`` rows, oldest first: [length, d]."""
        if length > self.max_len:
            raise ValueError(
                f"scale {self.name!r}: window of {length} bars is longer than the learnable "
                f"positional encoding ({self.max_len} positions); raise ScaleConfig.lookback"
            )
        return self.table[:length].flip(0)  # row i of the window has age length-1-i

    def forward(self, x: Tensor) -> Tensor:  # x: [B, L, d]
        return x + self.encoding(x.shape[1])


class SinusoidalPositionalEncoding(nn.Module):
    """Fixed sine/cosine encodings of the age (Vaswani et al., 2017); no parameters, any length."""

    def __init__(self, d_model: int, base: float = 10_000.0) -> None:
        super().__init__()
        self.d_model = d_model
        self.base = base

    def encoding(self, length: int, device: torch.device | None = None) -> Tensor:
        """Encodings of a window of ``length`` rows, oldest first: [length, d]."""
        age = torch.arange(length - 1, -1, -1, dtype=torch.float32, device=device)  # [L]
        i = torch.arange(0, self.d_model, 2, dtype=torch.float32, device=device)  # [ceil(d/2)]
        angle = age[:, None] / self.base ** (i[None, :] / self.d_model)  # [L, ceil(d/2)]
        pe = torch.zeros(length, self.d_model, device=device)
        pe[:, 0::2] = torch.sin(angle)
        pe[:, 1::2] = torch.cos(angle[:, : self.d_model // 2])
        return pe

    def forward(self, x: Tensor) -> Tensor:  # x: [B, L, d]
        return x + self.encoding(x.shape[1], x.device)


# ------------------------------------------------------------------------------------------------
# 3. Attention and dropout, each written once
# ------------------------------------------------------------------------------------------------
def attend(
    q: Tensor, k: Tensor, v: Tensor, key_mask: Tensor | None = None, need_weights: bool = False
) -> tuple[Tensor, Tensor | None]:
    """Multi-head scaled dot-product attention: ``softmax(Q K^T / sqrt(d_head)) V`` per head.

    Parameters
    ----------
    q : Tensor [B, h, Q, d_head]
        Queries, one row per query position and head.
    k, v : Tensor [B, h, N, d_head]
        Keys and values.
    key_mask : bool Tensor [B, N], optional
        True where a key may be attended to. Masked keys get a weight of exactly 0.
    need_weights : bool, default False
        False: PyTorch's fused ``scaled_dot_product_attention`` kernel, which never stores the
        ``[B, h, Q, N]`` weights. True: the textbook formula, written out, which builds the weights
        and returns them. Both give the same numbers.

    Returns
    -------
    context : Tensor [B, h, Q, d_head]
    weights : Tensor [B, h, Q, N] or None
        Each row sums to 1 (None unless ``need_weights``).
    """
    attn_mask = None if key_mask is None else key_mask[:, None, None, :]  # [B, 1, 1, N]
    if not need_weights:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask), None
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # [B, h, Q, N]
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float("-inf"))
    weights = scores.softmax(dim=-1)  # [B, h, Q, N]
    return weights @ v, weights


#: Dropout on the CPU draws one random 16-bit integer per element, so ``p`` is rounded to a multiple
#: of 1 / 65,536 (0.1 becomes 0.100006).
_MASK_LEVELS = 1 << 16


def dropout(x: Tensor, p: float, training: bool = True) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by ``1 / (1 - p)``.

    The same as :func:`torch.nn.functional.dropout`, with a cheaper mask on the CPU. There PyTorch
    draws the mask with ``bernoulli_``, one Mersenne-Twister draw and a float comparison per element;
    profiled, that took a third of a training step of the default network. Here one 64-bit draw
    gives the mask of four elements (a random 16-bit integer each, compared with a threshold): about
    six times cheaper to draw. The draws come from torch's global generator, so
    :func:`msa_lib.seed_everything` fixes them. On other devices, and under ``torch.compile``
    (which generates its own dropout), :func:`torch.nn.functional.dropout` is used.

    Parameters
    ----------
    x : Tensor, any shape
    p : float in [0, 1)
        Drop probability (on the CPU rounded to a multiple of 1 / 65,536).
    training : bool, default True
        False returns ``x`` unchanged.

    Returns
    -------
    Tensor, the shape of ``x``
    """
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or torch.compiler.is_compiling():
        return F.dropout(x, p, training=True)
    n_drop = round(p * _MASK_LEVELS)  # elements whose 16-bit draw falls below the threshold drop
    n = x.numel()
    bits = torch.empty((n + 3) // 4, dtype=torch.int64).random_(-(2**63), 2**63 - 1)  # 64 bits each
    keep = bits.view(torch.int16)[:n].view(x.shape) >= n_drop - _MASK_LEVELS // 2  # [*x.shape]
    return x * keep * (_MASK_LEVELS / (_MASK_LEVELS - n_drop))


class Dropout(nn.Dropout):
    """:class:`torch.nn.Dropout` with the cheaper CPU mask of :func:`dropout`."""

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)


# ------------------------------------------------------------------------------------------------
# 4. One encoder per scale
# ------------------------------------------------------------------------------------------------
class EncoderLayer(nn.Module):
    """Pre-LayerNorm Transformer layer: ``x + MHA(LN(x))`` then ``x + FF(LN(x))``.

    Written out (rather than ``nn.TransformerEncoderLayer``) so every shape is visible and the
    mask convention (True = visible) is the module's own. Dropout acts on the two residual
    branches; the attention weights are not dropped, so training runs the fused attention kernel.
    """

    def __init__(self, d_model: int, n_heads: int, ff_mult: int = 4, dropout: float = 0.1) -> None:
        super().__init__()
        _check_heads(d_model, n_heads, "EncoderLayer")
        self.n_heads = n_heads
        self.norm1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(
            nn.Linear(d_model, ff_mult * d_model),
            nn.GELU(),
            nn.Linear(ff_mult * d_model, d_model),
        )
        self.dropout = Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor | None = None, explicit: bool = False) -> Tensor:
        """Apply the layer.

        Parameters
        ----------
        x : Tensor [B, L, d]
        mask : bool Tensor [B, L], optional
            True where a bar may be attended to.
        explicit : bool, default False
            Compute the attention with the explicit formula and its full [B, h, L, L] weight
            matrix (:func:`attend` with ``need_weights=True``) instead of the fused kernel: same
            numbers; used to measure the memory the textbook formula needs.
        """
        B, L, d = x.shape
        h = self.n_heads
        q, k, v = self.qkv(self.norm1(x)).split(d, dim=-1)  # 3 x [B, L, d]
        q, k, v = (t.view(B, L, h, d // h).transpose(1, 2) for t in (q, k, v))  # [B, h, L, d/h]
        ctx, _ = attend(q, k, v, mask, need_weights=explicit)  # [B, h, L, d/h]
        ctx = ctx.transpose(1, 2).reshape(B, L, d)  # [B, L, d]
        x = x + self.dropout(self.out(ctx))
        return x + self.dropout(self.ff(self.norm2(x)))


class ScaleEncoder(nn.Module):
    """Encoder for one time scale: [B, L, F] bars -> [B, L, d] tokens.

    Input projection -> optional causal convolution -> positional encoding -> ``n_layers``
    pre-LayerNorm Transformer layers -> final LayerNorm. Each scale gets its own encoder because
    its bars have their own features, noise level and meaning of "one step".

    Parameters
    ----------
    scale : ScaleConfig
    d_model : int
    pos_encoding : {"learnable", "sinusoidal", "none"}
    dropout : float
    ff_mult : int
    """

    def __init__(
        self,
        scale: ScaleConfig,
        d_model: int = 32,
        pos_encoding: str = "learnable",
        dropout: float = 0.1,
        ff_mult: int = 4,
    ) -> None:
        super().__init__()
        _check_pos_encoding(pos_encoding, f"scale {scale.name!r}")
        self.scale = scale
        self.input_proj = nn.Linear(scale.n_features, d_model)
        self.conv = (
            nn.Conv1d(d_model, d_model, scale.conv_kernel) if scale.conv_kernel > 0 else None
        )
        if pos_encoding == "learnable":
            self.pos: nn.Module = LearnablePositionalEncoding(d_model, scale.lookback, scale.name)
        elif pos_encoding == "sinusoidal":
            self.pos = SinusoidalPositionalEncoding(d_model)
        else:
            self.pos = nn.Identity()
        self.layers = nn.ModuleList(
            EncoderLayer(d_model, scale.n_heads, ff_mult, dropout) for _ in range(scale.n_layers)
        )
        self.norm = nn.LayerNorm(d_model)

    def forward(
        self,
        x: Tensor,
        mask: Tensor | None = None,
        explicit: bool = False,
        checkpoint_layers: bool = False,
    ) -> Tensor:
        """Encode one scale.

        Parameters
        ----------
        x : Tensor [B, L, n_features]
            Windows of this scale, oldest row first, most recent last.
        mask : bool Tensor [B, L], optional
            True = a real bar. Hidden rows are zeroed before the convolution and never attended to.
        explicit : bool, default False
            Passed to :meth:`EncoderLayer.forward`.
        checkpoint_layers : bool, default False
            Gradient checkpointing: keep only each layer's input for the backward pass and run the
            layer again there (:func:`torch.utils.checkpoint.checkpoint`, which replays the same
            dropout masks). Same outputs and gradients, less memory, about one more forward of the
            layers in time.

        Returns
        -------
        Tensor [B, L, d_model]
        """
        h = self.input_proj(x)  # [B, L, d]
        if mask is not None:
            h = h * mask[..., None]
        if self.conv is not None:
            k = self.conv.kernel_size[0]
            # Left padding only: the output at row i sees rows i-k+1..i (no peeking at newer rows).
            c = self.conv(F.pad(h.transpose(1, 2), (k - 1, 0)))  # [B, d, L]
            h = h + F.gelu(c.transpose(1, 2))  # [B, L, d]
        h = self.pos(h)
        for layer in self.layers:
            if checkpoint_layers:
                h = torch.utils.checkpoint.checkpoint(layer, h, mask, explicit, use_reentrant=False)
            else:
                h = layer(h, mask, explicit=explicit)
        return self.norm(h)  # [B, L, d]


# ------------------------------------------------------------------------------------------------
# 5. Cross-scale attention
# ------------------------------------------------------------------------------------------------
def _key_mask(tokens: Sequence[Tensor], masks: Sequence[Tensor | None] | None) -> Tensor | None:
    """Concatenate per-scale masks into one [B, N] key mask (None if nothing is masked)."""
    if masks is None or all(m is None for m in masks):
        return None
    if len(masks) != len(tokens):
        raise ValueError(f"got {len(masks)} masks for {len(tokens)} scales")
    parts = []
    for s, (t, m) in enumerate(zip(tokens, masks, strict=True)):
        if m is None:
            m = torch.ones(t.shape[:2], dtype=torch.bool, device=t.device)
        elif m.shape != t.shape[:2] or m.dtype != torch.bool:
            raise ValueError(
                f"scale #{s}: mask must be bool {tuple(t.shape[:2])}, got {m.dtype} {tuple(m.shape)}"
            )
        parts.append(m)
    return torch.cat(parts, dim=1)


class CrossScaleAttention(nn.Module):
    """The most recent token of each scale attends to every token of every scale.

    Tokens of all scales are concatenated into one key/value sequence of length
    ``N = sum_s L_s``; a learned scale embedding is added first, so keys know their scale. The
    ``S`` query tokens (the last token of each scale) are split into ``n_heads`` heads and attend to
    all ``N`` keys in one batched call (:func:`attend`), with a [B, N] mask for padding or missing
    history.

    Parameters
    ----------
    d_model : int
    n_heads : int
        Must divide ``d_model``.
    n_scales : int
        Number of scales (size of the scale embedding table).
    """

    def __init__(self, d_model: int, n_heads: int, n_scales: int) -> None:
        super().__init__()
        _check_heads(d_model, n_heads, "CrossScaleAttention")
        self.d_model, self.n_heads, self.n_scales = d_model, n_heads, n_scales
        self.scale_embedding = nn.Parameter(torch.randn(n_scales, d_model) * 0.02)  # [S, d]
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)

    def _check(self, tokens: Sequence[Tensor]) -> None:
        """Shapes only (free: no tensor is read)."""
        if len(tokens) != self.n_scales:
            raise ValueError(f"expected {self.n_scales} scales of tokens, got {len(tokens)}")
        B = tokens[0].shape[0]
        for s, t in enumerate(tokens):
            if t.ndim != 3 or t.shape[0] != B or t.shape[2] != self.d_model or t.shape[1] < 1:
                raise ValueError(
                    f"scale #{s}: tokens must be [{B}, length >= 1, {self.d_model}], got {tuple(t.shape)}"
                )

    def forward(
        self,
        tokens: Sequence[Tensor],
        masks: Sequence[Tensor | None] | None = None,
        need_weights: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """Attend from each scale's newest token to all tokens of all scales.

        Parameters
        ----------
        tokens : sequence of Tensor [B, L_s, d]
            Encoded tokens of each scale, most recent last.
        masks : sequence of (bool Tensor [B, L_s] or None), optional
            True = key may be attended to.
        need_weights : bool, default False
            Also return the attention weights (see :func:`attend`: the explicit formula instead of
            the fused kernel, same numbers).

        Returns
        -------
        fused : Tensor [B, S, d]
            Row s: what the query of scale s gathered from all scales (after the output projection).
        weights : Tensor [B, n_heads, S, N] or None
            Softmax weights of each head and query scale over all N keys (scales in order, each
            oldest to newest); every row sums to 1 and masked keys get exactly 0.
        """
        self._check(tokens)
        B, d, h = tokens[0].shape[0], self.d_model, self.n_heads
        S = len(tokens)
        key_mask = _key_mask(tokens, masks)  # [B, N] or None
        x = torch.cat([t + self.scale_embedding[s] for s, t in enumerate(tokens)], dim=1)  # [B,N,d]
        last = torch.stack(
            [t[:, -1] + self.scale_embedding[s] for s, t in enumerate(tokens)], dim=1
        )  # [B, S, d]
        N = x.shape[1]
        q = self.q_proj(last).view(B, S, h, d // h).transpose(1, 2)  # [B, h, S, d/h]
        k = self.k_proj(x).view(B, N, h, d // h).transpose(1, 2)  # [B, h, N, d/h]
        v = self.v_proj(x).view(B, N, h, d // h).transpose(1, 2)  # [B, h, N, d/h]
        ctx, weights = attend(q, k, v, key_mask, need_weights)  # [B, h, S, d/h], [B, h, S, N]
        ctx = ctx.transpose(1, 2).reshape(B, S, d)  # [B, S, d]: heads side by side again
        return self.out_proj(ctx), weights


def cross_scale_attention_loop(
    attention: CrossScaleAttention,
    tokens: Sequence[Tensor],
    masks: Sequence[Tensor | None] | None = None,
) -> tuple[Tensor, Tensor]:
    """Readable (slow) cross-scale attention: one query scale, one head, one key scale at a time.

    Uses the projection weights of ``attention`` and returns the same numbers as
    ``attention(tokens, masks, need_weights=True)``. Unlike a per-pair softmax, the scores of a
    query against the keys of *all* scales are gathered first and normalised together, so the
    weights over all keys sum to one.

    Parameters
    ----------
    attention : CrossScaleAttention
    tokens : sequence of Tensor [B, L_s, d]
    masks : sequence of (bool Tensor [B, L_s] or None), optional

    Returns
    -------
    fused : Tensor [B, S, d]
    weights : Tensor [B, n_heads, S, N]
    """
    attention._check(tokens)
    S, h = len(tokens), attention.n_heads
    dh = attention.d_model // h
    if masks is None:
        masks = [None] * S
    if len(masks) != S:
        raise ValueError(f"got {len(masks)} masks for {S} scales")
    # Keys and values of every scale, projected once: K[j], V[j] are [B, L_j, d].
    keys, values = [], []
    for j, t in enumerate(tokens):
        t = t + attention.scale_embedding[j]
        keys.append(attention.k_proj(t))
        values.append(attention.v_proj(t))

    fused, weights = [], []
    for i, t in enumerate(tokens):  # one query scale at a time
        query = attention.q_proj(t[:, -1] + attention.scale_embedding[i])  # [B, d]
        head_outputs, head_weights = [], []
        for head in range(h):
            cols = slice(head * dh, (head + 1) * dh)  # this head's slice of the features
            q = query[:, cols]  # [B, dh]
            scores = []
            for j in range(S):  # scores against every key scale ...
                s_ij = torch.einsum("bd,bld->bl", q, keys[j][:, :, cols]) / math.sqrt(dh)  # [B, L_j]
                if masks[j] is not None:
                    s_ij = s_ij.masked_fill(~masks[j], float("-inf"))
                scores.append(s_ij)
            # ... then ONE softmax over the keys of all scales together.
            w = torch.cat(scores, dim=1).softmax(dim=1)  # [B, N]
            pieces = w.split([k.shape[1] for k in keys], dim=1)  # back into scales
            ctx = sum(
                torch.einsum("bl,bld->bd", w_j, values[j][:, :, cols]) for j, w_j in enumerate(pieces)
            )  # [B, dh]
            head_outputs.append(ctx)
            head_weights.append(w)
        fused.append(attention.out_proj(torch.cat(head_outputs, dim=1)))  # [B, d]
        weights.append(torch.stack(head_weights, dim=1))  # [B, h, N]
    return torch.stack(fused, dim=1), torch.stack(weights, dim=2)  # [B, S, d], [B, h, S, N]


# ------------------------------------------------------------------------------------------------
# 6. Fusion: learnable scale weights x per-sample gates
# ------------------------------------------------------------------------------------------------
class CrossScaleFusion(nn.Module):
    """Combine S scale representations into one vector.

    ``importance[b, s] = softmax(w)[s] * gate[b, s]`` where ``w`` is a learned vector (one number
    per scale, shared by all samples) and ``gate = sigmoid(MLP_s(h[b, s]))`` depends on the sample.
    The fused vector is ``MLP(sum_s importance[b, s] * h[b, s])``: a weighted sum, so the weights
    say how much of each scale enters (a concatenation followed by a linear layer, as in the
    chapter this course follows, could undo any weighting and make the weights meaningless).

    Parameters
    ----------
    d_model : int
    n_scales : int
    gates : bool, default True
        False fixes every gate at 1 (ablation).
    dropout : float, default 0.1
    """

    def __init__(self, d_model: int, n_scales: int, gates: bool = True, dropout: float = 0.1) -> None:
        super().__init__()
        self.use_gates = gates
        self.scale_logits = nn.Parameter(torch.zeros(n_scales))  # softmax -> uniform at start
        r = max(1, d_model // 4)
        if gates:
            # One small MLP d -> r -> 1 per scale, stored as stacked weights so all scales run at once.
            self.gate_w1 = nn.Parameter(torch.randn(n_scales, d_model, r) / math.sqrt(d_model))
            self.gate_b1 = nn.Parameter(torch.zeros(n_scales, r))
            self.gate_w2 = nn.Parameter(torch.randn(n_scales, r) / math.sqrt(r))
            self.gate_b2 = nn.Parameter(torch.zeros(n_scales))
        self.mlp = nn.Sequential(
            nn.LayerNorm(d_model),
            nn.Linear(d_model, 2 * d_model),
            nn.GELU(),
            Dropout(dropout),
            nn.Linear(2 * d_model, d_model),
        )

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Fuse.

        Parameters
        ----------
        h : Tensor [B, S, d]

        Returns
        -------
        fused : Tensor [B, d]
        weights : Tensor [S]  (softmax, sums to 1)
        gates : Tensor [B, S]  (in (0, 1); all ones when gates are off)
        """
        B, S, _ = h.shape
        if S != self.scale_logits.shape[0]:
            raise ValueError(f"expected {self.scale_logits.shape[0]} scales, got {S}")
        weights = self.scale_logits.softmax(dim=0)  # [S]
        if self.use_gates:
            hidden = F.relu(torch.einsum("bsd,sdr->bsr", h, self.gate_w1) + self.gate_b1)  # [B,S,r]
            gates = torch.sigmoid((hidden * self.gate_w2).sum(-1) + self.gate_b2)  # [B, S]
        else:
            gates = h.new_ones(B, S)
        importance = weights * gates  # [B, S]
        mixed = (importance[..., None] * h).sum(dim=1)  # [B, d]
        return self.mlp(mixed), weights, gates


# ------------------------------------------------------------------------------------------------
# 7. Hierarchical aggregation over an average-pooled pyramid
# ------------------------------------------------------------------------------------------------
def pool_recent_aligned(
    x: Tensor, pool_size: int, mask: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Average-pool a sequence in groups of ``pool_size`` rows, aligned to the most recent row.

    Works for every length: the newest ``pool_size`` rows form the last group, and only the
    OLDEST group may be shorter (it is averaged over the rows it has, never padded with zeros
    that would count). Hidden rows (mask False) are left out of the averages.

    Parameters
    ----------
    x : Tensor [B, L, d]
    pool_size : int >= 1
    mask : bool Tensor [B, L], optional

    Returns
    -------
    pooled : Tensor [B, ceil(L / pool_size), d]
    pooled_mask : bool Tensor [B, ceil(L / pool_size)]
        True where a group holds at least one visible row.
    """
    if pool_size < 1:
        raise ValueError(f"pool_size must be >= 1, got {pool_size}")
    B, L, d = x.shape
    if mask is None:
        mask = torch.ones(B, L, dtype=torch.bool, device=x.device)
    n_groups = -(-L // pool_size)  # ceil(L / pool_size)
    pad = n_groups * pool_size - L  # rows missing from the oldest group
    w = F.pad(mask.to(x.dtype), (pad, 0))  # [B, G*p]: 1 = counts, 0 = padding or hidden
    xs = F.pad(x, (0, 0, pad, 0)) * w[..., None]  # [B, G*p, d]
    sums = xs.reshape(B, n_groups, pool_size, d).sum(2)  # [B, G, d]  (divisible after padding)
    counts = w.reshape(B, n_groups, pool_size).sum(2)  # [B, G]
    pooled = sums / counts.clamp(min=1.0)[..., None]
    return pooled, counts > 0


class HierarchicalAggregation(nn.Module):
    """Attention over a pyramid of ever coarser averages of one sequence.

    Level 0 is the sequence itself; level k+1 averages level k in groups of ``pool_size`` (see
    :func:`pool_recent_aligned`, so any length works). At each level the most recent token
    attends to all tokens of that level; the level summaries are concatenated and projected.

    Parameters
    ----------
    d_model : int
    n_levels : int, default 3
    pool_size : int, default 2
    n_heads : int, default 4
    """

    def __init__(self, d_model: int, n_levels: int = 3, pool_size: int = 2, n_heads: int = 4) -> None:
        super().__init__()
        if n_levels < 1 or pool_size < 2:
            raise ValueError(f"need n_levels >= 1 and pool_size >= 2, got {n_levels}, {pool_size}")
        self.n_levels, self.pool_size = n_levels, pool_size
        self.level_attention = nn.ModuleList(
            CrossScaleAttention(d_model, n_heads, n_scales=1) for _ in range(n_levels)
        )
        self.level_fusion = nn.Sequential(nn.Linear(n_levels * d_model, d_model), nn.LayerNorm(d_model))

    def pyramid(self, x: Tensor, mask: Tensor | None = None) -> list[tuple[Tensor, Tensor | None]]:
        """The pyramid's levels as (tokens [B, L_k, d], mask [B, L_k] or None), finest first."""
        levels = [(x, mask)]
        for _ in range(self.n_levels - 1):
            x, mask = pool_recent_aligned(x, self.pool_size, mask)
            levels.append((x, mask))
        return levels

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Summarise [B, L, d] (any L >= 1) into [B, d]."""
        summaries = []
        for (tokens, m), attention in zip(self.pyramid(x, mask), self.level_attention, strict=True):
            out, _ = attention([tokens], None if m is None else [m])  # [B, 1, d]
            summaries.append(out[:, 0])
        return self.level_fusion(torch.cat(summaries, dim=-1))  # [B, d]


# ------------------------------------------------------------------------------------------------
# 8. The network: inputs, heads, the whole model
# ------------------------------------------------------------------------------------------------
def _check_visible(mask: Tensor, where: str) -> None:
    """Every sample must keep its most recent bar visible (it is the query of later stages)."""
    hidden_last = ~mask[:, -1]
    if bool(hidden_last.any()):
        first = int(hidden_last.nonzero()[0, 0])
        raise ValueError(
            f"{where}: the mask hides the most recent bar of sample {first}; the last row of a "
            "window must be a real bar"
        )


def gather_inputs(
    config: ModelConfig,
    windows: Mapping[str, Any],
    masks: Mapping[str, Any] | None = None,
    device: torch.device | str = "cpu",
    names: Sequence[str] | None = None,
) -> tuple[list[Tensor], list[Tensor | None]]:
    """The windows (and masks) of the config's scales, as float32 / bool tensors on ``device``.

    Checks what costs nothing: every scale is there, with ``[batch, length, n_features]`` windows of
    one batch size. Values are not scanned (``WindowDataset`` rejects NaN and inf where data
    enters). Masks, which enter here, are checked here: bool, the window's shape, the most recent
    bar visible. Extra keys in ``windows`` are ignored (a model over a subset of scales takes the
    full dict). Nothing passed in is modified.

    Parameters
    ----------
    config : ModelConfig
    windows : dict of str -> array or Tensor [B, L_s, F_s]
    masks : dict of str -> bool [B, L_s], optional
    device : torch.device or str
    names : sequence of str, optional
        The scales to gather (default: all of the config's, in its order).

    Returns
    -------
    xs : list of Tensor [B, L_s, F_s]
    ms : list of (bool Tensor [B, L_s] or None)
    """
    if not isinstance(windows, Mapping):
        raise TypeError(f"windows must be a dict of scale name -> [B, L, F], got {type(windows).__name__}")
    names = config.scale_names if names is None else list(names)
    xs: list[Tensor] = []
    ms: list[Tensor | None] = []
    for name in names:
        if name not in windows:
            raise KeyError(f"windows has no scale {name!r} (keys: {list(windows)})")
        sc = config.scale(name)
        x = torch.as_tensor(windows[name], dtype=torch.float32, device=device)
        if x.ndim != 3 or x.shape[2] != sc.n_features or x.shape[1] < 1:
            raise ValueError(
                f"windows[{name!r}]: expected [batch, length <= {sc.lookback}, {sc.n_features}], "
                f"got shape {tuple(x.shape)}"
            )
        if xs and x.shape[0] != xs[0].shape[0]:
            raise ValueError(f"windows[{name!r}] has batch {x.shape[0]}, other scales have {xs[0].shape[0]}")
        m = None
        if masks is not None and masks.get(name) is not None:
            m = torch.as_tensor(masks[name], device=device)
            if m.dtype != torch.bool or m.shape != x.shape[:2]:
                raise ValueError(
                    f"masks[{name!r}] must be bool {tuple(x.shape[:2])}, got {m.dtype} {tuple(m.shape)}"
                )
            _check_visible(m, f"masks[{name!r}]")
        xs.append(x)
        ms.append(m)
    return xs, ms


class ForecastHeads(nn.Module):
    """The outputs every model of the course shares: per horizon, a return and a direction logit.

    Parameters
    ----------
    d_in : int
        Width of the representation the heads read.
    n_horizons : int
    """

    def __init__(self, d_in: int, n_horizons: int) -> None:
        super().__init__()
        self.returns = nn.Linear(d_in, n_horizons)  # row k = the regression head of horizon k
        self.direction = nn.Linear(d_in, n_horizons)  # row k = logit of "return over horizon k > 0"

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """``x`` [B, d_in] -> ``{"returns": [B, H], "direction_logits": [B, H]}``."""
        return {"returns": self.returns(x), "direction_logits": self.direction(x)}


class MultiScaleAttentionNet(nn.Module):
    """Encoders per scale -> cross-scale attention -> fusion -> one output per horizon.

    ``forward`` is two public steps: :meth:`encode_scale` (one scale's encoder, independent of the
    other scales) for every scale, then :meth:`combine` (cross-scale attention, pyramid, fusion,
    heads). A live predictor (:class:`msa_lib.streaming.StreamingPredictor`) calls them
    separately, re-encoding only the scales whose bar has just closed.

    Parameters
    ----------
    config : ModelConfig

    Attributes
    ----------
    gradient_checkpointing : bool, default False
        When True, training steps (``training`` mode with gradients enabled) recompute each encoder
        layer during the backward pass instead of keeping its activations: less memory for long
        lookbacks, the same loss and gradients, a little more time. Not part of the config (it
        changes how a step is computed, not the network): set it with
        :meth:`enable_gradient_checkpointing`.

    Examples
    --------
    >>> import torch
    >>> cfg = ModelConfig(scales=(ScaleConfig("1min", 5, 60), ScaleConfig("1h", 6, 24)))
    >>> net = MultiScaleAttentionNet(cfg).eval()
    >>> out = net({"1min": torch.randn(8, 60, 5), "1h": torch.randn(8, 24, 6)})
    >>> tuple(out["returns"].shape), tuple(out["direction_logits"].shape)
    ((8, 3), (8, 3))
    """

    kind = "multiscale"

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.gradient_checkpointing = False
        d, S = config.d_model, len(config.scales)
        self.encoders = nn.ModuleDict(
            {
                s.name: ScaleEncoder(s, d, config.pos_encoding, config.dropout, config.ff_mult)
                for s in config.scales
            }
        )
        if config.cross_attention:
            self.cross = CrossScaleAttention(d, config.n_cross_heads, S)
            self.cross_norm = nn.LayerNorm(d)
        if config.pyramid_levels > 0:
            self.pyramids = nn.ModuleDict(
                {
                    s.name: HierarchicalAggregation(
                        d, config.pyramid_levels, config.pool_size, config.n_cross_heads
                    )
                    for s in config.scales
                }
            )
        self.fusion = CrossScaleFusion(d, S, gates=config.gates, dropout=config.dropout)
        self.heads = ForecastHeads(d, len(config.horizons))

    def enable_gradient_checkpointing(self, enabled: bool = True) -> MultiScaleAttentionNet:
        """Turn gradient checkpointing of the encoder layers on (or off); returns the network.

        See :attr:`gradient_checkpointing`. Only training steps are affected: in ``eval`` mode or
        under ``torch.no_grad()`` there is no backward pass to save memory for.
        """
        if not isinstance(enabled, bool):
            raise TypeError(f"enabled must be True or False, got {enabled!r}")
        self.gradient_checkpointing = enabled
        return self

    def encode_scale(self, name: str, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """One scale's encoder: windows of scale ``name`` -> its tokens.

        The tokens of a scale depend on that scale's window only, so they can be computed once and
        reused while the scale has no new bar.

        Parameters
        ----------
        name : str
            A scale of the config.
        x : Tensor [B, L, F_name]
            Float32 windows of that scale on the network's device (see :func:`gather_inputs`).
        mask : bool Tensor [B, L], optional
            True = real bar.

        Returns
        -------
        Tensor [B, L, d]
        """
        if name not in self.encoders:
            raise KeyError(f"no scale {name!r} in this network; scales are {self.config.scale_names}")
        checkpoint = self.gradient_checkpointing and self.training and torch.is_grad_enabled()
        return self.encoders[name](x, mask, checkpoint_layers=checkpoint)

    def combine(
        self,
        tokens: Sequence[Tensor] | Mapping[str, Tensor],
        masks: Sequence[Tensor | None] | Mapping[str, Tensor | None] | None = None,
        return_details: bool = False,
    ) -> dict[str, Tensor]:
        """Cross-scale attention, pyramid, fusion and heads over the tokens of every scale.

        Parameters
        ----------
        tokens : list of Tensor [B, L_s, d] in config order, or dict of scale name -> Tensor
            The outputs of :meth:`encode_scale` for every scale.
        masks : list or dict of (bool Tensor [B, L_s] or None), optional
            The masks the tokens were encoded with (True = real bar).
        return_details : bool, default False
            See :meth:`forward`.

        Returns
        -------
        dict
            As :meth:`forward`.
        """
        cfg = self.config
        names = cfg.scale_names
        if isinstance(tokens, Mapping):
            missing = [n for n in names if n not in tokens]
            if missing:
                raise KeyError(f"tokens lack scale(s) {missing} (keys: {list(tokens)})")
            tokens = [tokens[n] for n in names]
        elif len(tokens) != len(names):
            raise ValueError(f"got tokens of {len(tokens)} scales; the network has {names}")
        if masks is None:
            ms: list[Tensor | None] = [None] * len(names)
        elif isinstance(masks, Mapping):
            ms = [masks.get(n) for n in names]
        else:
            ms = list(masks)
        last = torch.stack([t[:, -1] for t in tokens], dim=1)  # [B, S, d]
        attention = None
        if cfg.cross_attention:
            gathered, attention = self.cross(tokens, ms, need_weights=return_details)
            h = self.cross_norm(last + gathered)  # [B, S, d]
        else:
            h = last
        if cfg.pyramid_levels > 0:
            summary = [self.pyramids[s.name](t, m) for s, t, m in zip(cfg.scales, tokens, ms, strict=True)]
            h = h + torch.stack(summary, dim=1)
        fused, weights, gates = self.fusion(h)  # [B, d], [S], [B, S]
        out = self.heads(fused)
        if return_details:
            out.update(
                attention=attention,
                scale_weights=weights,
                gates=gates,
                scale_tokens=h,
                fused=fused,
                key_scale=torch.cat(
                    [
                        torch.full((t.shape[1],), s, dtype=torch.long, device=t.device)
                        for s, t in enumerate(tokens)
                    ]
                ),
            )
        return out

    def forward(
        self,
        windows: Mapping[str, Any],
        masks: Mapping[str, Any] | None = None,
        return_details: bool = False,
    ) -> dict[str, Tensor]:
        """Forecast from a dict of windows: :meth:`encode_scale` for every scale, then :meth:`combine`.

        Parameters
        ----------
        windows : dict of str -> array or Tensor [B, L_s, F_s]
            One entry per scale of the config (extra keys are ignored); most recent row last.
        masks : dict of str -> bool [B, L_s], optional
            True = real bar; False = padding / missing history (never attended to).
        return_details : bool, default False
            Also return the internals used for interpretation.

        Returns
        -------
        dict
            ``"returns"`` [B, H], ``"direction_logits"`` [B, H]; with ``return_details`` also
            ``"attention"`` [B, n_cross_heads, S, N] (None when cross_attention is off),
            ``"scale_weights"`` [S], ``"gates"`` [B, S], ``"scale_tokens"`` [B, S, d] (each scale's
            representation entering the fusion), ``"fused"`` [B, d] and ``"key_scale"`` [N] (index
            of the scale of each key position).
        """
        cfg = self.config
        xs, ms = gather_inputs(cfg, windows, masks, next(self.parameters()).device)
        tokens = [self.encode_scale(s.name, x, m) for s, x, m in zip(cfg.scales, xs, ms, strict=True)]
        return self.combine(tokens, ms, return_details=return_details)


# ------------------------------------------------------------------------------------------------
# 9. Factory and parameter count
# ------------------------------------------------------------------------------------------------
#: Every kind of model :func:`build_model` builds, and where its class lives ("module:Class").
#: The baselines live in :mod:`msa_lib.baselines`, which imports this module; naming them here
#: (and importing them when one is built) keeps the two modules free of an import cycle.
MODEL_KINDS: dict[str, str] = {
    "multiscale": "msa_lib.model:MultiScaleAttentionNet",
    "lstm": "msa_lib.baselines:LSTMBaseline",
    "single_scale": "msa_lib.baselines:SingleScaleTransformer",
    "linear": "msa_lib.baselines:LinearBaseline",
    "nhits": "msa_lib.baselines:NHiTSStyle",
    "patchtst": "msa_lib.baselines:PatchTSTStyle",
}


def model_class(kind: str) -> type[nn.Module]:
    """The class of a model kind (a key of :data:`MODEL_KINDS`: ``"multiscale"``, ``"lstm"``...)."""
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind!r}; choose one of {sorted(MODEL_KINDS)}")
    module, name = MODEL_KINDS[kind].split(":")
    return getattr(importlib.import_module(module), name)


def build_model(kind: str, config: ModelConfig | Mapping[str, Any]) -> nn.Module:
    """Build a model by kind: ``"multiscale"``, ``"lstm"``, ``"single_scale"``, ``"linear"``,
    ``"nhits"`` or ``"patchtst"`` (the keys of :data:`MODEL_KINDS`).

    Examples
    --------
    >>> cfg = ModelConfig(scales=(ScaleConfig("1min", 5, 60), ScaleConfig("1h", 6, 24)))
    >>> type(build_model("lstm", cfg)).__module__
    'msa_lib.baselines'
    """
    cls = model_class(kind)
    if not isinstance(config, ModelConfig):
        config = ModelConfig.from_dict(config)
    return cls(config)


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters of a module."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
