"""The learned head gate: erasure in the encoder, through real entropy coding and ONNX Runtime."""

import numpy as np
import pytest
import torch

from anoncodec.codec import get_model, load_checkpoint, save_checkpoint
from anoncodec.codec.gate import GatedEncoder, HeadGate, dilate
from anoncodec.codec.onnx_export import export_codec
from anoncodec.config import CodecConfig, TrainConfig
from anoncodec.errors import ConfigError
from anoncodec.training.loop import _init_weights


def gated_codec(seed: int = 0, **kw):
    torch.manual_seed(seed)
    model = get_model(CodecConfig(N=8, M=12, gate_channels=6, **kw)).eval()
    model.update(force=True)
    return model


def fire_everywhere(model, on: bool = True) -> None:
    """Make the gate fire on every cell (or on none) through its last bias."""
    last = model.head_gate.net[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(20.0 if on else -20.0)


def test_dilate_grows_by_margin_cells():
    mask = torch.zeros(1, 5, 6, dtype=torch.bool)
    mask[0, 2, 3] = True
    assert torch.equal(dilate(mask, 0), mask)
    grown = dilate(mask, 1)[0]
    assert grown.sum() == 9 and grown[1:4, 2:5].all()
    assert dilate(mask, 2)[0].sum() == 5 * 5


def test_erase_writes_medians_only_under_the_mask():
    y = torch.randn(2, 3, 4, 4)
    medians = torch.tensor([0.5, -1.0, 2.0])
    mask = torch.zeros(2, 4, 4, dtype=torch.bool)
    mask[1, 0, 0] = True
    out = HeadGate.erase(y, mask, medians)
    assert torch.equal(out[1, :, 0, 0], medians)
    keep = ~mask[:, None].expand_as(y)
    assert torch.equal(out[keep], y[keep])


def test_gate_threshold_and_margin_decide_the_mask():
    gate = HeadGate(M=4, channels=2, threshold=0.8, margin=1)
    logits = torch.full((1, 3, 3), -5.0)
    logits[0, 1, 1] = float(np.log(0.7 / 0.3))  # p = 0.7 < 0.8: not erased
    assert not gate.mask(logits).any()
    logits[0, 1, 1] = float(np.log(0.9 / 0.1))
    assert gate.mask(logits).all()  # one cell + margin 1 covers the 3x3 latent
    extra = torch.zeros(1, 3, 3, dtype=torch.bool)
    extra[0, 0, 0] = True
    assert gate.mask(torch.full((1, 3, 3), -5.0), extra)[0, :2, :2].all()


def test_config_without_gate_serializes_as_before():
    plain = CodecConfig(N=8, M=12)
    assert set(plain.to_dict()) == {"architecture", "N", "M", "extra_blocks"}
    gated = CodecConfig(N=8, M=12, gate_channels=6, gate_threshold=0.3, gate_margin=2)
    assert CodecConfig.from_dict(gated.to_dict()) == gated
    assert gated.without_gate() == plain
    with pytest.raises(ConfigError, match="factorized"):
        CodecConfig(architecture="hyperprior", gate_channels=4)
    with pytest.raises(ConfigError, match="gate_threshold"):
        CodecConfig(gate_channels=4, gate_threshold=1.0)


def test_packet_of_a_fully_gated_frame_holds_only_medians():
    model = gated_codec()
    x = torch.rand(1, 3, 64, 80, generator=torch.Generator().manual_seed(1))
    fire_everywhere(model)
    packet = model.compress(x)
    tables = model.entropy_tables()
    y_hat = tables.decode(packet.streams[0].data, packet.streams[0].shape)
    np.testing.assert_array_equal(y_hat, np.broadcast_to(tables.medians[:, None, None], y_hat.shape))
    # whatever the frame shows, the packet is the same: nothing about it left the encoder
    other = model.compress(torch.rand(1, 3, 64, 80, generator=torch.Generator().manual_seed(2)))
    assert other.streams[0].data == packet.streams[0].data


def test_gate_that_never_fires_changes_nothing():
    model = gated_codec()
    fire_everywhere(model, on=False)
    x = torch.rand(1, 3, 48, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.equal(model.encoder_module()(model.pad(x)), model.g_a(model.pad(x)))


def test_training_forward_erases_known_heads_and_returns_logits():
    model = gated_codec().train()
    fire_everywhere(model, on=False)
    target = torch.zeros(1, 3, 4, dtype=torch.bool)
    target[0, 1, 1] = True
    out = model(torch.rand(1, 3, 48, 64), gate_target=target)
    assert out["gate_logits"].shape == (1, 3, 4)
    assert torch.equal(out["gate_mask"], dilate(target, 1))
    medians = out["medians"].view(-1, 1)
    assert torch.equal(out["y"][0][:, out["gate_mask"][0]], medians.expand(-1, 9))
    model.eval()
    assert not model(torch.rand(1, 3, 48, 64), gate_target=target)["gate_mask"].any()


def test_exported_encoder_erases_like_pytorch(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    model = gated_codec()
    exported = export_codec(model, tmp_path)
    assert exported.encoder_max_abs_err < 1e-4
    assert isinstance(model.encoder_module(), GatedEncoder)
    fire_everywhere(model)
    export_codec(model, tmp_path)
    session = ort.InferenceSession(str(exported.encoder), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((1, 3, 32, 48), dtype=np.float32)
    (y,) = session.run(None, {"x": x})
    medians = model.entropy_tables().medians
    np.testing.assert_array_equal(y[0], np.broadcast_to(medians[:, None, None], y[0].shape))


def test_a_codec_without_gate_seeds_a_gated_one(tmp_path):
    plain = get_model(CodecConfig(N=8, M=12))
    save_checkpoint(tmp_path / "plain.pt", plain)
    init = load_checkpoint(tmp_path / "plain.pt")
    cfg = TrainConfig.from_dict({"codec": {"N": 8, "M": 12, "gate_channels": 6},
                                 "init_from": str(tmp_path / "plain.pt")})
    gated = get_model(cfg.codec)
    _init_weights(gated, init, cfg)
    assert torch.equal(gated.g_a[0].weight, plain.g_a[0].weight)
    wider = TrainConfig.from_dict({"codec": {"N": 16, "M": 12, "gate_channels": 6},
                                   "init_from": str(tmp_path / "plain.pt")})
    with pytest.raises(ConfigError, match="init_from"):
        _init_weights(get_model(wider.codec), init, wider)
