import pytest

from anoncodec.config import CodecConfig, RoiLossConfig, TrainConfig, load_train_config
from anoncodec.errors import ConfigError


def test_paper_defaults():
    c = RoiLossConfig()
    weights = (c.mse_weight, c.person_weight, c.head_weight, c.rate_weight, c.head_k, c.person_k)
    assert weights == (1, 1, 0.6, 0.04, 1, 0)


def test_round_trip():
    cfg = TrainConfig.from_dict({"codec": {"N": 32, "extra_blocks": 1}, "data": [{"kind": "footage", "path": "v.avi"}]})
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.codec.downsampling == 32


@pytest.mark.parametrize("bad", [
    {"codec": {"architecture": "jpeg"}}, {"codec": {"extra_blocks": 3}}, {"loss": {"head_k": 2}},
    {"steps": 0}, {"crop_size": 100}, {"unknown": 1}, {"data": [{"kind": "footage"}]},
    {"data": [{"kind": "tfrecord", "path": "x"}]}, {"device": "tpu"},
])
def test_invalid_values_raise_config_error(bad):
    with pytest.raises(ConfigError):
        TrainConfig.from_dict(bad)


@pytest.mark.parametrize("suffix", [".toml", ".yaml"])
def test_load_file_resolves_relative_paths(tmp_path, suffix):
    (tmp_path / "cfg").mkdir()
    if suffix == ".toml":
        text = 'out_dir = "../out"\nsteps = 3\n[codec]\nN = 8\n[[data]]\nkind = "footage"\npath = "clip.avi"\n'
    else:
        text = "out_dir: ../out\nsteps: 3\ncodec: {N: 8}\ndata:\n  - {kind: footage, path: clip.avi}\n"
    path = tmp_path / "cfg" / f"train{suffix}"
    path.write_text(text)
    cfg = load_train_config(path)
    assert cfg.steps == 3 and cfg.codec == CodecConfig(N=8)
    assert cfg.out_dir == str((tmp_path / "out").resolve())
    assert cfg.data[0].path == str(tmp_path / "cfg" / "clip.avi")


def test_bad_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_train_config(tmp_path / "nope.toml")
    (tmp_path / "x.toml").write_text("steps = [")
    with pytest.raises(ConfigError, match="cannot parse"):
        load_train_config(tmp_path / "x.toml")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(ConfigError, match=".toml"):
        load_train_config(tmp_path / "x.json")


def test_lr_schedule_warmup_then_cosine_to_the_floor():
    from anoncodec.config import lr_factor

    cfg = TrainConfig(steps=110, lr_schedule="cosine", lr_warmup=10, lr_min_factor=0.1)
    assert lr_factor(cfg, 0) == pytest.approx(0.1)
    assert lr_factor(cfg, 9) == pytest.approx(1.0)
    assert lr_factor(cfg, 10) == pytest.approx(1.0)
    assert lr_factor(cfg, 60) == pytest.approx(0.55)  # half way: mean of 1 and the floor
    assert lr_factor(cfg, 110) == pytest.approx(0.1)
    assert lr_factor(TrainConfig(steps=5), 3) == 1.0
    with pytest.raises(ConfigError):
        TrainConfig(lr_schedule="step")


def test_head_rate_settings_are_checked():
    assert RoiLossConfig().head_rate_weight == 0.0  # the paper has no such term
    with pytest.raises(ConfigError):
        RoiLossConfig(head_rate_weight=-1)
    with pytest.raises(ConfigError):
        RoiLossConfig(head_rate_margin=9)


def test_erase_heads_needs_the_factorized_codec():
    from anoncodec.config import TrainConfig

    assert TrainConfig.from_dict({"erase_heads": 0.5}).erase_heads == 0.5
    with pytest.raises(ConfigError, match="erase_heads"):
        TrainConfig.from_dict({"erase_heads": 0.5, "codec": {"architecture": "hyperprior"}})
    with pytest.raises(ConfigError, match="erase_heads"):
        TrainConfig.from_dict({"erase_heads": 1.5})
