"""The codecs against real entropy coding, CompressAI's own coder and ONNX Runtime."""

import numpy as np
import pytest
import torch

from anoncodec.codec import list_models, load_codec, register_model, save_checkpoint
from anoncodec.codec.images import frame_to_tensor, tensor_to_frame
from anoncodec.config import CodecConfig
from anoncodec.errors import ConfigError, ExportError, ModelMismatchError, PacketError
from anoncodec.packet import Packet, Stream, pack, unpack
from tests.conftest import tiny_codec


def image(h=70, w=90, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, h, w, generator=g)


def test_registry():
    assert list_models() == ["factorized", "hyperprior"]
    with pytest.raises(ValueError, match="already registered"):
        register_model("factorized")(object)
    with pytest.raises(ConfigError):
        CodecConfig(architecture="jpeg")


@pytest.mark.parametrize("arch", ["factorized", "hyperprior"])
@pytest.mark.parametrize("extra", [0, 1])
def test_forward_shapes_any_size(arch, extra):
    model = tiny_codec(arch, extra_blocks=extra).train()
    out = model(image(37, 50))
    assert out["x_hat"].shape == (1, 3, 37, 50)
    assert 0 <= out["x_hat"].min() and out["x_hat"].max() <= 1
    assert set(out["likelihoods"]) == ({"y"} if arch == "factorized" else {"y", "z"})


@pytest.mark.parametrize("arch", ["factorized", "hyperprior"])
def test_compress_decompress_round_trip(arch):
    model = tiny_codec(arch)
    x = image()
    packet = unpack(pack(model.compress(x)))
    assert (packet.height, packet.width) == (70, 90)
    x_hat = model.decompress(packet)
    assert x_hat.shape == x.shape
    # the same as the training graph in eval mode (rounding with medians)
    if arch == "factorized":
        ref = model(x)["x_hat"]
        assert torch.allclose(x_hat, ref, atol=1e-5)


def test_factorized_latent_matches_compressai_coder(factorized):
    """Our coder and CompressAI's rANS decode the very same y_hat; sizes agree within 5%."""
    x = image(96, 128)
    with torch.no_grad():
        y = factorized.g_a(factorized.pad(x))
    strings = factorized.entropy_bottleneck.compress(y)
    y_hat_compressai = factorized.entropy_bottleneck.decompress(strings, y.shape[-2:])
    packet = factorized.compress(x)
    ours = factorized.entropy_tables().decode(packet.streams[0].data, packet.streams[0].shape)
    assert torch.equal(torch.from_numpy(ours)[None], y_hat_compressai)
    assert abs(len(packet.streams[0].data) - len(strings[0])) <= 0.05 * len(strings[0]) + 8


def test_escape_values_survive(factorized):
    """Latents far outside the learned range take the escape path and still decode exactly."""
    tables = factorized.entropy_tables()
    y = np.random.default_rng(0).normal(0, 1, size=(12, 3, 4)).astype(np.float32)
    y[0, 0, 0], y[5, 1, 2] = 1e4, -3e3
    payload, y_hat = tables.encode(y)
    assert np.array_equal(tables.decode(payload, y.shape), y_hat)


def test_wrong_model_is_refused(factorized):
    other = tiny_codec("factorized", seed=1)
    packet = factorized.compress(image())
    with pytest.raises(ModelMismatchError):
        other.decompress(packet)


def test_inconsistent_latent_shape_is_refused(factorized):
    packet = factorized.compress(image())
    bad = Packet(packet.model_id, packet.architecture, 70, 90, (Stream((12, 9, 9), packet.streams[0].data),))
    with pytest.raises(PacketError, match="latent shape"):
        factorized.decompress(bad)


def test_model_id_changes_with_weights(factorized):
    before = factorized.model_id()
    with torch.no_grad():
        factorized.g_a[0].weight[0, 0, 0, 0] += 1
    assert factorized.model_id() != before


def test_checkpoint_round_trip(tmp_path, factorized):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, factorized, meta={"note": "test"})
    loaded = load_codec(path)
    assert loaded.model_id() == factorized.model_id()
    packet = factorized.compress(image())
    assert torch.equal(loaded.decompress(packet), factorized.decompress(packet))
    with pytest.raises(ConfigError, match="does not exist"):
        load_codec(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError):
        load_codec(tmp_path / "junk.pt")


def test_frame_conversions():
    frame = np.random.default_rng(0).integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    assert np.array_equal(tensor_to_frame(frame_to_tensor(frame)), frame)
    with pytest.raises(ValueError):
        frame_to_tensor(frame.astype(np.float32))


def test_hyperprior_refuses_camera_export(hyperprior):
    with pytest.raises(ExportError, match="not bit-exact across runtimes"):
        hyperprior.entropy_tables()


def test_hyperprior_indexes_are_fragile(hyperprior):
    """Why the hyperprior is refused: a perturbation at float32 precision of z_hat's
    path (as another runtime would produce) changes some scale-table indexes, which
    desynchronizes the range decoder."""
    torch.manual_seed(0)
    z_hat = torch.randn(1, 8, 8, 8) * 3
    gc = hyperprior.gaussian_conditional
    with torch.no_grad():
        scales = hyperprior.h_s(z_hat)
        # put scales exactly on table boundaries, then nudge them by 1 ulp
        table = gc.scale_table
        scales = table[torch.randint(1, len(table), scales.shape)].reshape(scales.shape)
        a = gc.build_indexes(scales)
        b = gc.build_indexes(torch.nextafter(scales, scales + 1))
    assert (a != b).any()


def test_mixed_quantization_decodes_what_the_packet_carries():
    import torch

    from tests.conftest import tiny_codec

    model = tiny_codec()
    model.train()
    model.mixed_quantization = True
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    out = model(x)
    offset = out["medians"].reshape(1, -1, 1, 1)
    expected = model.g_s(torch.round(out["y"] - offset) + offset)[..., :32, :32]
    assert torch.allclose(out["x_hat"], expected, atol=1e-6)
    out["x_hat"].sum().backward()  # straight-through: the encoder still gets a gradient
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    model.mixed_quantization = False
    noisy = model(x)["x_hat"]
    assert not torch.allclose(noisy, expected, atol=1e-6)
