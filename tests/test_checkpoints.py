"""Tests of msa_lib.checkpoints: one format, written by save_checkpoint and read by load_checkpoint,
for the networks of msa_lib.model (rebuilt from the file) and for any other module."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from msa_lib.checkpoints import load_checkpoint, save_checkpoint
from msa_lib.model import MODEL_KINDS, MultiScaleAttentionNet, build_model
from tests.tiny_models import make_config, make_windows  # noqa: E402

torch.set_num_threads(1)



@pytest.mark.parametrize("kind", sorted(MODEL_KINDS))
def test_checkpoint_round_trip(tmp_path, kind):
    torch.manual_seed(0)
    cfg = make_config(pos_encoding="sinusoidal")
    model = build_model(kind, cfg)
    path = save_checkpoint(model, tmp_path / "m.pt", epoch=3, metrics={"loss": 0.5})
    raw = torch.load(path, weights_only=True)  # plain types only
    assert raw["config"] == cfg.to_dict() and raw["kind"] == kind
    loaded, extra = load_checkpoint(path, expected_config=cfg)
    assert type(loaded) is type(model) and extra == {"epoch": 3, "metrics": {"loss": 0.5}}
    assert not loaded.training
    w = make_windows(cfg)
    torch.testing.assert_close(loaded(w)["returns"], model.eval()(w)["returns"])
    assert sum(p.numel() for p in loaded.parameters()) == sum(p.numel() for p in model.parameters())


def test_checkpoint_mismatch_is_a_clear_error(tmp_path):
    cfg = make_config()
    path = save_checkpoint(MultiScaleAttentionNet(cfg), tmp_path / "m.pt")
    with pytest.raises(ValueError, match=r"d_model: checkpoint 16 vs expected 32"):
        load_checkpoint(path, expected_config=cfg.replace(d_model=32))
    with pytest.raises(ValueError, match="'multiscale' model, expected 'lstm'"):
        load_checkpoint(path, expected_kind="lstm")
    with pytest.raises(TypeError, match="extra\\['scaler'\\]"):
        save_checkpoint(MultiScaleAttentionNet(cfg), tmp_path / "x.pt", scaler=object())
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    torch.save({"state_dict": {}}, tmp_path / "other.pt")  # someone else's file
    with pytest.raises(ValueError, match="not a msa_lib checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


class Plain(nn.Module):
    """A module msa_lib.model did not build: no kind, no config."""

    def __init__(self, width: int = 3) -> None:
        super().__init__()
        self.layer = nn.Linear(2, width)


def test_any_module_loads_into_a_model_of_the_same_shape(tmp_path):
    torch.manual_seed(1)
    source = Plain()
    path = save_checkpoint(source, tmp_path / "p.pt", note="x", shape=(2, 3))
    target = Plain().train()
    loaded, extra = load_checkpoint(path, model=target)
    assert loaded is target and target.training  # filled in place, mode untouched
    assert extra == {"note": "x", "shape": [2, 3]}  # tuples are stored as lists
    assert torch.equal(target.layer.weight, source.layer.weight)
    with pytest.raises(RuntimeError, match="saved from Plain.*does not fit Plain"):
        load_checkpoint(path, model=Plain(width=4))
    with pytest.raises(ValueError, match="without a stored network config.*model="):
        load_checkpoint(path)


def test_one_format_for_both_kinds_of_module(tmp_path):
    net = save_checkpoint(MultiScaleAttentionNet(make_config()), tmp_path / "n.pt")
    plain = save_checkpoint(Plain(), tmp_path / "p.pt")
    a, b = torch.load(net, weights_only=True), torch.load(plain, weights_only=True)
    assert set(a) == set(b) == {"format", "kind", "config", "model_class", "state_dict", "extra"}
    assert (a["model_class"], b["model_class"]) == ("MultiScaleAttentionNet", "Plain")
    assert b["kind"] is None and b["config"] is None
