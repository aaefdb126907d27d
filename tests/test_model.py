"""Tests of msa_lib.model: config validation, shapes, attention equivalences, masks, dropout,
gradients, ablations."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tiny_models import ODD, make_config, make_windows

from msa_lib.model import (
    MODEL_KINDS,
    CrossScaleAttention,
    CrossScaleFusion,
    Dropout,
    EncoderLayer,
    ForecastHeads,
    HierarchicalAggregation,
    ModelConfig,
    MultiScaleAttentionNet,
    ScaleConfig,
    ScaleEncoder,
    SinusoidalPositionalEncoding,
    attend,
    build_model,
    config_from_windows,
    count_parameters,
    cross_scale_attention_loop,
    dropout,
    model_class,
    pool_recent_aligned,
)

torch.set_num_threads(1)



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
    with pytest.raises(ValueError, match="5min.*batch 4"):
        net({**w, "5min": w["5min"][:4]})
    with pytest.raises(ValueError, match="1min.*longer than the learnable"):
        net({**w, "1min": torch.randn(5, 8, 3)})
    with pytest.raises(ValueError, match=r"masks\['1min'\] must be bool"):
        net(w, masks={"1min": torch.ones(5, 7)})
    with pytest.raises(ValueError, match=r"masks\['1min'\].*most recent bar of sample 3"):
        mask = torch.ones(5, 7, dtype=torch.bool)
        mask[3, -1] = False
        net(w, masks={"1min": mask})


def test_non_finite_windows_are_rejected_where_data_enters():
    """forward does not scan every batch for NaN: the dataset and predict check once, on entry."""
    from msa_lib.train import WindowDataset, predict

    cfg = make_config()
    net = MultiScaleAttentionNet(cfg).eval()
    w = make_windows(cfg)
    nan = w["5min"].clone()
    nan[2, 4, 1] = float("nan")
    with pytest.raises(ValueError, match=r"windows\['5min'\].*row 2"):
        WindowDataset({**w, "5min": nan}, torch.zeros(5, 2))
    with pytest.raises(ValueError, match=r"windows\['5min'\].*row 2"):
        predict(net, {**w, "5min": nan})
    assert predict(net, w)["returns"].shape == (5, 2)


def test_forward_is_one_graph_without_data_dependent_branches():
    """No check in forward reads a tensor's values: torch.compile traces it in one piece."""
    torch.manual_seed(0)
    cfg = make_config(pyramid_levels=2)
    net = MultiScaleAttentionNet(cfg)
    for mode in (net.train, net.eval):
        mode()
        explained = torch._dynamo.explain(net)(make_windows(cfg))
        assert explained.graph_break_count == 0, explained.break_reasons
        assert explained.graph_count == 1


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: ModelConfig(scales=ODD, d_model=30), r"scale '1min': n_heads=4 does not divide d_model=30"),
        (lambda: ModelConfig(scales=ODD, n_cross_heads=3), r"n_cross_heads.*n_heads=3 does not divide"),
        (lambda: ModelConfig(scales=(ODD[0], ODD[0])), r"duplicated scale names \['1min'\]"),
        (lambda: ModelConfig(scales=()), "scales is empty"),
        (lambda: ModelConfig(scales=ODD[0]), "scales must be a sequence"),
        (lambda: ModelConfig(scales=ODD, pos_encoding="rotary"), "pos_encoding must be one of"),
        (lambda: ModelConfig(scales=ODD, d_model=0), "d_model must be an integer >= 1, got 0"),
        (lambda: ModelConfig(scales=ODD, d_model=32.0), "d_model must be an integer"),
        (lambda: ModelConfig(scales=ODD, dropout=1.0), r"dropout must be a number in \[0, 1\), got 1.0"),
        (lambda: ModelConfig(scales=ODD, dropout=True), "dropout must be a number"),
        (lambda: ModelConfig(scales=ODD, gates="no"), "gates must be True or False"),
        (lambda: ModelConfig(scales=ODD, cross_attention=1), "cross_attention must be True or False"),
        (lambda: ModelConfig(scales=ODD, horizons=()), "horizons is empty"),
        (lambda: ModelConfig(scales=ODD, horizons="1h"), "horizons must be a sequence of str"),
        (lambda: ModelConfig(scales=ODD, horizons=("1h", "1h")), "horizons has duplicates"),
        (lambda: ModelConfig(scales=ODD, ff_mult=0), "ff_mult must be an integer >= 1"),
        (lambda: ModelConfig(scales=ODD, pyramid_levels=-1), "pyramid_levels must be an integer >= 0"),
        (lambda: ModelConfig(scales=ODD, pool_size=1), "pool_size must be an integer >= 2"),
        (lambda: ModelConfig(scales=ODD, single_scale="1h"), "single_scale '1h' is not one of"),
        (lambda: ScaleConfig("1h", 3, 0), r"scale '1h': lookback must be an integer >= 1, got 0"),
        (lambda: ScaleConfig("1h", 3, 5, conv_kernel=-1), r"scale '1h': conv_kernel must be an integer >= 0"),
        (lambda: ScaleConfig("", 3, 5), "name must be a non-empty string"),
        (lambda: ModelConfig.from_dict({"scales": [], "width": 3}), r"unknown ModelConfig keys \['width'\]"),
        (lambda: make_config().replace(dropout=-0.1), "dropout must be a number"),
    ],
)
def test_config_rejects_bad_settings_naming_them(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_modules_built_alone_reject_heads_that_do_not_divide():
    with pytest.raises(ValueError, match="CrossScaleAttention: n_heads=3 does not divide d_model=16"):
        CrossScaleAttention(16, 3, 2)
    with pytest.raises(ValueError, match="EncoderLayer: n_heads=5 does not divide d_model=16"):
        ScaleEncoder(ScaleConfig("1h", 3, 5, n_heads=5), 16)
    with pytest.raises(ValueError, match="scale '1h': pos_encoding must be one of"):
        ScaleEncoder(ScaleConfig("1h", 3, 5), 16, pos_encoding="rope")


def test_config_survives_json_and_windows_helper_reads_shapes():
    cfg = make_config(pos_encoding="sinusoidal", gates=False)
    again = ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    cfg2 = config_from_windows(make_windows(cfg), d_model=16, conv_kernel={"1min": 3})
    assert [(s.name, s.lookback, s.n_features) for s in cfg2.scales] == [
        (s.name, s.lookback, s.n_features) for s in ODD
    ]
    assert [s.conv_kernel for s in cfg2.scales] == [3, 0, 0]


# ---- heads and factory: the same numbers as before the heads became one module ----------------------
# Outputs of each kind for seed 0, make_config(pyramid_levels=2) and make_windows(batch=2, seed=7),
# recorded with the code in which every model had its own return_head and direction_head. The
# module layout changed; the parameters, and the order in which they are drawn, did not.
RECORDED = {
    "linear": ([[-0.576379, -0.403844], [0.069124, 0.285556]], [[0.4737, -0.792695], [0.100719, 0.242826]]),
    "lstm": ([[-0.081119, -0.194117], [-0.096552, -0.205168]], [[-0.147542, -0.235457], [-0.152975, -0.236335]]),
    "multiscale": ([[-0.095762, 0.32998], [-0.020276, 0.210879]], [[0.172879, 0.329371], [0.104183, 0.231839]]),
    "nhits": ([[-0.053971, 0.027153], [-0.04669, 0.09555]], [[-0.10191, -0.230398], [-0.034641, -0.286687]]),
    "patchtst": ([[-0.233694, 0.531598], [-0.486483, 0.296096]], [[0.062435, -0.645163], [0.025518, -0.395655]]),
    "single_scale": ([[0.716188, 1.128373], [0.84578, -0.042597]], [[-0.728915, 0.894715], [-0.569822, 0.080698]]),
}


@pytest.mark.parametrize("kind", sorted(MODEL_KINDS))
def test_every_kind_gives_the_recorded_outputs_for_a_fixed_seed(kind):
    torch.manual_seed(0)
    cfg = make_config(pyramid_levels=2)
    model = build_model(kind, cfg).eval()
    assert isinstance(model, model_class(kind)) and isinstance(model.heads, ForecastHeads)
    with torch.no_grad():
        out = model(make_windows(cfg, batch=2, seed=7))
    returns, logits = RECORDED[kind]
    torch.testing.assert_close(out["returns"], torch.tensor(returns), atol=2e-6, rtol=1e-4)
    torch.testing.assert_close(out["direction_logits"], torch.tensor(logits), atol=2e-6, rtol=1e-4)


def test_heads_are_one_linear_map_per_output():
    torch.manual_seed(0)
    heads = ForecastHeads(6, 3)
    x = torch.randn(4, 6)
    out = heads(x)
    assert set(out) == {"returns", "direction_logits"}
    torch.testing.assert_close(out["returns"], x @ heads.returns.weight.T + heads.returns.bias)
    torch.testing.assert_close(
        out["direction_logits"], x @ heads.direction.weight.T + heads.direction.bias
    )
    assert not torch.allclose(out["returns"], out["direction_logits"])  # two heads, not one shared


def test_unknown_kind_names_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown model kind 'gru'.*'linear', 'lstm', 'multiscale'"):
        build_model("gru", make_config())


# ---- attention, written once: fused kernel == explicit formula ---------------------------------------
@pytest.mark.parametrize("masked", [False, True])
def test_attend_fused_and_explicit_agree_and_weights_are_a_softmax(masked):
    torch.manual_seed(0)
    B, h, Q, N, dh = 3, 2, 5, 9, 4
    q, k, v = torch.randn(B, h, Q, dh), torch.randn(B, h, N, dh), torch.randn(B, h, N, dh)
    key_mask = random_masks([N], B, seed=2)[0] if masked else torch.ones(B, N, dtype=torch.bool)
    fused, none = attend(q, k, v, key_mask if masked else None)
    explicit, weights = attend(q, k, v, key_mask if masked else None, need_weights=True)
    assert none is None and weights.shape == (B, h, Q, N)
    torch.testing.assert_close(fused, explicit, atol=1e-5, rtol=0)
    bias = torch.where(key_mask, 0.0, -torch.inf)[:, None, None, :]  # [B, 1, 1, N]
    by_hand = torch.softmax(q @ k.transpose(-2, -1) / dh**0.5 + bias, dim=-1)
    torch.testing.assert_close(weights, by_hand)
    torch.testing.assert_close(explicit, by_hand @ v)
    assert (weights.permute(0, 3, 1, 2)[~key_mask] == 0).all()


def test_encoder_layer_explicit_and_fused_agree_with_a_mask():
    torch.manual_seed(0)
    layer = EncoderLayer(16, 4, dropout=0.0)
    x = torch.randn(3, 11, 16)
    mask = random_masks([11], 3, seed=4)[0]
    assert not bool(mask.all())
    torch.testing.assert_close(layer(x, mask, explicit=True), layer(x, mask), atol=1e-5, rtol=0)


# ---- dropout with the cheap CPU mask ---------------------------------------------------------------
def test_dropout_drops_the_right_share_and_keeps_the_mean():
    torch.manual_seed(0)
    x = torch.ones(1_000_003)  # not a multiple of 4: the last 64-bit draw is cut
    y = dropout(x, 0.1)
    dropped = float((y == 0).float().mean())
    assert abs(dropped - 0.1) < 5 * (0.1 * 0.9 / x.numel()) ** 0.5  # five standard errors
    kept = y[y != 0]
    torch.testing.assert_close(kept, torch.full_like(kept, 65536 / (65536 - 6554)))  # 1 / (1 - p)
    assert abs(float(y.mean()) - 1.0) < 3e-3
    assert torch.equal(x, torch.ones_like(x))  # the input is not modified
    # every 16-bit slot of a draw is used: in each position mod 4 about p of the elements drop
    by_slot = (y == 0).float()[:1_000_000].view(-1, 4).mean(0)
    assert (by_slot - 0.1).abs().max() < 5 * (0.1 * 0.9 / 250_000) ** 0.5


def test_dropout_is_seeded_identity_in_eval_and_its_gradient_is_the_mask():
    x = torch.randn(64, 7, requires_grad=True)
    assert dropout(x, 0.3, training=False) is x and dropout(x, 0.0) is x
    torch.manual_seed(3)
    a = dropout(x, 0.3)
    torch.manual_seed(3)
    b = dropout(x, 0.3)
    assert torch.equal(a, b) and not torch.equal(a, dropout(x, 0.3))
    a.sum().backward()
    torch.testing.assert_close(x.grad, a.detach() / x.detach())  # d(x * mask * s)/dx = mask * s
    assert 0.15 < float((x.grad == 0).float().mean()) < 0.45


def test_every_dropout_of_every_model_uses_the_cheap_mask():
    cfg = make_config(dropout=0.2, pyramid_levels=2)
    for kind in sorted(MODEL_KINDS):
        drops = [m for m in build_model(kind, cfg).modules() if isinstance(m, torch.nn.Dropout)]
        assert all(type(m) is Dropout and m.p == 0.2 for m in drops), kind
        if kind != "linear":
            assert drops, kind


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


# ---- the two steps of forward, gradient checkpointing -------------------------------------------
def _encode_then_combine(net: MultiScaleAttentionNet, windows, masks=None, **options):
    """forward written out with the two public steps, tokens passed as a dict."""
    tokens = {
        name: net.encode_scale(name, torch.as_tensor(windows[name]), None if masks is None else masks.get(name))
        for name in reversed(net.config.scale_names)  # any order: each encoder is independent
    }
    return net.combine(tokens, masks, **options)


@pytest.mark.parametrize("pyramid_levels", [0, 2])
def test_encode_scale_and_combine_give_forward_exactly(pyramid_levels):
    torch.manual_seed(0)
    cfg = make_config(pyramid_levels=pyramid_levels)
    net = MultiScaleAttentionNet(cfg).eval()
    windows = make_windows(cfg, batch=3)
    masks = dict(zip(cfg.scale_names, random_masks([7, 13, 1], batch=3), strict=True))
    with torch.no_grad():
        whole = net(windows, masks, return_details=True)
        steps = _encode_then_combine(net, windows, masks, return_details=True)
    assert whole.keys() == steps.keys()
    for key, value in whole.items():
        assert torch.equal(value, steps[key]), key
    # a token of one scale changes only when that scale's window does
    changed = dict(windows, **{"5min": windows["5min"] + 1.0})
    with torch.no_grad():
        before = {n: net.encode_scale(n, torch.as_tensor(windows[n])) for n in cfg.scale_names}
        after = {n: net.encode_scale(n, torch.as_tensor(changed[n])) for n in cfg.scale_names}
    assert [n for n in cfg.scale_names if not torch.equal(before[n], after[n])] == ["5min"]


def test_combine_names_what_is_missing():
    torch.manual_seed(0)
    net = MultiScaleAttentionNet(make_config()).eval()
    tokens = {n: torch.zeros(1, 2, 16) for n in ("1min", "5min")}
    with pytest.raises(KeyError, match=r"lack scale\(s\) \['1D'\]"):
        net.combine(tokens)
    with pytest.raises(ValueError, match="tokens of 2 scales"):
        net.combine(list(tokens.values()))
    with pytest.raises(KeyError, match="no scale '1h'"):
        net.encode_scale("1h", torch.zeros(1, 2, 3))


def _train_step(net: MultiScaleAttentionNet, windows) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
    """Loss, every parameter's gradient, and the next draw of torch's generator after the step."""
    torch.manual_seed(1)
    net.zero_grad(set_to_none=True)
    out = net(windows)
    loss = out["returns"].pow(2).mean() + out["direction_logits"].sum()
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in net.parameters()], torch.rand(4)


def test_gradient_checkpointing_is_off_by_default_and_changes_nothing_but_memory(monkeypatch):
    torch.manual_seed(0)
    deeper = tuple(ScaleConfig(s.name, s.n_features, s.lookback, n_layers=2) for s in ODD)
    cfg = make_config(dropout=0.3, scales=deeper)
    net = MultiScaleAttentionNet(cfg).train()
    windows = make_windows(cfg, batch=4)
    assert net.gradient_checkpointing is False
    assert "gradient_checkpointing" not in cfg.to_dict()  # not a setting of the network
    keys = list(net.state_dict())

    # count the checkpointed calls, to prove the flag really takes the other path
    calls = []
    real = torch.utils.checkpoint.checkpoint
    monkeypatch.setattr(torch.utils.checkpoint, "checkpoint", lambda *a, **k: calls.append(1) or real(*a, **k))
    plain = _train_step(net, windows)
    assert calls == []
    assert net.enable_gradient_checkpointing() is net and net.gradient_checkpointing
    checkpointed = _train_step(net, windows)
    assert len(calls) == 2 * len(ODD)  # every layer of every scale
    assert list(net.state_dict()) == keys

    assert torch.equal(plain[0], checkpointed[0])
    for p, g_plain, g_ckpt in zip(net.parameters(), plain[1], checkpointed[1], strict=True):
        assert torch.equal(g_plain, g_ckpt), p.shape  # dropout masks replayed exactly
    assert torch.equal(plain[2], checkpointed[2])  # the generator advanced by the same draws
    # the recomputation must replay the masks: without them the gradients would differ
    monkeypatch.setattr(
        torch.utils.checkpoint, "checkpoint",
        lambda *a, **k: calls.append(1) or real(*a, **dict(k, preserve_rng_state=False)),
    )
    assert not torch.equal(_train_step(net, windows)[1][0], plain[1][0])

    # only training steps recompute: not eval, not under no_grad
    calls.clear()
    with torch.no_grad():
        net(windows)
    net.eval()
    net(windows)
    assert calls == []
    with pytest.raises(TypeError, match="True or False"):
        net.enable_gradient_checkpointing("yes")
    assert net.enable_gradient_checkpointing(False).gradient_checkpointing is False
