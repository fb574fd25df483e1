"""The privacy attack's decoder training: real codec, real crops, real packets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from anoncodec.data.sample import AnnotatedImage
from anoncodec.errors import ConfigError, DatasetError
from anoncodec.training.attack import AttackConfig, attack_decode, quantized_latent, train_attack_decoder
from tests.conftest import tiny_codec


@pytest.fixture
def footage(tmp_path):
    rng = np.random.default_rng(0)
    items = []
    for i in range(2):
        path = tmp_path / f"f{i}.png"
        Image.fromarray(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)).save(path)
        items.append(AnnotatedImage(f"f{i}", str(path), np.array([[10, 10, 60, 90]], np.float32),
                                    np.array([[20, 10, 40, 30]], np.float32), group=f"f{i}"))
    return items


def test_latent_matches_what_the_packet_carries():
    codec = tiny_codec()
    x = torch.rand(1, 3, 40, 56)
    packet = codec.compress(x)
    stream = packet.streams[0]
    carried = codec.entropy_tables().decode(stream.data, stream.shape)
    np.testing.assert_allclose(quantized_latent(codec, x)[0].detach().numpy(), carried, atol=1e-6)


def test_training_updates_only_the_attackers_decoder(footage):
    codec = tiny_codec()
    before = {k: v.clone() for k, v in codec.state_dict().items()}
    result = train_attack_decoder(codec, footage, AttackConfig(steps=6, batch_size=2, crop_size=32, lr=1e-2,
                                                               device="cpu"), log_every=2, progress=False)
    assert [s for s, _ in result.history] == [2, 4, 6]
    assert all(np.isfinite(loss) for _, loss in result.history)
    for k, v in codec.state_dict().items():
        assert torch.equal(v, before[k]), f"the attack changed our codec's {k}"
    moved = [not torch.equal(a, b) for a, b in zip(result.decoder.state_dict().values(),
                                                  codec.g_s.state_dict().values())]
    assert any(moved)
    frame = np.asarray(Image.open(footage[0].path))
    from anoncodec.codec.images import frame_to_tensor

    out = attack_decode(codec, result.decoder, codec.compress(frame_to_tensor(frame)))
    assert out.shape == frame.shape and out.dtype == np.uint8


def test_a_wider_decoder_from_scratch(footage):
    codec = tiny_codec()
    result = train_attack_decoder(codec, footage, AttackConfig(steps=2, batch_size=2, crop_size=32, init="random",
                                                               width=16, device="cpu"), progress=False)
    assert result.decoder[0].weight.shape[1] == 16  # deconv(M, N=16): [M, N, k, k]


def test_bad_settings_are_refused(footage):
    with pytest.raises(ConfigError, match="init"):
        AttackConfig(init="theirs")
    with pytest.raises(ConfigError, match="width"):
        AttackConfig(width=64)  # a width needs a fresh decoder
    with pytest.raises(ConfigError, match="multiple"):
        train_attack_decoder(tiny_codec(), footage, AttackConfig(crop_size=40), progress=False)
    with pytest.raises(DatasetError):
        train_attack_decoder(tiny_codec(), [], AttackConfig(), progress=False)
    with pytest.raises(ConfigError, match="factorized"):
        quantized_latent(tiny_codec("hyperprior"), torch.rand(1, 3, 32, 32))
