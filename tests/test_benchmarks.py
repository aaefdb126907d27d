"""The benchmarks' agreement checks, on small inputs (no timing here: see ``python -m benchmarks``).

Each benchmark compares our implementation with a straightforward one; these tests make sure both
give the same result on small inputs, and that each check would notice if they did not.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

# benchmarks/ is a top-level package of the repository, not installed with msa_lib: make it
# importable however pytest is started (``python -m pytest`` adds the working directory itself).
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import (  # noqa: E402
    BENCHMARKS,
    causal_vmd,
    checkpointing_memory,
    cross_scale_attention,
    multiscale_vs_single,
    streaming_inference,
    train_utilization,
    vmd_memory,
    windows,
)
from benchmarks.common import Result, median_seconds  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --------------------------------------------------------------------------------------------------
# windows
# --------------------------------------------------------------------------------------------------
def _frame(times: pd.DatetimeIndex, n_features: int, rng: np.random.Generator) -> pd.DataFrame:
    return pd.DataFrame(rng.normal(size=(len(times), n_features)), index=times)


def _small_frames(rng: np.random.Generator) -> dict[str, pd.DataFrame]:
    start = pd.Timestamp("2024-03-01 00:01", tz="UTC")
    minutes = pd.date_range(start, periods=400, freq="min")
    minutes = minutes[rng.random(len(minutes)) > 0.1]  # gaps: missing minutes
    five = pd.date_range(start + pd.Timedelta("4min"), periods=80, freq="5min")
    hours = pd.date_range(start + pd.Timedelta("59min"), periods=7, freq="h")
    return {"1min": _frame(minutes, 3, rng), "5min": _frame(five, 2, rng), "1h": _frame(hours, 4, rng)}


def test_windows_loop_agrees_with_make_windows_on_irregular_data():
    rng = np.random.default_rng(1)
    frames = _small_frames(rng)
    lookbacks = {"1min": 7, "5min": 4, "1h": 2}
    # decision times on and between bars, some before any history exists
    times = pd.date_range("2024-03-01 00:00:30", periods=300, freq="83s", tz="UTC")
    ours, kept = windows.check(frames, lookbacks, times)
    assert 0 < len(kept) < len(times)  # some times dropped, some kept: both branches exercised
    assert ours["1h"].shape == (len(kept), 2, 4)


def test_windows_reference_follows_the_close_time_rule():
    # Rows stamped 10:01 ... 10:05 hold 1 ... 5. At 10:03:30 the last two rows known are 10:02 and
    # 10:03; at 10:01 there is only one row, so a 2-row window does not exist yet.
    stamps = pd.date_range("2024-01-01 10:01", periods=5, freq="min", tz="UTC")
    frame = pd.DataFrame({"x": np.arange(1.0, 6.0)}, index=stamps)
    times = pd.DatetimeIndex(["2024-01-01 10:01", "2024-01-01 10:03:30"], tz="UTC")
    got, kept = windows.reference_windows({"s": frame}, {"s": 2}, times)
    assert list(kept) == [times[1]]
    assert got["s"][0, :, 0].tolist() == [2.0, 3.0]


def test_windows_compare_notices_a_changed_value():
    rng = np.random.default_rng(2)
    frames = _small_frames(rng)
    lookbacks = {"1min": 5, "5min": 3, "1h": 1}
    times = pd.date_range("2024-03-01 01:00", periods=50, freq="7min", tz="UTC")
    ref_w, ref_t = windows.reference_windows(frames, lookbacks, times)
    from msa_lib.data import make_windows

    ours = make_windows(frames, lookbacks, times)
    ref_w["5min"][3, 1, 0] += 1e-3
    with pytest.raises(AssertionError, match="5min"):
        windows.compare(ours, (ref_w, ref_t))


# --------------------------------------------------------------------------------------------------
# cross-scale attention
# --------------------------------------------------------------------------------------------------
def test_cross_scale_attention_outputs_and_gradients_agree():
    attention, tokens, weighting = cross_scale_attention.make_inputs(
        batch=3, d_model=8, n_heads=2, lengths=(5, 3, 4), seed=3
    )
    cross_scale_attention.check(attention, tokens, weighting)


def test_cross_scale_attention_check_notices_a_different_reference():
    attention, tokens, weighting = cross_scale_attention.make_inputs(
        batch=3, d_model=8, n_heads=2, lengths=(5, 3, 4), seed=3
    )

    def off_by_a_little(att):
        loop = cross_scale_attention.reference(att)
        return lambda toks: loop(toks) * 1.01

    with pytest.raises(AssertionError, match="differs"):
        cross_scale_attention.check(attention, tokens, weighting, reference_fn=off_by_a_little)


# --------------------------------------------------------------------------------------------------
# VMD
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def log_prices() -> np.ndarray:
    return vmd_memory.make_series(600, seed=4)


def test_causal_vmd_agrees_with_one_vmdpy_call_per_window(log_prices):
    window, K = 64, 3
    x = log_prices[: window + 11]  # 12 windows
    out = causal_vmd.check(x, window, K)
    assert np.isnan(out[:, : window - 1]).all() and np.isfinite(out[:, window - 1 :]).all()


def test_causal_vmd_compare_notices_a_changed_value(log_prices):
    window, K = 64, 3
    x = log_prices[: window + 5]
    positions = np.arange(window - 1, len(x))
    from msa_lib.decompose import causal_vmd as ours_fn

    ours = ours_fn(x, window, K, causal_vmd.ALPHA, tol=causal_vmd.TOL)
    ref, iterations = causal_vmd.reference_causal_vmd(x, window, K, positions)
    assert (iterations >= 2).all()
    ref[2, 1] += 1e-6
    with pytest.raises(AssertionError, match="mode_1"):
        causal_vmd.compare(ours, ref, positions)


def test_vmd_agrees_with_vmdpy(log_prices):
    vmd_memory.check(log_prices[:400], 3)


def test_peak_memory_sees_numpy_allocations():
    n = 1_000_000
    peak, _, result = vmd_memory.peak_memory(lambda: np.ones(n).sum())
    assert result == n
    assert 8 * n <= peak < 8 * n + 1_000_000  # the 8 MB temporary array, and little else


# --------------------------------------------------------------------------------------------------
# multi-scale against single-scale
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_networks():
    lookbacks = {"1min": 12, "5min": 6, "1h": 3}
    bars, frames = multiscale_vs_single.make_frames(days=3, seed=5, scales=tuple(lookbacks))
    multi_data, single_data, raw = multiscale_vs_single.build_datasets(
        bars, frames, lookbacks=lookbacks, single_lookback=90, every="30min"
    )
    return frames, multi_data, single_data, raw


def test_single_scale_windows_extend_the_multi_scale_ones(small_networks):
    frames, multi_data, single_data, raw = small_networks
    assert len(multi_data) == len(single_data) > 0
    multiscale_vs_single.check_inputs(raw, frames["1min"], single_lookback=90)
    multi, single = multiscale_vs_single.build_models(raw["multi"], raw["single"])
    multiscale_vs_single.check_models(multi, single, multi_data, single_data, single_lookback=90)


def test_single_scale_check_notices_a_shifted_window(small_networks):
    frames, _, _, raw = small_networks
    shifted = dict(raw, single={"1min": np.roll(raw["single"]["1min"], 1, axis=1)})
    with pytest.raises(AssertionError, match="newest bars"):
        multiscale_vs_single.check_inputs(shifted, frames["1min"], single_lookback=90)


def test_single_scale_check_notices_a_wider_network(small_networks):
    _, multi_data, single_data, raw = small_networks
    from msa_lib.baselines import SingleScaleTransformer
    from msa_lib.model import config_from_windows

    multi, _ = multiscale_vs_single.build_models(raw["multi"], raw["single"])
    wider = SingleScaleTransformer(
        config_from_windows(raw["single"], d_model=64, horizons=multiscale_vs_single.HORIZONS)
    )
    with pytest.raises(AssertionError, match="d_model"):
        multiscale_vs_single.check_models(multi, wider, multi_data, single_data, single_lookback=90)


def test_training_step_timer_counts_samples(small_networks):
    _, multi_data, _, raw = small_networks
    multi, _ = multiscale_vs_single.build_models(raw["multi"], raw["single"])
    before = [p.detach().clone() for p in multi.parameters()]
    sps, runs = multiscale_vs_single.train_steps_per_second(multi, multi_data, 4, steps=2)
    assert len(runs) == 2 and sps == pytest.approx(4 / np.median(runs))
    assert any(not torch.equal(a, b) for a, b in zip(before, multi.parameters(), strict=True))


# --------------------------------------------------------------------------------------------------
# training utilization
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def default_network():
    return train_utilization.make_inputs(n_rows=64)


def test_flop_count_agrees_with_the_count_by_hand(default_network):
    model, data = default_network
    from msa_lib.experiment import COURSE

    assert [s.lookback for s in model.config.scales] == list(COURSE.lookbacks.values())
    forward, backward = train_utilization.check(model, data, batch=8)
    assert 1.9 * forward < backward < 2 * forward  # twice the forward, less the windows' gradients
    assert all(p.grad is None for p in model.parameters())  # counting leaves no gradients behind


def test_cpu_attention_is_counted_as_the_explicit_formula_is(default_network, monkeypatch):
    """Fused kernel + CPU_ATTENTION_FLOPS == the stock counter on the explicit formula's products."""
    from torch.utils.flop_counter import FlopCounterMode

    from msa_lib import model as mm
    from msa_lib.train import multi_horizon_loss

    model, data = default_network
    fused = train_utilization.count_flops(model, data, batch=8)
    windows, y, direction = data[:8]
    with FlopCounterMode(display=False) as counter:  # without the added formulas ...
        model(windows)
    assert counter.get_total_flops() < fused[0]  # ... the fused kernel's attention is missed

    def explicit(q, k, v, key_mask=None, need_weights=False, **options):
        return attend(q, k, v, key_mask, need_weights=True, **options)

    attend = mm.attend
    monkeypatch.setattr(mm, "attend", explicit)  # every attention as bmm + softmax + bmm
    with FlopCounterMode(display=False) as counter:
        loss, _ = multi_horizon_loss(model(windows), y, direction)
    forward = counter.get_total_flops()
    with FlopCounterMode(display=False) as counter:
        loss.backward()
    assert (forward, counter.get_total_flops()) == fused


def test_flop_check_notices_a_wrong_count(default_network, monkeypatch):
    model, data = default_network
    right = train_utilization.flops_by_hand
    monkeypatch.setattr(
        train_utilization, "flops_by_hand", lambda c, b: (right(c, b)[0] + 1, right(c, b)[1])
    )
    with pytest.raises(AssertionError, match="forward FLOPs"):
        train_utilization.check(model, data, batch=8)
    with pytest.raises(ValueError, match="default architecture"):
        right(model.config.replace(pyramid_levels=2), 8)


def test_train_utilization_quick_run_reports_a_share_of_the_peak():
    result = train_utilization.run(quick=True)
    m = result.metrics
    assert result.agreed and result.target == 0.2 and result.name == "train_utilization"
    assert result.ratio == pytest.approx(m["train_flops_per_second"] / m["peak_flops_per_second"])
    assert len(m["train_step_seconds"]) == 4 and len(m["matmul_seconds"]) == 2
    flops_per_step = m["forward_flops"] + m["backward_flops"]
    step_seconds = np.median(m["train_step_seconds"])
    assert m["train_flops_per_second"] == pytest.approx(flops_per_step / step_seconds)
    assert m["peak_flops_per_second"] == pytest.approx(2 * 2048**3 / np.median(m["matmul_seconds"]))
    model, _ = train_utilization.make_inputs(n_rows=8)
    by_hand = sum(train_utilization.flops_by_hand(model.config, m["batch_size"]))
    assert flops_per_step == by_hand  # the course's network, counted at the course's batch size
    assert result.line().startswith("train_utilization: ratio=0.") or result.ratio >= 1


# --------------------------------------------------------------------------------------------------
# streaming inference, gradient checkpointing
# --------------------------------------------------------------------------------------------------
def test_streaming_and_recomputing_give_the_same_forecasts():
    from msa_lib.experiment import COURSE, SHORT_FEATURE_WINDOWS, ScaleSpec

    small = COURSE.replace(features={"scales": (
        ScaleSpec("1min", 4, **SHORT_FEATURE_WINDOWS), ScaleSpec("5min", 3, **SHORT_FEATURE_WINDOWS),
        ScaleSpec("1h", 2, **SHORT_FEATURE_WINDOWS),
    )})
    bars, net, scaler = streaming_inference.make_inputs(small, days=2)
    split = pd.Timestamp("2024-01-01 23:50", tz="UTC")
    stretch = bars.loc[split + pd.Timedelta("1min"):split + pd.Timedelta("15min")]
    _, outs, predictor = streaming_inference.stream(bars, split, stretch, small, net, scaler)
    for t, out in zip(stretch.index, outs, strict=True):
        want = streaming_inference.recompute(bars, t, small, net, scaler)["returns"]
        np.testing.assert_allclose(out["returns"], want, atol=streaming_inference.ATOL)
    assert predictor.encode_counts == {"1min": 16, "5min": 4, "1h": 2}  # warm-up + closes
    every, closed = streaming_inference.model_only(
        net, [streaming_inference.recompute(bars, t, small, net, scaler)["scaled"] for t in stretch.index[:3]],
        [o["encoded"] for o in outs[:3]],
    )
    assert every > 0 and closed > 0


def test_recomputing_refuses_a_time_without_a_full_window():
    from msa_lib.experiment import COURSE

    bars, net, scaler = streaming_inference.make_inputs(COURSE, days=13)
    with pytest.raises(AssertionError, match="no full window at 2024-01-12 10:00"):
        streaming_inference.recompute(bars, pd.Timestamp("2024-01-12 10:00", tz="UTC"), COURSE, net, scaler)


def test_checkpointing_check_passes_and_notices_unreplayed_dropout(monkeypatch):
    checkpointing_memory.check(lookback=12, n_layers=2, batch=2)
    real = torch.utils.checkpoint.checkpoint
    monkeypatch.setattr(torch.utils.checkpoint, "checkpoint",
                        lambda *a, **k: real(*a, **dict(k, preserve_rng_state=False)))
    with pytest.raises(AssertionError, match="differ"):
        checkpointing_memory.check(lookback=12, n_layers=2, batch=2)


# --------------------------------------------------------------------------------------------------
# results, the runner
# --------------------------------------------------------------------------------------------------
def test_result_line_and_verdict():
    good = Result("x", ratio=12.0, target=10.0, agreement="exact", details="d")
    slow = Result("x", ratio=9.9, target=10.0, agreement="exact", details="d")
    wrong = Result("x", ratio=99.0, target=10.0, agreement="FAILED", details="d", agreed=False)
    assert good.line() == "x: ratio=12.0 target>=10 PASS (d)"
    assert slow.passed is False and "FAIL" in slow.line()
    assert wrong.passed is False and "FAIL" in wrong.line()
    assert Result("i", None, None, "n/a", "d").passed is None
    share = Result("u", ratio=0.174, target=0.2, agreement="exact", details="d")
    assert share.line() == "u: ratio=0.17 target>=0.2 FAIL (d)"  # two decimals below 1


def test_median_seconds_runs_warmup_and_repeats():
    calls = []
    median, runs = median_seconds(lambda: calls.append(1), repeats=5, warmup=2)
    assert len(calls) == 7 and len(runs) == 5 and min(runs) <= median <= max(runs)


def test_results_file_has_every_benchmark(root):
    data = json.loads((root / "benchmarks" / "results.json").read_text(encoding="utf-8"))
    assert data["command"] == "make bench"
    assert {"cpu", "cores", "torch", "date"} <= set(data["machine"])
    assert list(data["benchmarks"]) == list(BENCHMARKS)
    for name, entry in data["benchmarks"].items():
        assert entry["line"].startswith(f"{name}: "), name
        if entry["target"] is not None:
            assert entry["passed"] == (entry["agreed"] and entry["ratio"] >= entry["target"]), name


# --- notebooks_cold: each chapter in a course root of its own, with an empty network cache -----
def _notebook(path: Path, *sources: str) -> Path:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(nb, path)
    return path


def test_notebooks_cold_runs_each_chapter_with_an_empty_network_cache(tmp_path):
    from benchmarks import notebooks_cold

    chapter = _notebook(
        tmp_path / "05_probe.ipynb",
        "from pathlib import Path\nfrom msa_lib.cache import network_cache_dir\n"
        "cache = network_cache_dir()\n"
        "assert 'msa-cold-' in str(cache) and cache.parts[-2:] == ('_build', 'cache'), cache\n"
        "assert not cache.exists() or not any(cache.iterdir()), 'the cache is not empty'\n"
        "assert (Path.cwd().parent / 'requirements.txt').is_file()",
    )
    result = notebooks_cold.run(chapters=[chapter])
    assert set(result.metrics["seconds"]) == {"05_probe"}
    assert result.ratio == pytest.approx(90.0 / result.metrics["seconds"]["05_probe"])
    assert result.passed  # a three-line notebook is far inside the budget


def test_notebooks_cold_fails_loudly_on_a_broken_chapter(tmp_path):
    from nbclient.exceptions import CellExecutionError

    from benchmarks import notebooks_cold

    chapter = _notebook(tmp_path / "06_broken.ipynb", "raise RuntimeError('boom')")
    with pytest.raises(CellExecutionError, match="boom"):
        notebooks_cold.run(chapters=[chapter])
