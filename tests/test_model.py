"""Tests of msa_lib.model: shapes, attention equivalences, masks, gradients, ablations."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from msa_lib.model import (
    MODEL_KINDS,
    CrossScaleAttention,
    CrossScaleFusion,
    HierarchicalAggregation,
    ModelConfig,
    MultiScaleAttentionNet,
    ScaleConfig,
    ScaleEncoder,
    SinusoidalPositionalEncoding,
    build_model,
    config_from_windows,
    count_parameters,
    cross_scale_attention_loop,
    pool_recent_aligned,
)

torch.set_num_threads(1)

# Odd, unequal lengths (one of them a single bar) and different feature counts per scale.
ODD = (ScaleConfig("1min", 3, 7), ScaleConfig("5min", 4, 13), ScaleConfig("1D", 2, 1))


def make_config(**options) -> ModelConfig:
    options.setdefault("d_model", 16)
    options.setdefault("dropout", 0.0)
    options.setdefault("horizons", ("15min", "1h"))
    return ModelConfig(scales=ODD, **options)


def make_windows(config: ModelConfig, batch: int = 5, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {s.name: torch.randn(batch, s.lookback, s.n_features, generator=g) for s in config.scales}


def random_masks(lengths, batch: int, seed: int = 1) -> list[torch.Tensor]:
    """Left-padding masks: each sample hides a random number of its oldest rows (never the last)."""
    g = torch.Generator().manual_seed(seed)
    masks = []
    for L in lengths:
        hidden = torch.randint(0, L, (batch,), generator=g)  # 0..L-1 hidden rows
        masks.append(torch.arange(L)[None, :] >= hidden[:, None])
    return masks


# ---- shapes ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(MODEL_KINDS))
@pytest.mark.parametrize("pos", ["learnable", "sinusoidal"])
def test_every_model_gives_one_output_per_horizon_for_odd_lengths(kind, pos):
    torch.manual_seed(0)
    cfg = make_config(pos_encoding=pos)
    model = build_model(kind, cfg).eval()
    out = model(make_windows(cfg, batch=5))
    assert out["returns"].shape == (5, 2)
    assert out["direction_logits"].shape == (5, 2)
    assert torch.isfinite(out["returns"]).all()


def test_details_have_documented_shapes():
    torch.manual_seed(0)
    cfg = make_config(n_cross_heads=2, pyramid_levels=3)
    out = MultiScaleAttentionNet(cfg).eval()(make_windows(cfg, batch=4), return_details=True)
    n_keys = 7 + 13 + 1
    assert out["attention"].shape == (4, 2, 3, n_keys)
    assert out["scale_weights"].shape == (3,)
    assert out["gates"].shape == (4, 3)
    assert out["scale_tokens"].shape == (4, 3, 16)
    assert out["key_scale"].tolist() == [0] * 7 + [1] * 13 + [2]
    assert torch.allclose(out["attention"].sum(-1), torch.ones(4, 2, 3), atol=1e-6)


def test_numpy_windows_are_accepted_and_not_modified():
    cfg = make_config()
    windows = {k: v.numpy().copy() for k, v in make_windows(cfg).items()}
    before = {k: v.copy() for k, v in windows.items()}
    out = MultiScaleAttentionNet(cfg).eval()(windows)
    assert out["returns"].shape == (5, 2)
    for k in windows:
        np.testing.assert_array_equal(windows[k], before[k])


def test_bad_inputs_raise_errors_that_name_the_scale():
    cfg = make_config()
    net = MultiScaleAttentionNet(cfg).eval()
    w = make_windows(cfg)
    with pytest.raises(KeyError, match="5min"):
        net({k: v for k, v in w.items() if k != "5min"})
    with pytest.raises(ValueError, match="1min"):
        net({**w, "1min": w["1min"][..., :2]})
    nan = w["5min"].clone()
    nan[2, 4, 1] = float("nan")
    with pytest.raises(ValueError, match=r"5min.*sample 2, row 4, feature 1"):
        net({**w, "5min": nan})
    with pytest.raises(ValueError, match="1min.*longer than the learnable"):
        net({**w, "1min": torch.randn(5, 8, 3)})
    with pytest.raises(ValueError, match="most recent bar"):
        mask = torch.ones(5, 7, dtype=torch.bool)
        mask[3, -1] = False
        net(w, masks={"1min": mask})


def test_config_rejects_inconsistent_settings():
    with pytest.raises(ValueError, match="does not divide"):
        ModelConfig(scales=ODD, d_model=30)
    with pytest.raises(ValueError, match="duplicated"):
        ModelConfig(scales=(ODD[0], ODD[0]))
    with pytest.raises(ValueError, match="pos_encoding"):
        ModelConfig(scales=ODD, pos_encoding="rotary")


def test_config_survives_json_and_windows_helper_reads_shapes():
    cfg = make_config(pos_encoding="sinusoidal", gates=False)
    again = ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    cfg2 = config_from_windows(make_windows(cfg), d_model=16, conv_kernel={"1min": 3})
    assert [(s.name, s.lookback, s.n_features) for s in cfg2.scales] == [
        (s.name, s.lookback, s.n_features) for s in ODD
    ]
    assert [s.conv_kernel for s in cfg2.scales] == [3, 0, 0]


# ---- cross-scale attention: loop == vectorised, masks ----------------------------------------------
@pytest.mark.parametrize("masked", [False, True])
def test_loop_and_vectorised_cross_attention_agree(masked):
    torch.manual_seed(0)
    lengths, B, d = (7, 13, 1, 5), 6, 24
    attention = CrossScaleAttention(d, n_heads=3, n_scales=4).eval()
    tokens = [torch.randn(B, L, d) for L in lengths]
    masks = random_masks(lengths, B) if masked else None
    if masked:
        assert not all(bool(m.all()) for m in masks)  # the test really masks something
    fused_loop, w_loop = cross_scale_attention_loop(attention, tokens, masks)
    fused_explicit, w_vec = attention(tokens, masks, need_weights=True)
    fused_sdpa, none = attention(tokens, masks, need_weights=False)
    assert none is None
    assert fused_loop.shape == (B, 4, d) and w_loop.shape == (B, 3, 4, sum(lengths))
    torch.testing.assert_close(fused_explicit, fused_loop, atol=1e-5, rtol=0)
    torch.testing.assert_close(fused_sdpa, fused_loop, atol=1e-5, rtol=0)
    torch.testing.assert_close(w_vec, w_loop, atol=1e-5, rtol=0)


def test_heads_are_really_split():
    """With one head the result differs: each head must have its own softmax over a feature slice."""
    torch.manual_seed(0)
    tokens = [torch.randn(3, L, 8) for L in (4, 6)]
    four = CrossScaleAttention(8, 4, 2).eval()
    one = CrossScaleAttention(8, 1, 2).eval()
    one.load_state_dict(four.state_dict())
    _, w4 = four(tokens, need_weights=True)
    _, w1 = one(tokens, need_weights=True)
    assert not torch.allclose(w4[:, 0], w4[:, 1])  # heads attend differently
    assert not torch.allclose(w4.mean(1), w1[:, 0])


def test_masked_keys_get_exactly_zero_weight_and_are_ignored():
    torch.manual_seed(0)
    lengths, B, d = (9, 4, 6), 5, 16
    attention = CrossScaleAttention(d, 4, 3).eval()
    tokens = [torch.randn(B, L, d) for L in lengths]
    masks = random_masks(lengths, B, seed=3)
    key_mask = torch.cat(masks, dim=1)  # [B, N]
    fused, w = attention(tokens, masks, need_weights=True)
    assert (w.permute(0, 3, 1, 2)[~key_mask] == 0).all()  # exactly zero, not just small
    assert (w.permute(0, 3, 1, 2)[key_mask] > 0).all()
    # Whatever sits in hidden positions cannot change the result.
    scrambled = [torch.where(m[..., None], t, 1e3 * torch.randn_like(t)) for t, m in zip(tokens, masks, strict=True)]
    fused2, _ = attention(scrambled, masks)
    torch.testing.assert_close(fused2, fused, atol=1e-5, rtol=0)


# ---- the network: every scale matters, gradients, ablations -----------------------------------------
def test_changing_one_scale_changes_every_scale_representation():
    torch.manual_seed(0)
    cfg = make_config()
    net = MultiScaleAttentionNet(cfg).eval()
    w = make_windows(cfg)
    base = net(w, return_details=True)
    for name in cfg.scale_names:
        changed = net({**w, name: w[name] + 1.0}, return_details=True)
        diff = (changed["scale_tokens"] - base["scale_tokens"]).abs().amax(dim=(0, 2))  # [S]
        assert (diff > 1e-4).all(), f"changing {name} left some scale's representation unchanged: {diff}"
        assert not torch.allclose(changed["returns"], base["returns"])


def test_without_cross_attention_scales_only_meet_in_the_fusion():
    torch.manual_seed(0)
    cfg = make_config(cross_attention=False)
    net = MultiScaleAttentionNet(cfg).eval()
    w = make_windows(cfg)
    base = net(w, return_details=True)
    changed = net({**w, "5min": w["5min"] + 1.0}, return_details=True)
    diff = (changed["scale_tokens"] - base["scale_tokens"]).abs().amax(dim=(0, 2))
    assert diff[1] > 1e-4 and diff[0] == 0 and diff[2] == 0
    assert base["attention"] is None


def test_gradients_reach_every_encoder():
    torch.manual_seed(0)
    cfg = ModelConfig(
        # every scale at least 3 bars long: over a single key, softmax has no gradient with respect
        # to the query, so a 1-bar scale's pyramid queries would get exactly zero (correctly)
        scales=(ScaleConfig("1min", 3, 7, conv_kernel=3), ScaleConfig("5min", 4, 13, n_layers=2),
                ScaleConfig("1D", 2, 3)),
        d_model=16,
        horizons=("15min", "1h"),
        pyramid_levels=2,
    )
    net = MultiScaleAttentionNet(cfg)
    out = net(make_windows(cfg))
    (out["returns"].square().mean() + out["direction_logits"].mean()).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {name}"


def test_subset_of_scales_takes_the_full_windows_dict():
    cfg = make_config()
    sub = ModelConfig(scales=ODD[:2], d_model=16, dropout=0.0)
    out = MultiScaleAttentionNet(sub).eval()(make_windows(cfg), return_details=True)
    assert out["gates"].shape == (5, 2)


def test_single_scale_baseline_uses_only_its_scale():
    torch.manual_seed(0)
    cfg = make_config(single_scale="5min")
    net = build_model("single_scale", cfg).eval()
    w = make_windows(cfg)
    base = net(w)["returns"]
    assert torch.equal(net({**w, "1min": w["1min"] + 5})["returns"], base)
    assert not torch.allclose(net({**w, "5min": w["5min"] + 5})["returns"], base)


# ---- encoders and positional encodings -------------------------------------------------------------
def test_without_positional_encoding_order_is_invisible_and_with_it_it_is_not():
    torch.manual_seed(0)
    sc = ScaleConfig("1h", 3, 10)
    x = torch.randn(2, 10, 3)
    perm = torch.cat([torch.randperm(9), torch.tensor([9])])  # shuffle all but the last bar
    for pos, invariant in [("none", True), ("learnable", False), ("sinusoidal", False)]:
        enc = ScaleEncoder(sc, 16, pos_encoding=pos, dropout=0.0).eval()
        same = torch.allclose(enc(x)[:, -1], enc(x[:, perm])[:, -1], atol=1e-5)
        assert same == invariant, pos


def test_sinusoidal_encoding_is_indexed_by_age():
    pe = SinusoidalPositionalEncoding(8)
    long, short = pe.encoding(10), pe.encoding(4)
    torch.testing.assert_close(long[-4:], short)  # the newest rows share their encodings
    torch.testing.assert_close(short[-1], torch.tensor([0.0, 1.0] * 4))  # age 0: sin 0, cos 0


def test_causal_convolution_does_not_let_newer_bars_into_older_rows():
    torch.manual_seed(0)
    enc = ScaleEncoder(ScaleConfig("1min", 2, 12, conv_kernel=4), 8, dropout=0.0).eval()
    x = torch.randn(1, 12, 2)
    h = enc.input_proj(x).transpose(1, 2)
    x2 = x.clone()
    x2[:, 8:] += 3.0
    h2 = enc.input_proj(x2).transpose(1, 2)
    conv = [enc.conv(torch.nn.functional.pad(v, (3, 0))) for v in (h, h2)]
    assert torch.equal(conv[0][..., :8], conv[1][..., :8])
    assert not torch.allclose(conv[0][..., 8:], conv[1][..., 8:])


# ---- fusion -----------------------------------------------------------------------------------------
def test_fusion_weights_gates_and_their_meaning():
    torch.manual_seed(0)
    fusion = CrossScaleFusion(8, 3, gates=True, dropout=0.0).eval()
    h = torch.randn(6, 3, 8)
    fused, weights, gates = fusion(h)
    assert fused.shape == (6, 8)
    torch.testing.assert_close(weights.sum(), torch.tensor(1.0))
    assert ((gates > 0) & (gates < 1)).all() and gates.std() > 0  # per-sample, not constant
    plain = CrossScaleFusion(8, 3, gates=False, dropout=0.0).eval()
    assert torch.equal(plain(h)[2], torch.ones(6, 3))
    # A weight of (almost) zero removes a scale from the output.
    with torch.no_grad():
        plain.scale_logits.copy_(torch.tensor([0.0, 0.0, -60.0]))
    h2 = h.clone()
    h2[:, 2] += 10.0
    torch.testing.assert_close(plain(h2)[0], plain(h)[0])


# ---- pyramid ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("length", [1, 5, 7, 61])
def test_pooling_groups_are_aligned_to_the_newest_bar(length):
    x = torch.randn(2, length, 3)
    pooled, mask = pool_recent_aligned(x, 3)
    groups = [list(range(max(0, end - 3), end)) for end in range(length, 0, -3)][::-1]
    expected = torch.stack([x[:, g].mean(1) for g in groups], dim=1)
    torch.testing.assert_close(pooled, expected)
    assert mask.all() and pooled.shape[1] == -(-length // 3)


def test_pooling_skips_hidden_rows():
    x = torch.arange(5.0).view(1, 5, 1)
    mask = torch.tensor([[False, False, False, True, True]])
    pooled, pmask = pool_recent_aligned(x, 2, mask)  # groups [0], [1, 2], [3, 4]
    assert pmask.tolist() == [[False, False, True]]
    assert pooled[0, 2, 0] == 3.5


@pytest.mark.parametrize("length", [1, 7, 13, 61])
def test_hierarchical_aggregation_works_for_lengths_not_divisible_by_the_pool(length):
    torch.manual_seed(0)
    agg = HierarchicalAggregation(16, n_levels=4, pool_size=2).eval()
    x = torch.randn(3, length, 16)
    levels = agg.pyramid(x)
    sizes = [t.shape[1] for t, _ in levels]
    expected = [length]
    for _ in range(3):
        expected.append(-(-expected[-1] // 2))
    assert sizes == expected
    assert agg(x).shape == (3, 16)


def test_default_network_is_small_enough_for_a_cpu():
    scales = tuple(ScaleConfig(n, 8, L) for n, L in [("1min", 60), ("5min", 48), ("1h", 24), ("1D", 10)])
    n = count_parameters(MultiScaleAttentionNet(ModelConfig(scales=scales)))
    assert 50_000 <= n <= 100_000
