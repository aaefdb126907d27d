"""cross_scale_attention: one batched attention call against the loop over scale pairs and heads.

Ours is :class:`msa_lib.model.CrossScaleAttention`: the newest token of every scale queries the
tokens of all scales in one ``scaled_dot_product_attention`` call. The reference is
:func:`msa_lib.model.cross_scale_attention_loop`, the readable version the model chapter teaches
(and which the chapter's ``MultiResolutionAttention`` listing is a flawed form of): a Python loop
over query scales, heads and key scales, with one softmax per query and head over the keys of all
scales. It lives in ``msa_lib`` because the book shows it; it uses the same weights, so both must
give the same outputs and the same gradients. Timed: forward plus backward.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from benchmarks.common import Result, fmt_seconds, median_seconds

NAME = "cross_scale_attention"
TARGET = 4.0
DESCRIPTION = (
    "CrossScaleAttention forward+backward, batch 64, d_model 64, 4 heads, scale lengths "
    "60/48/24/30, against the per-scale-pair, per-head Python loop"
)

BATCH, D_MODEL, N_HEADS, LENGTHS = 64, 64, 4, (60, 48, 24, 30)
RTOL, ATOL = 1e-4, 1e-5


def make_inputs(
    batch: int = BATCH,
    d_model: int = D_MODEL,
    n_heads: int = N_HEADS,
    lengths: Sequence[int] = LENGTHS,
    seed: int = 0,
) -> tuple[torch.nn.Module, list[Tensor], Tensor]:
    """A seeded attention module, tokens per scale ``[B, L_s, d]`` and an output weighting ``[B, S, d]``.

    The weighting is the gradient fed back into the output (that of the loss
    ``sum(output * weighting)``), so that the gradients are not trivially uniform.
    """
    from msa_lib.model import CrossScaleAttention

    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    attention = CrossScaleAttention(d_model, n_heads, len(lengths)).eval()
    with torch.no_grad():  # the embedding starts near 0; give it weight so its gradient matters
        attention.scale_embedding.normal_(0.0, 0.5, generator=gen)
    tokens = [torch.randn(batch, L, d_model, generator=gen) for L in lengths]
    weighting = torch.randn(batch, len(lengths), d_model, generator=gen)
    return attention, tokens, weighting


def _forward_backward(
    fn: Callable[[Sequence[Tensor]], Tensor],
    attention: torch.nn.Module,
    tokens: Sequence[Tensor],
    weighting: Tensor,
) -> tuple[Tensor, list[Tensor], dict[str, Tensor]]:
    """One forward and backward pass; returns the output and the gradients (tokens, parameters)."""
    leaves = [t.detach().clone().requires_grad_(True) for t in tokens]
    attention.zero_grad(set_to_none=True)
    out = fn(leaves)  # [B, S, d]
    out.backward(weighting)  # the gradient of sum(out * weighting)
    grads = {name: p.grad.detach().clone() for name, p in attention.named_parameters()}
    return out.detach(), [t.grad for t in leaves], grads


def ours(attention: torch.nn.Module) -> Callable[[Sequence[Tensor]], Tensor]:
    """The batched module as a function of the tokens."""
    return lambda tokens: attention(tokens)[0]


def reference(attention: torch.nn.Module) -> Callable[[Sequence[Tensor]], Tensor]:
    """The loop, with the same weights, as a function of the tokens."""
    from msa_lib.model import cross_scale_attention_loop

    return lambda tokens: cross_scale_attention_loop(attention, tokens)[0]


def check(
    attention: torch.nn.Module,
    tokens: Sequence[Tensor],
    weighting: Tensor,
    reference_fn: Callable[[torch.nn.Module], Callable[[Sequence[Tensor]], Tensor]] | None = None,
) -> None:
    """Assert equal outputs and equal gradients (tokens and every parameter), to ``RTOL``/``ATOL``.

    ``reference_fn(attention)`` gives the function compared with the module (default:
    :func:`reference`, the loop).

    Raises
    ------
    AssertionError
        Naming the output or the tensor whose gradient differs, with the largest difference.
    """
    got = _forward_backward(ours(attention), attention, tokens, weighting)
    want = _forward_backward((reference_fn or reference)(attention), attention, tokens, weighting)
    pairs = [("output", got[0], want[0])]
    pairs += [(f"gradient of scale #{s} tokens", a, b) for s, (a, b) in enumerate(zip(got[1], want[1], strict=True))]
    pairs += [(f"gradient of {name}", got[2][name], want[2][name]) for name in want[2]]
    for what, a, b in pairs:
        if not torch.allclose(a, b, rtol=RTOL, atol=ATOL):
            raise AssertionError(
                f"{what} differs between CrossScaleAttention and the loop: max |diff| "
                f"{(a - b).abs().max().item():.3g} (rtol {RTOL}, atol {ATOL})"
            )


def run(quick: bool = False) -> Result:
    """Check outputs and gradients on the benchmark's inputs, then time forward+backward."""
    repeats, warmup = (10, 2) if quick else (50, 5)
    attention, tokens, weighting = make_inputs()
    check(attention, tokens, weighting)

    timings = {}
    for label, fn in (("ours", ours(attention)), ("reference", reference(attention))):
        leaves = [t.detach().clone().requires_grad_(True) for t in tokens]

        def step(fn: Callable[[Sequence[Tensor]], Tensor] = fn, leaves: list[Tensor] = leaves) -> None:
            attention.zero_grad(set_to_none=True)
            for t in leaves:
                t.grad = None
            fn(leaves).backward(weighting)

        timings[label] = median_seconds(step, repeats, warmup)
    (ours_s, ours_runs), (ref_s, ref_runs) = timings["ours"], timings["reference"]
    details = (
        f"ours {fmt_seconds(ours_s)} vs loop {fmt_seconds(ref_s)} per forward+backward, medians of "
        f"{repeats} runs; batch {BATCH}, d_model {D_MODEL}, {N_HEADS} heads, lengths "
        f"{'/'.join(map(str, LENGTHS))}; {torch.get_num_threads()} torch threads"
    )
    return Result(
        name=NAME,
        ratio=ref_s / ours_s,
        target=TARGET,
        agreement=f"outputs and all gradients allclose (rtol {RTOL:g}, atol {ATOL:g}, float32)",
        details=details,
        metrics={
            "ours_seconds": ours_s,
            "reference_seconds": ref_s,
            "ours_runs": ours_runs,
            "reference_runs": ref_runs,
            "repeats": repeats,
            "torch_threads": torch.get_num_threads(),
        },
    )
