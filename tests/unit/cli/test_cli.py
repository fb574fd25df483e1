import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from anoncodec.cli.main import SUBCOMMANDS, main
from anoncodec.codec import save_checkpoint
from anoncodec.codec.onnx_export import export_codec
from tests.conftest import tiny_codec


@pytest.mark.parametrize("command", sorted(SUBCOMMANDS))
def test_help_of_every_subcommand(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert "usage: anoncodec " + command in capsys.readouterr().out


def test_help_does_not_load_torch():
    code = ("import sys\nfrom anoncodec.cli.main import build_parser\nbuild_parser()\n"
            "assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.fixture
def setup(tmp_path):
    model = tiny_codec("factorized")
    ckpt = tmp_path / "tiny.pt"
    save_checkpoint(ckpt, model)
    export_codec(model, tmp_path / "onnx")
    img = np.random.default_rng(0).integers(0, 256, size=(40, 52, 3), dtype=np.uint8)
    Image.fromarray(img).save(tmp_path / "in.png")
    return tmp_path, ckpt


@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_encode_decode_round_trip(setup, runtime, capsys):
    tmp, ckpt = setup
    extra = ["--onnx-dir", str(tmp / "onnx")] if runtime == "onnx" else ["--checkpoint", str(ckpt)]
    assert main(["encode", str(tmp / "in.png"), "-o", str(tmp / "p.bin"), *extra]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["bytes"] == (tmp / "p.bin").stat().st_size and (info["height"], info["width"]) == (40, 52)
    assert main(["decode", str(tmp / "p.bin"), "-o", str(tmp / "out.png"), "--checkpoint", str(ckpt)]) == 0
    with Image.open(tmp / "out.png") as image:
        assert image.size == (52, 40)


def test_bad_inputs_exit_2_with_one_line(setup, capsys):
    tmp, ckpt = setup
    (tmp / "junk.bin").write_bytes(b"\x00" * 64)
    assert main(["decode", str(tmp / "junk.bin"), "-o", str(tmp / "o.png"), "--checkpoint", str(ckpt)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("anoncodec decode: error:") and "magic" in err and "\n" not in err
    assert main(["encode", str(tmp / "missing.png"), "-o", str(tmp / "p.bin"), "--checkpoint", str(ckpt)]) == 2
    assert main(["decode", str(tmp / "missing.bin"), "-o", str(tmp / "o.png"), "--checkpoint", str(ckpt)]) == 2
    assert main(["train", "--config", str(tmp / "missing.toml")]) == 2


def test_packet_from_other_model_is_refused(setup, tmp_path, capsys):
    tmp, ckpt = setup
    main(["encode", str(tmp / "in.png"), "-o", str(tmp / "p.bin"), "--checkpoint", str(ckpt)])
    other = tmp_path / "other.pt"
    save_checkpoint(other, tiny_codec("factorized", seed=5))
    assert main(["decode", str(tmp / "p.bin"), "-o", str(tmp / "o.png"), "--checkpoint", str(other)]) == 2
    assert "encoded by model" in capsys.readouterr().err


def test_demo_counts_faces_found_again():
    from anoncodec.cli.demo import _matched

    before = np.array([[10, 10, 30, 30, 0.9], [100, 100, 120, 130, 0.8]], np.float32)
    after = np.array([[12, 11, 31, 29, 0.5], [200, 200, 220, 220, 0.9], [101, 99, 121, 128, 0.7]], np.float32)
    assert _matched(after, before) == 2
    assert _matched(after[:0], before) == 0 and _matched(after, before[:0]) == 0
