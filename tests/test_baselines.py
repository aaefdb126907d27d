"""Tests of msa_lib.baselines: built by kind, the shared outputs, what each baseline reads."""

from __future__ import annotations

import pytest
import torch

from msa_lib.baselines import LinearBaseline, LSTMBaseline, SingleScaleTransformer
from msa_lib.model import (
    ForecastHeads,
    ModelConfig,
    ScaleConfig,
    build_model,
    load_checkpoint,
    save_checkpoint,
)

torch.set_num_threads(1)

SCALES = (ScaleConfig("1min", 3, 7), ScaleConfig("5min", 4, 13), ScaleConfig("1d", 2, 1))
KINDS = {"lstm": LSTMBaseline, "single_scale": SingleScaleTransformer, "linear": LinearBaseline}


def make_config(**options) -> ModelConfig:
    options.setdefault("d_model", 16)
    options.setdefault("dropout", 0.0)
    options.setdefault("horizons", ("15min", "1h"))
    return ModelConfig(scales=SCALES, **options)


def make_windows(config: ModelConfig, batch: int = 5, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {s.name: torch.randn(batch, s.lookback, s.n_features, generator=g) for s in config.scales}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_build_model_builds_each_baseline_with_the_shared_heads(kind, tmp_path):
    torch.manual_seed(0)
    cfg = make_config()
    model = build_model(kind, cfg.to_dict())  # a plain dict works too (as from a checkpoint)
    assert type(model) is KINDS[kind] and model.kind == kind and model.config == cfg
    assert isinstance(model.heads, ForecastHeads)
    out = model.eval()(make_windows(cfg), return_details=True)
    assert out["returns"].shape == out["direction_logits"].shape == (5, 2)
    assert out["fused"].shape[0] == 5
    loaded, _ = load_checkpoint(save_checkpoint(model, tmp_path / "b.pt"), expected_kind=kind)
    assert type(loaded) is KINDS[kind]


def test_single_scale_baseline_uses_only_its_scale():
    torch.manual_seed(0)
    cfg = make_config(single_scale="5min")
    net = build_model("single_scale", cfg).eval()
    w = make_windows(cfg)
    base = net(w)["returns"]
    assert torch.equal(net({**w, "1min": w["1min"] + 5})["returns"], base)
    assert not torch.allclose(net({**w, "5min": w["5min"] + 5})["returns"], base)
    assert torch.equal(net({"5min": w["5min"]})["returns"], base)  # other scales may be absent


@pytest.mark.parametrize("kind", ["lstm", "linear"])
def test_hidden_rows_are_read_as_zeros(kind):
    torch.manual_seed(0)
    cfg = make_config()
    net = build_model(kind, cfg).eval()
    w = make_windows(cfg)
    mask = torch.ones(5, 13, dtype=torch.bool)
    mask[:, :4] = False  # the 4 oldest 5-minute bars are padding
    zeroed = w["5min"].clone()
    zeroed[:, :4] = 0.0
    scrambled = w["5min"].clone()
    scrambled[:, :4] = 1e3
    masks = {"5min": mask}
    out = net({**w, "5min": scrambled}, masks=masks)["returns"]
    torch.testing.assert_close(out, net({**w, "5min": zeroed})["returns"])
    assert not torch.allclose(out, net(w)["returns"])


def test_every_scale_reaches_the_lstm_and_linear_outputs():
    torch.manual_seed(0)
    cfg = make_config()
    for kind in ("lstm", "linear"):
        net = build_model(kind, cfg).eval()
        w = make_windows(cfg)
        base = net(w)["returns"]
        for name in cfg.scale_names:
            assert not torch.allclose(net({**w, name: w[name] + 1.0})["returns"], base), (kind, name)


def test_linear_baseline_needs_whole_windows_and_names_the_scale():
    cfg = make_config()
    net = build_model("linear", cfg)
    w = make_windows(cfg)
    with pytest.raises(ValueError, match=r"windows\['5min'\] has 12 rows, needs exactly 13"):
        net({**w, "5min": w["5min"][:, 1:]})
    with pytest.raises(KeyError, match="1d"):
        net({k: v for k, v in w.items() if k != "1d"})
