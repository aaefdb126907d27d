"""Speed and memory benchmarks: ``msa_lib`` against the straightforward implementations.

Run them all with ``make bench`` (``python -m benchmarks``); ``--only NAME`` runs one,
``--quick`` runs small versions (a smoke test: its numbers are not the published ones). Each
benchmark first checks that both implementations give the same result on the same inputs, then
times both in the same process (medians of repeated runs) and prints one line::

    NAME: ratio=R target>=T PASS|FAIL (details)

The latest full results are written to ``benchmarks/results.json``, which the book's Performance
appendix renders. The unit tests (``tests/test_benchmarks.py``) run only the agreement checks,
on small inputs.

========================  ===========================================================  ========
benchmark                 ours against                                                  target
========================  ===========================================================  ========
windows                   ``make_windows`` / loop with ``get_indexer`` per time          >= 50x
cross_scale_attention     batched attention / loop over scale pairs and heads            >= 4x
causal_vmd                batched rolling VMD / one ``vmdpy.VMD`` call per window        >= 10x
vmd_memory                ``decompose.vmd`` / ``vmdpy.VMD``, peak memory                 >= 20x
multiscale_vs_single      default net / single scale, 1,440 tokens, training samples/s   >= 10x
default_network           training and inference samples/s                               none
train_utilization         training FLOP/s of the default net / float32 matmul peak       >= 0.2
notebooks_cold            each chapter from an empty network cache / 90 s budget         >= 1
streaming_inference       live forecast per bar: recompute all / ``StreamingPredictor``   >= 5x
checkpointing_memory      training-step peak memory, 1,920 bars: plain / checkpointed     >= 2x
========================  ===========================================================  ========
"""

BENCHMARKS: tuple[str, ...] = (
    "windows",
    "cross_scale_attention",
    "causal_vmd",
    "vmd_memory",
    "multiscale_vs_single",
    "default_network",
    "train_utilization",
    "notebooks_cold",
    "streaming_inference",
    "checkpointing_memory",
)
"""Module names, in the order ``python -m benchmarks`` runs them."""
