"""A real (tiny) training run on a CrowdHuman-format fixture."""

import csv
import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image

from anoncodec.codec import load_checkpoint, load_codec
from anoncodec.codec.checkpoint import atomic_torch_save
from anoncodec.config import TrainConfig
from anoncodec.training import split_parameters, train
from tests.conftest import tiny_codec


@pytest.fixture
def crowdhuman(tmp_path):
    images = tmp_path / "Images"
    images.mkdir()
    rng = np.random.default_rng(0)
    lines = []
    for i in range(6):
        # smooth images so a tiny codec can learn something in a few steps
        base = rng.uniform(0, 255, size=(4, 4, 3))
        img = np.kron(base, np.ones((24, 24, 1))).astype(np.uint8)
        Image.fromarray(img).save(images / f"img{i}.jpg", quality=95)
        lines.append(json.dumps({"ID": f"img{i}", "gtboxes": [
            {"tag": "person", "fbox": [20, 10, 40, 80], "vbox": [20, 10, 40, 80], "hbox": [28, 10, 20, 20],
             "extra": {"ignore": 0}, "head_attr": {"ignore": 0, "unsure": 0}}]}))
    (tmp_path / "train.odgt").write_text("\n".join(lines) + "\n")
    return tmp_path / "train.odgt"


def config(tmp_path, odgt, **kw) -> TrainConfig:
    base = {
        "codec": {"N": 8, "M": 12},
        "data": [{"kind": "crowdhuman", "path": str(odgt), "val_fraction": 0.34}],
        "out_dir": str(tmp_path / "run"), "steps": 40, "batch_size": 4, "crop_size": 48,
        "scale_min": 0.8, "scale_max": 1.2, "lr": 5e-3, "checkpoint_every": 10, "val_every": 10,
        "val_images": 4, "device": "cpu",
    }
    base.update(kw)
    return TrainConfig.from_dict(base)


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_training_reduces_loss_and_writes_checkpoint(tmp_path, crowdhuman):
    result = train(config(tmp_path, crowdhuman), progress=False, tensorboard=True)
    rows = read_csv(tmp_path / "run" / "val.csv")
    assert [int(r["step"]) for r in rows] == [10, 20, 30, 40]
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])
    assert float(rows[-1]["bpp"]) > 0 and float(rows[-1]["psnr"]) > 0
    assert result.steps == 40 and result.checkpoint.is_file()
    assert any((tmp_path / "run" / "tb").iterdir())
    model = load_codec(result.checkpoint)
    assert model.config.N == 8
    ckpt = load_checkpoint(result.checkpoint)
    assert ckpt["train"]["step"] == 40 and ckpt["model_id"] == model.model_id().hex()


def test_resume_continues_from_last_checkpoint(tmp_path, crowdhuman):
    train(config(tmp_path, crowdhuman, steps=10), progress=False, tensorboard=False)
    first = load_checkpoint(tmp_path / "run" / "last.pt")
    assert first["train"]["step"] == 10
    result = train(config(tmp_path, crowdhuman, steps=20), resume=True, progress=False, tensorboard=False)
    assert result.steps == 20
    assert [int(r["step"]) for r in read_csv(tmp_path / "run" / "val.csv")] == [10, 20]


def test_interrupt_saves_checkpoint(tmp_path, crowdhuman, monkeypatch):
    from anoncodec.roi import loss as loss_module

    calls = {"n": 0}
    original = loss_module.RoiObjective.forward

    def flaky(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt
        return original(self, *a, **k)

    monkeypatch.setattr(loss_module.RoiObjective, "forward", flaky)
    with pytest.raises(KeyboardInterrupt):
        train(config(tmp_path, crowdhuman, val_every=100), progress=False, tensorboard=False)
    assert load_checkpoint(tmp_path / "run" / "last.pt")["train"]["step"] == 6


def test_atomic_save_keeps_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    atomic_torch_save({"v": 1}, path)

    def broken_save(obj, f):
        f.write(b"half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(RuntimeError):
        atomic_torch_save({"v": 2}, path)
    monkeypatch.undo()
    assert torch.load(path)["v"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_optimizer_split_is_disjoint_and_complete():
    model = tiny_codec("hyperprior")
    net, aux = split_parameters(model)
    assert aux and all(n.endswith("quantiles") for n in aux)
    assert set(net) | set(aux) == {n for n, _ in model.named_parameters()}


def test_sigterm_saves_checkpoint_like_ctrl_c(tmp_path, crowdhuman, monkeypatch):
    import os
    import signal

    from anoncodec.roi import loss as loss_module

    calls = {"n": 0}
    original = loss_module.RoiObjective.forward

    def terminate_on_fifth(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 5:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, *a, **k)

    monkeypatch.setattr(loss_module.RoiObjective, "forward", terminate_on_fifth)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        train(config(tmp_path, crowdhuman, val_every=100), progress=False, tensorboard=False)
    assert load_checkpoint(tmp_path / "run" / "last.pt")["train"]["step"] in (4, 5)
    assert signal.getsignal(signal.SIGTERM) is before


def test_gated_codec_trains_its_gate_and_reports_recall(tmp_path, crowdhuman):
    cfg = config(tmp_path, crowdhuman, steps=20, codec={"N": 8, "M": 12, "gate_channels": 4},
                 loss={"gate_weight": 1.0, "head_target": "fill"}, quantization="mixed")
    result = train(cfg, progress=False, tensorboard=False)
    rows = read_csv(tmp_path / "run" / "val.csv")
    assert 0.0 <= float(rows[-1]["gate_recall"]) <= 1.0
    assert 0.0 <= float(rows[-1]["gate_false_alarm"]) <= 1.0
    model = load_codec(result.checkpoint)
    assert model.head_gate is not None and model.config.gate_channels == 4
    torch.manual_seed(cfg.seed)  # the gate's initial weights: training moved them
    fresh = type(model)(model.config)
    assert not torch.equal(fresh.head_gate.net[-1].weight, model.head_gate.net[-1].weight)


def test_erase_heads_trains_on_guard_like_latents(tmp_path, crowdhuman):
    from anoncodec.codec import get_model
    from anoncodec.training.loop import _erase_target

    cfg = config(tmp_path, crowdhuman, steps=10, erase_heads=1.0, erase_margin=1, quantization="mixed")
    result = train(cfg, progress=False, tensorboard=False)
    assert result.steps == 10
    model = get_model(cfg.codec)
    x = torch.zeros(2, 3, 64, 64)
    heads = [torch.tensor([[20.0, 20.0, 30.0, 30.0]]), torch.zeros(0, 4)]
    erase = _erase_target(model, x, heads, cfg)["erase"]
    assert erase[0].sum() == 9 and erase[0, 0:3, 0:3].all() and not erase[1].any()  # 1 cell + margin 1
    out = model.train()(x, erase=erase)
    assert torch.equal(out["y"][0][:, erase[0]], out["medians"].view(-1, 1).expand(-1, 9))
    none = _erase_target(model, x, heads, dataclasses.replace(cfg, erase_heads=0.0))
    assert none == {}
